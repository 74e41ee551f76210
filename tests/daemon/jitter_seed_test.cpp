// Integration test: the jitter seed lives in the ledger, so a restarted
// daemon delays the same slot of the same job by the same amount.
#include <signal.h>

#include <catch2/catch.hpp>

#include "support/harness.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

// The daemon's planned next fire of `job` (`jobhost list --json`, which asks it).
std::string daemon_next_fire(const fs::path& config, const std::string& job) {
  auto list = run_jobhost({"list", "--config", config.string(), "--json"});
  INFO(list.err);
  REQUIRE(list.exit_code == 0);
  for (const auto& entry : json::parse(list.out)) {
    if (entry["job"] != job) continue;
    REQUIRE(entry["source"] == "daemon");
    REQUIRE(entry["next_fire"].is_string());
    return entry["next_fire"].get<std::string>();
  }
  FAIL("no job " << job << " in the list");
  return {};
}

}  // namespace

TEST_CASE("a restarted daemon delays the same slot by the same jitter", "[daemon][jitter]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  // A slot far enough ahead that it does not fire during the test, with a
  // jitter wide enough (ms resolution) that two random seeds almost surely differ.
  auto config = write_config(dir.path(), R"(
[jobs.yearly]
plugin = "hello"
schedule = "0 0 0 1 1 *"
timezone = "UTC"
jitter = "6h"

[jobs.monthly]
plugin = "hello"
schedule = "0 0 0 1 * *"
timezone = "UTC"
jitter = "6h"
)");
  std::string yearly, monthly;
  {
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    yearly = daemon_next_fire(config, "yearly");
    monthly = daemon_next_fire(config, "monthly");
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
  // The planned instant is the slot plus a jitter: not the bare slot.
  CHECK(yearly.find("T00:00:00Z") == std::string::npos);
  for (int restart = 1; restart <= 2; ++restart) {
    INFO("restart " << restart);
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    CHECK(daemon_next_fire(config, "yearly") == yearly);
    CHECK(daemon_next_fire(config, "monthly") == monthly);
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
}
