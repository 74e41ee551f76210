// The ledger queries behind the dashboard: recent_runs (the jobs table's
// sparklines) and run_summary (the header's last-hour tiles).
#include <catch2/catch.hpp>

#include "ledger/ledger_test_util.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;

namespace {

// Runs `outcome` for `job` at kBase + t ms, lasting `duration_ms`.
void record(Store& store, const std::string& job, int64_t t, Outcome outcome, int64_t duration_ms) {
  auto start = make_start(job, t, t);
  REQUIRE(store.claim_and_start(start).value());
  REQUIRE(store.finish_run(make_end(start, outcome, duration_ms)).value());
}

}  // namespace

TEST_CASE("recent_runs: the newest finished runs of the asked jobs, oldest first",
          "[ledger][dashboard]") {
  TempDir dir;
  auto store = open_store(dir.db());
  // a: 30 runs, every fifth failed, durations 1..30 ms; skipped slots and an
  // open run in between that the strip leaves out.
  for (int i = 1; i <= 30; ++i) {
    record(*store, "a", i * 1000, i % 5 == 0 ? Outcome::failed : Outcome::succeeded, i);
    if (i % 7 == 0) REQUIRE(store->record_skipped(make_skip("a", i * 1000 + 500, "missed")));
  }
  REQUIRE(store->claim_and_start(make_start("a", 40000, 40000)).value());
  record(*store, "b", 1000, Outcome::timed_out, 99);
  record(*store, "c", 1000, Outcome::succeeded, 5);  // not asked for

  auto got = store->recent_runs({"a", "b", "nobody"}, 20).value();
  REQUIRE(got.size() == 2);
  CHECK(got[0].first == "a");
  REQUIRE(got[0].second.size() == 20);
  for (int k = 0; k < 20; ++k) {
    const int i = 11 + k;  // runs 11..30, oldest first
    INFO("run " << i);
    CHECK(got[0].second[k].outcome == (i % 5 == 0 ? Outcome::failed : Outcome::succeeded));
    CHECK(got[0].second[k].duration == Duration(i));
  }
  CHECK(got[1].first == "b");
  REQUIRE(got[1].second.size() == 1);
  CHECK(got[1].second[0].outcome == Outcome::timed_out);

  CHECK(store->recent_runs({}, 20).value().empty());
  CHECK_FALSE(store->recent_runs({"a"}, 0).has_value());
}

TEST_CASE("run_summary: finished, not skipped runs since an instant", "[ledger][dashboard]") {
  TempDir dir;
  auto store = open_store(dir.db());
  struct Row {
    int64_t t;
    Outcome outcome;
    int64_t duration_ms;
  };
  const std::vector<Row> rows = {
      {1000, Outcome::failed, 1000},      // before the window
      {10000, Outcome::succeeded, 100},   // in it from here on
      {11000, Outcome::failed, 300},      //
      {12000, Outcome::timed_out, 500},   //
      {13000, Outcome::interrupted, 40},  // not a failure
      {14000, Outcome::cancelled, 60},    // not a failure
  };
  for (const auto& row : rows) record(*store, "job", row.t, row.outcome, row.duration_ms);
  REQUIRE(store->record_skipped(make_skip("job", 15000, "missed")));
  REQUIRE(store->claim_and_start(make_start("job", 16000, 16000)).value());

  auto summary = store->run_summary(at_ms(kBase + 10000)).value();
  CHECK(summary.runs == 5);
  CHECK(summary.failed == 2);
  CHECK(summary.mean_duration == Duration((100 + 300 + 500 + 40 + 60) / 5));

  auto empty = store->run_summary(at_ms(kBase + 20000)).value();
  CHECK(empty.runs == 0);
  CHECK(empty.failed == 0);
  CHECK_FALSE(empty.mean_duration.has_value());
}
