// Integration test: the jitter seed lives in the ledger, so a restarted
// daemon delays the same slot of the same job by the same amount.
#include <signal.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "schedule/schedule.h"
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

// The daemon's planned next fire of `job` as (due, slot), via list --json.
std::pair<jobhost::TimePoint, jobhost::TimePoint> daemon_next(const fs::path& config,
                                                              const std::string& job) {
  auto list = run_jobhost({"list", "--config", config.string(), "--json"});
  REQUIRE(list.exit_code == 0);
  for (const auto& entry : json::parse(list.out)) {
    if (entry["job"] != job) continue;
    REQUIRE(entry["source"] == "daemon");
    auto due = jobhost::schedule::parse_rfc3339(entry["next_fire"].get<std::string>());
    auto slot = jobhost::schedule::parse_rfc3339(entry["next_slot"].get<std::string>());
    REQUIRE(due.has_value());
    REQUIRE(slot.has_value());
    return {*due, *slot};
  }
  FAIL("no job " << job << " in the list");
  return {};
}

jobhost::TimePoint now_ms() {
  return std::chrono::time_point_cast<jobhost::Duration>(std::chrono::system_clock::now());
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

TEST_CASE("a restarted daemon spreads a job's catch-up by the same offset", "[daemon][jitter]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.hourly]
plugin = "hello"
every = "1h"
misfire = "run_once"
catchup_spread = "30m"
)");
  const auto db = dir.path() / "var" / "jobhost.db";
  {  // The first start makes the ledger, the job's row and the seed.
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
  // Each start finds one missed slot (a minute ago; the next on time is in 59
  // min): its catch-up starts at the start instant plus the job's offset in
  // [0, 30 min), which the seed decides. Measured within the start's window.
  std::vector<std::pair<jobhost::Duration, jobhost::Duration>> offsets;  // [min, max]
  for (int start = 0; start < 2; ++start) {
    INFO("start " << start);
    {
      SQLite::Database ledger(db, SQLite::OPEN_READWRITE);
      auto last = now_ms() - std::chrono::minutes(61);
      SQLite::Statement set(ledger, "UPDATE jobs SET last_fire = ? WHERE name = 'hourly'");
      set.bind(1, static_cast<int64_t>(last.time_since_epoch().count()));
      REQUIRE(set.exec() == 1);
    }
    auto before = now_ms();
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    auto after = now_ms();
    auto [due, slot] = daemon_next(config, "hourly");
    CHECK(slot < before);  // the missed slot, not the next on-time one
    offsets.emplace_back(due - after, due - before);
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
  // The two windows overlap: the same offset (random seeds would make them
  // overlap with probability ~ window / 30 min).
  INFO("offsets (ms): [" << offsets[0].first.count() << ", " << offsets[0].second.count()
                         << "] and [" << offsets[1].first.count() << ", "
                         << offsets[1].second.count() << "]");
  CHECK(offsets[0].first <= offsets[1].second);
  CHECK(offsets[1].first <= offsets[0].second);
}
