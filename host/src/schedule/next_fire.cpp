// next_fire_after: a field-by-field search in local wall time, then the DST
// rules of docs/schedules.md to map local times back to UTC instants.
#include <date/tz.h>

#include <bit>

#include "schedule/cron_fields.h"

namespace jobhost::schedule {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using LocalSeconds = date::local_seconds;
using SysSeconds = date::sys_seconds;

// A matching day exists within 40 years for any expression the parser accepts
// (the longest gap between two years with the same calendar); 400 years is a
// whole Gregorian cycle, so giving up after it can only mean "never".
constexpr int kSearchYears = 400;
constexpr int kMaxYear = 32000;
// Periods starting before this have no earlier period to look at (UTC's one
// period starts in year -32767).
constexpr SysSeconds kOldest{date::sys_days{date::year{1000} / 1 / 1}};

// Smallest set bit >= from, or -1.
template <class T>
int next_bit(T mask, unsigned from) {
  if (from >= sizeof(T) * 8) return -1;
  T rest = static_cast<T>(mask >> from);
  if (rest == 0) return -1;
  return static_cast<int>(from) + std::countr_zero(rest);
}

// The first local wall time >= start whose fields all match (ignoring DST).
std::optional<LocalSeconds> next_local_match(const CronExpr::Fields& f, LocalSeconds start) {
  const auto start_day = std::chrono::floor<date::days>(start);
  const date::year_month_day ymd{start_day};
  int year = static_cast<int>(ymd.year());
  unsigned month = static_cast<unsigned>(ymd.month());
  unsigned day = static_cast<unsigned>(ymd.day());
  const date::hh_mm_ss<seconds> tod{start - start_day};
  unsigned hour = static_cast<unsigned>(tod.hours().count());
  unsigned minute = static_cast<unsigned>(tod.minutes().count());
  unsigned second = static_cast<unsigned>(tod.seconds().count());

  const int last_year = std::min(year + kSearchYears, kMaxYear);
  int cached_year = 0;
  unsigned cached_month = 0;
  uint32_t days = 0;
  while (year <= last_year) {
    int m = next_bit(f.months, month);
    if (m < 0) {
      ++year;
      month = 1, day = 1, hour = minute = second = 0;
      continue;
    }
    if (static_cast<unsigned>(m) != month) {
      month = static_cast<unsigned>(m);
      day = 1, hour = minute = second = 0;
    }
    if (cached_year != year || cached_month != month) {
      days = matching_days(f, year, month);
      cached_year = year, cached_month = month;
    }
    int d = next_bit(days, day);
    if (d < 0) {
      if (++month > 12) ++year, month = 1;
      day = 1, hour = minute = second = 0;
      continue;
    }
    if (static_cast<unsigned>(d) != day) {
      day = static_cast<unsigned>(d);
      hour = minute = second = 0;
    }
    int h = next_bit(f.hours, hour);
    if (h < 0) {
      ++day, hour = minute = second = 0;
      continue;
    }
    if (static_cast<unsigned>(h) != hour) {
      hour = static_cast<unsigned>(h);
      minute = second = 0;
    }
    int mi = next_bit(f.minutes, minute);
    if (mi < 0) {
      ++hour, minute = second = 0;
      continue;
    }
    if (static_cast<unsigned>(mi) != minute) {
      minute = static_cast<unsigned>(mi);
      second = 0;
    }
    int s = next_bit(f.seconds, second);
    if (s < 0) {
      ++minute, second = 0;
      continue;
    }
    const date::year_month_day date{date::year{year}, date::month{month}, date::day{day}};
    return LocalSeconds{date::local_days{date}} + hours{hour} + minutes{minute} + seconds{s};
  }
  return std::nullopt;
}

LocalSeconds to_local(SysSeconds t, seconds offset) {
  return LocalSeconds{t.time_since_epoch() + offset};
}
SysSeconds to_sys(LocalSeconds t, seconds offset) {
  return SysSeconds{t.time_since_epoch() - offset};
}

// Hour field starting with '*': fire at every real instant whose wall time
// matches. Walks the zone's offset periods; local times in a gap belong to no
// period, and those in a repeated hour belong to two.
std::optional<TimePoint> next_real_time(const CronExpr::Fields& f, const date::time_zone& zone,
                                        SysSeconds first) {
  date::sys_info info = zone.get_info(first);
  LocalSeconds start = to_local(first, info.offset);
  for (int periods = 0; periods < 4 * kSearchYears; ++periods) {
    auto match = next_local_match(f, start);
    if (!match) return std::nullopt;
    if (*match < to_local(info.end, info.offset)) return to_sys(*match, info.offset);
    info = zone.get_info(info.end);
    start = to_local(info.begin, info.offset);
  }
  return std::nullopt;
}

// Every other schedule is fixed-time: each matching wall time fires once, at
// its first occurrence; one that falls in a gap fires at the end of the gap.
std::optional<TimePoint> next_fixed_time(const CronExpr::Fields& f, const date::time_zone& zone,
                                         SysSeconds after, TimePoint after_exact) {
  const date::sys_info info = zone.get_info(after);
  LocalSeconds start = to_local(after, info.offset) + seconds{1};
  // In the second pass of a repeated hour, the repeated wall times already
  // fired during the first pass: resume after the repeated range.
  if (info.begin > kOldest) {
    const date::sys_info prev = zone.get_info(info.begin - seconds{1});
    const LocalSeconds repeat_end = to_local(info.begin, prev.offset);
    if (prev.offset > info.offset && start <= repeat_end) start = repeat_end;
  }
  for (int guard = 0; guard < 16; ++guard) {
    auto match = next_local_match(f, start);
    if (!match) return std::nullopt;
    const date::local_info local = zone.get_info(*match);
    const TimePoint fire = local.result == date::local_info::nonexistent
                               ? TimePoint{local.second.begin}
                               : TimePoint{to_sys(*match, local.first.offset)};
    if (fire > after_exact) return fire;
    start = *match + seconds{1};
  }
  return std::nullopt;
}

}  // namespace

std::optional<TimePoint> next_fire_after(const Cron& cron, TimePoint after) {
  const CronExpr::Fields& f = cron.expr.fields();
  if (f.reboot || f.months == 0) return std::nullopt;
  const SysSeconds after_s = std::chrono::floor<seconds>(after);
  if (cron.zone == nullptr) {
    auto match = next_local_match(f, to_local(after_s, seconds{0}) + seconds{1});
    if (!match) return std::nullopt;
    return TimePoint{to_sys(*match, seconds{0})};
  }
  if (f.real_time) return next_real_time(f, *cron.zone, after_s + seconds{1});
  return next_fixed_time(f, *cron.zone, after_s, after);
}

}  // namespace jobhost::schedule
