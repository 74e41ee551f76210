#include "engine/misfire.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>

using jobhost::Duration;
using jobhost::TimePoint;
using jobhost::config::Misfire;
using jobhost::engine::CatchupSpread;
using jobhost::engine::MisfirePlan;
using jobhost::engine::MissedFire;
using jobhost::engine::plan_misfires;
using namespace std::chrono_literals;
namespace schedule = jobhost::schedule;

namespace {

TimePoint at(const char* text) {
  auto t = schedule::parse_rfc3339(text);
  REQUIRE(t);
  return *t;
}

schedule::Spec cron(const char* text) {
  auto expr = schedule::CronExpr::parse(text);
  REQUIRE(expr);
  return schedule::Cron{*expr, nullptr};
}

std::vector<MissedFire> of(const MisfirePlan& plan, MissedFire::Action action) {
  std::vector<MissedFire> out;
  std::copy_if(plan.fires.begin(), plan.fires.end(), std::back_inserter(out),
               [&](const MissedFire& f) { return f.action == action; });
  return out;
}

std::string name(Misfire policy) {
  return std::string(jobhost::config::to_string(policy));
}

// Invariants of every plan: fires oldest first, on the schedule, runs after
// skips, the latest listed slot is the latest missed one.
void check_shape(const MisfirePlan& plan, const schedule::Spec& spec, TimePoint last,
                 TimePoint now) {
  REQUIRE(plan.fires.size() <= plan.total_missed);
  if (plan.fires.empty()) {
    CHECK(plan.total_missed == 0);
    CHECK_FALSE(plan.first_missed);
    return;
  }
  REQUIRE(plan.first_missed);
  CHECK(*plan.first_missed == schedule::next_fire_after(spec, last));
  CHECK(plan.fires.front().slot > last);
  CHECK(plan.fires.back().slot <= now);
  const auto after_last = schedule::next_fire_after(spec, plan.fires.back().slot);
  CHECK((!after_last || *after_last > now));
  bool seen_run = false;
  for (std::size_t i = 0; i < plan.fires.size(); ++i) {
    const auto& f = plan.fires[i];
    if (i > 0) {
      CHECK(schedule::next_fire_after(spec, plan.fires[i - 1].slot) == f.slot);
    }
    if (f.action == MissedFire::Action::run) seen_run = true;
    if (seen_run) {
      CHECK(f.action == MissedFire::Action::run);
    }
  }
}

}  // namespace

TEST_CASE("misfires over a 1-hour downtime, per policy and schedule", "[misfire]") {
  const TimePoint last = at("2026-03-10T12:00:00Z");  // the last slot fired before the outage
  const TimePoint now = at("2026-03-10T13:00:00Z");   // back up an hour later
  struct Row {
    const char* label;
    schedule::Spec spec;
    Misfire policy;
    std::size_t total, runs, skips;
    const char* first;  // first missed slot ("" = none)
    const char* first_run;
  };
  const schedule::Spec every_minute = cron("0 * * * * *");
  const schedule::Spec every_10s = cron("*/10 * * * * *");
  const schedule::Spec hourly = cron("0 0 * * * *");
  const schedule::Spec every_90s = schedule::Every{90s, last};
  const schedule::Spec every_7m = schedule::Every{7min, at("2026-03-10T11:58:00Z")};
  const schedule::Spec at_1230 = schedule::At{at("2026-03-10T12:30:00Z")};
  const schedule::Spec at_1400 = schedule::At{at("2026-03-10T14:00:00Z")};
  const schedule::Spec at_1200 = schedule::At{last};  // the one-shot already fired
  const schedule::Spec manual = schedule::Manual{};
  const Row rows[] = {
      {"every minute", every_minute, Misfire::skip, 60, 0, 60, "2026-03-10T12:01:00Z", ""},
      {"every minute", every_minute, Misfire::run_once, 60, 1, 59, "2026-03-10T12:01:00Z",
       "2026-03-10T13:00:00Z"},
      {"every minute", every_minute, Misfire::run_all, 60, 10, 50, "2026-03-10T12:01:00Z",
       "2026-03-10T12:51:00Z"},
      {"every 10s", every_10s, Misfire::skip, 360, 0, 360, "2026-03-10T12:00:10Z", ""},
      {"every 10s", every_10s, Misfire::run_once, 360, 1, 359, "2026-03-10T12:00:10Z",
       "2026-03-10T13:00:00Z"},
      {"every 10s", every_10s, Misfire::run_all, 360, 10, 350, "2026-03-10T12:00:10Z",
       "2026-03-10T12:58:30Z"},
      {"hourly", hourly, Misfire::skip, 1, 0, 1, "2026-03-10T13:00:00Z", ""},
      {"hourly", hourly, Misfire::run_once, 1, 1, 0, "2026-03-10T13:00:00Z",
       "2026-03-10T13:00:00Z"},
      {"hourly", hourly, Misfire::run_all, 1, 1, 0, "2026-03-10T13:00:00Z", "2026-03-10T13:00:00Z"},
      {"every 90s", every_90s, Misfire::skip, 40, 0, 40, "2026-03-10T12:01:30Z", ""},
      {"every 90s", every_90s, Misfire::run_once, 40, 1, 39, "2026-03-10T12:01:30Z",
       "2026-03-10T13:00:00Z"},
      {"every 90s", every_90s, Misfire::run_all, 40, 10, 30, "2026-03-10T12:01:30Z",
       "2026-03-10T12:46:30Z"},
      // Grid 11:58 + 7m*n: 12:05 ... 12:54 (8 slots), none at 13:00.
      {"every 7m", every_7m, Misfire::skip, 8, 0, 8, "2026-03-10T12:05:00Z", ""},
      {"every 7m", every_7m, Misfire::run_once, 8, 1, 7, "2026-03-10T12:05:00Z",
       "2026-03-10T12:54:00Z"},
      {"every 7m", every_7m, Misfire::run_all, 8, 8, 0, "2026-03-10T12:05:00Z",
       "2026-03-10T12:05:00Z"},
      {"at 12:30", at_1230, Misfire::skip, 1, 0, 1, "2026-03-10T12:30:00Z", ""},
      {"at 12:30", at_1230, Misfire::run_once, 1, 1, 0, "2026-03-10T12:30:00Z",
       "2026-03-10T12:30:00Z"},
      {"at 12:30", at_1230, Misfire::run_all, 1, 1, 0, "2026-03-10T12:30:00Z",
       "2026-03-10T12:30:00Z"},
      {"at 14:00 (future)", at_1400, Misfire::run_once, 0, 0, 0, "", ""},
      {"at 12:00 (fired)", at_1200, Misfire::run_all, 0, 0, 0, "", ""},
      {"manual", manual, Misfire::skip, 0, 0, 0, "", ""},
      {"manual", manual, Misfire::run_once, 0, 0, 0, "", ""},
      {"manual", manual, Misfire::run_all, 0, 0, 0, "", ""},
  };
  for (const auto& row : rows) {
    INFO(row.label << ", misfire = " << name(row.policy));
    const auto plan = plan_misfires(row.spec, last, now, row.policy, 10, {10s, 0.0});
    CHECK(plan.total_missed == row.total);
    CHECK_FALSE(plan.truncated);
    CHECK(plan.unlisted() == 0);
    const auto runs = of(plan, MissedFire::Action::run);
    const auto skips = of(plan, MissedFire::Action::skip);
    CHECK(runs.size() == row.runs);
    CHECK(skips.size() == row.skips);
    if (*row.first) {
      REQUIRE(plan.first_missed);
      CHECK(*plan.first_missed == at(row.first));
      REQUIRE_FALSE(plan.fires.empty());
      CHECK(plan.fires.front().slot == at(row.first));
    } else {
      CHECK_FALSE(plan.first_missed);
    }
    if (*row.first_run) {
      REQUIRE_FALSE(runs.empty());
      CHECK(runs.front().slot == at(row.first_run));
    }
    check_shape(plan, row.spec, last, now);
  }
}

TEST_CASE("run_all runs the latest misfire_limit slots in order, skips the rest", "[misfire]") {
  const schedule::Spec spec = cron("0 * * * * *");  // 60 missed
  const TimePoint last = at("2026-03-10T12:00:00Z");
  const TimePoint now = at("2026-03-10T13:00:00Z");
  struct Row {
    int limit;
    std::size_t runs, skips;
    const char* first_run;
  };
  const Row rows[] = {
      {1, 1, 59, "2026-03-10T13:00:00Z"},   {3, 3, 57, "2026-03-10T12:58:00Z"},
      {10, 10, 50, "2026-03-10T12:51:00Z"}, {59, 59, 1, "2026-03-10T12:02:00Z"},
      {60, 60, 0, "2026-03-10T12:01:00Z"},  {500, 60, 0, "2026-03-10T12:01:00Z"},
      {0, 1, 59, "2026-03-10T13:00:00Z"},  // below 1 counts as 1 (config rejects it anyway)
  };
  for (const auto& row : rows) {
    INFO("misfire_limit " << row.limit);
    const auto plan = plan_misfires(spec, last, now, Misfire::run_all, row.limit, {10s, 0.0});
    const auto runs = of(plan, MissedFire::Action::run);
    const auto skips = of(plan, MissedFire::Action::skip);
    REQUIRE(runs.size() == row.runs);
    CHECK(skips.size() == row.skips);
    CHECK(runs.front().slot == at(row.first_run));
    CHECK(runs.back().slot == now);
    if (!skips.empty()) {
      CHECK(skips.front().slot == at("2026-03-10T12:01:00Z"));
      CHECK(skips.back().slot < runs.front().slot);
    }
    for (std::size_t i = 1; i < runs.size(); ++i) {
      CHECK(runs[i - 1].slot < runs[i].slot);
      CHECK(runs[i - 1].start_at <= runs[i].start_at);  // started in slot order
    }
    check_shape(plan, spec, last, now);
  }

  // A limit beyond kMaxCatchupRuns is capped: an hour of a per-second job.
  const auto plan =
      plan_misfires(cron("* * * * * *"), last, now, Misfire::run_all, 1'000'000, {10s, 0.0});
  CHECK(plan.total_missed == 3600);
  CHECK(of(plan, MissedFire::Action::run).size() ==
        static_cast<std::size_t>(jobhost::engine::kMaxCatchupRuns));
  CHECK(of(plan, MissedFire::Action::skip).size() == jobhost::engine::kMaxListedSkips);
  CHECK(plan.unlisted() == 3600 - 1000 - jobhost::engine::kMaxListedSkips);
}

TEST_CASE("nothing is missed without a last fire, or when the clock went back", "[misfire]") {
  const schedule::Spec spec = cron("0 * * * * *");
  const TimePoint now = at("2026-03-10T13:00:00Z");
  struct Row {
    const char* label;
    std::optional<TimePoint> last;
    TimePoint now;
    std::size_t total;
  };
  const Row rows[] = {
      {"never fired", std::nullopt, now, 0},
      {"last fire is now", now, now, 0},
      {"clock went back 5 minutes", now + 5min, now, 0},
      {"clock went back a day", now + 24h, now, 0},
      {"next slot still ahead", now, now + 59s, 0},
      {"next slot 1 ms ahead", at("2026-03-10T12:59:00Z"), now - 1ms, 0},
      {"next slot exactly now", at("2026-03-10T12:59:00Z"), now, 1},
      {"sub-second last fire", at("2026-03-10T12:58:59.500Z"), now, 2},
  };
  for (const auto& row : rows) {
    INFO(row.label);
    for (Misfire policy : {Misfire::skip, Misfire::run_once, Misfire::run_all}) {
      INFO("misfire = " << name(policy));
      const auto plan = plan_misfires(spec, row.last, row.now, policy, 10, {10s, 0.0});
      CHECK(plan.total_missed == row.total);
      CHECK(plan.fires.size() == row.total);
      CHECK_FALSE(plan.truncated);
    }
  }
}

TEST_CASE("catch-up runs are spread evenly over [now, now + spread)", "[misfire]") {
  const schedule::Spec spec = cron("0 * * * * *");
  const TimePoint last = at("2026-03-10T12:00:00Z");
  const TimePoint now = at("2026-03-10T13:00:00Z");
  auto starts = [&](int limit, CatchupSpread spread) {
    std::vector<Duration> out;
    for (const auto& f : plan_misfires(spec, last, now, Misfire::run_all, limit, spread).fires) {
      if (f.action == MissedFire::Action::run) out.push_back(f.start_at - now);
    }
    return out;
  };

  using V = std::vector<Duration>;
  CHECK(starts(10, {10s, 0.0}) == V{0s, 1s, 2s, 3s, 4s, 5s, 6s, 7s, 8s, 9s});
  // A phase shifts the grid and wraps; start times stay in slot order.
  CHECK(starts(10, {10s, 0.35}) ==
        V{500ms, 1500ms, 2500ms, 3500ms, 4500ms, 5500ms, 6500ms, 7500ms, 8500ms, 9500ms});
  CHECK(starts(4, {10s, 0.9}) == V{1500ms, 4000ms, 6500ms, 9000ms});
  CHECK(starts(1, {10s, 0.5}) == V{5s});
  CHECK(starts(1, {10s, 1.25}) == V{2500ms});  // wrapped into [0, 1)
  CHECK(starts(1, {10s, -0.25}) == V{7500ms});
  CHECK(starts(3, {0s, 0.7}) == V{0s, 0s, 0s});
  CHECK(starts(3, {-5s, 0.7}) == V{0s, 0s, 0s});

  // Any count, any spread, any phase: in range, ascending, gaps of S/n rounded.
  for (int n : {1, 2, 3, 7, 10, 33, 60}) {
    for (Duration spread : {Duration(1), Duration(7), Duration(10001), Duration(10s)}) {
      for (double phase : {0.0, 0.123, 0.5, 0.999999}) {
        INFO("n " << n << " spread " << spread.count() << "ms phase " << phase);
        const V got = starts(n, {spread, phase});
        REQUIRE(got.size() == static_cast<std::size_t>(n));
        const auto q = spread.count() / n;
        for (std::size_t i = 0; i < got.size(); ++i) {
          CHECK(got[i] >= 0ms);
          CHECK(got[i] < spread);
          if (i > 0) {
            const auto gap = (got[i] - got[i - 1]).count();
            CHECK(gap >= q);
            CHECK(gap <= q + 1);
          }
        }
        CHECK(got == starts(n, {spread, phase}));  // deterministic
      }
    }
  }
}

TEST_CASE("phases spread the catch-up of 1,000 jobs across the window", "[misfire]") {
  const schedule::Spec spec = cron("0 * * * * *");
  const TimePoint last = at("2026-03-10T12:00:00Z");
  const TimePoint now = at("2026-03-10T13:00:00Z");
  constexpr int kJobs = 1000;
  auto start_of = [&](double phase) {
    const auto plan = plan_misfires(spec, last, now, Misfire::run_once, 10, {10s, phase});
    REQUIRE(plan.fires.back().action == MissedFire::Action::run);
    return plan.fires.back().start_at - now;
  };

  // By rank: exactly one start every 10 ms.
  std::set<Duration> ranked;
  for (int k = 0; k < kJobs; ++k) ranked.insert(start_of(static_cast<double>(k) / kJobs));
  REQUIRE(ranked.size() == static_cast<std::size_t>(kJobs));
  CHECK(*ranked.begin() == 0ms);
  CHECK(*ranked.rbegin() == 9990ms);

  // By name: deterministic, in range, and no second of the window crowded.
  int per_second[10] = {};
  for (int k = 0; k < kJobs; ++k) {
    const std::string job = "job-" + std::to_string(k);
    const double phase = jobhost::engine::catchup_phase(job, 42);
    REQUIRE(phase >= 0.0);
    REQUIRE(phase < 1.0);
    CHECK(phase == jobhost::engine::catchup_phase(job, 42));
    const Duration start = start_of(phase);
    REQUIRE(start >= 0ms);
    REQUIRE(start < 10s);
    ++per_second[start / 1s];
  }
  for (int count : per_second) {
    CHECK(count > 60);  // 100 expected; a crowded second would be > 140
    CHECK(count < 140);
  }
  CHECK(jobhost::engine::catchup_phase("backup", 1) != jobhost::engine::catchup_phase("backup", 2));
}

TEST_CASE("skips beyond kMaxListedSkips are counted, not listed", "[misfire]") {
  const schedule::Spec spec = cron("*/10 * * * * *");
  const TimePoint last = at("2026-03-10T03:00:00Z");
  const TimePoint now = at("2026-03-10T13:00:00Z");  // 10 hours: 3,600 slots
  for (Misfire policy : {Misfire::skip, Misfire::run_once, Misfire::run_all}) {
    INFO("misfire = " << name(policy));
    const auto plan = plan_misfires(spec, last, now, policy, 10, {10s, 0.0});
    const std::size_t runs = policy == Misfire::skip ? 0 : policy == Misfire::run_once ? 1 : 10;
    CHECK(plan.total_missed == 3600);
    CHECK_FALSE(plan.truncated);
    CHECK(of(plan, MissedFire::Action::run).size() == runs);
    CHECK(of(plan, MissedFire::Action::skip).size() == jobhost::engine::kMaxListedSkips);
    CHECK(plan.unlisted() == 3600 - runs - jobhost::engine::kMaxListedSkips);
    CHECK(*plan.first_missed == at("2026-03-10T03:00:10Z"));
    // The latest slots are listed, so recording them moves last_fire to now.
    CHECK(plan.fires.back().slot == now);
    CHECK(plan.fires.front().slot == now - 10s * static_cast<int>(plan.fires.size() - 1));
    check_shape(plan, spec, last, now);
  }
}

TEST_CASE("enumeration is bounded: a week of a per-second job", "[misfire]") {
  const TimePoint last = at("2026-03-03T13:00:00Z");
  const TimePoint now = at("2026-03-10T13:00:00Z");  // 604,800 missed slots
  const auto started = std::chrono::steady_clock::now();

  const schedule::Spec per_second = cron("* * * * * *");
  for (Misfire policy : {Misfire::skip, Misfire::run_once, Misfire::run_all}) {
    INFO("misfire = " << name(policy));
    const auto plan = plan_misfires(per_second, last, now, policy, 10, {10s, 0.0});
    CHECK(plan.truncated);
    CHECK(plan.total_missed == plan.fires.size() + jobhost::engine::kMaxCounted);
    CHECK(plan.total_missed < 604'800);
    CHECK(plan.fires.back().slot == now);
    CHECK(*plan.first_missed == last + 1s);
    if (policy != Misfire::skip) {
      CHECK(plan.fires.back().action == MissedFire::Action::run);
    }
  }

  // An `every` grid is counted exactly, whatever its length.
  const schedule::Spec every_second = schedule::Every{1s, last};
  const auto every = plan_misfires(every_second, last, now, Misfire::run_once, 10, {10s, 0.0});
  CHECK_FALSE(every.truncated);
  CHECK(every.total_missed == 604'800);
  CHECK(every.fires.size() == 1 + jobhost::engine::kMaxListedSkips);
  CHECK(every.fires.back().slot == now);
  check_shape(every, every_second, last, now);

  // Dense slots far back, none lately: every second of January, back in December.
  const schedule::Spec january = cron("* * * * 1 *");
  const auto jan = plan_misfires(january, at("2025-01-01T00:00:00Z"), at("2025-12-31T00:00:00Z"),
                                 Misfire::run_all, 10, {10s, 0.0});
  CHECK(jan.truncated);
  REQUIRE(jan.fires.size() == 10 + jobhost::engine::kMaxListedSkips);
  CHECK(jan.fires.back().slot == at("2025-01-31T23:59:59Z"));
  CHECK(jan.fires.front().slot ==
        at("2025-01-31T23:59:59Z") - 1s * static_cast<int>(jan.fires.size() - 1));
  CHECK(*jan.first_missed == at("2025-01-01T00:00:01Z"));

  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(elapsed < 10s);  // well under a second in a release build
}

TEST_CASE("forward clock jumps", "[misfire]") {
  const TimePoint due = at("2026-03-10T13:00:00Z");
  struct Row {
    TimePoint now;
    Duration tolerance;
    bool jump;
  };
  const Row rows[] = {
      {due, 5s, false},      {due + 5s, 5s, false}, {due + 5001ms, 5s, true}, {due + 1h, 5s, true},
      {due - 1h, 5s, false}, {due + 1ms, 0s, true}, {due + 1ms, -5s, true},   {due, 0s, false},
  };
  for (const auto& row : rows) {
    INFO("late by " << (row.now - due).count() << "ms, tolerance " << row.tolerance.count());
    CHECK(jobhost::engine::is_forward_jump(due, row.now, row.tolerance) == row.jump);
  }
}
