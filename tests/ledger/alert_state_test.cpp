// The ledger's alert state (Store::alert_states, save_alert_state,
// success_bounds): what observe/alerts.h reads at start to neither repeat an
// alert nor lose a recovery across a restart.
#include "ledger/ledger_test_util.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;

TEST_CASE("alert state survives a reopen, and its event lands with it", "[ledger][alerts]") {
  JOBHOST_TEST_LEDGER(ledger);
  {
    auto store = ledger.open();
    CHECK(store->alert_states().value().empty());
    AlertRecord failing{"backup",
                        "failing",
                        true,
                        at_ms(kBase),
                        at_ms(kBase + 5),
                        3,
                        std::nullopt,
                        true,
                        "job backup failed 3 times in a row"};
    Event event{0, at_ms(kBase + 5), "alert", "backup", std::nullopt, R"({"kind":"failing"})"};
    REQUIRE(store->save_alert_state(failing, at_ms(kBase + 5), event).has_value());
    AlertRecord silent{
        "backup", "silent", false, std::nullopt, std::nullopt, 0, at_ms(kBase - 1000), false, ""};
    REQUIRE(store->save_alert_state(silent, at_ms(kBase + 6), std::nullopt).has_value());
    // Replacing, not adding.
    failing.pending = false;
    REQUIRE(store->save_alert_state(failing, at_ms(kBase + 7), std::nullopt).has_value());
  }
  auto store = ledger.open();
  auto states = store->alert_states().value();
  REQUIRE(states.size() == 2);
  CHECK(states[0].job == "backup");
  CHECK(states[0].kind == "failing");
  CHECK(states[0].firing);
  CHECK(states[0].since == at_ms(kBase));
  CHECK(states[0].notified_at == at_ms(kBase + 5));
  CHECK(states[0].failed_fires == 3);
  CHECK_FALSE(states[0].pending);
  CHECK(states[0].message == "job backup failed 3 times in a row");
  CHECK(states[1].kind == "silent");
  CHECK_FALSE(states[1].firing);
  CHECK_FALSE(states[1].since.has_value());
  CHECK(states[1].window_start == at_ms(kBase - 1000));
  auto events = store->events("backup", 10).value();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == "alert");
  CHECK(events[0].detail == R"({"kind":"failing"})");
}

TEST_CASE("success_bounds: the newest success and the oldest run", "[ledger][alerts]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto none = store->success_bounds("a").value();
  CHECK_FALSE(none.last_success.has_value());
  CHECK_FALSE(none.first_run.has_value());

  auto r1 = make_start("a", 0, 0);
  REQUIRE(store->claim_and_start(r1).value());
  REQUIRE(store->finish_run(make_end(r1, Outcome::failed)).value());
  auto only_failed = store->success_bounds("a").value();
  CHECK_FALSE(only_failed.last_success.has_value());
  CHECK(only_failed.first_run == at_ms(kBase));

  auto r2 = make_start("a", 1000, 1000);
  REQUIRE(store->claim_and_start(r2).value());
  REQUIRE(store->finish_run(make_end(r2, Outcome::succeeded, 50)).value());
  auto r3 = make_start("a", 2000, 2000);
  REQUIRE(store->claim_and_start(r3).value());
  REQUIRE(store->finish_run(make_end(r3, Outcome::timed_out)).value());
  REQUIRE(store->record_skipped(make_skip("a", 3000, "paused")).value());
  auto bounds = store->success_bounds("a").value();
  CHECK(bounds.last_success == at_ms(kBase + 1050));
  CHECK(bounds.first_run == at_ms(kBase));
  CHECK_FALSE(store->success_bounds("b").value().last_success.has_value());
}
