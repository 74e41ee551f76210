// The engine's reaction to wall-clock jumps, end to end: the real Engine,
// Executor (the noop test plugin, real forks) and SQLite ledger, driven by a
// fake clock and a manual timer instead of the real clock and timerfd.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

// The job is not called "tick" as in the daemon tests: run as root in
// isolation mode none, a dynamic user's processes are swept by uid when its
// run ends, and the same name gives the same uid in another daemon of a test
// running meanwhile (whose runs, parked ahead, would be swept too).
namespace {

// Slots of `runs` (sorted), each once: false if a slot appears twice.
bool slots_unique(const std::vector<ledger::RunRecord>& runs) {
  for (std::size_t i = 1; i < runs.size(); ++i) {
    if (runs[i].scheduled_for == runs[i - 1].scheduled_for) return false;
  }
  return true;
}

bool every_step_present(const std::vector<ledger::RunRecord>& runs, Duration period) {
  for (std::size_t i = 1; i < runs.size(); ++i) {
    if (runs[i].scheduled_for - runs[i - 1].scheduled_for != period) return false;
  }
  return true;
}

int count(const std::vector<ledger::RunRecord>& runs, Outcome outcome, ledger::Trigger trigger) {
  return static_cast<int>(std::count_if(runs.begin(), runs.end(), [&](const auto& r) {
    return r.outcome == outcome && r.trigger == trigger;
  }));
}

}  // namespace

TEST_CASE("a backward clock jump never re-fires a recorded slot", "[engine][clock]") {
  Rig rig(R"(
[jobs.jumper]
plugin = "noop"
schedule = "* * * * * *"
)");
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 5, 500));  // slots 10:00:01 .. 10:00:05
  REQUIRE(rig.runs("jumper").size() == 5);

  // An hour back: the hour up to the last recorded slot must pass quietly.
  rig.set_clock(at_utc(9, 0, 5, 500));
  rig.run_until(at_utc(9, 1, 0), 10s);
  rig.run_until(at_utc(10, 0, 5, 500), 10min);
  CHECK(rig.runs("jumper").size() == 5);

  // Once the clock passes the last fire, fires resume with the next slot.
  rig.run_until(at_utc(10, 0, 8, 500));
  auto runs = rig.runs("jumper");
  REQUIRE(runs.size() == 8);
  CHECK(slots_unique(runs));
  CHECK(every_step_present(runs, 1s));
  CHECK(runs.front().scheduled_for == at_utc(10, 0, 1));
  CHECK(runs.back().scheduled_for == at_utc(10, 0, 8));
  CHECK(count(runs, Outcome::succeeded, ledger::Trigger::schedule) == 8);
}

TEST_CASE("the engine checkpoints the ledger every 20 records, only when idle", "[engine]") {
  // The fake clock stands `offset` after each slot while its run ends: the
  // next fire is 500 ms away (idle), or 100 ms (not idle: kCheckpointGap).
  struct Case {
    int offset_ms;
    int checkpoints;
  };
  auto c = GENERATE(Case{500, 2}, Case{900, 0});
  CAPTURE(c.offset_ms);
  Rig rig(R"(
[jobs.jumper]
plugin = "noop"
schedule = "* * * * * *"
)");
  rig.start(at_utc(10, 0, 0, c.offset_ms));
  rig.run_until(at_utc(10, 0, 45, c.offset_ms));
  REQUIRE(rig.runs("jumper").size() == 45);
  CHECK(rig.snapshot()["ledger_checkpoints"] == c.checkpoints);
}

TEST_CASE("a forward clock jump is a misfire handled by the job's policy", "[engine][clock]") {
  // Every 10 s: an hour is 360 slots, all listed one by one (kMaxListedSkips).
  struct Case {
    std::string policy;
    int catchup_runs;
  };
  auto c = GENERATE(Case{"skip", 0}, Case{"run_once", 1}, Case{"run_all", 4});
  CAPTURE(c.policy);
  Rig rig(R"(
[jobs.jumper]
plugin = "noop"
schedule = "*/10 * * * * *"
misfire = ")" +
          c.policy + R"("
misfire_limit = 4
catchup_spread = "4s"
)");
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 30, 500));  // slots 10:00:10, :20, :30
  REQUIRE(rig.runs("jumper").size() == 3);

  // The clock jumps an hour ahead (or the host slept): slots 10:00:40 to
  // 11:00:30 were missed, 11:00:40 is the next one on time.
  rig.set_clock(at_utc(11, 0, 35));
  rig.run_until(at_utc(11, 0, 50, 500));
  auto runs = rig.runs("jumper");
  CHECK(slots_unique(runs));
  CHECK(every_step_present(runs, 10s));
  CHECK(runs.front().scheduled_for == at_utc(10, 0, 10));
  CHECK(runs.back().scheduled_for == at_utc(11, 0, 50));
  CHECK(runs.size() == 3 + 360 + 2);
  // Not a burst: only the policy's catch-ups run, the latest missed slots.
  CHECK(count(runs, Outcome::succeeded, ledger::Trigger::catchup) == c.catchup_runs);
  CHECK(count(runs, Outcome::skipped, ledger::Trigger::catchup) == 360 - c.catchup_runs);
  for (int i = 0; i < c.catchup_runs; ++i) {
    const auto& run = runs[runs.size() - 3 - static_cast<std::size_t>(i)];
    CHECK(run.outcome == Outcome::succeeded);
    CHECK(run.trigger == ledger::Trigger::catchup);
  }
  for (const auto& run : runs) {
    if (run.outcome == Outcome::skipped) {
      CHECK(run.message.starts_with("missed: the clock jumped or the host was suspended"));
    }
  }
  // On time again after the jump.
  CHECK(count(runs, Outcome::succeeded, ledger::Trigger::schedule) == 3 + 2);
}

TEST_CASE("a small forward drift fires the late slots normally", "[engine][clock]") {
  Rig rig(R"(
[jobs.jumper]
plugin = "noop"
schedule = "*/10 * * * * *"
concurrency = "allow"
misfire = "skip"
)");
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 10, 500));  // slot 10:00:10
  // 25 s ahead, under the 30 s tolerance: 10:00:20 and 10:00:30 are late, not missed.
  rig.set_clock(at_utc(10, 0, 35, 500));
  rig.run_until(at_utc(10, 0, 40, 500));
  auto runs = rig.runs("jumper");
  REQUIRE(runs.size() == 4);
  CHECK(slots_unique(runs));
  CHECK(every_step_present(runs, 10s));
  CHECK(count(runs, Outcome::succeeded, ledger::Trigger::schedule) == 4);
}
