// The ledger queries behind the JSON API: the runs query (filters, cursor,
// index use), one-query job summaries, window runs, percentiles, pause
// state, events after an id.
#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <set>

#include "ledger/ledger_test_util.h"
#include "ledger/schema.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;

namespace {

RunRecord add(Store& store, const std::string& job, int64_t slot_ms, Outcome outcome,
              int64_t duration_ms = 10, Trigger trigger = Trigger::schedule) {
  auto start = make_start(job, slot_ms, slot_ms, trigger);
  REQUIRE(store.claim_and_start(start).value());
  REQUIRE(store.finish_run(make_end(start, outcome, duration_ms)).value());
  return store.get_run(start.run_id).value().value();
}

int64_t count_rows(const std::filesystem::path& db, const std::string& sql) {
  SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
  return d.execAndGet(sql).getInt64();
}

}  // namespace

TEST_CASE("percentile is the nearest rank", "[ledger][api]") {
  std::vector<Duration> d;
  for (int i = 1; i <= 20; ++i) d.push_back(Duration(i * 10));
  CHECK(percentile(d, 50) == Duration(100));
  CHECK(percentile(d, 95) == Duration(190));
  CHECK(percentile(d, 100) == Duration(200));
  CHECK(percentile({Duration(7)}, 50) == Duration(7));
  CHECK(percentile({Duration(7)}, 95) == Duration(7));
  CHECK(percentile({Duration(1), Duration(9)}, 50) == Duration(1));
  CHECK(percentile({Duration(1), Duration(9)}, 95) == Duration(9));
}

TEST_CASE("query_runs filters, orders newest first and pages after a cursor", "[ledger][api]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  add(*store, "a", 1000, Outcome::succeeded);
  add(*store, "a", 2000, Outcome::failed, 10, Trigger::manual);
  add(*store, "b", 3000, Outcome::failed);
  add(*store, "b", 4000, Outcome::succeeded, 10, Trigger::manual);
  auto running = make_start("b", 5000, 5000);
  REQUIRE(store->claim_and_start(running).value());

  auto jobs_of = [&](RunQuery q) {
    std::vector<std::string> out;
    const auto runs = store->query_runs(q).value();
    for (const auto& r : runs) {
      out.push_back(r.job + std::to_string((r.started_at - at_ms(kBase)).count() / 1000));
    }
    return out;
  };
  CHECK(jobs_of({}) == std::vector<std::string>{"b5", "b4", "b3", "a2", "a1"});
  CHECK(jobs_of({.job = "a"}) == std::vector<std::string>{"a2", "a1"});
  CHECK(jobs_of({.outcome = Outcome::failed}) == std::vector<std::string>{"b3", "a2"});
  CHECK(jobs_of({.running_only = true}) == std::vector<std::string>{"b5"});
  CHECK(jobs_of({.trigger = Trigger::manual}) == std::vector<std::string>{"b4", "a2"});
  CHECK(jobs_of({.since = at_ms(kBase + 2000), .until = at_ms(kBase + 4000)}) ==
        std::vector<std::string>{"b3", "a2"});
  CHECK(jobs_of({.limit = 2}) == std::vector<std::string>{"b5", "b4"});
  auto b4 = store->query_runs({.limit = 2}).value().back();
  CHECK(jobs_of({.after = RunCursor{b4.started_at, b4.run_id}, .limit = 2}) ==
        std::vector<std::string>{"b3", "a2"});
  CHECK_FALSE(store->query_runs({.limit = 0}));
}

TEST_CASE("query_runs uses the started_at indexes, never a sort", "[ledger][api][sqlite]") {
  TempDir dir;
  { auto store = open_store(dir.db()); }
  SQLite::Database db(dir.db().string(), SQLite::OPEN_READONLY);
  struct Case {
    RunQuery query;
    std::string index;
  };
  const auto t = at_ms(kBase);
  const Case cases[] = {
      {{}, "runs_by_started"},
      {{.after = RunCursor{t, "x"}}, "runs_by_started"},
      {{.outcome = Outcome::failed, .since = t, .until = t}, "runs_by_started"},
      {{.job = "a"}, "runs_by_job_started"},
      {{.job = "a", .after = RunCursor{t, "x"}}, "runs_by_job_started"},
      {{.job = "a", .outcome = Outcome::failed, .trigger = Trigger::manual, .since = t},
       "runs_by_job_started"},
  };
  for (const auto& c : cases) {
    const std::string sql = runs_query_sql(c.query);
    INFO(sql);
    SQLite::Statement plan(db, "EXPLAIN QUERY PLAN " + sql);
    std::string details;
    while (plan.executeStep()) details += plan.getColumn(3).getString() + "\n";
    INFO(details);
    CHECK(details.find(c.index) != std::string::npos);
    CHECK(details.find("TEMP B-TREE") == std::string::npos);
  }
}

TEST_CASE("running_runs reads the runs in flight through runs_open, not every run",
          "[ledger][api][sqlite]") {
  TempDir dir;
  {
    auto store = open_store(dir.db());
    add(*store, "a", 1000, Outcome::succeeded);
    REQUIRE(store->claim_and_start(make_start("b", 3000, 3000)).value());
    REQUIRE(store->claim_and_start(make_start("a", 2000, 2000)).value());
    auto running = store->running_runs().value();
    REQUIRE(running.size() == 2);
    CHECK(running[0].job == "a");  // oldest first
    CHECK(running[1].job == "b");
  }
  SQLite::Database db(dir.db().string(), SQLite::OPEN_READONLY);
  SQLite::Statement plan(db, "EXPLAIN QUERY PLAN " + open_runs_sql());
  std::string details;
  while (plan.executeStep()) details += plan.getColumn(3).getString() + "\n";
  INFO(details);
  CHECK(details.find("USING INDEX runs_open") != std::string::npos);
  CHECK(details.find("runs_by_started") == std::string::npos);
}

TEST_CASE("a job's stats window is read from runs_by_job_started alone", "[ledger][api][sqlite]") {
  TempDir dir;
  { auto store = open_store(dir.db()); }
  SQLite::Database db(dir.db().string(), SQLite::OPEN_READONLY);
  SQLite::Statement plan(db, "EXPLAIN QUERY PLAN " + stats_window_sql());
  std::string details;
  while (plan.executeStep()) details += plan.getColumn(3).getString() + "\n";
  INFO(details);
  CHECK(details.find("COVERING INDEX runs_by_job_started") != std::string::npos);
  CHECK(details.find("TEMP B-TREE") == std::string::npos);
}

TEST_CASE("a version 3 ledger is migrated to 4: same runs, same figures", "[ledger][api][sqlite]") {
  TempDir dir;
  {
    SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    for (const auto& m : migrations()) {
      if (m.version > 3) break;
      db.exec(m.sql);
    }
    db.exec("PRAGMA user_version = 3");
    db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    db.exec("INSERT INTO jobs (name, updated_at) VALUES ('old', 0)");
    const char* runs[][3] = {
        {"r1", "succeeded", "10"}, {"r2", "failed", "30"}, {"r3", "skipped", "0"}};
    int64_t t = 1000;
    for (const auto& [id, outcome, ms] : runs) {
      db.exec(fmt::format("INSERT INTO slots VALUES ('old', {0}, 'schedule', 't{0}', {0})", t));
      db.exec(fmt::format(
          "INSERT INTO runs (run_id, job, scheduled_for, attempt, trace_id, trigger, started_at, "
          "finished_at, outcome, duration_ms, host_pid) VALUES ('{0}', 'old', {2}, 1, 't{2}', "
          "'schedule', {2}, {2} + {3}, '{1}', {3}, 1)",
          id, outcome, t, ms));
      t += 1000;
    }
  }
  auto store = open_store(dir.db());
  CHECK(count_rows(dir.db(), "PRAGMA user_version") == current_schema_version());
  CHECK(count_rows(dir.db(),
                   "SELECT count(*) FROM pragma_index_info('runs_by_job_started') "
                   "WHERE name IN ('outcome', 'duration_ms')") == 2);
  auto stats = store->job_stats("old").value();
  CHECK(stats.window_runs == 2);
  CHECK(stats.last_outcome == Outcome::failed);
  CHECK(stats.success_rate == 0.5);
  CHECK(stats.mean_duration == Duration(20));
  CHECK(store->history("old", 10).value().size() == 3);
}

TEST_CASE("job_stats_of: each job's figures in the order asked, equal to job_stats",
          "[ledger][api]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  add(*store, "a", 1000, Outcome::succeeded, 10);
  add(*store, "a", 2000, Outcome::failed, 30);
  add(*store, "b", 1000, Outcome::succeeded, 5);
  REQUIRE(store->record_skipped(make_skip("b", 2000, "missed")).value());
  const auto stats = store->job_stats_of({"b", "never", "a"}).value();
  REQUIRE(stats.size() == 3);
  for (const auto& s : stats) {
    INFO(s.job);
    const auto one = store->job_stats(s.job).value();
    CHECK(s.window_runs == one.window_runs);
    CHECK(s.last_outcome == one.last_outcome);
    CHECK(s.success_rate == one.success_rate);
    CHECK(s.mean_duration == one.mean_duration);
    CHECK(s.p95_duration == one.p95_duration);
    CHECK(s.last_started == one.last_started);
    CHECK(s.last_fire == one.last_fire);
  }
  CHECK(stats[0].job == "b");
  CHECK(stats[0].window_runs == 1);
  CHECK(stats[1].job == "never");
  CHECK(stats[1].window_runs == 0);
  CHECK_FALSE(stats[1].last_outcome);
  CHECK(stats[2].job == "a");
  CHECK(stats[2].last_outcome == Outcome::failed);
  CHECK(stats[2].mean_duration == Duration(20));
  CHECK(store->job_stats_of({}).value().empty());
}

TEST_CASE("job_summaries: every job's figures in one query, equal to job_stats", "[ledger][api]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  for (int i = 0; i < kStatsWindow + 5; ++i) {
    add(*store, "many", i * 1000, i % 4 == 0 ? Outcome::failed : Outcome::succeeded, 10 + i);
  }
  add(*store, "few", 1000, Outcome::succeeded);
  add(*store, "few", 2000, Outcome::timed_out);
  REQUIRE(store->record_skipped(make_skip("few", 3000, "missed")).value());
  auto open = make_start("few", 4000, 4000);
  REQUIRE(store->claim_and_start(open).value());
  REQUIRE(store->record_skipped(make_skip("only_skips", 1000, "paused")).value());

  auto summaries = store->job_summaries().value();
  REQUIRE(summaries.size() == 3);
  for (const auto& s : summaries) {
    INFO(s.job);
    auto full = store->job_stats(s.job).value();
    CHECK(s.window_runs == full.window_runs);
    CHECK(s.success_rate == full.success_rate);
    CHECK(s.last_outcome == full.last_outcome);
    CHECK(s.last_started == full.last_started);
    CHECK(s.runs_in_flight == full.runs_in_flight);
    CHECK(s.consecutive_failures == full.consecutive_failures);
    CHECK(s.last_fire == full.last_fire);
  }
  CHECK(summaries[1].job == "many");
  CHECK(summaries[1].window_runs == kStatsWindow);

  auto window = store->window_runs({"few", "many", "nobody"}).value();
  REQUIRE(window.size() == 2);
  CHECK(window[0].first == "few");
  REQUIRE(window[0].second.size() == 2);                     // not the skipped, not the open one
  CHECK(window[0].second[0].outcome == Outcome::timed_out);  // newest first
  CHECK(window[1].second.size() == static_cast<std::size_t>(kStatsWindow));
  auto stats = store->job_stats("many").value();
  std::vector<Duration> d;
  for (const auto& r : window[1].second) d.push_back(*r.duration);
  std::sort(d.begin(), d.end());
  CHECK(stats.p50_duration == percentile(d, 50));
  CHECK(stats.p95_duration == percentile(d, 95));
  CHECK(stats.p50_duration == Duration(10 + 54));  // runs 5..104 are the window
}

TEST_CASE("set_paused records who paused a job, survives a reopen, writes events",
          "[ledger][api]") {
  JOBHOST_TEST_LEDGER(ledger);
  {
    auto store = ledger.open();
    CHECK(store->set_paused("nightly", true, "uid 1000", at_ms(kBase)).value());
    CHECK_FALSE(store->set_paused("nightly", true, "uid 0", at_ms(kBase + 1)).value());
  }
  auto store = ledger.open();
  auto paused = store->paused_jobs().value();
  REQUIRE(paused.size() == 1);
  CHECK(paused[0].job == "nightly");
  CHECK(paused[0].paused_by == "uid 1000");
  CHECK(paused[0].paused_at == at_ms(kBase));
  CHECK(store->job_stats("nightly").value().paused_by == "uid 1000");
  CHECK(store->set_paused("nightly", false, "http token 127.0.0.1:1", at_ms(kBase + 2)).value());
  CHECK(store->paused_jobs().value().empty());
  CHECK_FALSE(store->job_stats("nightly").value().paused_at);
  auto events = store->events("nightly", 10).value();
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == "resumed");
  CHECK(events[0].detail == R"({"by":"http token 127.0.0.1:1"})");
  CHECK(events[1].kind == "paused");
  CHECK_FALSE(events[1].run_id);
}

TEST_CASE("events_after: ascending from an id, bounded; run_events", "[ledger][api]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto run = add(*store, "a", 1000, Outcome::succeeded);
  add(*store, "a", 2000, Outcome::succeeded);
  auto all = store->events_after(0, 100).value();
  REQUIRE(all.size() == 4);
  for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i].id > all[i - 1].id);
  auto rest = store->events_after(all[1].id, 1).value();
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].id == all[2].id);
  CHECK(store->events_after(all[3].id, 10).value().empty());
  auto mine = store->run_events(run.run_id, 10).value();
  REQUIRE(mine.size() == 2);
  CHECK(mine[0].kind == "started");
  CHECK(mine[1].kind == "finished");
  CHECK_FALSE(store->events_after(0, 0));
}
