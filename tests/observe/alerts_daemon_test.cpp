// Alerts in the real daemon: a job failing alert_after times in a row sends
// one alert through a command notifier, a restart sends nothing again, the
// next success sends one recovery; a dead-man's switch whose window passed
// while the daemon was down alerts at start.
#include <unistd.h>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/harness.h"

using namespace jobhost;
using namespace jobhost::testing;
using nlohmann::json;

namespace {

// The notices the command notifier appended, one JSON document a line.
std::vector<json> notices(const fs::path& file) {
  std::vector<json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

// A notifier script in its own directory (the config names it, so it must
// exist before the daemon starts): appends its stdin to `notices`.
fs::path write_notifier(const fs::path& dir) {
  const fs::path exe = dir / "notify";
  std::ofstream(exe) << "#!/bin/sh\ncat >> \"$1\"\n";
  fs::permissions(exe, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
  return exe;
}

int count_outcome(const fs::path& config, const std::string& job, const std::string& outcome) {
  int n = 0;
  for (const auto& run : finished(history(config, job), job)) n += run["outcome"] == outcome;
  return n;
}

std::vector<ledger::Event> events_of(const fs::path& config, const std::string& job,
                                     const std::string& kind) {
  std::vector<ledger::Event> out;
  const auto all = open_ledger(config)->events(job, 1000).value();
  for (const auto& e : all) {
    if (e.kind == kind) out.push_back(e);
  }
  return out;
}

std::optional<ledger::AlertRecord> alert_row(const fs::path& config, const std::string& job,
                                             const std::string& kind) {
  const auto rows = open_ledger(config)->alert_states().value();
  for (const auto& row : rows) {
    if (row.job == job && row.kind == kind) return row;
  }
  return std::nullopt;
}

std::string alerts_section(const fs::path& exe, const fs::path& out) {
  return "[alerts.log]\ntype = \"command\"\ncommand = [\"" + exe.string() + "\", \"" +
         out.string() + "\"]\ntimeout = \"10s\"\n" +
         // The temp dirs are root-only: keep root rather than nobody.
         (::geteuid() == 0 ? "user = \"root\"\n\n" : "\n");
}

}  // namespace

TEST_CASE("alert_after: one alert, no repeat across a restart, one recovery",
          "[integration][alerts]") {
  TempDir tools;
  const fs::path exe = write_notifier(tools.path());
  const fs::path out = tools.path() / "notices";
  const fs::path fail_flag = tools.path() / "fail";
  std::ofstream(fail_flag) << "on\n";
  TestHost host({"switch.so"}, alerts_section(exe, out) + R"(
[jobs.flaky]
plugin = "switch"
schedule = "@manual"
alert_after = 3
retry = { max_attempts = 2, initial_delay = "100ms", jitter = "none" }
params = { fail_file = ")" + fail_flag.string() +
                                   R"(" }
)");
  const fs::path& config = host.config();

  // Two fires, each failing twice (its retry included): counted as two.
  for (int fire = 1; fire <= 2; ++fire) {
    REQUIRE(trigger(config, "flaky").exit_code == 0);
    REQUIRE(wait_for([&] { return count_outcome(config, "flaky", "failed") == 2 * fire; }, 30s));
  }
  REQUIRE(wait_for(
      [&] {
        auto row = alert_row(config, "flaky", "failing");
        return row && row->failed_fires == 2;
      },
      10s));
  CHECK_FALSE(alert_row(config, "flaky", "failing")->firing);
  CHECK(notices(out).empty());

  // The third failed fire alerts, once.
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_for([&] { return notices(out).size() == 1; }, 30s));
  auto alert = notices(out)[0];
  CHECK(alert["event"] == "alert");
  CHECK(alert["kind"] == "failing");
  CHECK(alert["job"] == "flaky");
  CHECK(alert["notifier"] == "log");
  CHECK(alert["consecutive_failed_fires"] == 3);
  CHECK_THAT(alert["message"].get<std::string>(),
             Catch::StartsWith("job flaky failed 3 times in a row: last outcome failed: ") &&
                 Catch::EndsWith("switch: failing on purpose"));
  REQUIRE(wait_for([&] { return events_of(config, "flaky", "alert").size() == 1; }, 10s));
  auto detail = json::parse(events_of(config, "flaky", "alert")[0].detail);
  CHECK(detail["notifier"] == "log");
  CHECK(detail["result"] == "ok");

  // A fourth failure does not alert again.
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_for(
      [&] {
        auto row = alert_row(config, "flaky", "failing");
        return row && row->failed_fires == 4;
      },
      30s));

  // A restart reads the state: nothing is sent again.
  host.stop();
  host.start();
  std::this_thread::sleep_for(1s);
  CHECK(notices(out).size() == 1);
  CHECK(alert_row(config, "flaky", "failing")->firing);

  // The first success after it sends one recovery.
  fs::remove(fail_flag);
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_outcome(config, "flaky", "succeeded", 30s));
  REQUIRE(wait_for([&] { return notices(out).size() == 2; }, 30s));
  auto recovery = notices(out)[1];
  CHECK(recovery["event"] == "recovered");
  CHECK(recovery["kind"] == "failing");
  REQUIRE(wait_for([&] { return events_of(config, "flaky", "alert_recovered").size() == 1; }, 10s));

  // Another success and another restart: still exactly one of each.
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_for([&] { return count_outcome(config, "flaky", "succeeded") == 2; }, 30s));
  host.stop();
  host.start();
  std::this_thread::sleep_for(1s);
  host.stop();
  CHECK(notices(out).size() == 2);
  CHECK(events_of(config, "flaky", "alert").size() == 1);
  CHECK(events_of(config, "flaky", "alert_recovered").size() == 1);
  CHECK_FALSE(alert_row(config, "flaky", "failing")->pending);
}

TEST_CASE("expect_success_within: a window that passed while the daemon was down alerts at start",
          "[integration][alerts]") {
  TempDir tools;
  const fs::path exe = write_notifier(tools.path());
  const fs::path out = tools.path() / "notices";
  TestHost host({"switch.so"}, alerts_section(exe, out) + R"(
[jobs.nightly]
plugin = "switch"
schedule = "@manual"
expect_success_within = "5s"
)");
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "nightly").exit_code == 0);
  auto success = wait_outcome(config, "nightly", "succeeded", 30s);
  REQUIRE(success);
  host.stop();
  // The test is void if the daemon had already alerted while running.
  REQUIRE(notices(out).empty());

  // Down past the window (5 s after the success).
  const auto finished_at = open_ledger(config)->success_bounds("nightly").value().last_success;
  REQUIRE(finished_at);
  while (wall_now() < *finished_at + std::chrono::milliseconds(5500)) {
    std::this_thread::sleep_for(100ms);
  }
  host.start();
  REQUIRE(wait_for([&] { return notices(out).size() == 1; }, 10s));
  auto alert = notices(out)[0];
  CHECK(alert["event"] == "alert");
  CHECK(alert["kind"] == "silent");
  CHECK(alert["expect_success_within"] == "5s");
  CHECK(alert["message"].get<std::string>().starts_with("job nightly has not succeeded for"));
  CHECK_THAT(host.log(), Catch::Contains("alert: job nightly has not succeeded"));

  // Not again after another restart; a success recovers it.
  host.stop();
  host.start();
  std::this_thread::sleep_for(1s);
  CHECK(notices(out).size() == 1);
  REQUIRE(trigger(config, "nightly").exit_code == 0);
  REQUIRE(wait_for([&] { return notices(out).size() == 2; }, 30s));
  CHECK(notices(out)[1]["event"] == "recovered");
  CHECK(notices(out)[1]["kind"] == "silent");
  host.stop();
}

TEST_CASE("a reload applies new alert settings and notifiers without changing the job",
          "[integration][alerts]") {
  TempDir tools;
  const fs::path exe = write_notifier(tools.path());
  const fs::path out = tools.path() / "notices";
  const fs::path fail_flag = tools.path() / "fail";
  std::ofstream(fail_flag) << "on\n";
  const std::string job = R"(
[jobs.flaky]
plugin = "switch"
schedule = "@manual"
retry = { max_attempts = 1 }
params = { fail_file = ")" +
                          fail_flag.string() + R"(" }
)";
  TestHost host({"switch.so"}, job);
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_for([&] { return count_outcome(config, "flaky", "failed") == 1; }, 30s));

  // The notifier and alert_after = 1 arrive by a reload.
  write_config(host.dir(), alerts_section(exe, out) + job + "alert_after = 1\n");
  auto reloaded = run_jobhost({"reload", "--config", config.string()});
  INFO(reloaded.out << reloaded.err);
  REQUIRE(reloaded.exit_code == 0);
  CHECK_THAT(reloaded.out, Catch::Contains("no job changed"));  // not part of the definition
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_for([&] { return notices(out).size() == 1; }, 30s));
  CHECK(notices(out)[0]["kind"] == "failing");
  host.stop();
}

TEST_CASE("a webhook to a host name leaves the daemon with one thread", "[integration][alerts]") {
  // A plain HTTP receiver on 127.0.0.1 on a thread of this test: answers 200
  // to one request.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acceptor.local_endpoint().port();
  std::atomic<bool> received = false;
  std::thread receiver([&] {
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket socket(io);
    acceptor.accept(socket, ec);
    if (ec) return;
    std::string request;
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      const std::size_t n = socket.read_some(boost::asio::buffer(buffer), ec);
      if (ec) return;
      request.append(buffer, n);
    }
    received = true;
    boost::asio::write(socket,
                       boost::asio::buffer(std::string_view(
                           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")),
                       ec);
  });
  {
    TestHost host({"switch.so"}, "[alerts.hook]\ntype = \"webhook\"\nurl = \"http://localhost:" +
                                     std::to_string(port) +
                                     "/\"\ntimeout = \"10s\"\nretries = 0\n\n" + R"(
[jobs.broken]
plugin = "switch"
schedule = "@manual"
alert_after = 1
params = { fail_file = "/" }
)");
    const fs::path& config = host.config();
    REQUIRE(trigger(config, "broken").exit_code == 0);
    REQUIRE(wait_for([&] { return events_of(config, "broken", "alert").size() == 1; }, 30s));
    auto detail = json::parse(events_of(config, "broken", "alert")[0].detail);
    CHECK(detail["result"] == "ok");
    CHECK(received);
    std::size_t threads = 0;
    for ([[maybe_unused]] const auto& e :
         fs::directory_iterator("/proc/" + std::to_string(host.daemon().pid()) + "/task")) {
      ++threads;
    }
    CHECK(threads == 1);
    host.stop();
  }
  if (!received) {  // unblocks the receiver's accept
    boost::system::error_code ignored;
    boost::asio::ip::tcp::socket wake(io);
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ignored);
  }
  receiver.join();
}
