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
  const ledger::PendingRetry retry{"r", slot - 10s, 2, slot, "trace-r", std::nullopt};
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

TEST_CASE("a reload reads the ledger behind the write group in flight, not on the loop",
          "[engine][worker]") {
  Rig rig(R"(
[jobs.a]
plugin = "noop"
schedule = "* * * * * *"
)",
          Rig::Runs::fake);
  rig.hold_writes();
  rig.start(kT0);
  rig.release_writes();
  fire_at(rig, kT0 + 1s);  // its claim is in flight

  config::Config loaded = rig.engine().config();
  loaded.jobs.front().definition_hash = "changed";
  std::optional<engine::ReloadReads> reads;
  rig.engine().read_for_reload(loaded, [&](engine::ReloadReads r) { reads = std::move(r); });
  rig.settle();
  CHECK_FALSE(reads.has_value());  // answered through the worker, not at once
  rig.release_writes();
  REQUIRE(reads.has_value());
  REQUIRE(reads->contains("a"));
  const auto& last = reads->at("a").last_fire;
  REQUIRE(last);
  CHECK(*last == kT0 + 1s);  // the claim committed before the read
  auto diff = rig.engine().apply_config(loaded, *reads);
  CHECK(diff.changed == std::vector<std::string>{"a"});
}

TEST_CASE("a retry dropped by a reload goes after the run end that scheduled it",
          "[engine][worker]") {
  Rig rig(R"(
[jobs.flaky]
plugin = "noop"
schedule = "@manual"
retry = { max_attempts = 3, initial_delay = "1m", jitter = "none" }

[jobs.other]
plugin = "noop"
schedule = "@manual"
)",
          Rig::Runs::fake);
  auto& fake = rig.fake();
  fake.decorate = [](exec::RunReport& report) { report.retryable = true; };
  rig.hold_writes();
  rig.start(kT0);
  rig.release_writes();
  REQUIRE(rig.engine().trigger("flaky"));
  rig.release_writes();
  REQUIRE(fake.started.size() == 1);
  // A claim of another job in flight: the failed run's end (and the retry
  // row it schedules) waits in the backlog for the next group.
  REQUIRE(rig.engine().trigger("other"));
  rig.settle();
  REQUIRE(rig.snapshot()["ledger_backlog"]["writing"] == true);
  fake.finish(fake.started[0].request.run_id, Outcome::failed);
  rig.settle();

  config::Config loaded = rig.engine().config();
  config::own_settings(loaded.jobs.front()).retry.max_attempts = 1;
  loaded.jobs.front().definition_hash = "changed";
  engine::ReloadReads reads;
  reads["flaky"].last_fire = std::optional<TimePoint>();
  auto diff = rig.engine().apply_config(loaded, reads);
  REQUIRE(diff.changed == std::vector<std::string>{"flaky"});
  rig.release_writes();
  CHECK(rig.runs("flaky").front().outcome == Outcome::failed);
  CHECK(rig.store().pending_retries().value().empty());
  rig.run_until(kT0 + 2min);
  rig.release_writes();
  CHECK(fake.started.size() == 2);  // flaky once, other once: no retry
}
