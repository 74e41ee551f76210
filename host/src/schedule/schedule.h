// Schedules: when a job fires. Pure functions: no clock reads, no I/O; the
// current instant is always an argument. See docs/schedules.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

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
// copy (shares its compiled form). `@reboot` parses to an expression with
// is_reboot() true that never fires on its own. A default-constructed
// CronExpr never fires and describes itself as "never".
class CronExpr {
 public:
  // Parses `text` (syntax in docs/schedules.md); the error names the field and
  // its `column` points at the character at fault. Expressions that can never
  // fire ("0 0 30 2 *", "0 0 31 4 *") are errors too. `job` is the name that
  // H fields derive their values from; without one, H is an error. Never throws.
  static std::expected<CronExpr, CronError> parse(std::string_view text, std::string_view job = {});

  // True for "@reboot": the host runs the job once at start.
  bool is_reboot() const;
  // True when the hour field starts with '*': the schedule follows real time
  // across DST changes (see docs/schedules.md).
  bool follows_real_time() const;
  // What parsed but is likely not what was meant, e.g. "*/15" in the month
  // field (a step wider than its range: cron takes the first value, as Vixie
  // cron and cronie do). Same shape as a parse error; empty for most.
  const std::vector<CronError>& warnings() const;
  // The expression as written, without surrounding blanks.
  const std::string& text() const;
  // text() with each H item replaced by the job's values: "H(0-29) 2 * * *"
  // -> "17 2 * * *" for one job; equal to text() without H.
  const std::string& resolved() const;
  // The expression in words, e.g. "every 10 seconds", "at 02:30 every day",
  // "at 09:00 on Monday to Friday"; "at host start" for @reboot. H fields are
  // described by their resolved values.
  std::string describe() const;

  // The compiled bit sets, for the schedule module itself (schedule/cron_fields.h).
  struct Fields;
  const Fields& fields() const;

 private:
  std::shared_ptr<const Fields> fields_;
};

// An IANA zone by name ("Europe/Berlin", "UTC") from the OS tzdb; the pointer
// lives as long as the process. The error names the zone and says what to use.
Result<const date::time_zone*> find_zone(std::string_view name);

// A cron schedule evaluated in a time zone (nullptr = UTC).
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
// never fires again (At in the past, Manual, @reboot, Every with period <= 0).
// For Cron, computed field by field (never second by second) with the DST
// rules of docs/schedules.md: an hour field starting with '*' follows real
// time; otherwise a wall time in a DST gap fires once at the end of the gap
// and a repeated wall time fires at its first occurrence. Cron fires are whole
// seconds. Zone data after 2037 has no DST changes (a limit of the OS tzdb as
// read by date/tz).
std::optional<TimePoint> next_fire_after(const Spec& spec, TimePoint after);
std::optional<TimePoint> next_fire_after(const Cron& cron, TimePoint after);

// The schedule in words, for `jobhost list`: "at 02:30 every day (Europe/Berlin)",
// "every 90s", "once at 2026-12-01T00:00:00Z", "only when triggered".
std::string describe(const Spec& spec);

// The random delay in [0, max) added to the fire of `slot` of `job`, uniform
// at millisecond resolution. Deterministic in (job, slot, seed) so a restart
// delays a slot the same way and tests can pin it. Returns 0 when max <= 0.
Duration jitter_for(std::string_view job, TimePoint slot, Duration max, uint64_t seed);

// RFC 3339 with the zone's offset, e.g. "2026-03-29T03:00:00+02:00" (UTC, or
// a null zone, prints "Z"); milliseconds only when non-zero.
std::string format_rfc3339(TimePoint t, const date::time_zone* zone);
// Parses RFC 3339 ("2026-12-01T00:00:00Z", "...+02:00", fractional seconds,
// truncated to milliseconds). An offset is required; the error says what is
// wrong and shows the expected form.
Result<TimePoint> parse_rfc3339(std::string_view text);

}  // namespace jobhost::schedule
