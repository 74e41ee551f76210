// Misfires: what to do about the fires a job missed while the host was down,
// suspended, or behind a forward clock jump. Pure: no clock reads, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "config/config.h"
#include "schedule/schedule.h"

namespace jobhost::engine {

// Most skipped slots a plan lists one by one (the latest ones); older skipped
// slots are only counted, for one summary event instead of a ledger row each.
inline constexpr std::size_t kMaxListedSkips = 1000;
// Most catch-up runs of one job, whatever its misfire_limit.
inline constexpr int kMaxCatchupRuns = 1000;
// Most unlisted missed slots a plan counts one by one; past it the plan is
// truncated. (An `every` schedule is counted exactly at no cost.)
inline constexpr std::size_t kMaxCounted = 100000;

// One missed slot and what to do with it.
struct MissedFire {
  enum class Action { run, skip };
  TimePoint slot;  // the scheduled_for the ledger claims
  Action action = Action::skip;
  TimePoint start_at;  // run: when to start it, in [now, now + spread); skip: the slot
};

struct MisfirePlan {
  // The latest missed slots, oldest first: every run and up to
  // kMaxListedSkips skips. Runs are always the latest slots listed.
  std::vector<MissedFire> fires;
  // Every missed slot, listed or not; a lower bound when truncated.
  std::size_t total_missed = 0;
  bool truncated = false;  // more unlisted slots than kMaxCounted
  // The earliest missed slot (listed or not); nullopt when nothing was missed.
  std::optional<TimePoint> first_missed;

  // Missed slots skipped without being listed: one summary event covers them.
  std::size_t unlisted() const { return total_missed - fires.size(); }
};

// Where a job's catch-up runs start: evenly over [now, now + spread), the
// first at `phase` of the way in (wrapping around), so jobs given different
// phases start theirs at different instants. spread <= 0: all start at now.
struct CatchupSpread {
  Duration spread{};
  double phase = 0.0;  // in [0, 1); other values are wrapped into it
};

// A job's phase for CatchupSpread, uniform in [0, 1) and deterministic in
// (job, seed), so a restart spreads a job's catch-up the same way.
double catchup_phase(std::string_view job, uint64_t seed);

// Plans the slots of `spec` strictly after `last_fire` and at or before
// `now` (the missed ones), per `policy`:
//   skip:     all skipped (recorded with reason "missed");
//   run_once: the latest runs, the others are skipped;
//   run_all:  the latest min(misfire_limit, kMaxCatchupRuns) run, in slot
//             order; older ones are skipped.
// Nothing is missed when last_fire is nullopt (a new job does not catch up on
// history) or >= now (the clock went back: nothing re-fires). `last_fire` is
// the latest slot the ledger has; for a job that never fired, the engine may
// pass the fire it had scheduled (its stored next_fire) minus 1 ms so that an
// `at` passed during the downtime counts. An Every is a grid from its anchor:
// pass the grid the job was on (e.g. anchored at *last_fire), not one
// re-anchored at now, or nothing is ever missed.
// Run i of n starts at now + (round(phase * spread) + floor(i * spread / n))
// mod spread, in milliseconds, sorted so that start times follow slot order;
// the job's own jitter does not apply. Cost: a few times the listed count of
// next_fire_after calls (more, log-bounded, for schedules dense long ago and
// sparse lately), plus at most kMaxCounted to count older slots.
MisfirePlan plan_misfires(const schedule::Spec& spec, std::optional<TimePoint> last_fire,
                          TimePoint now, config::Misfire policy, int misfire_limit,
                          CatchupSpread spread);

// True when the clock reads more than `tolerance` past `expected_wake`: the
// host was suspended or the clock jumped forward, so the fires in between are
// misfires rather than late fires. A clock that reads earlier is never a jump.
bool is_forward_jump(TimePoint expected_wake, TimePoint actual_now, Duration tolerance);

}  // namespace jobhost::engine
