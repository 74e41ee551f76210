// Schema 3: a run's CPU seconds, peak memory and plugin metrics, stored with
// the run, read back, serialized by to_json(RunRecord), deleted with the run.
#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "ledger/ledger_test_util.h"
#include "ledger/schema.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;

namespace {

std::string fmt_index(int i) {
  char name[16];
  std::snprintf(name, sizeof name, "m%03d", i);
  return name;
}

int64_t count_rows(const std::filesystem::path& db, const std::string& sql) {
  SQLite::Database raw(db, SQLite::OPEN_READONLY);
  return raw.execAndGet(sql).getInt64();
}

}  // namespace

TEST_CASE("a run's resources and metrics are stored, read back and serialized",
          "[ledger][store][resources]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto start = make_start("hello", 0);
  REQUIRE(store->claim_and_start(start).value());
  auto end = make_end(start, Outcome::succeeded);
  end.cpu_seconds = 1.25;
  end.max_rss_bytes = 64ull << 20;
  end.metrics = {{"rows", 42}, {"ratio", -0.5}, {"big", 1e300}};
  REQUIRE(store->finish_run(end).value());

  auto run = store->get_run(start.run_id).value();
  REQUIRE(run);
  CHECK(run->cpu_seconds == 1.25);
  CHECK(run->max_rss_bytes == (64ull << 20));
  CHECK(run->metrics ==
        std::map<std::string, double>{{"rows", 42}, {"ratio", -0.5}, {"big", 1e300}});

  nlohmann::json j = store->history("hello", 10).value();
  REQUIRE(j.size() == 1);
  CHECK(j[0]["cpu_seconds"] == 1.25);
  CHECK(j[0]["max_rss_bytes"] == (64ull << 20));
  CHECK(j[0]["metrics"] == nlohmann::json{{"rows", 42.0}, {"ratio", -0.5}, {"big", 1e300}});
}

TEST_CASE("runs without resources: nulls and an empty metrics object",
          "[ledger][store][resources]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  REQUIRE(store->record_skipped(make_skip("hello", 0, "concurrency")).value());
  auto start = make_start("hello", 1000, 1000);
  REQUIRE(store->claim_and_start(start).value());
  nlohmann::json j = store->history("hello", 10).value();
  REQUIRE(j.size() == 2);
  for (const auto& run : j) {
    CHECK(run["cpu_seconds"].is_null());
    CHECK(run["max_rss_bytes"].is_null());
    CHECK(run["metrics"] == nlohmann::json::object());
  }
}

TEST_CASE("hostile metrics: bounded names and count, no NaN or infinity, JSON stays UTF-8",
          "[ledger][store][resources]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto start = make_start("hello", 0);
  REQUIRE(store->claim_and_start(start).value());
  auto end = make_end(start, Outcome::failed);
  end.cpu_seconds = std::numeric_limits<double>::quiet_NaN();
  end.max_rss_bytes = std::numeric_limits<uint64_t>::max();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  end.metrics = {{"nan", nan},
                 {"inf", inf},
                 {"minus_inf", -inf},
                 {"", 1},
                 {std::string(kMaxMetricNameBytes + 1, 'x'), 2},
                 {std::string(kMaxMetricNameBytes, 'y'), 3},
                 {"bad\xff\xfe", 4},
                 {"quote\"\n\\", 5}};
  for (int i = 0; i < 300; ++i) end.metrics[fmt_index(i)] = i;
  REQUIRE(store->finish_run(end).value());

  auto run = store->get_run(start.run_id).value();
  REQUIRE(run);
  CHECK_FALSE(run->cpu_seconds);
  CHECK(run->max_rss_bytes == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  CHECK(run->metrics.size() == kMaxRunMetrics);
  for (const char* gone : {"nan", "inf", "minus_inf", ""}) {
    INFO(gone);
    CHECK_FALSE(run->metrics.contains(gone));
  }
  CHECK_FALSE(run->metrics.contains(std::string(kMaxMetricNameBytes + 1, 'x')));
  for (const auto& [name, value] : run->metrics) CHECK(std::isfinite(value));

  nlohmann::json j = *run;
  const std::string text = j.dump();  // throws on invalid UTF-8
  CHECK(text.find("\"bad\xef\xbf\xbd\xef\xbf\xbd\"") != std::string::npos);
}

TEST_CASE("retention deletes a run's metrics with the run", "[ledger][store][resources][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  for (int i = 0; i < 3; ++i) {
    auto s = make_start("job", i * 1000, i * 1000);
    REQUIRE(store->claim_and_start(s).value());
    auto end = make_end(s, Outcome::succeeded);
    end.metrics = {{"a", 1}, {"b", 2}};
    REQUIRE(store->finish_run(end).value());
  }
  CHECK(count_rows(dir.db(), "SELECT count(*) FROM run_metrics") == 6);
  CHECK(store->prune(at_ms(kBase + 50000), 500).value().runs == 2);  // the newest slot stays
  CHECK(count_rows(dir.db(), "SELECT count(*) FROM run_metrics") == 2);
  CHECK(store->prune_excess("job", 0, 500).value() == 0);
  CHECK(count_rows(dir.db(),
                   "SELECT count(*) FROM run_metrics WHERE run_id NOT IN "
                   "(SELECT run_id FROM runs)") == 0);
}

TEST_CASE("a version 2 ledger is migrated to 3; its runs have no resources",
          "[ledger][store][resources][sqlite]") {
  TempDir dir;
  {
    SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    for (const auto& m : migrations()) {
      if (m.version > 2) break;
      db.exec(m.sql);
    }
    db.exec("PRAGMA user_version = 2");
    db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    db.exec("INSERT INTO jobs (name, updated_at) VALUES ('old', 0)");
    db.exec("INSERT INTO slots VALUES ('old', 1000, 'schedule', 't1', 1000)");
    db.exec(
        "INSERT INTO runs (run_id, job, scheduled_for, attempt, trace_id, trigger, "
        "started_at, finished_at, outcome, host_pid) VALUES ('r1', 'old', 1000, 1, 't1', "
        "'schedule', 1000, 2000, 'succeeded', 1)");
  }
  auto store = open_store(dir.db());
  CHECK(count_rows(dir.db(), "PRAGMA user_version") == current_schema_version());
  auto run = store->get_run("r1").value();
  REQUIRE(run);
  CHECK_FALSE(run->cpu_seconds);
  CHECK_FALSE(run->max_rss_bytes);
  CHECK(run->metrics.empty());
}
