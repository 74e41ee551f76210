// bench_soak: does one daemon stay flat over a long life? 200,000 no-op runs
// (--runs) through the real `jobhost run`:
//  - a config of J jobs (default 100) on the bench_noop plugin, each with
//    `every = "P ms"` (--period-ms, default 250: 400 runs a second),
//    max_concurrency J (the runs of one instant start together), keep_last K
//    (default 1,000) for every job, HTTP on a free loopback port. With
//    J = 100, what the daemon keeps per job (the JSON API's window of the
//    last 100 runs) is full after the first 10,000 runs, and K x J bounds
//    the ledger well before the end;
//  - every --every seconds (default 5) a sample of: runs completed and fires
//    skipped (jobhost_runs_total on /metrics), the daemon's VmRSS (and of it
//    RssAnon, the heap, and RssFile, mapped code and libraries), VmHWM, open
//    descriptors (/proc/PID/fd: the fewest of 10 looks over 0.3 s, i.e.
//    between bursts, and the most), the same of its fork server
//    (jobhost-forkserver, its child), the ledger's files (jobhost.db and
//    jobhost.db-wal) and its rows (runs in the ledger, the most of any job),
//    read with a read-only SQLite connection of its own;
//  - stops the daemon (SIGTERM) once --runs runs completed.
// Prints the samples, then the summary: RSS growth after the first 10,000
// runs (target < 1 MiB), descriptors first vs last, ledger rows against the
// bound keep_last sets (J x (K + max(1, K/10)) plus runs in flight) and the
// ledger's size once it reached that bound vs at the end. Figures only;
// never fails on them.
//
// usage: bench_soak [--runs N] [--jobs J] [--period-ms P] [--keep-last K]
//                   [--every SECONDS] [--jobhost PATH] [--plugin PATH]
// BENCH_KEEP=1 in the environment keeps the directory (config, ledger, log).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon_bench.h"

using namespace jobhost;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using jobhost::bench::connect_to;
using jobhost::bench::status_kib;

namespace {

struct Options {
  long runs = 200000;
  int jobs = 100;
  int period_ms = 250;
  int keep_last = 1000;
  int every_s = 5;
  std::string jobhost = JOBHOST_BINARY;
  std::string plugin = JOBHOST_NOOP_PLUGIN;
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes dir/jobs.toml and installs the plugin in dir/plugins.
fs::path write_config(const fs::path& dir, const Options& o) {
  bench::install_plugin(o.plugin, dir / "plugins");
  const fs::path file = dir / "jobs.toml";
  std::ofstream out(file);
  out << "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"state\"\ntimezone = \"UTC\"\n"
      << fmt::format("max_concurrency = {}\n", o.jobs)
      << fmt::format("dynamic_users = \"100000-{}\"\n", 100000 + 3 * o.jobs + 1000)
      << "[http]\nlisten = \"127.0.0.1:0\"\n"
      << fmt::format("[defaults]\nkeep_last = {}\n", o.keep_last);
  for (int i = 0; i < o.jobs; ++i) {
    out << fmt::format("[jobs.job{}]\nplugin = \"bench_noop\"\nevery = \"{}ms\"\n", i, o.period_ms);
  }
  return file;
}

int fd_count(pid_t pid) {
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it(fmt::format("/proc/{}/fd", pid), ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

// utime + stime of pid, in seconds.
double cpu_seconds(pid_t pid) {
  std::string stat = read_text(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return -1;
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

// The daemon's child named jobhost-forkserver (comm is cut at 15 bytes).
pid_t fork_server_of(pid_t daemon) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    const std::string stat = read_text(entry.path() / "stat");
    const auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string comm = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == daemon && comm.starts_with("jobhost-forks")) return std::stoi(name);
  }
  return -1;
}

struct Counts {
  long runs = -1;     // finished runs, any outcome but skipped
  long skipped = -1;  // fires recorded as skipped
};

// From jobhost_runs_total on /metrics.
Counts runs_completed(int port) {
  const int fd = connect_to(port);
  if (fd < 0) return {};
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return {};
  }
  std::string answer;
  char buf[16384];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (!answer.starts_with("HTTP/1.1 200")) return {};
  Counts out{0, 0};
  std::istringstream lines(answer);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("jobhost_runs_total{")) continue;
    const long n = std::atol(line.c_str() + line.rfind(' ') + 1);
    (line.find("\"skipped\"") != std::string::npos ? out.skipped : out.runs) += n;
  }
  return out;
}

struct LedgerRows {
  long runs = -1;          // rows in runs
  long most_per_job = -1;  // the most rows of any one job
};

// Counts rows with a read-only connection of its own (WAL: it does not block
// the daemon's writes).
LedgerRows ledger_rows(const fs::path& db_path) {
  LedgerRows out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  sqlite3_busy_timeout(db, 1000);
  auto one = [&](const char* sql) -> long {
    sqlite3_stmt* s = nullptr;
    long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
      v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  };
  out.runs = one("SELECT count(*) FROM runs");
  out.most_per_job = one("SELECT max(c) FROM (SELECT count(*) AS c FROM runs GROUP BY job)");
  sqlite3_close(db);
  return out;
}

long bytes_of(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<long>(n);
}

struct Sample {
  double t = 0;
  long runs = 0, skipped = 0;
  long rss_kib = 0, hwm_kib = 0;
  long anon_kib = 0, file_kib = 0;  // RssAnon (heap, stacks) and RssFile (mapped files)
  int fds = 0, most_fds = 0;        // the fewest and the most of 10 looks
  long fs_rss_kib = 0;
  int fs_fds = 0;
  long db_bytes = 0, wal_bytes = 0;
  LedgerRows rows;
  double cpu_s = 0;
};

double mib(long kib) {
  return kib / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--runs")
      o.runs = std::max(1L, std::atol(value.c_str()));
    else if (flag == "--jobs")
      o.jobs = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--period-ms")
      o.period_ms = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--keep-last")
      o.keep_last = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--every")
      o.every_s = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--jobhost")
      o.jobhost = value;
    else if (flag == "--plugin")
      o.plugin = value;
    else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  if (argc % 2 == 0) {
    fmt::print(stderr, "flag {} needs a value\n", argv[argc - 1]);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  bench::TempDir dir("bench-soak");
  const fs::path root = dir.path();
  fs::create_directories(root / "state");
  const fs::path config = write_config(root, o);
  const fs::path db = root / "state" / "jobhost.db";
  fmt::print("bench_soak: {} runs, {} jobs every {} ms, keep_last {}, in {}; load {}\n", o.runs,
             o.jobs, o.period_ms, o.keep_last, root.string(), bench::load_average());

  const auto t0 = Clock::now();
  bench::Daemon daemon_proc(o.jobhost, config, root / "daemon.log");
  const pid_t daemon = daemon_proc.pid();
  if (!daemon_proc.wait_ready(std::chrono::seconds(120))) {
    fmt::print("the daemon did not get ready: see {}\n", (root / "daemon.log").string());
    return 1;
  }
  const double ready_s = seconds_since(t0);
  int port = 0;
  {
    const std::string text = daemon_proc.log_text();
    const auto at = text.find("http: listening on 127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 29);
  }
  const pid_t server = fork_server_of(daemon);
  fmt::print("daemon pid {} (fork server {}), ready in {:.2f} s, /metrics on port {}\n", daemon,
             server, ready_s, port);

  auto take = [&] {
    Sample s;
    s.t = seconds_since(t0);
    const Counts counts = runs_completed(port);
    s.runs = counts.runs;
    s.skipped = counts.skipped;
    s.rss_kib = status_kib(daemon, "VmRSS:");
    s.hwm_kib = status_kib(daemon, "VmHWM:");
    s.anon_kib = status_kib(daemon, "RssAnon:");
    s.file_kib = status_kib(daemon, "RssFile:");
    s.fds = fd_count(daemon);
    s.most_fds = s.fds;
    for (int i = 0; i < 9; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(33));
      const int n = fd_count(daemon);
      s.fds = std::min(s.fds, n);
      s.most_fds = std::max(s.most_fds, n);
    }
    s.fs_rss_kib = server > 0 ? status_kib(server, "VmRSS:") : -1;
    s.fs_fds = server > 0 ? fd_count(server) : -1;
    s.db_bytes = bytes_of(db);
    s.wal_bytes = bytes_of(fs::path(db.string() + "-wal"));
    s.rows = ledger_rows(db);
    s.cpu_s = cpu_seconds(daemon);
    return s;
  };
  fmt::print(
      "{:>6} {:>8} {:>6} {:>7} | {:>7} {:>6} {:>6} {:>8} {:>9} | {:>6} {:>3} | {:>6} {:>6} {:>7} "
      "{:>7}\n",
      "t s", "runs", "runs/s", "skipped", "RSS MiB", "anon", "file", "peak MiB", "fds", "FS MiB",
      "fds", "db MiB", "wal MiB", "rows", "job max");
  auto print = [](const Sample& s, const Sample* before) {
    const double rate =
        before && s.t > before->t ? double(s.runs - before->runs) / (s.t - before->t) : 0;
    fmt::print(
        "{:>6.0f} {:>8} {:>6.0f} {:>7} | {:>7.2f} {:>6.2f} {:>6.2f} {:>8.2f} {:>9} | {:>6.2f} "
        "{:>3} "
        "| {:>6.1f} {:>6.1f} {:>7} {:>7}\n",
        s.t, s.runs, rate, s.skipped, mib(s.rss_kib), mib(s.anon_kib), mib(s.file_kib),
        mib(s.hwm_kib), fmt::format("{}-{}", s.fds, s.most_fds), mib(s.fs_rss_kib), s.fs_fds,
        s.db_bytes / 1048576.0, s.wal_bytes / 1048576.0, s.rows.runs, s.rows.most_per_job);
    std::fflush(stdout);
  };

  std::vector<Sample> samples{take()};
  print(samples.back(), nullptr);
  bool died = false;
  while (samples.back().runs < o.runs) {
    std::this_thread::sleep_for(std::chrono::seconds(o.every_s));
    if (status_kib(daemon, "VmRSS:") < 0) {  // gone, or a zombie
      died = true;
      break;
    }
    samples.push_back(take());
    print(samples.back(), &samples[samples.size() - 2]);
  }
  const double took = seconds_since(t0);
  if (died) {
    fmt::print("the daemon exited early: see {}\n", (root / "daemon.log").string());
    return 1;
  }
  const int rc = daemon_proc.stop(std::chrono::seconds(60));

  // Summary.
  const Sample& first = samples.front();
  const Sample& last = samples.back();
  const auto at10k =
      std::find_if(samples.begin(), samples.end(), [](const Sample& s) { return s.runs >= 10000; });
  fmt::print(
      "\n{} runs and {} skipped fires in {:.0f} s ({:.0f} runs/s), daemon CPU {:.1f} s; daemon "
      "exit code {}\n",
      last.runs, last.skipped, took, last.runs / took, last.cpu_s, rc);
  if (at10k != samples.end()) {
    long most = 0;
    for (auto it = at10k; it != samples.end(); ++it) most = std::max(most, it->rss_kib);
    fmt::print(
        "daemon RSS: {:.2f} MiB at ready, {:.2f} MiB at {} runs, {:.2f} MiB at the end: grew "
        "{:+.2f} MiB after the first 10,000 runs (most {:.2f} MiB; target < 1 MiB)\n",
        mib(first.rss_kib), mib(at10k->rss_kib), at10k->runs, mib(last.rss_kib),
        mib(last.rss_kib - at10k->rss_kib), mib(most));
    // Growth that slows down and stops is a heap settling (freed memory that
    // malloc keeps for the next burst); a leak grows as much in the second
    // half as in the first.
    const auto half = std::find_if(samples.begin(), samples.end(),
                                   [&](const Sample& s) { return s.runs >= last.runs / 2; });
    fmt::print("daemon RSS over the second half: {:.2f} MiB at {} runs, {:+.2f} MiB to the end\n",
               mib(half->rss_kib), half->runs, mib(last.rss_kib - half->rss_kib));
    // RssAnon is the heap (a leak shows there); RssFile grows as code and
    // libraries not run before are paged in.
    fmt::print(
        "of which after the first 10,000 runs: anonymous {:+.2f} MiB ({:.2f} -> {:.2f}), "
        "mapped files {:+.2f} MiB ({:.2f} -> {:.2f})\n",
        mib(last.anon_kib - at10k->anon_kib), mib(at10k->anon_kib), mib(last.anon_kib),
        mib(last.file_kib - at10k->file_kib), mib(at10k->file_kib), mib(last.file_kib));
    fmt::print("fork server RSS: {:.2f} MiB at {} runs, {:.2f} MiB at the end ({:+.2f} MiB)\n",
               mib(at10k->fs_rss_kib), at10k->runs, mib(last.fs_rss_kib),
               mib(last.fs_rss_kib - at10k->fs_rss_kib));
  }
  int most_fds = 0, most_fs_fds = 0;
  long most_rows = 0, most_per_job = 0, most_bytes = 0;
  for (const auto& s : samples) {
    most_fds = std::max(most_fds, s.most_fds);
    most_fs_fds = std::max(most_fs_fds, s.fs_fds);
    most_rows = std::max(most_rows, s.rows.runs);
    most_per_job = std::max(most_per_job, s.rows.most_per_job);
    most_bytes = std::max(most_bytes, s.db_bytes + s.wal_bytes);
  }
  fmt::print(
      "descriptors between bursts: daemon {} at ready, {} at the end (the most seen, runs in "
      "flight: {}); fork server {} -> {} (most {})\n",
      first.fds, last.fds, most_fds, first.fs_fds, last.fs_fds, most_fs_fds);
  const long per_job = o.keep_last + std::max(1, o.keep_last / 10);
  const long bound = long(o.jobs) * per_job;
  fmt::print(
      "ledger rows: {} at the end (most {}), the most of one job {} at the end (most {}); "
      "keep_last {} bounds them to {} per job, {} in all (plus runs in flight)\n",
      last.rows.runs, most_rows, last.rows.most_per_job, most_per_job, o.keep_last, per_job, bound);
  const auto full = std::find_if(samples.begin(), samples.end(), [&](const Sample& s) {
    return s.rows.runs >= long(o.jobs) * o.keep_last;
  });
  if (full != samples.end()) {
    fmt::print(
        "ledger size: {:.1f} MiB (db {:.1f} + wal {:.1f}) when it first held {} runs ({} runs "
        "done), {:.1f} MiB (db {:.1f} + wal {:.1f}) at the end, {:.1f} MiB at most\n",
        (full->db_bytes + full->wal_bytes) / 1048576.0, full->db_bytes / 1048576.0,
        full->wal_bytes / 1048576.0, full->rows.runs, full->runs,
        (last.db_bytes + last.wal_bytes) / 1048576.0, last.db_bytes / 1048576.0,
        last.wal_bytes / 1048576.0, most_bytes / 1048576.0);
  }
  fmt::print("load {}\n", bench::load_average());
  return 0;
}
