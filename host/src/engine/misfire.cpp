#include "engine/misfire.h"

#include <algorithm>
#include <cmath>
#include <deque>

namespace jobhost::engine {
namespace {

// The slots of `spec` in (from, until], keeping the latest `keep`, giving up
// after `cap` slots (complete = false: more slots follow before `until`).
struct Scan {
  std::deque<TimePoint> latest;  // oldest first
  std::size_t count = 0;
  bool complete = true;
};

Scan scan(const schedule::Spec& spec, TimePoint from, TimePoint until, std::size_t keep,
          std::size_t cap) {
  Scan out;
  for (auto slot = schedule::next_fire_after(spec, from); slot && *slot <= until;
       slot = schedule::next_fire_after(spec, *slot)) {
    if (out.count == cap) {
      out.complete = false;
      break;
    }
    ++out.count;
    out.latest.push_back(*slot);
    if (out.latest.size() > keep) out.latest.pop_front();
  }
  return out;
}

// The latest `want` (>= 1) slots in (after, until]. Windows ending at `until`
// grow by doubling until one holds `want` slots; a window holding more than
// the probe cap is narrowed by bisection. Bisection always ends: two starts
// 1 ms apart differ by at most one slot, while the bounds differ by > cap - want.
Scan latest_slots(const schedule::Spec& spec, TimePoint after, TimePoint until, std::size_t want) {
  const std::size_t cap = 4 * want;
  Duration width = std::chrono::seconds(1);
  TimePoint hi = until;         // a start with fewer than `want` slots after it
  std::optional<TimePoint> lo;  // a start with more than `cap` slots after it
  for (;;) {
    TimePoint from;
    if (lo) {
      from = *lo + (hi - *lo) / 2;
    } else {
      from = width >= until - after ? after : until - width;
    }
    Scan s = scan(spec, from, until, want, cap);
    if (!s.complete) {
      lo = from;
    } else if (s.count >= want || from == after) {
      return s;
    } else {
      hi = from;
      if (!lo) width *= 2;
    }
  }
}

std::size_t count_every(const schedule::Every& every, TimePoint after, TimePoint before) {
  // Slots anchor + n*period, n >= 1, in (after, before): as next_fire_after.
  if (every.period <= Duration::zero() || before <= after) return 0;
  const TimePoint first = every.anchor + every.period;
  if (before <= first) return 0;
  const auto n_lo = after < first ? 1 : (after - every.anchor) / every.period + 1;
  const auto n_hi = (before - Duration(1) - every.anchor) / every.period;
  return n_hi >= n_lo ? static_cast<std::size_t>(n_hi - n_lo + 1) : 0;
}

// The phase as a fraction in [0, 1): wraps out-of-range values, NaN is 0.
double wrap_phase(double phase) {
  if (!std::isfinite(phase)) return 0.0;
  phase -= std::floor(phase);
  return phase < 1.0 ? phase : 0.0;
}

// Start offsets of `n` runs over `spread`, ascending: (p + floor(i*S/n)) mod S
// with p = round(phase * S).
std::vector<Duration> spread_offsets(std::size_t n, CatchupSpread spread) {
  std::vector<Duration> out(n, Duration::zero());
  const auto s = spread.spread.count();
  if (s <= 0 || n == 0) return out;
  // Rounded, not floored, so that phase k/K lands on k*S/K exactly.
  const auto p = std::llround(wrap_phase(spread.phase) * static_cast<double>(s)) % s;
  const auto count = static_cast<Duration::rep>(n);
  const auto q = s / count, r = s % count;  // i*S/n = i*q + i*r/n, without overflow
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<Duration::rep>(i);
    out[i] = Duration((p + k * q + k * r / count) % s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

double catchup_phase(std::string_view job, uint64_t seed) {
  constexpr Duration::rep kResolution = 1'000'000;
  const Duration d = schedule::jitter_for(job, TimePoint{}, Duration(kResolution), seed);
  return static_cast<double>(d.count()) / static_cast<double>(kResolution);
}

MisfirePlan plan_misfires(const schedule::Spec& spec, std::optional<TimePoint> last_fire,
                          TimePoint now, config::Misfire policy, int misfire_limit,
                          CatchupSpread spread) {
  MisfirePlan plan;
  if (!last_fire || *last_fire >= now) return plan;
  const TimePoint after = *last_fire;
  plan.first_missed = schedule::next_fire_after(spec, after);
  if (!plan.first_missed || *plan.first_missed > now) {
    plan.first_missed.reset();
    return plan;
  }

  std::size_t runs = 0;
  switch (policy) {
    case config::Misfire::skip:
      break;
    case config::Misfire::run_once:
      runs = 1;
      break;
    case config::Misfire::run_all:
      runs = static_cast<std::size_t>(std::clamp(misfire_limit, 1, kMaxCatchupRuns));
      break;
  }

  const std::deque<TimePoint> listed =
      latest_slots(spec, after, now, runs + kMaxListedSkips).latest;
  runs = std::min(runs, listed.size());

  // The slots before the listed ones are counted, not listed.
  std::size_t unlisted = 0;
  if (const auto* every = std::get_if<schedule::Every>(&spec)) {
    unlisted = count_every(*every, after, listed.front());
  } else {
    Scan older = scan(spec, after, listed.front() - Duration(1), 1, kMaxCounted);
    unlisted = older.count;
    plan.truncated = !older.complete;
  }
  plan.total_missed = listed.size() + unlisted;

  const std::vector<Duration> offsets = spread_offsets(runs, spread);
  const std::size_t first_run = listed.size() - runs;
  plan.fires.reserve(listed.size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    if (i >= first_run) {
      plan.fires.push_back({listed[i], MissedFire::Action::run, now + offsets[i - first_run]});
    } else {
      plan.fires.push_back({listed[i], MissedFire::Action::skip, listed[i]});
    }
  }
  return plan;
}

bool is_forward_jump(TimePoint expected_wake, TimePoint actual_now, Duration tolerance) {
  if (actual_now <= expected_wake) return false;
  return actual_now - expected_wake > std::max(tolerance, Duration::zero());
}

}  // namespace jobhost::engine
