// Parking (engine_park.cpp): runs claimed and forked ahead of their instant
// and released at it. The real Engine and SQLite ledger with a FakeExecutor
// (park, release, discard), a fake clock and a manual timer. One case per
// guarantee: released at the instant, a crash between claim and release, a
// pause, a reload and a new plugin build while parked, forbid, replace and
// max_concurrency decided at release, the bound on parked runs, a shutdown,
// and a parked process that dies.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

const std::string kParking = "park_lead = \"2s\"\nmax_concurrency = 4\n";

const std::string kTick = R"(
[jobs.tick]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "allow"
)";

// The job's ledger rows of one slot.
std::vector<ledger::RunRecord> slot_rows(Rig& rig, const std::string& job, TimePoint slot) {
  std::vector<ledger::RunRecord> out;
  for (auto& run : rig.runs(job)) {
    if (run.scheduled_for == slot) out.push_back(std::move(run));
  }
  return out;
}

int count_events(Rig& rig, const std::string& kind) {
  auto events = rig.store().events(std::nullopt, 10000);
  REQUIRE(events);
  return static_cast<int>(
      std::count_if(events->begin(), events->end(), [&](const auto& e) { return e.kind == kind; }));
}

}  // namespace

TEST_CASE("a fire is claimed and parked ahead, and released exactly at its instant",
          "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  // Parked at once (due within 2 s), one per job: slot 10:00:01 only.
  REQUIRE(fake.parked.size() == 1);
  CHECK(fake.started.empty());
  CHECK(rig.snapshot()["parked"] == 1);
  // Its slot is claimed already (the job's last fire), but reads of runs
  // do not show it before its release.
  CHECK(rig.store().last_fire("tick").value() == at_utc(10, 0, 1));
  CHECK(rig.runs("tick").empty());
  CHECK(rig.store().get_run(fake.parked[0]).value() == std::nullopt);
  CHECK(rig.store().running_runs().value().empty());

  rig.run_until(at_utc(10, 0, 3, 500), 250ms);
  REQUIRE(fake.started.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    // Released at the instant (the timer is armed for it), not a step later.
    CHECK(fake.started[i].at == at_utc(10, 0, static_cast<int>(i) + 1));
    CHECK(fake.started[i].request.run_id == fake.parked[i]);
  }
  CHECK(fake.discarded.empty());
  for (const auto& id : fake.running_ids()) fake.finish(id);
  rig.settle();
  auto runs = rig.runs("tick");
  // 10:00:01 .. :03 ran; :04 is parked (claimed ahead, not shown).
  REQUIRE(runs.size() == 3);
  for (int i = 0; i < 3; ++i) CHECK(runs[i].outcome == Outcome::succeeded);
  CHECK(rig.store().last_fire("tick").value() == at_utc(10, 0, 4));
}

TEST_CASE("a crash between the early claim and the instant: the slot is a missed fire",
          "[engine][parking]") {
  struct Case {
    std::string misfire;
    int catchup_runs;  // of the 6 missed slots 10:00:10 .. 10:01:00
  };
  auto c = GENERATE(Case{"skip", 0}, Case{"run_once", 1});
  CAPTURE(c.misfire);
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "*/10 * * * * *"
misfire = ")" +
              c.misfire + "\"\n",
          Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 8, 500));
  REQUIRE(fake.parked.size() == 1);
  REQUIRE(rig.store().last_fire("tick").value() == at_utc(10, 0, 10));
  rig.crash();  // before 10:00:10: the run never began

  // The next start, a minute later, as the daemon does it.
  const TimePoint later = at_utc(10, 1, 5);
  auto closed = rig.store().close_orphaned_runs(later, "interrupted");
  REQUIRE(closed);
  CHECK(closed->closed.empty());  // undone, not closed as interrupted
  REQUIRE(closed->freed.size() == 1);
  CHECK(closed->freed[0].second == at_utc(10, 0, 10));
  CHECK(count_events(rig, "unclaimed") == 1);
  CHECK(rig.store().last_fire("tick").value() == std::nullopt);
  rig.start(later);
  rig.run_until(at_utc(10, 1, 9), 250ms);  // before the next slot, 10:01:10
  for (const auto& id : fake.running_ids()) fake.finish(id);
  rig.settle();
  // The parked slot is missed like the others: one record each, per the
  // misfire policy (run_once runs the newest, 10:01:00).
  auto rows = slot_rows(rig, "tick", at_utc(10, 0, 10));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].outcome == Outcome::skipped);
  CHECK_THAT(rows[0].message, Catch::Contains("missed"));
  auto runs = rig.runs("tick");
  std::erase_if(runs, [](const auto& r) { return r.scheduled_for > at_utc(10, 1, 0); });
  REQUIRE(runs.size() == 6);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    CHECK(runs[i].scheduled_for == at_utc(10, 0, 10) + std::chrono::seconds(10 * i));
    CHECK(runs[i].trigger == ledger::Trigger::catchup);
  }
  CHECK(std::count_if(runs.begin(), runs.end(), [](const auto& r) {
          return r.outcome == Outcome::succeeded;
        }) == c.catchup_runs);
}

TEST_CASE("a pause while parked discards the run; the slot is recorded skipped \"paused\"",
          "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 1);
  REQUIRE(rig.engine().pause("tick", "test"));
  rig.settle();
  CHECK(fake.discarded == fake.parked);
  CHECK(slot_rows(rig, "tick", at_utc(10, 0, 1)).empty());  // the claim is undone
  rig.run_until(at_utc(10, 0, 2, 500), 250ms);
  CHECK(fake.started.empty());
  for (int s : {1, 2}) {
    auto rows = slot_rows(rig, "tick", at_utc(10, 0, s));
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].outcome == Outcome::skipped);
    CHECK(rows[0].message == "paused");
  }
  CHECK(fake.parked.size() == 1);  // nothing parked while paused
  REQUIRE(rig.engine().resume("tick", "test"));
  rig.run_until(at_utc(10, 0, 4, 500), 250ms);
  CHECK(fake.started.size() == 2);  // 10:00:03 and :04, parked again
}

TEST_CASE("a reload that changes the job while parked: the fire runs the new definition",
          "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 1);
  config::Config loaded = rig.engine().config();
  loaded.jobs.front().definition_hash = "changed";
  jobhost::config::own_settings(loaded.jobs.front()).params["new"] = "yes";
  auto diff = rig.engine().apply_config(loaded);
  REQUIRE(diff.changed == std::vector<std::string>{"tick"});
  rig.settle();
  REQUIRE(fake.discarded.size() == 1);
  CHECK(fake.discarded[0] == fake.parked[0]);
  REQUIRE(fake.parked.size() == 2);  // parked again, with the new definition
  rig.run_until(at_utc(10, 0, 1), 250ms);
  REQUIRE(fake.started.size() == 1);
  CHECK(fake.started[0].request.run_id == fake.parked[1]);
  CHECK(fake.started[0].request.params.at("new") == "yes");
  CHECK(fake.started[0].request.state_directory == rig.config().host.state_dir / "jobs" / "tick");
  auto rows = slot_rows(rig, "tick", at_utc(10, 0, 1));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].definition_hash == "changed");
}

TEST_CASE("a reload that removes the job while parked discards the run and its claim",
          "[engine][parking]") {
  Rig rig(kTick + R"(
[jobs.other]
plugin = "noop"
schedule = "0 0 * * * *"
)",
          Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 1);
  config::Config loaded = rig.engine().config();
  std::erase_if(loaded.jobs, [](const auto& j) { return j.name == "tick"; });
  rig.engine().apply_config(loaded);
  rig.run_until(at_utc(10, 0, 3), 250ms);
  CHECK(fake.discarded == fake.parked);
  CHECK(fake.started.empty());
  CHECK(rig.runs("tick").empty());
}

TEST_CASE("a new build of the plugin while parked: parked again with the new build",
          "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 1);
  catalog::ScanResult plugins = rig.engine().plugins();
  REQUIRE(!plugins.accepted.empty());
  plugins.accepted.front().sha256 = std::string(64, 'b');
  plugins.accepted.front().version = "2.0.0";
  rig.engine().replace_plugins(plugins);
  rig.settle();
  REQUIRE(fake.discarded.size() == 1);
  REQUIRE(fake.parked.size() == 2);
  rig.run_until(at_utc(10, 0, 1), 250ms);
  REQUIRE(fake.started.size() == 1);
  auto rows = slot_rows(rig, "tick", at_utc(10, 0, 1));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].plugin_version == "2.0.0");
  CHECK(rows[0].plugin_sha256 == std::string(64, 'b'));
}

TEST_CASE("forbid is decided at the instant: a run still in flight skips the parked fire",
          "[engine][parking]") {
  Rig rig(R"(
[jobs.slow]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "forbid"
)",
          Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 1, 250), 250ms);
  REQUIRE(fake.started.size() == 1);  // 10:00:01 runs on; :02 is parked
  REQUIRE(fake.parked.size() == 2);   // (kParkPause after the release)
  rig.run_until(at_utc(10, 0, 2), 250ms);
  CHECK(fake.started.size() == 1);
  CHECK(fake.discarded == std::vector<std::string>{fake.parked[1]});
  auto rows = slot_rows(rig, "slow", at_utc(10, 0, 2));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].outcome == Outcome::skipped);
  CHECK_THAT(rows[0].message, Catch::Contains("concurrency = forbid"));
  // Once it ends, the next slot (parked meanwhile) is released on time.
  fake.finish(fake.started[0].request.run_id);
  rig.settle();
  rig.run_until(at_utc(10, 0, 3), 250ms);
  REQUIRE(fake.started.size() == 2);
  CHECK(fake.started[1].at == at_utc(10, 0, 3));
  CHECK(fake.started[1].request.scheduled_for == at_utc(10, 0, 3));
}

TEST_CASE(
    "replace is decided at the instant: the run in flight is stopped, the parked one "
    "released",
    "[engine][parking]") {
  Rig rig(R"(
[jobs.slow]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "replace"
)",
          Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 2), 250ms);
  REQUIRE(fake.started.size() == 2);
  REQUIRE(fake.stopped.size() == 1);
  CHECK(fake.stopped[0].run_id == fake.started[0].request.run_id);
  CHECK(fake.stopped[0].reason == exec::StopReason::replace);
  CHECK(fake.started[1].at == at_utc(10, 0, 2));
  CHECK(fake.discarded.empty());
}

TEST_CASE(
    "max_concurrency is decided at the instant: a parked run with no free slot waits as "
    "any fire",
    "[engine][parking]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "*/10 * * * * *"
[jobs.manual]
plugin = "noop"
schedule = "@manual"
)",
          Rig::Runs::fake, "park_lead = \"2s\"\nmax_concurrency = 1\n");
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 8, 500));
  REQUIRE(fake.parked.size() == 1);
  // A manual run takes the one run slot before the instant.
  REQUIRE(rig.engine().trigger("manual"));
  REQUIRE(fake.started.size() == 1);
  rig.run_until(at_utc(10, 0, 10), 250ms);
  CHECK(fake.started.size() == 1);
  CHECK(fake.discarded == fake.parked);
  CHECK(rig.snapshot()["queued"] == 1);
  fake.finish(fake.started[0].request.run_id);
  rig.settle();
  REQUIRE(fake.started.size() == 2);
  CHECK(fake.started[1].request.job == "tick");
  CHECK(fake.started[1].request.scheduled_for == at_utc(10, 0, 10));
  auto rows = slot_rows(rig, "tick", at_utc(10, 0, 10));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].run_id == fake.started[1].request.run_id);
}

TEST_CASE("parked runs are bounded by max_parked and max_concurrency", "[engine][parking]") {
  std::string jobs;
  for (int i = 0; i < 6; ++i) {
    jobs += fmt::format("[jobs.j{}]\nplugin = \"noop\"\nschedule = \"*/10 * * * * *\"\n", i);
  }
  struct Case {
    std::string host;
    std::size_t parked;
  };
  auto c = GENERATE(Case{"park_lead = \"2s\"\nmax_parked = 2\nmax_concurrency = 10\n", 2},
                    Case{"park_lead = \"2s\"\nmax_parked = 100\nmax_concurrency = 3\n", 3},
                    Case{"park_lead = \"0s\"\nmax_concurrency = 10\n", 0});
  CAPTURE(c.host);
  Rig rig(jobs, Rig::Runs::fake, c.host);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 8, 500));
  CHECK(fake.parked.size() == c.parked);
  CHECK(rig.snapshot()["parked"] == c.parked);
  // At the instant the rest start as usual, up to max_concurrency.
  rig.run_until(at_utc(10, 0, 10), 250ms);
  CHECK(fake.started.size() == std::min<std::size_t>(6, rig.config().host.max_concurrency));
  for (const auto& s : fake.started) CHECK(s.at == at_utc(10, 0, 10));
}

TEST_CASE("a shutdown while parked undoes the claim; the next start sees a missed fire",
          "[engine][parking]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "*/10 * * * * *"
misfire = "skip"
)",
          Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 8, 500));
  REQUIRE(fake.parked.size() == 1);
  bool idle = false;
  rig.engine().shutdown([&] { idle = true; });
  rig.settle();
  CHECK(idle);
  CHECK(fake.discarded == fake.parked);
  CHECK(rig.runs("tick").empty());
  CHECK(count_events(rig, "unclaimed") == 1);
  rig.start(at_utc(10, 0, 30, 500));
  auto rows = slot_rows(rig, "tick", at_utc(10, 0, 10));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].outcome == Outcome::skipped);
  CHECK_THAT(rows[0].message, Catch::Contains("missed"));
}

TEST_CASE("a parked process that dies before its instant is recorded as its run",
          "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 1);
  fake.die_parked(fake.parked[0], Outcome::failed);
  rig.settle();
  auto rows = slot_rows(rig, "tick", at_utc(10, 0, 1));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].outcome == Outcome::failed);
  // It started when it died, not at the instant it was claimed for.
  CHECK(rows[0].started_at == at_utc(10, 0, 0, 500));
  CHECK(rows[0].finished_at == at_utc(10, 0, 0, 500));
  // The next slot is parked and runs on time.
  rig.run_until(at_utc(10, 0, 2, 250), 250ms);
  REQUIRE(fake.started.size() == 1);
  CHECK(fake.started[0].request.scheduled_for == at_utc(10, 0, 2));
  CHECK(fake.started[0].at == at_utc(10, 0, 2));
  // And a crash now leaves nothing parked to undo from before.
  rig.crash();
  auto closed = rig.store().close_orphaned_runs(at_utc(10, 0, 3), "interrupted");
  REQUIRE(closed);
  CHECK(closed->closed.size() == 1);  // 10:00:02, released: in flight, closed as interrupted
  CHECK(count_events(rig, "unclaimed") == 1);  // 10:00:03, parked: undone
}

TEST_CASE("a fork that fails ahead leaves the fire to start at its instant", "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  fake.refuse_park = true;
  rig.start(at_utc(10, 0, 0, 500));
  CHECK(fake.parked.empty());
  CHECK(rig.runs("tick").empty());  // the claim was undone
  fake.refuse_park = false;
  rig.run_until(at_utc(10, 0, 1), 250ms);
  REQUIRE(fake.started.size() == 1);
  CHECK(fake.started[0].request.scheduled_for == at_utc(10, 0, 1));
  CHECK(slot_rows(rig, "tick", at_utc(10, 0, 1)).size() == 1);
}

TEST_CASE("a clock set back, or park_lead lowered, unparks; the slot still runs once",
          "[engine][parking]") {
  Rig rig(kTick, Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 1);
  rig.set_clock(at_utc(9, 0, 0, 500));  // an hour back
  CHECK(fake.discarded == fake.parked);
  CHECK(rig.store().last_fire("tick").value() == std::nullopt);  // claim undone
  // The engine keeps its timeline (the hour passes quietly): 10:00:01 is
  // next, parked again when it comes within park_lead, and runs once.
  rig.run_until(at_utc(9, 0, 3), 250ms);
  CHECK(fake.started.empty());
  CHECK(fake.parked.size() == 1);
  rig.set_clock(at_utc(10, 0, 0, 500));
  REQUIRE(fake.parked.size() == 2);
  rig.run_until(at_utc(10, 0, 1), 250ms);
  REQUIRE(fake.started.size() == 1);
  CHECK(fake.started[0].request.scheduled_for == at_utc(10, 0, 1));
  CHECK(fake.started[0].request.run_id == fake.parked[1]);

  // park_lead lowered to 0 by a reload: the next wake unparks what is parked.
  rig.run_until(at_utc(10, 0, 1, 250), 250ms);
  REQUIRE(fake.parked.size() == 3);  // 10:00:02
  config::Config loaded = rig.engine().config();
  loaded.host.park_lead = Duration::zero();
  rig.engine().apply_config(loaded);
  rig.set_clock(rig.now());  // a wake
  CHECK(fake.discarded.size() == 2);
  rig.run_until(at_utc(10, 0, 4), 250ms);
  CHECK(fake.parked.size() == 3);   // nothing parked since
  CHECK(fake.started.size() == 4);  // 10:00:01 .. :04, each once
  for (const auto& id : fake.running_ids()) fake.finish(id);
  rig.settle();
  auto runs = rig.runs("tick");
  REQUIRE(runs.size() == 4);
  for (int i = 0; i < 4; ++i) CHECK(runs[i].scheduled_for == at_utc(10, 0, i + 1));
}

TEST_CASE("a jitter longer than the period: parking loses no slot, crash included",
          "[engine][parking]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "allow"
jitter = "5s"
misfire = "run_all"
misfire_limit = 100
catchup_spread = "0s"
)",
          Rig::Runs::fake, kParking);
  auto& fake = rig.fake();
  auto step_until = [&](TimePoint end) {
    for (TimePoint t = rig.now() + 250ms; t <= end; t += 250ms) {
      rig.run_until(t, 250ms);
      for (const auto& id : fake.running_ids()) fake.finish(id);
      rig.settle();
    }
  };
  // A fire is never parked while its successor is due first: no run that
  // was parked is released after a run of a later slot of the job started
  // (the successor would be claimed while the older slot waits, and a crash
  // then would leave that older claim to undo behind a newer one).
  auto no_parked_run_overtaken = [&] {
    const std::set<std::string> parked(fake.parked.begin(), fake.parked.end());
    int checked = 0;
    for (const auto& run : fake.started) {
      if (!parked.contains(run.request.run_id)) continue;
      ++checked;
      for (const auto& other : fake.started) {
        if (other.at < run.at) {
          INFO("parked " << ledger::format_utc(run.request.scheduled_for) << " released after "
                         << ledger::format_utc(other.request.scheduled_for));
          CHECK(other.request.scheduled_for < run.request.scheduled_for);
        }
      }
    }
    return checked;
  };
  rig.start(at_utc(10, 0, 0, 500));
  step_until(at_utc(10, 0, 30));
  CHECK(no_parked_run_overtaken() > 0);
  rig.crash();  // whatever is parked now never began
  REQUIRE(rig.store().close_orphaned_runs(at_utc(10, 0, 40), "interrupted"));
  rig.start(at_utc(10, 0, 40));
  step_until(at_utc(10, 1, 0));
  // Every slot from the first to the last has exactly one record.
  auto runs = rig.runs("tick");
  REQUIRE(runs.size() > 40);
  for (std::size_t i = 1; i < runs.size(); ++i) {
    INFO(ledger::format_utc(runs[i].scheduled_for));
    CHECK(runs[i].scheduled_for - runs[i - 1].scheduled_for == 1s);
  }
  for (const auto& run : runs) CHECK(run.outcome == Outcome::succeeded);
  CHECK(no_parked_run_overtaken() > 0);
}
