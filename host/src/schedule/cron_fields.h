// Internal: the compiled form of a cron expression, shared by the parser and
// the next-fire search. Not part of the public API.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace jobhost::schedule {

enum CronField : int { kSecond = 0, kMinute, kHour, kDayOfMonth, kMonth, kDayOfWeek, kFieldCount };

struct CronExpr::Fields {
  std::string text;      // the expression as written (trimmed)
  std::string resolved;  // text with each H item replaced by its values
  bool reboot = false;
  bool real_time = false;  // hour field starts with '*'

  uint64_t seconds = 0;  // bit s, 0-59
  uint64_t minutes = 0;  // bit m, 0-59
  uint32_t hours = 0;    // bit h, 0-23
  uint16_t months = 0;   // bit m, 1-12 (0 = never fires)

  uint32_t dom = 0;              // bit d, 1-31: plain days
  uint32_t nearest_weekday = 0;  // bit d: "dW", the weekday nearest day d
  bool last_day = false;         // "L"
  bool last_weekday = false;     // "LW"

  uint8_t dow = 0;                   // bit w, 0 = Sunday
  uint8_t dow_last = 0;              // bit w: "wL", the last such weekday of the month
  std::array<uint8_t, 7> dow_nth{};  // per weekday, bit n (1-5): "w#n"
  // Per weekday of the 1st of the month: bit d set when day d falls on a day in `dow`.
  std::array<uint32_t, 7> dow_days{};

  // Restricted = does not match every day (decides Vixie OR semantics).
  bool dom_restricted = false;
  bool dow_restricted = false;
  // '&' before the day-of-week field: a day must match both fields (AND).
  bool days_all = false;

  // Each field as written after macro expansion (seconds "0" for 5 fields),
  // H resolved, for describe().
  std::array<std::string, kFieldCount> field_text;
  std::vector<CronError> warnings;  // see CronExpr::warnings()
};

// Days of (year, month) that match the day fields: bit d set for day d.
uint32_t matching_days(const CronExpr::Fields& f, int year, unsigned month);

}  // namespace jobhost::schedule
