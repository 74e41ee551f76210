// The ledger query behind the dashboard's last-hour tiles: run_summary.
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

TEST_CASE("run_summary: finished, not skipped runs since an instant", "[ledger][dashboard]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
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
