// bench_http: do hostile HTTP clients delay fires? On the real daemon, a
// job due every second, in two phases of the same run:
//  - quiet: only a /healthz request every 100 ms;
//  - hostile: the same, plus 200 idle connections, a slowloris client
//    sending one byte a second (reconnecting when cut off) and one holding
//    half a request.
// For each phase it prints the fire lateness (a run's start minus its slot,
// from the ledger, which records milliseconds; the job has no jitter) of the
// runs whose slot fell in it (median, p90, max) and the /healthz round trip
// (median, p90, max: how long the loop takes to answer), then the ratios
// hostile / quiet. Figures only; never fails on time.
//
// usage: bench_http [--seconds N]   (per phase, default 10)
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ledger/sqlite_store.h"

#include "support/daemon_bench.h"

using namespace jobhost;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using jobhost::bench::connect_to;

namespace {

TimePoint now() {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// One GET with Connection: close; true on a 200.
bool get_ok(int port, std::string_view path) {
  int fd = connect_to(port);
  if (fd < 0) return false;
  bool ok =
      send_all(fd, fmt::format("GET {} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", path));
  std::string answer;
  char buf[1024];
  ssize_t n;
  while (ok && (n = ::recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, n);
  ::close(fd);
  return answer.starts_with("HTTP/1.1 200");
}

struct Stats {
  std::size_t runs = 0;
  double median_ms = 0, p90_ms = 0, max_ms = 0;
};

Stats stats_of(std::vector<double> lateness) {
  Stats s;
  s.runs = lateness.size();
  if (lateness.empty()) return s;
  std::sort(lateness.begin(), lateness.end());
  s.median_ms = lateness[lateness.size() / 2];
  s.p90_ms = lateness[std::min(lateness.size() - 1, lateness.size() * 9 / 10)];
  s.max_ms = lateness.back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = std::atoi(argv[++i]);
  }
  ::signal(SIGPIPE, SIG_IGN);

  char pattern[] = "/tmp/bench-http-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return 1;
  const fs::path dir = pattern;
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
  fs::create_directory(dir / "plugins");
  fs::copy_file(fs::path(JOBHOST_PLUGIN_DIR) / "hello.so", dir / "plugins" / "hello.so");
  fs::permissions(dir / "plugins" / "hello.so", fs::perms::owner_all | fs::perms::group_read |
                                                    fs::perms::group_exec | fs::perms::others_read |
                                                    fs::perms::others_exec);
  std::ofstream(dir / "jobhost.toml")
      << "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"var\"\n\n"
         "[http]\nlisten = \"127.0.0.1:0\"\n\n"
         "[jobs.tick]\nplugin = \"hello\"\nschedule = \"* * * * * *\"\n";

  const fs::path log = dir / "daemon.log";
  pid_t daemon = ::fork();
  if (daemon == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const std::string config = (dir / "jobhost.toml").string();
    ::execl(JOBHOST_BIN, JOBHOST_BIN, "run", "--config", config.c_str(), nullptr);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    const std::string text = read_file(log);
    const auto at = text.find("http: listening on 127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 29);
  }
  if (port == 0) {
    fmt::print(stderr, "the daemon did not start:\n{}", read_file(log));
    ::kill(daemon, SIGKILL);
    return 1;
  }
  fmt::print("daemon on 127.0.0.1:{}, {} s per phase, job due every second\n", port, seconds);

  // Settle for two slots, then the phases.
  std::this_thread::sleep_for(2s);
  std::vector<double> quiet_rtt, hostile_rtt;
  int healthz_failed = 0;
  // /healthz every 100 ms for the phase's length, timing each answer.
  const auto probe_phase = [&](std::vector<double>& rtt, const std::function<void()>& each) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (each) each();
      const auto t0 = std::chrono::steady_clock::now();
      if (get_ok(port, "/healthz")) {
        rtt.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      } else {
        ++healthz_failed;
      }
      std::this_thread::sleep_for(100ms);
    }
  };
  const TimePoint quiet_from = now();
  probe_phase(quiet_rtt, nullptr);
  const TimePoint hostile_from = now();

  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(connect_to(port));
  int half = connect_to(port);
  send_all(half, "GET /healthz HTTP/1.1\r\nHost: b\r\n");
  int slow = connect_to(port);
  int slow_cut = 0;
  std::size_t sent = 0;
  auto next_byte = std::chrono::steady_clock::now();
  probe_phase(hostile_rtt, [&] {
    if (std::chrono::steady_clock::now() < next_byte) return;
    if (!send_all(slow, "G")) {
      ++slow_cut;
      ::close(slow);
      slow = connect_to(port);
      send_all(slow, "G");
    }
    ++sent;
    next_byte += 1s;
  });
  const TimePoint hostile_to = now();
  int idle_open = 0;
  for (int fd : idle) {
    if (fd < 0) continue;
    char c;
    const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) ++idle_open;
    ::close(fd);
  }
  ::close(half);
  ::close(slow);

  ::kill(daemon, SIGTERM);
  int status = 0;
  ::waitpid(daemon, &status, 0);

  auto store = ledger::open_sqlite_store(dir / "var" / "jobhost.db", config::Durability::normal,
                                         ledger::Access::read_only);
  if (!store) {
    fmt::print(stderr, "{}\n", store.error().message);
    return 1;
  }
  auto runs = (*store)->history("tick", 100000);
  if (!runs) {
    fmt::print(stderr, "{}\n", runs.error().message);
    return 1;
  }
  std::vector<double> quiet, hostile;
  int quiet_skipped = 0, hostile_skipped = 0;
  for (const auto& run : *runs) {
    const bool in_quiet = run.scheduled_for >= quiet_from && run.scheduled_for < hostile_from;
    const bool in_hostile = run.scheduled_for >= hostile_from && run.scheduled_for < hostile_to;
    if (!in_quiet && !in_hostile) continue;
    if (run.outcome == Outcome::skipped) {
      (in_quiet ? quiet_skipped : hostile_skipped)++;
      continue;
    }
    const double ms =
        std::chrono::duration<double, std::milli>(run.started_at - run.scheduled_for).count();
    (in_quiet ? quiet : hostile).push_back(ms);
  }
  const auto line = [](const char* what, const Stats& s, const char* unit) {
    fmt::print("  {:<22} n={:<4} median {:8.3f} {}, p90 {:8.3f} {}, max {:8.3f} {}\n", what, s.runs,
               s.median_ms, unit, s.p90_ms, unit, s.max_ms, unit);
  };
  const auto ratio = [](const Stats& h, const Stats& q) {
    return q.median_ms > 0 ? fmt::format("{:.2f}", h.median_ms / q.median_ms)
                           : std::string("n/a (quiet median 0 at the ledger's 1 ms resolution)");
  };
  const Stats lq = stats_of(quiet), lh = stats_of(hostile);
  const Stats rq = stats_of(quiet_rtt), rh = stats_of(hostile_rtt);
  fmt::print("quiet ({} skipped slots):\n", quiet_skipped);
  line("fire lateness", lq, "ms");
  line("/healthz round trip", rq, "ms");
  fmt::print(
      "hostile ({} skipped slots; 200 idle connections, {} still open at the end; "
      "slowloris sent {} byte(s), cut off {} time(s)):\n",
      hostile_skipped, idle_open, sent, slow_cut);
  line("fire lateness", lh, "ms");
  line("/healthz round trip", rh, "ms");
  fmt::print("/healthz failures: {}\n", healthz_failed);
  fmt::print("ratio of medians hostile / quiet: lateness {}, /healthz {}\n", ratio(lh, lq),
             ratio(rh, rq));
  fs::remove_all(dir);
  return 0;
}
