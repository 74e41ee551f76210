// CronExpr::describe: the expression in words, for `jobhost list`, e.g.
// "every 10 seconds", "at 02:30 every day", "at 09:00 on Monday to Friday".
#include <fmt/format.h>

#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <vector>

#include "schedule/cron_fields.h"

namespace jobhost::schedule {
namespace {

constexpr std::array<const char*, 12> kMonthWords = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<const char*, 8> kDayWords = {"Sunday",   "Monday", "Tuesday",  "Wednesday",
                                                  "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<const char*, 6> kOrdinals = {"",      "first",  "second",
                                                  "third", "fourth", "fifth"};
constexpr std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// A value of a field (already validated by the parser) as a number.
int value_of(std::string_view token, CronField field) {
  std::string name = upper(token);
  if (field == kMonth) {
    for (std::size_t i = 0; i < kMonthNames.size(); ++i) {
      if (name == kMonthNames[i]) return static_cast<int>(i) + 1;
    }
  }
  if (field == kDayOfWeek) {
    for (std::size_t i = 0; i < kDayNames.size(); ++i) {
      if (name == kDayNames[i]) return static_cast<int>(i);
    }
  }
  int v = 0;
  std::from_chars(token.data(), token.data() + token.size(), v);
  return v;
}

std::string value_words(std::string_view token, CronField field) {
  int v = value_of(token, field);
  if (field == kMonth) return kMonthWords[static_cast<std::size_t>(v - 1)];
  if (field == kDayOfWeek) return kDayWords[static_cast<std::size_t>(v)];
  return std::to_string(v);
}

std::string join_words(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

bool is_any(std::string_view f) {
  return f == "*" || f == "?" || f == "*/1";
}
bool is_number(std::string_view f) {
  return !f.empty() && f.find_first_not_of("0123456789") == std::string_view::npos;
}
// "*/n" or "0/n": every n units from the start of the field.
std::optional<int> plain_step(std::string_view f) {
  auto slash = f.find('/');
  if (slash == std::string_view::npos || f.find(',') != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view base = f.substr(0, slash);
  if (base != "*" && base != "0") return std::nullopt;
  return value_of(f.substr(slash + 1), kSecond);
}

// One list item in words: "5", "10 to 50", "every 10 from 10 to 50", "Monday to Friday".
std::string item_words(std::string_view item, CronField field) {
  std::string_view base = item;
  std::string step;
  if (auto slash = item.find('/'); slash != std::string_view::npos) {
    base = item.substr(0, slash);
    step = fmt::format("every {} ", item.substr(slash + 1));
  }
  if (base == "*" || base == "?")
    return step.empty() ? "every value" : step.substr(0, step.size() - 1);
  if (auto dash = base.find('-'); dash != std::string_view::npos) {
    return fmt::format("{}{}{} to {}", step, step.empty() ? "" : "from ",
                       value_words(base.substr(0, dash), field),
                       value_words(base.substr(dash + 1), field));
  }
  if (!step.empty()) return fmt::format("{}from {}", step, value_words(base, field));
  return value_words(base, field);
}

std::string list_words(std::string_view text, CronField field) {
  std::vector<std::string> items;
  for (std::string_view item : split(text, ',')) items.push_back(item_words(item, field));
  return join_words(items);
}

// A single stepped item ("5/10", "10-50/10"): "every 10 seconds from second 5 to 50".
std::optional<std::string> step_words(std::string_view f, const char* unit) {
  auto slash = f.find('/');
  if (slash == std::string_view::npos || f.find(',') != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view base = f.substr(0, slash);
  std::string every = fmt::format("every {} {}s", f.substr(slash + 1), unit);
  if (base == "*") return every;
  if (auto dash = base.find('-'); dash != std::string_view::npos) {
    return fmt::format("{} from {} {} to {}", every, unit, base.substr(0, dash),
                       base.substr(dash + 1));
  }
  return fmt::format("{} from {} {}", every, unit, base);
}

std::string plural(int n, const char* unit) {
  return n == 1 ? fmt::format("every {}", unit) : fmt::format("every {} {}s", n, unit);
}

std::string clock(int h, int m, int s) {
  return s == 0 ? fmt::format("{:02}:{:02}", h, m) : fmt::format("{:02}:{:02}:{:02}", h, m, s);
}

// `months_single`: the only month (1-12) when the month field names one, else 0.
std::string dom_words(std::string_view text, int months_single) {
  std::vector<std::string> items;
  bool plain = true;
  for (std::string_view item : split(text, ',')) {
    std::string up = upper(item);
    if (up == "L") {
      items.push_back("the last day");
      plain = false;
    } else if (up == "LW") {
      items.push_back("the last weekday");
      plain = false;
    } else if (up.ends_with('W')) {
      items.push_back(fmt::format("the weekday nearest day {}", item.substr(0, item.size() - 1)));
      plain = false;
    } else {
      items.push_back(item_words(item, kDayOfMonth));
    }
  }
  std::string words = join_words(items);
  if (plain && months_single != 0) {
    return fmt::format("on {} {}", kMonthWords[months_single - 1], words);
  }
  if (plain) {
    bool single = items.size() == 1 && is_number(text);
    return fmt::format("on day{} {} of the month", single ? "" : "s", words);
  }
  return fmt::format("on {} of the month", words);
}

std::string dow_words(std::string_view text, uint8_t dow_bits) {
  std::vector<std::string> items;
  if (text.find('/') != std::string_view::npos) {  // steps: name the days
    for (int w = 1; w <= 7; ++w) {
      if (dow_bits & (1u << (w % 7))) items.push_back(kDayWords[w]);
    }
    return "on " + join_words(items);
  }
  for (std::string_view item : split(text, ',')) {
    if (auto hash = item.find('#'); hash != std::string_view::npos) {
      items.push_back(fmt::format("the {} {}",
                                  kOrdinals[static_cast<std::size_t>(item[hash + 1] - '0')],
                                  value_words(item.substr(0, hash), kDayOfWeek)));
    } else if (item.size() >= 2 && (item.back() == 'L' || item.back() == 'l')) {
      items.push_back(fmt::format("the last {} of the month",
                                  value_words(item.substr(0, item.size() - 1), kDayOfWeek)));
    } else {
      items.push_back(item_words(item, kDayOfWeek));
    }
  }
  return "on " + join_words(items);
}

}  // namespace

std::string CronExpr::describe() const {
  const Fields& f = fields();
  if (f.reboot) return "at host start";
  if (f.months == 0) return "never";
  const auto& t = f.field_text;
  const std::string_view sec = t[kSecond], min = t[kMinute], hour = t[kHour];

  std::string words;
  bool time_of_day = false;  // "at 02:30": worth saying "every day"
  std::vector<std::string> extra;
  if (is_number(sec) && is_number(min) && is_number(hour)) {
    words = "at " + clock(value_of(hour, kHour), value_of(min, kMinute), value_of(sec, kSecond));
    time_of_day = true;
  } else if (is_number(sec) && is_number(min) && hour.find_first_of("-/*") == std::string::npos) {
    std::vector<std::string> times;
    for (std::string_view h : split(hour, ',')) {
      times.push_back(clock(value_of(h, kHour), value_of(min, kMinute), value_of(sec, kSecond)));
    }
    words = "at " + join_words(times);
    time_of_day = true;
  } else {
    const bool sec_zero = sec == "0";
    const std::string at_second =
        sec_zero ? "" : fmt::format(" at second {}", list_words(sec, kSecond));
    bool min_done = false;
    bool hour_done = false;
    if (is_any(sec)) {
      words = "every second";
    } else if (auto n = plain_step(sec)) {
      words = plural(*n, "second");
    } else if (auto stepped = step_words(sec, "second")) {
      words = *stepped;
    } else if (is_any(min)) {
      words = "every minute" + at_second;
      min_done = true;
    } else if (auto n = plain_step(min); n && is_number(sec)) {
      words = plural(*n, "minute") + at_second;
      min_done = true;
    } else if (auto stepped = step_words(min, "minute"); stepped && is_number(sec)) {
      words = *stepped + at_second;
      min_done = true;
    } else if (is_number(min) && is_number(sec) && (is_any(hour) || plain_step(hour))) {
      int step = is_any(hour) ? 1 : *plain_step(hour);
      words = plural(step, "hour");
      if (min != "0" || !sec_zero) words += " at minute " + std::string(min) + at_second;
      min_done = hour_done = true;
    } else if (is_number(min) && is_number(sec)) {
      words = fmt::format("at minute {}{} past hours {}", min, at_second, list_words(hour, kHour));
      min_done = hour_done = true;
    } else {
      words = fmt::format("at second{} {}", is_number(sec) ? "" : "s", list_words(sec, kSecond));
    }
    if (!min_done && !is_any(min)) {
      extra.push_back(
          fmt::format("minute{} {}", is_number(min) ? "" : "s", list_words(min, kMinute)));
    }
    if (!hour_done && !is_any(hour)) {
      if (auto n = plain_step(hour)) {
        extra.push_back(plural(*n, "hour"));
      } else {
        extra.push_back(
            fmt::format("hour{} {}", is_number(hour) ? "" : "s", list_words(hour, kHour)));
      }
    }
  }
  for (const std::string& e : extra) words += ", " + e;

  const bool dom = f.dom_restricted, dow = f.dow_restricted;
  const int single_month = std::has_single_bit(f.months) && !dow ? std::countr_zero(f.months) : 0;
  // "&MON": both day fields must match; the words are those of "MON".
  const std::string dow_text = f.days_all ? t[kDayOfWeek].substr(1) : t[kDayOfWeek];
  if (dom && dow) {
    words += fmt::format(" {} {} {}", dom_words(t[kDayOfMonth], 0), f.days_all ? "if also" : "or",
                         dow_words(dow_text, f.dow));
  } else if (dom) {
    words += " " + dom_words(t[kDayOfMonth], single_month);
  } else if (dow) {
    words += " " + dow_words(dow_text, f.dow);
  } else if (time_of_day && f.months == 0x1FFE) {
    words += " every day";
  }
  const bool month_said =
      dom && single_month != 0 && t[kDayOfMonth].find_first_of("LlWw") == std::string::npos;
  if (f.months != 0x1FFE && !month_said) words += " in " + list_words(t[kMonth], kMonth);
  return words;
}

}  // namespace jobhost::schedule
