// Schedules: when a job fires. Pure functions: no clock reads, no I/O; the
// current instant is always an argument. See docs/schedules.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/error.h"
#include "common/time.h"

namespace date {
class time_zone;
}

namespace jobhost::schedule {

// A parse error in a cron expression; `column` is the 0-based offset in the
// expression of the character at fault, so config errors can point at it.
struct CronError {
  std::string message;
  std::size_t column = 0;
};

// A parsed cron expression (5 or 6 fields, or an @macro). Immutable, cheap to
// copy. `@reboot` parses to an expression with is_reboot() true that never
// fires on its own.
class CronExpr {
 public:
  // Parses `text`; the error names the field and points at the character.
  // Impossible expressions ("0 0 30 2 *") are errors too.
  static std::expected<CronExpr, CronError> parse(std::string_view text);

  bool is_reboot() const;
  // True when the hour field starts with '*': the schedule follows real time
  // across DST changes (see docs/schedules.md).
  bool follows_real_time() const;
  const std::string& text() const;
  // The expression in words, e.g. "every 10 seconds", "at 02:30 every day".
  std::string describe() const;

  struct Fields;  // the compiled bit sets, defined in cron.cpp
  const Fields& fields() const { return *fields_; }

 private:
  std::shared_ptr<const Fields> fields_;
};

// An IANA zone by name ("Europe/Berlin", "UTC"); error names the zone.
Result<const date::time_zone*> find_zone(std::string_view name);

// A cron schedule evaluated in a time zone.
struct Cron {
  CronExpr expr;
  const date::time_zone* zone = nullptr;  // never null once built by config
};
// A fixed grid: fires at anchor + n*period for n >= 1 (no drift).
struct Every {
  Duration period{};
  TimePoint anchor{};  // the job's first load time; set by the engine
};
// Exactly one fire.
struct At {
  TimePoint instant{};
};
// Fires only when asked (jobhost trigger, run-once) or once at host start (@reboot).
struct Manual {};

using Spec = std::variant<Cron, Every, At, Manual>;

// The first fire instant strictly after `after`, or nullopt when the schedule
// never fires again. For Cron, computed field by field (never second by
// second) with the DST rules of docs/schedules.md.
std::optional<TimePoint> next_fire_after(const Spec& spec, TimePoint after);
std::optional<TimePoint> next_fire_after(const Cron& cron, TimePoint after);

// The schedule in words, for `jobhost list`.
std::string describe(const Spec& spec);

// The random delay in [0, max) added to the fire of `slot` of `job`.
// Deterministic in (job, slot, seed) so a restart delays a slot the same way
// and tests can pin it. Returns 0 when max <= 0.
Duration jitter_for(std::string_view job, TimePoint slot, Duration max, uint64_t seed);

// RFC 3339 with the zone's offset, e.g. "2026-03-29T03:00:00+02:00" (UTC
// prints "Z"); milliseconds only when non-zero.
std::string format_rfc3339(TimePoint t, const date::time_zone* zone);
// Parses RFC 3339 ("2026-12-01T00:00:00Z", "...+02:00", fractional seconds).
Result<TimePoint> parse_rfc3339(std::string_view text);

}  // namespace jobhost::schedule
