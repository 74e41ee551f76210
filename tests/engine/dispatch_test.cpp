// Dispatch without processes: the real Engine and SQLite ledger with a
// FakeExecutor, a fake clock and a manual timer. Each case is the one place
// a dispatch rule is checked: max_concurrency, the dispatch queue's bound,
// @reboot, the concurrency policies, jitter, and stopping at shutdown.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

int count(const std::vector<ledger::RunRecord>& runs, std::optional<Outcome> outcome,
          std::string_view message_part = "") {
  return static_cast<int>(std::count_if(runs.begin(), runs.end(), [&](const auto& r) {
    return r.outcome == outcome && r.message.find(message_part) != std::string::npos;
  }));
}

int count_stops(const FakeExecutor& fake, exec::StopReason reason) {
  return static_cast<int>(std::count_if(fake.stopped.begin(), fake.stopped.end(),
                                        [&](const auto& s) { return s.reason == reason; }));
}

}  // namespace

TEST_CASE("max_concurrency bounds the runs in flight; the rest wait their turn",
          "[engine][dispatch]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "allow"
)",
          Rig::Runs::fake, "max_concurrency = 2\n");
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 5, 500));  // slots 10:00:01 .. :05, none ends
  auto& fake = rig.fake();
  CHECK(fake.started.size() == 2);
  CHECK(fake.active() == 2);
  CHECK(rig.snapshot()["queued"] == 3);
  CHECK(fake.started[0].request.state_directory == rig.config().host.state_dir / "jobs" / "tick");

  // One ends: the oldest waiting fire takes its place, never a third at once.
  fake.finish(fake.started[0].request.run_id);
  rig.settle();
  REQUIRE(fake.started.size() == 3);
  CHECK(fake.started[2].request.scheduled_for == at_utc(10, 0, 3));
  CHECK(rig.snapshot()["queued"] == 2);
  while (fake.active() > 0) {
    fake.finish(fake.running_ids().front());
    rig.settle();
  }
  CHECK(fake.started.size() == 5);
  CHECK(fake.peak == 2);
  CHECK(count(rig.runs("tick"), Outcome::succeeded) == 5);
}

TEST_CASE("a fire that finds the dispatch queue full is recorded as skipped",
          "[engine][dispatch]") {
  Rig rig(R"(
[jobs.busy]
plugin = "noop"
schedule = "@manual"
concurrency = "allow"

[jobs.other]
plugin = "noop"
schedule = "@manual"
)",
          Rig::Runs::fake, "max_concurrency = 1\n");
  rig.start(at_utc(10, 0, 0));
  // The first trigger of busy runs; the next kMaxReady fill the queue.
  for (std::size_t i = 0; i < engine::kMaxReady + 1; ++i) {
    rig.set_now(rig.now() + 1ms);
    REQUIRE(rig.engine().trigger("busy"));
  }
  rig.settle();
  CHECK(rig.fake().started.size() == 1);
  CHECK(rig.snapshot()["queued"] == engine::kMaxReady);
  CHECK(rig.runs("busy").size() == 1);  // only the claim of the running one

  // A fire of another job finds no room: skipped at once, nothing waits.
  rig.set_now(rig.now() + 1ms);
  REQUIRE(rig.engine().trigger("other"));
  rig.settle();
  CHECK(rig.snapshot()["queued"] == engine::kMaxReady);
  auto runs = rig.runs("other");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].outcome == Outcome::skipped);
  CHECK(runs[0].scheduled_for == rig.now());
  CHECK(runs[0].message == "dispatch queue full (10000 fires waiting for max_concurrency = 1)");
}

TEST_CASE("an @reboot job fires once per start of the host", "[engine][dispatch]") {
  Rig rig(R"(
[jobs.boot]
plugin = "noop"
schedule = "@reboot"
)",
          Rig::Runs::fake);
  rig.start(at_utc(10, 0, 0));
  auto& fake = rig.fake();
  REQUIRE(fake.started.size() == 1);
  CHECK(fake.started[0].at == at_utc(10, 0, 0));
  fake.finish(fake.started[0].request.run_id);
  rig.settle();
  // An hour of timer wakes and clock steps: no other fire.
  rig.run_until(at_utc(11, 0, 0), 7s);
  CHECK(fake.started.size() == 1);

  // A restart on the same ledger fires it once more.
  bool idle = false;
  rig.engine().shutdown([&] { idle = true; });
  rig.settle();
  REQUIRE(idle);
  rig.start(at_utc(11, 0, 1));
  rig.run_until(at_utc(11, 5, 0), 7s);
  REQUIRE(fake.started.size() == 2);
  CHECK(fake.started[1].at == at_utc(11, 0, 1));
  fake.finish(fake.started[1].request.run_id);
  rig.settle();
  auto runs = rig.runs("boot");
  REQUIRE(runs.size() == 2);
  for (const auto& run : runs) CHECK(run.trigger == ledger::Trigger::reboot);
}

TEST_CASE("concurrency = forbid skips fires while a run is in flight", "[engine][dispatch]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "forbid"
)",
          Rig::Runs::fake);
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 4, 500));  // slot :01 runs on; :02 .. :04 find it running
  auto& fake = rig.fake();
  REQUIRE(fake.started.size() == 1);
  CHECK(fake.stopped.empty());
  const std::string first = fake.started[0].request.run_id;
  auto runs = rig.runs("tick");
  CHECK(count(runs, Outcome::skipped,
              "run " + first + " is still running (concurrency = forbid)") == 3);
  // Once it ended, the next slot runs.
  fake.finish(first);
  rig.settle();
  rig.run_until(at_utc(10, 0, 5, 500));
  REQUIRE(fake.started.size() == 2);
  CHECK(fake.started[1].request.scheduled_for == at_utc(10, 0, 5));
}

TEST_CASE("busy: a run in flight or a fire waiting for a run slot", "[engine][dispatch]") {
  Rig rig(R"(
[jobs.a]
plugin = "noop"
schedule = "@manual"

[jobs.b]
plugin = "noop"
schedule = "@manual"
)",
          Rig::Runs::fake, "max_concurrency = 1\n");
  rig.start(at_utc(10, 0, 0));
  auto& fake = rig.fake();
  CHECK_FALSE(rig.engine().busy("a"));
  CHECK_FALSE(rig.engine().busy("nope"));
  REQUIRE(rig.engine().trigger("a"));
  rig.settle();
  CHECK(rig.engine().busy("a"));  // running
  rig.set_now(rig.now() + 1ms);
  REQUIRE(rig.engine().trigger("b"));
  rig.settle();
  CHECK(rig.engine().busy("b"));  // waiting for max_concurrency
  fake.finish(fake.running_ids().front());
  rig.settle();
  CHECK_FALSE(rig.engine().busy("a"));
  CHECK(rig.engine().busy("b"));  // now running
  fake.finish(fake.running_ids().front());
  rig.settle();
  CHECK_FALSE(rig.engine().busy("b"));
}

TEST_CASE("concurrency = replace stops the run in flight for the newer fire",
          "[engine][dispatch]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "replace"
)",
          Rig::Runs::fake);
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 3, 500));  // slots :01, :02, :03
  auto& fake = rig.fake();
  REQUIRE(fake.started.size() == 3);
  REQUIRE(fake.stopped.size() == 2);
  CHECK(fake.stopped[0].run_id == fake.started[0].request.run_id);
  CHECK(fake.stopped[1].run_id == fake.started[1].request.run_id);
  CHECK(count_stops(fake, exec::StopReason::replace) == 2);
  CHECK(fake.active() == 1);
  auto runs = rig.runs("tick");
  CHECK(count(runs, Outcome::interrupted) == 2);
  CHECK(count(runs, std::nullopt) == 1);  // :03 still running
  CHECK(runs.back().scheduled_for == at_utc(10, 0, 3));
}

TEST_CASE("jitter delays each fire by a fixed amount in [0, jitter)", "[engine][dispatch]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "allow"
jitter = "800ms"
)",
          Rig::Runs::fake, "max_concurrency = 1000\n");
  rig.start(at_utc(10, 0, 0));
  while (rig.step_to_next_due(at_utc(10, 5, 0))) {
  }
  auto& fake = rig.fake();
  REQUIRE(fake.started.size() >= 299);
  Duration least = 1h, most = 0ms;
  for (const auto& s : fake.started) {
    const Duration delay = s.at - s.request.scheduled_for;
    CAPTURE(ledger::format_utc(s.request.scheduled_for), delay.count());
    CHECK(delay >= 0ms);
    CHECK(delay < 800ms);
    least = std::min(least, delay);
    most = std::max(most, delay);
  }
  // Spread over the range, not one fixed offset.
  CHECK(least < 100ms);
  CHECK(most >= 700ms);
}

TEST_CASE("shutdown gives runs their kill_grace; a second request stops them at once",
          "[engine][dispatch]") {
  Rig rig(R"(
[jobs.slow]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "allow"
kill_grace = "1h"
)",
          Rig::Runs::fake);
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 2, 500));
  auto& fake = rig.fake();
  REQUIRE(fake.active() == 2);

  bool idle = false;
  rig.engine().shutdown([&] { idle = true; });
  rig.io().run_for(200ms);  // the grace timers are real; an hour is far off
  CHECK(fake.stopped.empty());
  CHECK_FALSE(idle);

  rig.engine().stop_now();  // the second SIGTERM
  CHECK(count_stops(fake, exec::StopReason::shutdown) == 2);
  rig.settle();
  CHECK(idle);
  CHECK(count(rig.runs("slow"), Outcome::interrupted) == 2);
}

TEST_CASE("shutdown stops a run that outlives its kill_grace", "[engine][dispatch]") {
  Rig rig(R"(
[jobs.slow]
plugin = "noop"
schedule = "* * * * * *"
kill_grace = "50ms"
)",
          Rig::Runs::fake);
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 1, 500));
  auto& fake = rig.fake();
  REQUIRE(fake.active() == 1);
  bool idle = false;
  rig.engine().shutdown([&] { idle = true; });
  rig.settle();
  CHECK(fake.stopped.empty());
  for (int i = 0; i < 200 && !idle; ++i) rig.io().run_for(10ms);
  CHECK(idle);
  CHECK(count_stops(fake, exec::StopReason::shutdown) == 1);
}

TEST_CASE("on a shared ledger, hosts started at different times agree on an every grid",
          "[engine][dispatch][cluster]") {
  // [store] url only changes the anchor here: the rig's ledger stays SQLite.
  const std::string shared =
      "park_lead = \"0s\"\nid = \"h1\"\n[store]\nurl = \"postgresql://jobhost@127.0.0.1/unused\"\n";
  const std::string job = R"(
[jobs.tick]
plugin = "noop"
every = "7s"
)";
  std::vector<TimePoint> first_slots;
  for (TimePoint start : {at_utc(10, 0, 0, 500), at_utc(10, 0, 3, 200)}) {
    Rig rig(job, Rig::Runs::fake, shared);
    rig.start(start);
    rig.run_until(start + 8s);
    REQUIRE_FALSE(rig.fake().started.empty());
    first_slots.push_back(rig.fake().started[0].request.scheduled_for);
  }
  // The epoch's grid of 7 s, whenever the host started: one grid.
  for (TimePoint slot : first_slots) CHECK(slot.time_since_epoch() % 7s == Duration(0));
  // Alone on SQLite, the grid starts at the first load (docs/schedules.md).
  Rig alone(job, Rig::Runs::fake);
  alone.start(at_utc(10, 0, 3, 200));
  alone.run_until(at_utc(10, 0, 11));
  REQUIRE_FALSE(alone.fake().started.empty());
  CHECK(alone.fake().started[0].request.scheduled_for == at_utc(10, 0, 10));
}
