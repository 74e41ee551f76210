// Time zones by name and RFC 3339 text.
#include <date/tz.h>

#include <fmt/format.h>

#include "schedule/schedule.h"

namespace jobhost::schedule {

Result<const date::time_zone*> find_zone(std::string_view name) {
  if (name.empty()) {
    return fail("empty time zone name: use an IANA name like \"Europe/Berlin\" or \"UTC\"");
  }
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return fail(
        fmt::format("unknown time zone \"{}\": use an IANA name like \"Europe/Berlin\" "
                    "or \"UTC\" (the names under /usr/share/zoneinfo)",
                    name));
  }
}

std::string format_rfc3339(TimePoint t, const date::time_zone* zone) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  std::chrono::seconds offset{0};
  bool utc = true;
  if (zone != nullptr) {
    const date::sys_info info = zone->get_info(t);
    offset = info.offset;
    utc = offset == seconds{0} && info.abbrev == "UTC";
  }
  const date::local_time<milliseconds> local{t.time_since_epoch() + offset};
  const auto day = std::chrono::floor<date::days>(local);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<milliseconds> tod{local - day};
  std::string out =
      fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  tod.hours().count(), tod.minutes().count(), tod.seconds().count());
  if (tod.subseconds().count() != 0) out += fmt::format(".{:03}", tod.subseconds().count());
  if (utc) return out + "Z";
  const auto abs_minutes = std::abs(offset.count()) / 60;
  return out + fmt::format("{}{:02}:{:02}", offset.count() < 0 ? '-' : '+', abs_minutes / 60,
                           abs_minutes % 60);
}

namespace {

// Reads exactly `width` digits at `pos`.
bool read_digits(std::string_view s, std::size_t& pos, int width, int& out) {
  if (pos + static_cast<std::size_t>(width) > s.size()) return false;
  out = 0;
  for (int i = 0; i < width; ++i) {
    char c = s[pos + static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += static_cast<std::size_t>(width);
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

Result<TimePoint> parse_rfc3339(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return fail(
        fmt::format("invalid time \"{}\": {} (expected RFC 3339, e.g. "
                    "\"2026-12-01T00:00:00Z\" or \"2026-03-29T03:00:00+02:00\")",
                    text, why));
  };
  std::size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!read_digits(text, pos, 4, year) || !expect(text, pos, '-') ||
      !read_digits(text, pos, 2, month) || !expect(text, pos, '-') ||
      !read_digits(text, pos, 2, day)) {
    return bad("the date must be YYYY-MM-DD");
  }
  if (pos >= text.size() || (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ')) {
    return bad("a 'T' and a time must follow the date");
  }
  ++pos;
  if (!read_digits(text, pos, 2, hour) || !expect(text, pos, ':') ||
      !read_digits(text, pos, 2, minute) || !expect(text, pos, ':') ||
      !read_digits(text, pos, 2, second)) {
    return bad("the time must be HH:MM:SS");
  }
  const date::year_month_day ymd{date::year{year}, date::month{static_cast<unsigned>(month)},
                                 date::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return bad("no such date");
  if (hour > 23 || minute > 59 || second > 59) return bad("no such time of day");

  std::chrono::milliseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    int scale = 100;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      fraction += std::chrono::milliseconds{(text[pos] - '0') * scale};
      scale /= 10;  // digits past milliseconds are truncated
      ++pos;
    }
    if (pos == start) return bad("a '.' must be followed by digits");
  }

  std::chrono::seconds offset{0};
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!read_digits(text, pos, 2, oh) || !expect(text, pos, ':') ||
        !read_digits(text, pos, 2, om) || oh > 23 || om > 59) {
      return bad("the offset must be +HH:MM or -HH:MM");
    }
    offset = std::chrono::seconds{sign * (oh * 3600 + om * 60)};
  } else {
    return bad("a zone offset is required: add 'Z' for UTC or an offset like +02:00");
  }
  if (pos != text.size()) return bad("unexpected text after the offset");

  const TimePoint instant = TimePoint{date::sys_days{ymd}} + std::chrono::hours{hour} +
                            std::chrono::minutes{minute} + std::chrono::seconds{second} + fraction -
                            offset;
  // Every zone must be able to write the instant back in RFC 3339's years
  // 0000-9999, whatever its offset (a local time in the year 10000 has no
  // four-digit year): the first and last day in UTC are refused.
  const auto utc_day = date::floor<date::days>(instant);
  if (utc_day <= date::sys_days{date::year{0} / 1 / 1} ||
      utc_day >= date::sys_days{date::year{9999} / 12 / 31}) {
    return bad("the instant must lie between 0000-01-02 and 9999-12-30 in UTC");
  }
  return instant;
}

}  // namespace jobhost::schedule
