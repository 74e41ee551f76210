// The engine over a threaded ledger worker (as on PostgreSQL): its write
// groups are in flight while the loop goes on. Concurrency, pause and the
// order of skips must see a fire whose claim is in flight.
#include <catch2/catch.hpp>

#include "engine/engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 =
    TimePoint(std::chrono::sys_days(std::chrono::year(2030) / std::chrono::March / 4));

// Moves the clock to `t` and waits (a bounded while) for the held worker to
// have taken the group the fire made.
void fire_at(Rig& rig, TimePoint t) {
  rig.run_until(t);
  REQUIRE(rig.snapshot()["ledger_backlog"]["writing"] == true);
}

}  // namespace

TEST_CASE("forbid: a fire whose claim is in flight keeps the next one out", "[engine][worker]") {
  Rig rig(R"(
[jobs.f]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "forbid"
)",
          Rig::Runs::fake);
  rig.hold_writes();
  rig.start(kT0);
  rig.release_writes();  // the start's next fires
  fire_at(rig, kT0 + 1s);
  CHECK(rig.fake().started.empty());  // its claim is not back yet
  rig.run_until(kT0 + 2s);            // the next slot: forbidden, not queued
  rig.release_writes();
  REQUIRE(rig.fake().started.size() == 1);
  CHECK(rig.fake().started[0].request.scheduled_for == kT0 + 1s);

  const auto runs = rig.runs("f");
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].scheduled_for == kT0 + 1s);
  CHECK_FALSE(runs[0].outcome.has_value());  // running
  CHECK(runs[1].scheduled_for == kT0 + 2s);
  CHECK(runs[1].outcome == Outcome::skipped);
  CHECK_THAT(runs[1].message, Catch::Contains("concurrency = forbid"));
}

TEST_CASE("replace: a fire whose claim is in flight ends replaced, the newer one runs",
          "[engine][worker]") {
  Rig rig(R"(
[jobs.r]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "replace"
)",
          Rig::Runs::fake);
  rig.hold_writes();
  rig.start(kT0);
  rig.release_writes();
  fire_at(rig, kT0 + 1s);
  rig.run_until(kT0 + 2s);  // replaces the one in flight
  rig.release_writes();
  REQUIRE(rig.fake().started.size() == 1);
  CHECK(rig.fake().started[0].request.scheduled_for == kT0 + 2s);
  const auto runs = rig.runs("r");
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].scheduled_for == kT0 + 1s);
  CHECK(runs[0].outcome == Outcome::replaced);
  CHECK(runs[1].scheduled_for == kT0 + 2s);
  CHECK_FALSE(runs[1].outcome.has_value());
}

TEST_CASE("a threaded ledger worker: each slot once, in order, runs launched from the results",
          "[engine][worker]") {
  Rig rig(R"(
[jobs.a]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "allow"
)",
          Rig::Runs::fake);
  rig.hold_writes();
  rig.start(kT0);
  rig.release_writes();
  for (int s = 1; s <= 5; ++s) {
    fire_at(rig, kT0 + std::chrono::seconds(s));
    rig.release_writes();
    REQUIRE(rig.fake().started.size() == static_cast<std::size_t>(s));
    rig.fake().finish(rig.fake().started.back().request.run_id);
    rig.settle();
  }
  rig.release_writes();
  const auto runs = rig.runs("a");
  REQUIRE(runs.size() == 5);
  for (int s = 1; s <= 5; ++s) {
    CHECK(runs[s - 1].scheduled_for == kT0 + std::chrono::seconds(s));
  }
}

TEST_CASE("a retry read again while it waits for a run slot is one fire", "[engine][worker]") {
  Rig rig(R"(
[jobs.hold]
plugin = "noop"
schedule = "@manual"

[jobs.r]
plugin = "noop"
schedule = "@manual"
concurrency = "forbid"
retry = { max_attempts = 3 }
)",
          Rig::Runs::fake, "max_concurrency = 1");
  rig.start(kT0);
  REQUIRE(rig.engine().trigger("hold"));
  rig.settle();
  REQUIRE(rig.fake().started.size() == 1);  // the only run slot is taken
  // Attempt 2 of a slot of r, as the heartbeat reads it from the ledger,
  // twice before it gets the slot.
  REQUIRE(rig.engine().trigger("r"));  // attempt 1 waits for the slot too
  rig.settle();
  const auto slot = rig.now();
  const ledger::PendingRetry retry{"r", slot - 10s, 2, slot, "trace-r"};
  rig.engine().add_retries({retry});
  rig.run_until(slot + 1s);
  rig.engine().add_retries({retry});
  rig.run_until(slot + 2s);
  const auto queued = [&] {
    for (const auto& job : rig.engine().figures().jobs) {
      if (job.job == "r") return job.queued;
    }
    return std::size_t{999};
  };
  CHECK(queued() == 2);  // attempt 1 and the retry, once (it was 3: never back to 0)
}
