// The daemon's HTTP server end to end: health endpoints, readiness that
// follows the ledger, and hostile clients that must not delay a fire.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.h"
#include "support/http_client.h"
#include "support/ledger_faults.h"
#include "support/skip.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

constexpr const char* kHttpOnAnyPort = "[http]\nlisten = \"127.0.0.1:0\"\n\n";

// The reasons of a 503 /readyz, joined; "" when ready.
std::string not_ready_reasons(int port) {
  auto r = http_get(port, "/readyz");
  if (r.status == 200) return "";
  if (r.status != 503) return "status " + std::to_string(r.status) + " " + r.error;
  const json body = json::parse(r.body);
  std::string out;
  for (const auto& reason : body["reasons"]) out += reason.get<std::string>() + "; ";
  return out;
}

// Waits for /readyz to say the ledger is not writable (the verdict is
// cached for a second), and checks that /healthz still answers.
void expect_ledger_not_ready(int port) {
  std::string reasons;
  const bool not_ready = wait_for(
      [&] {
        reasons = not_ready_reasons(port);
        return reasons.find("ledger not writable") != std::string::npos;
      },
      15s);
  INFO(reasons);
  REQUIRE(not_ready);
  CHECK(reasons.find("cannot write to the ledger") != std::string::npos);
  CHECK(http_get(port, "/healthz").status == 200);
}

// Waits for /readyz to be 200 again (a backlog kept meanwhile is written first).
void expect_ready_again(int port) {
  std::string reasons;
  CHECK(wait_for(
      [&] {
        reasons = not_ready_reasons(port);
        return reasons.empty();
      },
      20s));
  INFO(reasons);
}

}  // namespace

TEST_CASE("/healthz answers ok and /readyz is ready on a healthy daemon", "[daemon][http]") {
  TestHost host({"hello.so"}, std::string(kHttpOnAnyPort) + R"(
[jobs.tick]
plugin = "hello"
every = "1s"
)");
  auto port = wait_http_port(host.daemon());
  REQUIRE(port.has_value());
  auto health = http_get(*port, "/healthz");
  CHECK(health.status == 200);
  CHECK(json::parse(health.body) == json({{"status", "ok"}}));
  auto ready = http_get(*port, "/readyz");
  CHECK(ready.status == 200);
  CHECK(json::parse(ready.body) == json({{"status", "ready"}}));
  CHECK(http_get(*port, "/nothing-here").status == 404);
  host.stop();
  CHECK(host.log().find("http: listening on 127.0.0.1:" + std::to_string(*port)) !=
        std::string::npos);
}

TEST_CASE("/readyz is 503 while another process holds the ledger's write lock",
          "[daemon][http][ledger]") {
  TestHost host({"hello.so"}, kHttpOnAnyPort);
  auto port = wait_http_port(host.daemon());
  REQUIRE(port.has_value());
  REQUIRE(http_get(*port, "/readyz").status == 200);
  {
    LedgerWriteLock lock(host.dir() / "var" / "jobhost.db");
    expect_ledger_not_ready(*port);
  }
  expect_ready_again(*port);
  host.stop();
}

TEST_CASE("/readyz is 503 while the ledger is read-only (chattr +i) and 200 after",
          "[daemon][http][ledger][needs-chattr]") {
  TestHost host({"hello.so"}, std::string(kHttpOnAnyPort) + R"(
[jobs.tick]
plugin = "hello"
every = "1s"
)");
  auto port = wait_http_port(host.daemon());
  REQUIRE(port.has_value());
  REQUIRE(http_get(*port, "/readyz").status == 200);
  {
    LedgerReadOnly frozen(host.dir() / "var");
    if (!frozen.available()) {
      JOBHOST_SKIP("chattr +i is not available here (needs root and ext4/xfs/tmpfs)");
    }
    expect_ledger_not_ready(*port);
  }
  expect_ready_again(*port);
  host.stop();
}

TEST_CASE("a daemon whose [http] listen address cannot be bound exits 1 and says why",
          "[daemon][http]") {
  TestHost first({}, kHttpOnAnyPort);
  auto port = wait_http_port(first.daemon());
  REQUIRE(port.has_value());
  TempDir dir;
  install_plugins(dir.path(), {});
  const std::string taken = "127.0.0.1:" + std::to_string(*port);
  auto config = write_config(dir.path(), "[http]\nlisten = \"" + taken + "\"\n");
  Daemon second(config);
  CHECK(second.wait_exit(20s) == 1);
  CHECK(second.log().find("http: cannot listen on " + taken + ": bind: Address already in use") !=
        std::string::npos);
  first.stop();
}

TEST_CASE("a slowloris client and 200 idle connections do not delay a 1 s job's fires",
          "[daemon][http]") {
  TestHost host({"hello.so"}, std::string(kHttpOnAnyPort) + R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
)");
  auto port = wait_http_port(host.daemon());
  REQUIRE(port.has_value());
  const fs::path& config = host.config();
  REQUIRE(wait_for([&] { return finished(history(config, "tick"), "tick").size() >= 1; }, 20s));

  std::vector<RawConnection> idle;
  for (int i = 0; i < 200; ++i) {
    idle.emplace_back(*port);
    REQUIRE(idle.back().connected());
  }
  RawConnection half(*port);  // holds half a request
  REQUIRE(half.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  RawConnection slow(*port);  // one byte a second
  const std::string trickle =
      "GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(100, 's') + "\r\n\r\n";
  const std::size_t before = finished(history(config, "tick"), "tick").size();
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(slow.send(trickle.substr(i, 1)));
    // Others are still served meanwhile.
    CHECK(http_get(*port, "/healthz").status == 200);
    std::this_thread::sleep_for(1s);
  }
  // The hostile clients were held the whole time (the request timeout is 10 s).
  int still_open = 0;
  for (auto& c : idle) still_open += c.wait_closed(std::chrono::milliseconds(0)) ? 0 : 1;
  CHECK(still_open == 200);
  CHECK_FALSE(half.wait_closed(std::chrono::milliseconds(0)));
  host.stop();

  // Every slot from the first to the last ran, once, none skipped.
  auto runs = history(config, "tick", 100000);
  CHECK(every_second_once(runs) == "");
  int succeeded = 0;
  for (const auto& run : runs) {
    INFO(run.dump());
    CHECK(run["outcome"] == "succeeded");
    if (run["outcome"] == "succeeded") ++succeeded;
  }
  CHECK(static_cast<std::size_t>(succeeded) >= before + 5);
}

TEST_CASE("/readyz says stopping while a stopping daemon waits for its runs", "[daemon][http]") {
  TestHost host({"sleeper.so"}, std::string(kHttpOnAnyPort) + R"(
[jobs.nap]
plugin = "sleeper"
schedule = "@manual"
params = { seconds = 4 }
)");
  auto port = wait_http_port(host.daemon());
  REQUIRE(port.has_value());
  REQUIRE(trigger(host.config(), "nap").exit_code == 0);
  REQUIRE(wait_for(
      [&] {
        for (const auto& run : history(host.config(), "nap")) {
          if (run["outcome"].is_null()) return true;
        }
        return false;
      },
      10s));
  CHECK(not_ready_reasons(*port).empty());
  host.daemon().signal(SIGTERM);
  std::string reasons;
  CHECK(wait_for(
      [&] {
        reasons = not_ready_reasons(*port);
        return reasons.find("stopping: no new runs start") != std::string::npos;
      },
      3s));
  INFO(reasons);
  CHECK(http_get(*port, "/healthz").status == 200);
  CHECK(host.daemon().wait_exit(20s) == 0);
  REQUIRE(wait_outcome(host.config(), "nap", "succeeded").has_value());
}

TEST_CASE("jobhost validate and run refuse a token file open to others, naming chmod 600",
          "[daemon][http]") {
  TempDir dir;
  install_plugins(dir.path(), {});
  const fs::path token = dir.path() / "token";
  std::ofstream(token) << "s3cret\n";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  auto config = write_config(dir.path(), R"([http]
listen = "0.0.0.0:0"
allow_remote = true
token_file = "token"
)");
  auto validate = run_jobhost({"validate", "--config", config.string()});
  CHECK(validate.exit_code == 1);
  CHECK(validate.err.find(":8:14: token_file in [http]: \"" + token.string() +
                          "\" is open to group or others (mode 0640); run `chmod 600 " +
                          token.string() + "`") != std::string::npos);
  INFO(validate.err);
  Daemon refused(config);
  CHECK(refused.wait_exit(20s) != 0);
  CHECK(refused.log().find("chmod 600") != std::string::npos);

  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write);
  auto fixed = run_jobhost({"validate", "--config", config.string()});
  INFO(fixed.err);
  CHECK(fixed.exit_code == 0);
}
