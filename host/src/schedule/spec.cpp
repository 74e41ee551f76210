// The non-cron schedules (every, at, manual), describe(Spec) and jitter.
#include <date/tz.h>

#include <fmt/format.h>

#include "schedule/schedule.h"
#include "schedule/stable_hash.h"

namespace jobhost::schedule {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

std::optional<TimePoint> next_every(const Every& every, TimePoint after) {
  if (every.period <= Duration::zero()) return std::nullopt;
  if (after < every.anchor + every.period) return every.anchor + every.period;
  // n-th fire at anchor + n*period; the first one strictly after `after`.
  const auto n = (after - every.anchor) / every.period + 1;
  return every.anchor + n * every.period;
}

// "90s", "5m", "1h30m": the largest units that add up exactly.
std::string duration_words(Duration d) {
  struct Unit {
    Duration size;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {{std::chrono::days{1}, "d"},
                                    {std::chrono::hours{1}, "h"},
                                    {std::chrono::minutes{1}, "m"},
                                    {std::chrono::seconds{1}, "s"},
                                    {std::chrono::milliseconds{1}, "ms"}};
  if (d <= Duration::zero()) return "0s";
  // One unit when it divides exactly ("90s" rather than "1m30s", "36h" rather than "1d12h").
  for (const Unit& unit : kUnits) {
    if (d % unit.size == Duration::zero() && d / unit.size < 100) {
      return fmt::format("{}{}", d / unit.size, unit.suffix);
    }
  }
  std::string out;
  for (const Unit& unit : kUnits) {
    if (d >= unit.size) {
      out += fmt::format("{}{}", d / unit.size, unit.suffix);
      d %= unit.size;
    }
  }
  return out;
}

}  // namespace

std::optional<TimePoint> next_fire_after(const Spec& spec, TimePoint after) {
  return std::visit(Overloaded{
                        [&](const Cron& cron) { return next_fire_after(cron, after); },
                        [&](const Every& every) { return next_every(every, after); },
                        [&](const At& at) -> std::optional<TimePoint> {
                          if (at.instant > after) return at.instant;
                          return std::nullopt;
                        },
                        [](const Manual&) -> std::optional<TimePoint> { return std::nullopt; },
                    },
                    spec);
}

std::string describe(const Spec& spec) {
  return std::visit(
      Overloaded{
          [](const Cron& cron) {
            std::string words = cron.expr.describe();
            if (cron.zone != nullptr && !cron.expr.is_reboot()) {
              words += fmt::format(" ({})", cron.zone->name());
            }
            return words;
          },
          [](const Every& every) { return "every " + duration_words(every.period); },
          [](const At& at) { return "once at " + format_rfc3339(at.instant, nullptr); },
          [](const Manual&) { return std::string("only when triggered"); },
      },
      spec);
}

Duration jitter_for(std::string_view job, TimePoint slot, Duration max, uint64_t seed) {
  if (max <= Duration::zero()) return Duration::zero();
  uint64_t h = splitmix64(fnv1a(job) ^ splitmix64(seed));
  h = splitmix64(h ^ static_cast<uint64_t>(slot.time_since_epoch().count()));
  const uint64_t value = scale_to(h, static_cast<uint64_t>(max.count()));
  return Duration{static_cast<Duration::rep>(value)};
}

}  // namespace jobhost::schedule
