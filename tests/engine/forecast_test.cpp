// The forecast (engine/forecast.h): hand-made cases whose waits, skips and
// peak are worked out by hand, DST windows of a zoned cron, an `every` grid,
// jitter, the bound on fires, and the same fires dispatched by the real
// engine on a fake clock with runs that last what the forecast assumed.
#include "engine/forecast.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;
using engine::ForecastJob;
using engine::ForecastSkip;

namespace {

const TimePoint kT0 = at_utc(10, 0, 0);

schedule::Cron cron(const char* expr, const char* zone = "UTC") {
  auto parsed = schedule::CronExpr::parse(expr);
  REQUIRE(parsed);
  auto tz = schedule::find_zone(zone);
  REQUIRE(tz);
  return schedule::Cron{*parsed, *tz};
}

// A job whose runs last `p95`, simulated from just before kT0.
ForecastJob job(std::string name, schedule::Spec spec, Duration p95,
                config::Concurrency concurrency = config::Concurrency::allow) {
  ForecastJob j;
  j.name = std::move(name);
  j.spec = std::move(spec);
  j.after = kT0 - 1ms;
  j.p95 = p95;
  j.concurrency = concurrency;
  j.timeout = 1h;
  return j;
}

// Every `period` on the grid through kT0.
schedule::Every every(Duration period) {
  return schedule::Every{period, kT0 - period};
}
schedule::At at(Duration offset) {
  return schedule::At{kT0 + offset};
}

engine::ForecastInput input(int max_concurrency, std::vector<ForecastJob> jobs,
                            Duration window = 60s) {
  engine::ForecastInput in;
  in.from = kT0;
  in.to = kT0 + window;
  in.limits = {{"max_concurrency", max_concurrency}};
  in.jobs = std::move(jobs);
  return in;
}

// A fire as expected: its job, slot and start as seconds after kT0 (no
// start: skipped for `skip`).
struct Row {
  std::string job;
  int slot;
  std::optional<int> start;
  ForecastSkip skip = ForecastSkip::none;
};

struct Case {
  std::string name;
  engine::ForecastInput in;
  std::vector<Row> fires;  // every fire, in the forecast's order
  int peak;
  std::optional<int> peak_at;  // seconds after kT0
  std::size_t waited = 0;
  Duration wait{};
  std::size_t forbid = 0;
  std::size_t replaced = 0;
  std::size_t cut_short = 0;
  std::size_t paused = 0;
};

std::string fire_text(const engine::ForecastInput& in, const engine::ForecastFire& f) {
  return fmt::format("{} slot +{}s {}", in.jobs[f.job].name, (f.slot - kT0) / 1s,
                     f.start ? fmt::format("start +{}ms", (*f.start - kT0).count())
                             : std::string(engine::skip_reason(f.skip)));
}

}  // namespace

TEST_CASE("forecast: hand-made cases, their waits, skips and peak", "[engine][forecast]") {
  using config::Concurrency;
  std::vector<Case> cases;
  // Two run slots. At 0 three fires come due: batch and long take the slots
  // (name order), tick waits until batch ends at 12; tick's fire at 10
  // finds its fire at 0 still waiting. At 20 batch waits for tick (ends 27).
  cases.push_back(
      {"max_concurrency: waits in the engine's order; forbid skips",
       input(2, {job("batch", cron("*/20 * * * * *"), 12s), job("long", cron("0 * * * * *"), 30s),
                 job("tick", every(10s), 15s, Concurrency::forbid)}),
       {{"batch", 0, 0},
        {"long", 0, 0},
        {"tick", 0, 12},
        {"tick", 10, {}, ForecastSkip::forbid_waiting},
        {"batch", 20, 27},
        {"tick", 20, {}, ForecastSkip::forbid_running},
        {"tick", 30, 30},
        {"batch", 40, 40},
        {"tick", 40, {}, ForecastSkip::forbid_running},
        {"tick", 50, 50}},
       2,
       0,
       2,
       19s,
       3});
  // Runs a 0-50, b 20-60, c 40-45, e 45-75: three at once from 40; at 45 c
  // ends as e starts, which is three again, not four.
  cases.push_back({"peak: overlapping runs; one ending as another starts does not overlap it",
                   input(10, {job("a", at(0s), 50s), job("b", at(20s), 40s), job("c", at(40s), 5s),
                              job("e", at(45s), 30s)}),
                   {{"a", 0, 0}, {"b", 20, 20}, {"c", 40, 40}, {"e", 45, 45}},
                   3,
                   40});
  // One run slot, held by hog: each fire of r replaces r's waiting one; the
  // last waits until hog ends at 100.
  cases.push_back(
      {"replace: a newer fire skips the waiting one",
       input(1, {job("hog", at(0s), 100s), job("r", every(10s), 5s, Concurrency::replace)}),
       {{"hog", 0, 0},
        {"r", 0, {}, ForecastSkip::replaced},
        {"r", 10, {}, ForecastSkip::replaced},
        {"r", 20, {}, ForecastSkip::replaced},
        {"r", 30, {}, ForecastSkip::replaced},
        {"r", 40, {}, ForecastSkip::replaced},
        {"r", 50, 100}},
       1,
       0,
       1,
       50s,
       0,
       5});
  // At 10 hog ends and r's next fire comes: the run's end first starts the
  // waiting fire (as the engine's pump on a run's end), which the newer fire
  // then ends at once.
  cases.push_back(
      {"replace: a run slot freed as a newer fire comes goes to the waiting one first",
       input(1, {job("hog", at(0s), 10s), job("r", every(10s), 5s, Concurrency::replace)}, 20s),
       {{"hog", 0, 0}, {"r", 0, 10}, {"r", 10, 10}},
       1,
       0,
       1,
       10s});
  cases.back().cut_short = 1;
  cases.push_back({"replace: a newer fire ends the run in flight",
                   input(2, {job("r", every(20s), 25s, Concurrency::replace)}),
                   {{"r", 0, 0}, {"r", 20, 20}, {"r", 40, 40}},
                   1,
                   0});
  cases.back().cut_short = 2;
  {
    auto paused = job("p", every(20s), 5s);
    paused.paused = true;
    cases.push_back({"paused: every fire is skipped, nothing runs",
                     input(4, {paused}),
                     {{"p", 0, {}, ForecastSkip::paused},
                      {"p", 20, {}, ForecastSkip::paused},
                      {"p", 40, {}, ForecastSkip::paused}},
                     0,
                     {}});
    cases.back().paused = 3;
  }
  {
    // A run in flight since -5 s, expected to last 12 s: the fire at 0 is
    // skipped, the one at 10 runs; it counts at the window's start.
    auto in = input(4, {job("f", every(10s), 12s, Concurrency::forbid)}, 30s);
    in.running = {{0, kT0 - 5s}};
    cases.push_back({"runs in flight at the start hold their job and their slot",
                     in,
                     {{"f", 0, {}, ForecastSkip::forbid_running},
                      {"f", 10, 10},
                      {"f", 20, {}, ForecastSkip::forbid_running}},
                     1,
                     0,
                     0,
                     0s,
                     2});
  }
  for (const Case& c : cases) {
    SECTION(c.name) {
      auto forecast = engine::simulate(c.in);
      std::vector<std::string> got, want;
      for (const auto& f : forecast.fires) got.push_back(fire_text(c.in, f));
      for (const auto& r : c.fires) {
        engine::ForecastFire f{.job = 0, .slot = kT0 + r.slot * 1s, .due = {}, .skip = r.skip};
        for (std::size_t j = 0; j < c.in.jobs.size(); ++j) {
          if (c.in.jobs[j].name == r.job) f.job = j;
        }
        if (r.start) f.start = kT0 + *r.start * 1s;
        want.push_back(fire_text(c.in, f));
      }
      CHECK(got == want);
      const auto& s = forecast.summary;
      CHECK(s.fires == c.fires.size());
      CHECK(s.peak == c.peak);
      CHECK(s.peak_at == (c.peak_at ? std::optional(kT0 + *c.peak_at * 1s) : std::nullopt));
      CHECK(s.waited == c.waited);
      CHECK(s.total_wait == c.wait);
      CHECK(s.forbid == c.forbid);
      CHECK(s.replaced == c.replaced);
      CHECK(s.cut_short == c.cut_short);
      CHECK(s.paused == c.paused);
      CHECK(s.runs == c.fires.size() - c.forbid - c.replaced - c.paused);
      CHECK_FALSE(forecast.truncated);
    }
  }
}

TEST_CASE("forecast: a wait names the limit that was full", "[engine][forecast]") {
  auto in = input(1, {job("a", at(0s), 10s), job("b", at(0s), 10s)});
  auto forecast = engine::simulate(in);
  REQUIRE(forecast.fires.size() == 2);
  CHECK_FALSE(forecast.fires[0].waited_for);
  CHECK(forecast.fires[1].waited() == 10s);
  CHECK(forecast.fires[1].waited_for == std::optional<std::size_t>(0));
  CHECK(forecast.fires[1].end == kT0 + 20s);
}

TEST_CASE("forecast: expected run time is the p95, 1 s without history, cut at the timeout",
          "[engine][forecast]") {
  ForecastJob j;
  j.timeout = 5min;
  CHECK(j.expected_run() == engine::kNoHistoryRun);
  j.p95 = 90s;
  CHECK(j.expected_run() == 90s);
  j.p95 = 2h;
  CHECK(j.expected_run() == 5min);
  j.p95.reset();
  j.timeout = 300ms;
  CHECK(j.expected_run() == 300ms);
}

TEST_CASE("forecast: a zoned cron across DST changes fires as the schedule does",
          "[engine][forecast][dst]") {
  struct DstCase {
    const char* expr;
    const char* from;
    const char* to;
    std::vector<std::string> slots;  // in Europe/Berlin
  };
  const std::vector<DstCase> cases = {
      // Spring forward: 02:30 does not exist on 03-29; it fires once at 03:00.
      {"30 2 * * *",
       "2026-03-28T00:00:00Z",
       "2026-03-31T00:00:00Z",
       {"2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
      // Fall back: 02:30 happens twice on 10-25; it fires at the first.
      {"30 2 * * *",
       "2026-10-24T00:00:00Z",
       "2026-10-27T00:00:00Z",
       {"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
      // An hour field of '*' follows real time: the repeated hour fires twice.
      {"*/30 * * * *",
       "2026-10-25T00:00:00Z",
       "2026-10-25T02:00:00Z",
       {"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00"}},
      // ... and the skipped hour not at all.
      {"*/30 * * * *",
       "2026-03-29T00:00:00Z",
       "2026-03-29T02:00:00Z",
       {"2026-03-29T01:00:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00"}},
  };
  const auto* berlin = *schedule::find_zone("Europe/Berlin");
  for (const auto& c : cases) {
    INFO(c.expr << " from " << c.from);
    engine::ForecastInput in;
    in.from = *schedule::parse_rfc3339(c.from);
    in.to = *schedule::parse_rfc3339(c.to);
    in.limits = {{"max_concurrency", 4}};
    auto j = job("dst", cron(c.expr, "Europe/Berlin"), 1s);
    j.after = in.from - 1ms;
    in.jobs = {j};
    std::vector<std::string> slots;
    for (const auto& f : engine::simulate(in).fires) {
      slots.push_back(schedule::format_rfc3339(f.slot, berlin));
      CHECK(f.start == f.slot);
    }
    CHECK(slots == c.slots);
  }
}

TEST_CASE("forecast: an every job stays on its grid; `after` leaves out slots already fired",
          "[engine][forecast]") {
  const TimePoint anchor = kT0 - 1h + 7s;  // the grid of the ledger's last fire
  auto j = job("grid", schedule::Every{90s, anchor}, 1s);
  j.after = kT0 + 100s;  // e.g. a slot claimed ahead
  auto forecast = engine::simulate(input(4, {j}, 10min));
  REQUIRE_FALSE(forecast.fires.empty());
  for (const auto& f : forecast.fires) CHECK((f.slot - anchor) % 90s == 0ms);
  CHECK(forecast.fires.front().slot > j.after);
  CHECK(forecast.fires.front().slot - 90s <= j.after);
  CHECK(forecast.fires.back().slot < kT0 + 10min);
  CHECK(forecast.fires.back().slot + 90s >= kT0 + 10min);
}

TEST_CASE("forecast: jitter delays each fire as the engine's jitter_for does",
          "[engine][forecast]") {
  auto j = job("jittery", every(10s), 1s);
  j.jitter = 8s;
  auto in = input(4, {j});
  SECTION("with the ledger's seed") {
    in.seed = 42;
    auto forecast = engine::simulate(in);
    REQUIRE(forecast.fires.size() == 6);
    bool delayed = false;
    for (const auto& f : forecast.fires) {
      CHECK(f.due == f.slot + schedule::jitter_for("jittery", f.slot, 8s, 42));
      CHECK(f.start == f.due);
      CHECK_FALSE(f.waited_for);
      delayed |= f.due > f.slot;
    }
    CHECK(delayed);
  }
  SECTION("without a seed, none") {
    for (const auto& f : engine::simulate(in).fires) CHECK(f.due == f.slot);
  }
  SECTION("a jitter longer than the period: never due before the previous fire") {
    in.jobs[0].jitter = 60s;
    in.seed = 7;
    auto forecast = engine::simulate(in);
    for (std::size_t i = 1; i < forecast.fires.size(); ++i) {
      CHECK(forecast.fires[i].due >= forecast.fires[i - 1].due);
    }
  }
}

TEST_CASE("forecast: max_fires ends it early at a slot, said so", "[engine][forecast]") {
  auto in = input(4, {job("a", every(1s), 1ms), job("b", every(1s), 1ms)}, 10s);
  in.max_fires = 5;  // a and b at 0, 1, then a at 2: the slot at 2 is left out whole
  auto forecast = engine::simulate(in);
  CHECK(forecast.truncated);
  CHECK(forecast.covered_to == kT0 + 2s);
  CHECK(forecast.fires.size() == 4);
  in.max_fires = 20;
  forecast = engine::simulate(in);
  CHECK_FALSE(forecast.truncated);
  CHECK(forecast.covered_to == kT0 + 10s);
  CHECK(forecast.fires.size() == 20);
}

TEST_CASE("forecast: buckets count fires by slot and the most runs at once", "[engine][forecast]") {
  auto in = input(1, {job("a", at(0s), 25s), job("b", at(5s), 10s), job("c", at(40s), 5s)});
  auto forecast = engine::simulate(in);
  auto buckets = engine::forecast_buckets(forecast, kT0, 20s, 3);
  REQUIRE(buckets.size() == 3);
  CHECK(buckets[0].start == kT0);
  CHECK(buckets[0].fires == 2);
  CHECK(buckets[0].waited == 1);  // b waits for a until 25
  CHECK(buckets[0].peak == 1);
  CHECK(buckets[1].fires == 0);
  CHECK(buckets[1].peak == 1);  // a until 25, then b until 35
  CHECK(buckets[2].fires == 1);
  CHECK(buckets[2].peak == 1);
  CHECK(engine::forecast_buckets(forecast, kT0 + 60s, 20s, 1)[0].peak == 0);
}

// The engine on a fake clock, each run ended when the forecast expected it
// to end: every fire of the window starts when the forecast said, or is
// skipped for the same reason.
TEST_CASE("forecast: the engine dispatches the fires as forecast", "[engine][forecast]") {
  Rig rig(R"(
[groups.g]
max_concurrency = 1

[jobs.batch]
plugin = "noop"
schedule = "*/20 * * * * *"
concurrency = "allow"
concurrency_group = "g"

[jobs.long]
plugin = "noop"
schedule = "0 * * * * *"
concurrency = "allow"
priority = 3

[jobs.tick]
plugin = "noop"
every = "10s"
concurrency = "forbid"

[jobs.swap]
plugin = "noop"
every = "15s"
concurrency = "replace"

[jobs.jit]
plugin = "noop"
schedule = "*/5 * * * * *"
jitter = "4s"
concurrency = "allow"
concurrency_group = "g"
)",
          Rig::Runs::fake, "max_concurrency = 2\n");
  const std::map<std::string, Duration> run_time = {
      {"batch", 12s}, {"long", 30s}, {"tick", 15s}, {"swap", 20s}, {"jit", 3s}};
  rig.start(at_utc(10, 0, 0, 300));
  auto in = rig.engine().forecast_input();
  CHECK(in.from == rig.now());
  // Every fire of the window is due before it ends (jit's jitter < 4 s after
  // :55), so the engine below is driven no further and has no later fires.
  in.to = in.from + 3min - 1s;
  for (auto& j : in.jobs) j.p95 = run_time.at(j.name);
  const auto forecast = engine::simulate(in);
  REQUIRE(forecast.summary.fires > 50);
  // The case must exercise every rule it compares.
  CHECK(forecast.summary.waited > 0);
  CHECK(forecast.summary.forbid > 0);
  CHECK(forecast.summary.cut_short + forecast.summary.replaced > 0);
  // ... the group's limit among them.
  REQUIRE(in.limits.size() == 2);
  CHECK(in.limits[1].name == "g");
  auto ungrouped = in;
  ungrouped.limits.resize(1);
  for (auto& j : ungrouped.jobs) j.limits = {0};
  const auto without = engine::simulate(ungrouped);
  const auto starts = [](const auto& f) {
    std::vector<std::optional<TimePoint>> out;
    for (const auto& fire : f.fires) out.push_back(fire.start);
    return out;
  };
  CHECK(starts(without) != starts(forecast));  // the group changed who starts when

  // Drive the engine: each run ends after its job's run time; at an instant
  // where a run ends and a fire comes due, the end first (as forecast).
  auto& fake = rig.fake();
  std::map<std::string, TimePoint> ends;  // by run id
  std::size_t seen = 0;
  for (int step = 0; step < 10000; ++step) {
    for (; seen < fake.started.size(); ++seen) {
      const auto& s = fake.started[seen];
      ends[s.request.run_id] = s.at + run_time.at(s.request.job);
    }
    std::optional<std::pair<TimePoint, std::string>> next_end;
    for (const auto& id : fake.running_ids()) {
      if (!next_end || ends.at(id) < next_end->first) next_end = {{ends.at(id), id}};
    }
    const TimePoint limit = std::min(in.to - 1ms, next_end ? next_end->first - 1ms : in.to - 1ms);
    if (rig.step_to_next_due(limit)) continue;
    if (!next_end) break;
    rig.set_now(next_end->first);
    fake.finish(next_end->second);
    rig.settle();
  }
  CHECK(fake.active() == 0);

  std::set<std::string> cut_by_engine;
  for (const auto& s : fake.stopped) {
    if (s.reason == exec::StopReason::replace) cut_by_engine.insert(s.run_id);
  }
  std::vector<std::string> forecast_lines, engine_lines;
  for (const auto& f : forecast.fires) {
    const auto& name = in.jobs[f.job].name;
    forecast_lines.push_back(fmt::format(
        "{} {} {}", name, ledger::format_utc(f.slot),
        f.start ? "started " + ledger::format_utc(*f.start) + (f.cut_short ? " cut short" : "")
                : std::string("skipped ") + std::string(engine::skip_kind(f.skip))));
  }
  std::vector<std::tuple<TimePoint, std::size_t, std::string>> records;
  for (std::size_t j = 0; j < in.jobs.size(); ++j) {
    for (const auto& r : rig.runs(in.jobs[j].name)) {
      if (r.trigger != ledger::Trigger::schedule || r.scheduled_for < in.from ||
          r.scheduled_for >= in.to) {
        continue;
      }
      std::string what;
      if (r.outcome == Outcome::skipped) {
        what = r.message.find("concurrency = forbid") != std::string::npos ? "skipped forbid"
               : r.message.find("replaced by a newer fire") != std::string::npos
                   ? "skipped replaced"
                   : "skipped " + r.message;
      } else {
        what = "started " + ledger::format_utc(r.started_at) +
               (cut_by_engine.contains(r.run_id) ? " cut short" : "");
      }
      records.emplace_back(
          r.scheduled_for, j,
          fmt::format("{} {} {}", r.job, ledger::format_utc(r.scheduled_for), what));
    }
  }
  std::sort(records.begin(), records.end());
  for (auto& [slot, j, line] : records) engine_lines.push_back(line);
  CHECK(engine_lines == forecast_lines);
  CHECK(fake.peak == static_cast<std::size_t>(forecast.summary.peak));
}

TEST_CASE("forecast_input: the engine's grid, a fire parked ahead, pauses, runs in flight",
          "[engine][forecast]") {
  Rig rig(R"(
[jobs.tick]
plugin = "noop"
every = "10s"

[jobs.held]
plugin = "noop"
schedule = "* * * * * *"

[jobs.slow]
plugin = "noop"
schedule = "@manual"

[jobs.off]
plugin = "noop"
every = "1s"
enabled = false
)",
          Rig::Runs::fake, "park_lead = \"2s\"\nmax_concurrency = 3\n");
  rig.start(at_utc(10, 0, 0, 300));
  REQUIRE(rig.engine().pause("held", "test"));
  REQUIRE(rig.engine().trigger("slow"));
  rig.run_until(at_utc(10, 0, 8, 500));
  // tick's fire of 10:00:10 is parked: forked ahead, its successor planned.
  REQUIRE(rig.fake().parked_ids().size() == 1);

  auto in = rig.engine().forecast_input();
  CHECK(in.from == at_utc(10, 0, 8, 500));
  CHECK(in.limits.at(0).max == 3);
  CHECK(in.seed == std::optional<uint64_t>(42));
  REQUIRE(in.jobs.size() == 4);
  CHECK(in.jobs[1].paused);
  CHECK_FALSE(in.jobs[0].paused);
  CHECK_FALSE(in.jobs[2].fires);  // manual
  CHECK_FALSE(in.jobs[3].fires);  // disabled
  REQUIRE(in.running.size() == 1);
  CHECK(in.running[0].job == 2);
  CHECK(in.running[0].started_at == at_utc(10, 0, 0, 300));

  in.to = in.from + 25s;
  std::vector<std::string> tick;
  for (const auto& f : engine::simulate(in).fires) {
    if (f.job == 0) tick.push_back(ledger::format_utc(f.slot));
  }
  CHECK(tick == std::vector<std::string>{"2030-01-07T10:00:10.000Z", "2030-01-07T10:00:20.000Z",
                                         "2030-01-07T10:00:30.000Z"});
}
