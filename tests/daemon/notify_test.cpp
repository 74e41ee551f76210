// systemd's notify protocol, the daemon's side (daemon/notify.h), without a
// daemon: the watchdog rules, the STATUS text, the environment taken out, and
// the messages a fake service manager receives on a path and on an abstract
// socket. The real daemon's messages: notify_daemon_test.cpp.
#include "daemon/notify.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "common/log.h"
#include "support/notify_receiver.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
using jobhost::daemon::ServiceFigures;
using jobhost::daemon::ServiceNotifier;
using jobhost::daemon::ServicePhase;
using jobhost::testing::NotifyReceiver;
using jobhost::testing::TempDir;

namespace {

std::string unique_abstract_name() {
  return "@jobhost-notify-test-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

// What this process writes on stderr (the log) while `body` runs.
template <typename Body>
std::string captured_stderr(const std::filesystem::path& file, Body body) {
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ::dup2(fd, 2);
  ::close(fd);
  body();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ServiceFigures figures_of(std::size_t jobs, std::size_t plugins, std::size_t runs) {
  ServiceFigures figures;
  figures.jobs = jobs;
  figures.plugins = plugins;
  figures.runs_in_flight = runs;
  return figures;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("the watchdog interval follows sd_watchdog_enabled's rules", "[notify]") {
  struct Case {
    const char* usec;
    const char* pid;
    std::optional<long> expected;  // microseconds
  };
  const pid_t self = 4242;
  const Case cases[] = {
      {"400000", nullptr, 400000},
      {"400000", "4242", 400000},  // WATCHDOG_PID names this process
      {"400000", "4243", {}},      // ... another one (a child that inherited it)
      {"400000", "", {}},          // malformed pid: not ours
      {"400000", "42x", {}},
      {"1", nullptr, 1},
      {"0", nullptr, {}},  // zero: off
      {"", nullptr, {}},
      {"-400000", nullptr, {}},   // negative
      {"400000us", nullptr, {}},  // a unit: not a number of microseconds
      {" 400000", nullptr, {}},
      {nullptr, nullptr, {}},  // no WATCHDOG_USEC
      {nullptr, "4242", {}},
      {"18446744073709551615", nullptr, {}},  // beyond what a duration holds
  };
  for (const auto& c : cases) {
    INFO((c.usec ? c.usec : "(unset)") << " / " << (c.pid ? c.pid : "(unset)"));
    const auto got = jobhost::daemon::watchdog_interval(c.usec, c.pid, self);
    REQUIRE(got.has_value() == c.expected.has_value());
    if (got) CHECK(got->count() == *c.expected);
  }
}

TEST_CASE("NOTIFY_SOCKET and WATCHDOG_* are taken out of the environment", "[notify]") {
  SECTION("a path, and a watchdog meant for this process") {
    ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    const auto target = jobhost::daemon::take_notify_target();
    CHECK(target.socket == "/run/systemd/notify");
    REQUIRE(target.watchdog.has_value());
    CHECK(*target.watchdog == 30s);
  }
  SECTION("an abstract name, and a watchdog meant for another process") {
    ::setenv("NOTIFY_SOCKET", "@/org/freedesktop/systemd1/notify", 1);
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    ::setenv("WATCHDOG_PID", "1", 1);
    const auto target = jobhost::daemon::take_notify_target();
    CHECK(target.socket == "@/org/freedesktop/systemd1/notify");
    CHECK_FALSE(target.watchdog.has_value());
  }
  SECTION("an address jobhost cannot use: nothing is sent, not even pings") {
    ::setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    const auto target = jobhost::daemon::take_notify_target();
    CHECK(target.socket.empty());
    CHECK_FALSE(target.watchdog.has_value());
  }
  SECTION("none: nothing to do") {
    ::unsetenv("NOTIFY_SOCKET");
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    const auto target = jobhost::daemon::take_notify_target();
    CHECK(target.socket.empty());
    CHECK_FALSE(target.watchdog.has_value());
  }
  CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
  CHECK(std::getenv("WATCHDOG_USEC") == nullptr);
  CHECK(std::getenv("WATCHDOG_PID") == nullptr);
}

TEST_CASE("STATUS says what the daemon is doing, on one line", "[notify]") {
  using P = ServicePhase;
  const ServiceFigures plain = figures_of(12, 3, 2);
  const ServiceFigures one = figures_of(1, 1, 1);
  ServiceFigures outage = plain;
  outage.ledger_refusing_since = "2026-12-07T10:00:00.000Z";
  outage.ledger_kept = 5;
  ServiceFigures fenced = plain;
  fenced.fenced = true;
  struct Case {
    P phase;
    ServiceFigures figures;
    std::string last_reload;
    std::string expected;
  };
  const Case cases[] = {
      {P::ready, plain, "", "12 jobs enabled, 3 plugins, 2 runs in flight"},
      {P::ready, one, "", "1 job enabled, 1 plugin, 1 run in flight"},
      {P::ready, {}, "", "0 jobs enabled, 0 plugins, 0 runs in flight"},
      {P::reloading, plain, "", "reloading; 12 jobs enabled, 3 plugins, 2 runs in flight"},
      {P::ready, plain, "2026-12-07T10:00:03.000Z: applied",
       "12 jobs enabled, 3 plugins, 2 runs in flight; last reload 2026-12-07T10:00:03.000Z: "
       "applied"},
      {P::ready, plain, "T: rejected: config rejected\nline two",
       "12 jobs enabled, 3 plugins, 2 runs in flight; last reload T: rejected: config rejected "
       "line two"},
      {P::ready, outage, "",
       "12 jobs enabled, 3 plugins, 2 runs in flight; ledger refusing writes since "
       "2026-12-07T10:00:00.000Z; 5 records kept in memory for the ledger"},
      {P::ready, fenced, "",
       "12 jobs enabled, 3 plugins, 2 runs in flight; fenced: this host holds no lease and "
       "claims no fire"},
      {P::stopping, plain, "T: applied", "stopping: 2 runs in flight"},
      {P::stopping, one, "", "stopping: 1 run in flight"},
      {P::stopping, outage, "",
       "stopping: 2 runs in flight; ledger refusing writes since 2026-12-07T10:00:00.000Z; 5 "
       "records kept in memory for the ledger"},
  };
  for (const auto& c : cases) {
    CHECK(jobhost::daemon::status_line(c.phase, c.figures, c.last_reload) == c.expected);
  }
  const std::string longest =
      jobhost::daemon::status_line(P::ready, plain, std::string(5000, 'x') + "\ny");
  CHECK(longest.size() == jobhost::daemon::kMaxStatus);
  CHECK(longest.ends_with("..."));
  CHECK(longest.find('\n') == std::string::npos);
  // systemd drops a STATUS= that is not UTF-8: invalid bytes become U+FFFD,
  // and a cut never splits a character.
  CHECK(jobhost::daemon::status_line(P::ready, plain,
                                     "T: rejected: caf\xC3\xA9 \xFF\xC3 \xED\xA0\x80.toml") ==
        "12 jobs enabled, 3 plugins, 2 runs in flight; last reload T: rejected: caf\xC3\xA9 "
        "\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD.toml");
  std::string euros;
  for (int i = 0; i < 200; ++i) euros += "\xE2\x82\xAC";  // U+20AC, 3 bytes
  for (const std::size_t shift : {0, 1, 2}) {
    const std::string cut =
        jobhost::daemon::status_line(P::ready, plain, std::string(shift, 'x') + euros);
    INFO(shift);
    CHECK(cut.size() <= jobhost::daemon::kMaxStatus);
    CHECK(cut.size() > jobhost::daemon::kMaxStatus - 6);
    CHECK(cut.ends_with("\xE2\x82\xAC..."));
  }
}

TEST_CASE("the notifier's messages reach a socket path and an abstract name", "[notify]") {
  TempDir dir;
  const bool abstract = GENERATE(false, true);
  NotifyReceiver receiver(abstract ? unique_abstract_name() : (dir / "notify.sock").string());
  INFO(receiver.name());
  boost::asio::io_context io;
  ServiceFigures figures = figures_of(2, 1, 0);
  ServiceNotifier notifier(io, {receiver.name(), std::nullopt}, [&] { return figures; });
  REQUIRE(notifier.enabled());

  // A reload before READY=1 sends nothing: READY=1 says where it is.
  notifier.reloading();
  notifier.ready();
  auto ready = receiver.receive(5s);
  REQUIRE(ready);
  CHECK(*ready == "READY=1\nSTATUS=reloading; 2 jobs enabled, 1 plugin, 0 runs in flight");

  notifier.reloading();
  auto reloading = receiver.receive(5s);
  REQUIRE(reloading);
  CHECK(NotifyReceiver::has_line(*reloading, "RELOADING=1"));
  // MONOTONIC_USEC: CLOCK_MONOTONIC when it was sent, as systemd >= 253 checks.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto sent_usec = NotifyReceiver::value(*reloading, "MONOTONIC_USEC");
  REQUIRE(sent_usec);
  const long long usec = std::stoll(*sent_usec);
  const long long now_usec = now.tv_sec * 1'000'000LL + now.tv_nsec / 1000;
  CHECK(usec <= now_usec);
  CHECK(usec > now_usec - 60'000'000LL);

  figures.jobs = 3;
  notifier.reloaded(false, "config rejected; a.toml:3:1: unknown key");
  auto reloaded = receiver.receive(5s);
  REQUIRE(reloaded);
  CHECK(NotifyReceiver::has_line(*reloaded, "READY=1"));
  CHECK_THAT(NotifyReceiver::value(*reloaded, "STATUS").value_or(""),
             Catch::StartsWith("3 jobs enabled, 1 plugin, 0 runs in flight; last reload ") &&
                 Catch::EndsWith(": rejected: config rejected; a.toml:3:1: unknown key"));

  figures.runs_in_flight = 4;
  notifier.stopping();
  auto stopping = receiver.receive(5s);
  REQUIRE(stopping);
  CHECK(*stopping == "STOPPING=1\nSTATUS=stopping: 4 runs in flight");
}

TEST_CASE("watchdog pings come from the loop: none while it is held", "[notify]") {
  TempDir dir;
  NotifyReceiver receiver((dir / "notify.sock").string());
  boost::asio::io_context io;
  ServiceNotifier notifier(io, {receiver.name(), std::chrono::microseconds(200'000)},
                           [] { return ServiceFigures{}; });
  boost::asio::post(io, [&] { notifier.ready(); });
  io.run_for(450ms);
  std::size_t pings = 0;
  while (auto message = receiver.receive(0ms)) pings += *message == "WATCHDOG=1";
  CHECK(pings >= 2);  // at once, then every 100 ms: about 5 (the queue holds 10)

  // A handler that holds the loop: no ping is sent meanwhile, whatever the time.
  std::size_t while_held = 0;
  boost::asio::post(io, [&] {
    while (receiver.receive(0ms)) {
    }
    std::this_thread::sleep_for(300ms);
    while (auto message = receiver.receive(0ms)) while_held += *message == "WATCHDOG=1";
    io.stop();
  });
  io.restart();
  io.run_for(5s);
  CHECK(while_held == 0);
}

TEST_CASE("a full queue: a state message waits for room, a ping does not", "[notify]") {
  TempDir dir;
  NotifyReceiver receiver((dir / "notify.sock").string());
  boost::asio::io_context io;
  ServiceNotifier notifier(io, {receiver.name(), std::nullopt}, [] { return ServiceFigures{}; });
  // Fills the receiver's queue (net.unix.max_dgram_qlen) as a busy manager's.
  const auto fill = [&] {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, receiver.name().c_str());
    std::size_t filled = 0;
    while (::sendto(fd, "X=1", 3, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
           3) {
      ++filled;
    }
    ::close(fd);
    return filled;
  };
  const auto drain = [&] {
    std::vector<std::string> out;
    while (auto message = receiver.receive(0ms)) out.push_back(*message);
    return out;
  };

  REQUIRE(fill() > 0);
  notifier.send("WATCHDOG=1");  // dropped at once: the next one follows
  auto got = drain();
  CHECK(std::count(got.begin(), got.end(), "WATCHDOG=1") == 0);

  REQUIRE(fill() > 0);
  std::vector<std::string> read_by_manager;
  std::thread manager([&] {
    std::this_thread::sleep_for(100ms);  // then reads, as a busy manager does
    read_by_manager = drain();
  });
  notifier.stopping();  // waits up to kStateWait for room
  manager.join();
  got = drain();
  got.insert(got.end(), read_by_manager.begin(), read_by_manager.end());
  CHECK(std::count(got.begin(), got.end(), "STOPPING=1\nSTATUS=stopping: 0 runs in flight") == 1);
}

TEST_CASE("a failing send is logged once and is not fatal; none without NOTIFY_SOCKET",
          "[notify]") {
  TempDir dir;
  jobhost::log::init(jobhost::log::Format::text);  // to stderr, as in the daemon
  boost::asio::io_context io;
  const auto log = captured_stderr(dir / "stderr", [&] {
    ServiceNotifier nowhere(io, {(dir / "nobody-listens.sock").string(), std::nullopt},
                            [] { return ServiceFigures{}; });
    nowhere.ready();
    nowhere.send("WATCHDOG=1");
    nowhere.stopping();
    ServiceNotifier off(io, {}, [] { return ServiceFigures{}; });
    CHECK_FALSE(off.enabled());
    off.ready();
    off.send("WATCHDOG=1");
    off.stopping();
  });
  INFO(log);
  CHECK(count_of(log, "cannot send to the service manager") == 1);
  CHECK(count_of(log, "nobody-listens.sock") == 1);
}
