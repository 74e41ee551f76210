// systemd's notify protocol through the real daemon, with a fake service
// manager's socket as NOTIFY_SOCKET (docs/running.md "Running under
// systemd"): READY=1 only once the daemon serves, RELOADING=1 then READY=1
// around reloads, WATCHDOG=1 at half WATCHDOG_USEC, STATUS= with the runs in
// flight and a ledger outage, STOPPING=1 at SIGTERM; no READY=1 from a start
// that fails; an abstract socket; WATCHDOG_PID of another process; a socket
// nobody reads; and neither runs nor plugin code can see NOTIFY_SOCKET to
// forge messages.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/harness.h"
#include "support/http_client.h"
#include "support/ledger_faults.h"
#include "support/notify_receiver.h"

using namespace jobhost::testing;
using Catch::Contains;
using nlohmann::json;

namespace {

using Env = std::vector<std::pair<std::string, std::string>>;

// `jobhost run` on `config` with `env` added to its environment only (the
// daemon's environment is copied at its fork, in Daemon's constructor).
std::unique_ptr<Daemon> start_daemon(const fs::path& config, const Env& env) {
  for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
  auto daemon = std::make_unique<Daemon>(config);
  for (const auto& [name, value] : env) ::unsetenv(name.c_str());
  return daemon;
}

// Every message that comes within `window`.
std::vector<std::string> receive_for(NotifyReceiver& receiver, std::chrono::milliseconds window) {
  std::vector<std::string> out;
  const auto end = std::chrono::steady_clock::now() + window;
  for (auto now = std::chrono::steady_clock::now(); now < end;
       now = std::chrono::steady_clock::now()) {
    if (auto message =
            receiver.receive(std::chrono::duration_cast<std::chrono::milliseconds>(end - now))) {
      out.push_back(std::move(*message));
    }
  }
  return out;
}

std::size_t count_line(const std::vector<std::string>& messages, std::string_view line) {
  std::size_t n = 0;
  for (const auto& m : messages) n += NotifyReceiver::has_line(m, line) ? 1 : 0;
  return n;
}

std::string joined(const std::vector<std::string>& messages) {
  std::string out;
  for (const auto& m : messages) out += "[" + m + "]\n";
  return out;
}

std::string unique_abstract_name() {
  return "@jobhost-notify-daemon-test-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

// Reads messages (into `all`) until a READY=1 whose STATUS passes `wanted`;
// `reloading_seen`: whether a RELOADING=1 came before it.
template <typename Wanted>
bool wait_status(NotifyReceiver& receiver, std::vector<std::string>& all,
                 std::chrono::milliseconds timeout, bool& reloading_seen, Wanted wanted) {
  reloading_seen = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto message = receiver.receive(1s);
    if (!message) continue;
    all.push_back(*message);
    reloading_seen = reloading_seen || NotifyReceiver::has_line(*message, "RELOADING=1");
    if (NotifyReceiver::has_line(*message, "READY=1") &&
        wanted(NotifyReceiver::value(*message, "STATUS").value_or(""))) {
      return true;
    }
  }
  return false;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("systemd hears READY=1 once the daemon serves, reloads, pings, STATUS and STOPPING=1",
          "[daemon][notify]") {
  TempDir dir;
  install_plugins(dir.path(), {"environ_dump.so", "notify_forger.so", "sleeper.so"});
  const auto config = write_config(dir.path(), R"([http]
listen = "127.0.0.1:0"

[jobs.envdump]
plugin = "environ_dump"
schedule = "@manual"

[jobs.forger]
plugin = "notify_forger"
schedule = "@manual"

[jobs.nap]
plugin = "sleeper"
schedule = "@manual"
kill_grace = "1s"
params = { seconds = 60 }
)");
  NotifyReceiver receiver((dir.path() / "notify.sock").string(),
                          NotifyReceiver::Reading::background);
  std::vector<std::string> all;  // every message, for the forgery check at the end
  auto daemon =
      start_daemon(config, {{"NOTIFY_SOCKET", receiver.name()}, {"WATCHDOG_USEC", "400000"}});

  // READY=1, first of all, and only once the daemon serves: what it logs
  // before sending it (the HTTP listener, the ready line) is in its log when
  // it arrives, the ledger exists, and the control socket and /readyz answer.
  bool found = false;
  auto messages = receiver.receive_until("READY=1", 60s, found);
  all.insert(all.end(), messages.begin(), messages.end());
  INFO(daemon->log());
  REQUIRE(found);
  const std::string log_at_ready = daemon->log();
  CHECK_THAT(log_at_ready, Contains("http: listening on"));
  CHECK_THAT(log_at_ready, Contains("ready: 3 job(s)"));
  CHECK(fs::exists(dir.path() / "var" / "jobhost.db"));
  CHECK(messages.size() == 1);  // no ping, no reload, no status before it
  CHECK(NotifyReceiver::value(messages.back(), "STATUS") ==
        "3 jobs enabled, 3 plugins, 0 runs in flight");
  const auto port = wait_http_port(*daemon, 1s);
  REQUIRE(port.has_value());
  CHECK(http_get(*port, "/readyz").status == 200);
  CHECK(run_jobhost({"status", "--config", config.string()}).exit_code == 0);

  // WATCHDOG=1 every 200 ms (half of 400 ms): about 20 in 4 s. Generous
  // bounds: a loaded machine delays pings, it cannot double them.
  messages = receive_for(receiver, 4s);
  all.insert(all.end(), messages.begin(), messages.end());
  const auto pings = count_line(messages, "WATCHDOG=1");
  INFO(pings << " pings in 4 s");
  CHECK(pings >= 10);
  CHECK(pings <= 40);

  // `jobhost reload` (answered once the cycle is applied): RELOADING=1 with
  // MONOTONIC_USEC, then READY=1 with the result.
  REQUIRE(run_jobhost({"reload", "--config", config.string()}).exit_code == 0);
  messages = receiver.receive_until("READY=1", 30s, found);
  all.insert(all.end(), messages.begin(), messages.end());
  INFO(joined(messages));
  REQUIRE(found);
  REQUIRE(count_line(messages, "RELOADING=1") == 1);
  std::size_t reloading_at = 0;
  while (!NotifyReceiver::has_line(messages[reloading_at], "RELOADING=1")) ++reloading_at;
  CHECK(reloading_at < messages.size() - 1);  // before READY=1
  CHECK(NotifyReceiver::value(messages[reloading_at], "MONOTONIC_USEC").has_value());
  CHECK_THAT(NotifyReceiver::value(messages.back(), "STATUS").value_or(""),
             Contains("3 jobs enabled, 3 plugins, 0 runs in flight; last reload ") &&
                 Catch::EndsWith(": applied"));

  // SIGHUP: the same.
  daemon->signal(SIGHUP);
  messages = receiver.receive_until("READY=1", 30s, found);
  all.insert(all.end(), messages.begin(), messages.end());
  INFO(joined(messages));
  REQUIRE(found);
  CHECK(count_line(messages, "RELOADING=1") == 1);
  CHECK_FALSE(NotifyReceiver::has_line(messages.back(), "RELOADING=1"));

  // An edited config (the watcher's reload): STATUS counts the new job.
  std::ofstream(config, std::ios::app) << "\n[jobs.later]\nplugin = \"sleeper\"\n"
                                          "schedule = \"@manual\"\n";
  bool reloading_seen = false;
  REQUIRE(wait_status(receiver, all, 60s, reloading_seen, [](const std::string& status) {
    return status.starts_with("4 jobs enabled, 3 plugins") && status.ends_with(": applied");
  }));
  CHECK(reloading_seen);
  // A rejected config: READY=1 all the same (the old config runs), saying why.
  std::ofstream(config, std::ios::app) << "\n[jobs.broken]\nplugin = \"sleeper\"\n"
                                          "schedule = \"not a schedule\"\n";
  CHECK(run_jobhost({"reload", "--config", config.string()}).exit_code == 1);
  REQUIRE(wait_status(receiver, all, 60s, reloading_seen, [](const std::string& status) {
    return status.starts_with("4 jobs enabled, 3 plugins") &&
           status.find(": rejected: config rejected") != std::string::npos;
  }));

  // A run's environment has no NOTIFY_SOCKET nor WATCHDOG_*, in environ or in
  // its process's own block (the fork server's: empty).
  REQUIRE(trigger(config, "envdump").exit_code == 0);
  const auto dumped = wait_outcome(config, "envdump", "succeeded");
  REQUIRE(dumped.has_value());
  const auto run = http_get(*port, "/api/v1/runs/" + (*dumped)["run_id"].get<std::string>());
  REQUIRE(run.status == 200);
  const std::string output = json::parse(run.body).value("output_tail", "");
  CHECK_THAT(output, Contains("env: JOBHOST_JOB=envdump"));
  for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) {
    CHECK(output.find(name) == std::string::npos);
  }
  // A plugin that tries to send READY=1 itself sees no socket to send to.
  REQUIRE(trigger(config, "forger").exit_code == 0);
  const auto forged = wait_outcome(config, "forger", "succeeded");
  REQUIRE(forged.has_value());
  CHECK((*forged)["metrics"]["saw_notify_socket"] == 0);

  // STATUS follows the runs in flight (refreshed every few seconds).
  REQUIRE(trigger(config, "nap").exit_code == 0);
  messages.clear();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  bool in_flight = false;
  while (!in_flight && std::chrono::steady_clock::now() < deadline) {
    auto message = receiver.receive(1s);
    if (!message) continue;
    all.push_back(*message);
    in_flight = NotifyReceiver::value(*message, "STATUS")
                    .value_or("")
                    .starts_with("4 jobs enabled, 3 plugins, 1 run in flight");
  }
  REQUIRE(in_flight);

  // SIGTERM: STOPPING=1 with what the stop waits for, then a clean exit.
  daemon->signal(SIGTERM);
  messages = receiver.receive_until("STOPPING=1", 30s, found);
  all.insert(all.end(), messages.begin(), messages.end());
  REQUIRE(found);
  CHECK(NotifyReceiver::value(messages.back(), "STATUS") == "stopping: 1 run in flight");
  CHECK(daemon->wait_exit(60s) == 0);
  while (auto message = receiver.receive(0ms)) all.push_back(*message);

  // Nothing came from the plugin: not from its run, not from its static
  // initialiser in the probes (forks of the daemon) at start and reloads.
  CHECK(count_line(all, "READY=1") >= 5);  // start, four reloads at least
  CHECK(joined(all).find("forged") == std::string::npos);
}

TEST_CASE("STATUS says when the ledger refuses writes, and no more once it takes them",
          "[daemon][notify]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const auto config = write_config(dir.path(), R"([jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
)");
  NotifyReceiver receiver((dir.path() / "notify.sock").string(),
                          NotifyReceiver::Reading::background);
  auto daemon = start_daemon(config, {{"NOTIFY_SOCKET", receiver.name()}});
  bool found = false;
  receiver.receive_until("READY=1", 60s, found);
  INFO(daemon->log());
  REQUIRE(found);
  const auto wait_for_status = [&](auto wanted) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto message = receiver.receive(1s);
      if (message && wanted(NotifyReceiver::value(*message, "STATUS").value_or(""))) return true;
    }
    return false;
  };
  {
    // Every second's claim is refused while another process holds the lock.
    LedgerWriteLock lock(dir.path() / "var" / "jobhost.db");
    CHECK(wait_for_status([](const std::string& status) {
      return status.starts_with("1 job enabled, 1 plugin, ") &&
             status.find("; ledger refusing writes since ") != std::string::npos;
    }));
  }
  CHECK(wait_for_status([](const std::string& status) {
    return status.starts_with("1 job enabled, 1 plugin, ") &&
           status.find("ledger") == std::string::npos;
  }));
  daemon->signal(SIGTERM);
  CHECK(daemon->wait_exit(30s) == 0);
}

TEST_CASE("an abstract NOTIFY_SOCKET works; WATCHDOG_PID of another process means no pings",
          "[daemon][notify]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const auto config = write_config(dir.path(), R"([jobs.hi]
plugin = "hello"
schedule = "@manual"
)");
  NotifyReceiver receiver(unique_abstract_name(), NotifyReceiver::Reading::background);
  auto daemon = start_daemon(
      config,
      {{"NOTIFY_SOCKET", receiver.name()}, {"WATCHDOG_USEC", "100000"}, {"WATCHDOG_PID", "1"}});
  bool found = false;
  auto messages = receiver.receive_until("READY=1", 60s, found);
  INFO(daemon->log());
  REQUIRE(found);
  CHECK(NotifyReceiver::value(messages.back(), "STATUS") ==
        "1 job enabled, 1 plugin, 0 runs in flight");
  // Pings would come every 50 ms: about 40 in 2 s.
  messages = receive_for(receiver, 2s);
  CHECK(count_line(messages, "WATCHDOG=1") == 0);
  daemon->signal(SIGTERM);
  messages = receiver.receive_until("STOPPING=1", 30s, found);
  CHECK(found);
  CHECK(daemon->wait_exit(30s) == 0);
}

TEST_CASE("a start that fails sends no READY=1", "[daemon][notify]") {
  // The HTTP port is taken: the last thing that can fail the start.
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&addr), length) == 0);
  REQUIRE(::listen(taken, 1) == 0);
  REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
  const int port = ntohs(addr.sin_port);

  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const auto config = write_config(dir.path(), fmt::format(R"([http]
listen = "127.0.0.1:{}"

[jobs.hi]
plugin = "hello"
schedule = "@manual"
)",
                                                           port));
  NotifyReceiver receiver((dir.path() / "notify.sock").string(),
                          NotifyReceiver::Reading::background);
  auto daemon =
      start_daemon(config, {{"NOTIFY_SOCKET", receiver.name()}, {"WATCHDOG_USEC", "100000"}});
  CHECK(daemon->wait_exit(60s) == 1);
  ::close(taken);
  INFO(daemon->log());
  std::vector<std::string> messages;
  while (auto message = receiver.receive(0ms)) messages.push_back(*message);
  INFO(joined(messages));
  CHECK(count_line(messages, "READY=1") == 0);
  CHECK(count_line(messages, "WATCHDOG=1") == 0);
}

TEST_CASE("a NOTIFY_SOCKET nobody reads is logged once and the daemon goes on",
          "[daemon][notify]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const auto config = write_config(dir.path(), R"([jobs.hi]
plugin = "hello"
schedule = "@manual"
)");
  auto daemon = start_daemon(config, {{"NOTIFY_SOCKET", (dir.path() / "nobody.sock").string()},
                                      {"WATCHDOG_USEC", "100000"}});
  REQUIRE(daemon->wait_ready(60s));
  // READY=1, then pings every 50 ms: all of them fail.
  REQUIRE(wait_for([&] { return daemon->log().find("cannot send") != std::string::npos; }, 30s));
  std::this_thread::sleep_for(500ms);
  REQUIRE(trigger(config, "hi").exit_code == 0);
  CHECK(wait_outcome(config, "hi", "succeeded").has_value());
  daemon->signal(SIGTERM);
  CHECK(daemon->wait_exit(30s) == 0);
  const std::string log = daemon->log();
  INFO(log);
  CHECK(count_of(log, "cannot send to the service manager") == 1);
}
