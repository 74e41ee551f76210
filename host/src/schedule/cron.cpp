// Cron expression parsing: fields, lists, ranges, steps, names, L, W, #, ?,
// H, @macros; rejects expressions that can never fire.
#include <date/date.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <vector>

#include "schedule/cron_fields.h"
#include "schedule/stable_hash.h"

namespace jobhost::schedule {
namespace {

struct FieldRange {
  const char* name;
  int min;
  int max;  // day-of-week accepts 7 (= Sunday)
};

constexpr std::array<FieldRange, kFieldCount> kRanges = {{
    {"second", 0, 59},
    {"minute", 0, 59},
    {"hour", 0, 23},
    {"day-of-month", 1, 31},
    {"month", 1, 12},
    {"day-of-week", 0, 7},
}};

constexpr std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct Macro {
  const char* name;
  const char* expansion;  // 6 fields
};
constexpr std::array<Macro, 7> kMacros = {{
    {"@yearly", "0 0 0 1 1 *"},
    {"@annually", "0 0 0 1 1 *"},
    {"@monthly", "0 0 0 1 * *"},
    {"@weekly", "0 0 0 * * 0"},
    {"@daily", "0 0 0 * * *"},
    {"@midnight", "0 0 0 * * *"},
    {"@hourly", "0 0 * * * *"},
}};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}
char upper(char c) {
  return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
}

std::unexpected<CronError> error_at(std::size_t column, std::string message) {
  return std::unexpected<CronError>(CronError{std::move(message), column});
}

// The values one field selects, plus the special day elements.
struct FieldBits {
  std::string text;     // the field as written, each H item replaced by its values
  uint64_t values = 0;  // bit v
  uint32_t nearest_weekday = 0;
  bool last_day = false;
  bool last_weekday = false;
  uint8_t dow_last = 0;
  std::array<uint8_t, 7> dow_nth{};
};

// Parses one field; `base` is the column of its first character, `hash` the
// job name's hash for this field (nullopt: no name, so H is an error).
class FieldParser {
 public:
  FieldParser(CronField field, std::string_view text, std::size_t base,
              std::optional<uint64_t> hash, std::vector<CronError>& warnings)
      : field_(field),
        range_(kRanges[field]),
        text_(text),
        base_(base),
        hash_(hash),
        warnings_(warnings) {}

  std::expected<FieldBits, CronError> parse() {
    std::size_t start = 0;
    while (true) {
      std::size_t comma = text_.find(',', start);
      std::size_t end = comma == std::string_view::npos ? text_.size() : comma;
      if (end == start) return fail_at(start, "empty list item (two commas in a row?)");
      if (start > 0) bits_.text += ',';
      if (upper(text_[start]) == 'H') {
        auto values = parse_hashed(start, end);
        if (!values) return std::unexpected(values.error());
        bits_.text += *values;
      } else {
        if (auto r = parse_item(start, end); !r) return std::unexpected(r.error());
        bits_.text += text_.substr(start, end - start);
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
      if (start == text_.size()) return fail_at(comma, "list ends with ','");
    }
    return bits_;
  }

 private:
  std::unexpected<CronError> fail_at(std::size_t pos, std::string_view what) const {
    return error_at(base_ + pos, fmt::format("{} field: {}", range_.name, what));
  }

  std::string range_text() const {
    if (field_ == kMonth) return "1-12 or JAN-DEC";
    if (field_ == kDayOfWeek) return "0-7 or SUN-SAT, 0 and 7 both Sunday";
    return fmt::format("{}-{}", range_.min, range_.max);
  }

  // A number or a name at `pos`; advances `pos`.
  std::expected<int, CronError> parse_value(std::size_t& pos, std::size_t end) {
    std::size_t start = pos;
    if (pos < end && is_digit(text_[pos])) {
      int value = 0;
      while (pos < end && is_digit(text_[pos])) {
        value = value * 10 + (text_[pos] - '0');
        if (value > 9999) return fail_at(start, "number too large");
        ++pos;
      }
      if (value < range_.min || value > range_.max) {
        return fail_at(start, fmt::format("{} is out of range ({})", value, range_text()));
      }
      return value;
    }
    if (pos < end && is_alpha(text_[pos])) {
      while (pos < end && is_alpha(text_[pos])) ++pos;
      std::string_view word = text_.substr(start, pos - start);
      // "FRIL" is FRI followed by L (last Friday of the month).
      if (field_ == kDayOfWeek && word.size() == 4 && upper(word[3]) == 'L') {
        word = word.substr(0, 3);
        --pos;
      }
      if (field_ == kMonth) {
        for (std::size_t i = 0; i < kMonthNames.size(); ++i) {
          if (iequals(word, kMonthNames[i])) return static_cast<int>(i) + 1;
        }
        return fail_at(start, fmt::format("unknown month name '{}' (use JAN-DEC or 1-12)", word));
      }
      if (field_ == kDayOfWeek) {
        for (std::size_t i = 0; i < kDayNames.size(); ++i) {
          if (iequals(word, kDayNames[i])) return static_cast<int>(i);
        }
        return fail_at(start, fmt::format("unknown day name '{}' (use SUN-SAT or 0-7)", word));
      }
      return fail_at(start, fmt::format("names like '{}' are only allowed in the month and "
                                        "day-of-week fields",
                                        word));
    }
    if (pos >= end) return fail_at(pos, "expected a value");
    return fail_at(pos, fmt::format("unexpected character '{}'", text_[pos]));
  }

  // The digits of a step at `pos` (after the '/'); advances `pos`.
  std::expected<int, CronError> parse_step(std::size_t& pos, std::size_t end) {
    const std::size_t start = pos;
    if (pos >= end || !is_digit(text_[pos])) return fail_at(pos, "'/' must be followed by a step");
    int step = 0;
    while (pos < end && is_digit(text_[pos])) {
      step = step * 10 + (text_[pos] - '0');
      if (step > 9999) return fail_at(start, "step too large");
      ++pos;
    }
    if (step == 0) return fail_at(start, "step 0 is not allowed");
    return step;
  }

  // The highest value a range from '*' or "a/n" runs to; day-of-week's 7 is an
  // alias of 0.
  int top() const { return field_ == kDayOfWeek ? 6 : range_.max; }

  // "H", "H(a-b)", "H/n", "H(a-b)/n": one value of the range, or every n-th
  // value from an offset below n, picked by the job name's hash. Returns the
  // item with those values written out ("37", "7/15", "4-28/8").
  std::expected<std::string, CronError> parse_hashed(std::size_t pos, std::size_t end) {
    constexpr std::string_view kForms = "H, H(a-b), H/n or H(a-b)/n";
    // Day-of-month stops at 28, which every month has.
    int lo = range_.min;
    int hi = field_ == kDayOfMonth ? 28 : top();
    std::size_t p = pos + 1;
    if (p < end && text_[p] == '(') {
      ++p;
      auto first = parse_value(p, end);
      if (!first) return std::unexpected(first.error());
      if (p >= end || text_[p] != '-') {
        return fail_at(p, "H( takes a range and a ')', e.g. H(0-29)");
      }
      const std::size_t second_pos = ++p;
      auto second = parse_value(p, end);
      if (!second) return std::unexpected(second.error());
      if (p >= end || text_[p] != ')') {
        return fail_at(p, "H( takes a range and a ')', e.g. H(0-29)");
      }
      ++p;
      if (*second < *first) {
        return fail_at(second_pos, fmt::format("range H({}-{}) is reversed; write H({}-{})", *first,
                                               *second, *second, *first));
      }
      lo = *first;
      hi = *second;
    }
    std::optional<int> step;
    if (p < end && text_[p] == '/') {
      const std::size_t step_pos = ++p;
      auto parsed = parse_step(p, end);
      if (!parsed) return std::unexpected(parsed.error());
      step = *parsed;
      // Unlike "a-b/n", an offset past the range would select nothing.
      if (*step > hi - lo + 1) {
        return fail_at(step_pos, fmt::format("step {} is larger than the range {}-{} that H "
                                             "picks from (at most {})",
                                             *step, lo, hi, hi - lo + 1));
      }
    }
    if (p != end) {
      return fail_at(p,
                     fmt::format("unexpected character '{}' (H is written {})", text_[p], kForms));
    }
    if (!hash_) {
      return fail_at(pos,
                     "H stands for a value derived from the job's name, and there is no "
                     "job name here");
    }
    if (!step) {
      const int value = lo + static_cast<int>(scale_to(*hash_, static_cast<uint64_t>(hi - lo + 1)));
      set_value(value);
      return std::to_string(value);
    }
    const int first = lo + static_cast<int>(scale_to(*hash_, static_cast<uint64_t>(*step)));
    for (int v = first; v <= hi; v += *step) set_value(v);
    if (hi == top()) return fmt::format("{}/{}", first, *step);
    return fmt::format("{}-{}/{}", first, hi, *step);
  }

  void set_value(int v) {
    if (field_ == kDayOfWeek && v == 7) v = 0;
    bits_.values |= uint64_t{1} << v;
  }

  std::expected<void, CronError> parse_item(std::size_t pos, std::size_t end) {
    std::string_view item = text_.substr(pos, end - pos);
    // Day-of-month specials: L, LW, nW.
    if (field_ == kDayOfMonth) {
      if (iequals(item, "L")) {
        bits_.last_day = true;
        return {};
      }
      if (iequals(item, "LW")) {
        bits_.last_weekday = true;
        return {};
      }
      if (upper(item[0]) == 'L') {
        return fail_at(pos, "only 'L' (last day) and 'LW' (last weekday) may start with L");
      }
      if (upper(item.back()) == 'W') {
        std::size_t p = pos;
        auto day = parse_value(p, end - 1);
        if (!day) return std::unexpected(day.error());
        if (p != end - 1) return fail_at(p, "'W' takes a single day, e.g. 15W");
        bits_.nearest_weekday |= uint32_t{1} << *day;
        return {};
      }
    }
    // Day-of-week specials: w#n, wL.
    if (field_ == kDayOfWeek) {
      if (std::size_t hash = item.find('#'); hash != std::string_view::npos) {
        if (hash == 0) return fail_at(pos, "'#' needs a weekday before it, e.g. FRI#2");
        std::size_t p = pos;
        auto day = parse_value(p, pos + hash);
        if (!day) return std::unexpected(day.error());
        if (p != pos + hash) return fail_at(p, "'#' takes a single weekday, e.g. FRI#2");
        std::size_t n_pos = pos + hash + 1;
        if (end - n_pos != 1 || text_[n_pos] < '1' || text_[n_pos] > '5') {
          return fail_at(n_pos, "'#' must be followed by 1-5 (the n-th weekday of the month)");
        }
        bits_.dow_nth[*day % 7] |= static_cast<uint8_t>(1u << (text_[n_pos] - '0'));
        return {};
      }
      if (item.size() >= 2 && upper(item.back()) == 'L') {
        std::size_t p = pos;
        auto day = parse_value(p, end - 1);
        if (!day) return std::unexpected(day.error());
        if (p != end - 1) return fail_at(p, "'L' takes a single weekday, e.g. 5L or FRIL");
        bits_.dow_last |= static_cast<uint8_t>(1u << (*day % 7));
        return {};
      }
      if (iequals(item, "L")) {
        return fail_at(pos,
                       "'L' in day-of-week needs a weekday before it, e.g. FRIL or 5L "
                       "(last Friday); for the last day of the month use L in day-of-month");
      }
    }

    int lo = 0;
    int hi = 0;
    bool single = false;
    std::size_t p = pos;
    if (item[0] == '*' || item[0] == '?') {
      if (item[0] == '?' && field_ != kDayOfMonth && field_ != kDayOfWeek) {
        return fail_at(pos, "'?' is only allowed in the day-of-month and day-of-week fields");
      }
      lo = range_.min;
      hi = top();
      ++p;
      if (p < end && text_[p] == '-') return fail_at(p, "'*' cannot start a range");
    } else {
      auto first = parse_value(p, end);
      if (!first) return std::unexpected(first.error());
      lo = hi = *first;
      single = true;
      if (p < end && text_[p] == '-') {
        std::size_t second_pos = ++p;
        auto second = parse_value(p, end);
        if (!second) return std::unexpected(second.error());
        hi = *second;
        single = false;
        if (hi < lo) {
          return fail_at(second_pos, fmt::format("range {}-{} is reversed (write it as two ranges, "
                                                 "e.g. {}-{},{}-{})",
                                                 lo, hi, lo, range_.max, range_.min, hi));
        }
      }
    }
    int step = 1;
    if (p < end && text_[p] == '/') {
      std::size_t step_pos = ++p;
      auto parsed_step = parse_step(p, end);
      if (!parsed_step) return std::unexpected(parsed_step.error());
      step = *parsed_step;
      if (single) hi = std::max(lo, top());  // "5/10" means 5-max/10
      // Vixie cron and cronie accept a step wider than its range and take
      // its first value; so do we, and say what it means.
      if (hi > lo && step > hi - lo) {
        warnings_.push_back(CronError{
            fmt::format("{} field: step {} is larger than the range {}-{}, so it selects only {}; "
                        "write that value instead",
                        range_.name, step, lo, hi, lo),
            base_ + step_pos});
      }
    }
    if (p != end) return fail_at(p, fmt::format("unexpected character '{}'", text_[p]));
    for (int v = lo; v <= hi; v += step) set_value(v);
    return {};
  }

  CronField field_;
  FieldRange range_;
  std::string_view text_;
  std::size_t base_;
  std::optional<uint64_t> hash_;
  std::vector<CronError>& warnings_;
  FieldBits bits_;
};

struct Token {
  std::string_view text;
  std::size_t column;
};

std::vector<Token> split_fields(std::string_view text) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= text.size()) break;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    tokens.push_back({text.substr(start, i - start), start});
  }
  return tokens;
}

std::string month_list(uint16_t months) {
  std::string out;
  for (int m = 1; m <= 12; ++m) {
    if (months & (1u << m)) {
      if (!out.empty()) out += ",";
      out += kMonthNames[m - 1];
    }
  }
  return out;
}

const CronExpr::Fields& never_fields() {
  static const CronExpr::Fields kNever{};
  return kNever;
}

}  // namespace

uint32_t matching_days(const CronExpr::Fields& f, int year, unsigned month) {
  const date::year_month ym{date::year{year}, date::month{month}};
  const unsigned ndays = static_cast<unsigned>((ym / date::last).day());
  const unsigned first_wd = date::weekday{date::sys_days{ym / 1}}.c_encoding();
  const uint32_t valid = ((uint32_t{1} << ndays) - 1) << 1;
  auto weekday_of = [&](unsigned d) { return (first_wd + d - 1) % 7; };

  uint32_t dom = f.dom;
  if (f.last_day) dom |= uint32_t{1} << ndays;
  if (f.last_weekday) {
    unsigned d = ndays;
    unsigned wd = weekday_of(d);
    d -= wd == 6 ? 1 : wd == 0 ? 2 : 0;
    dom |= uint32_t{1} << d;
  }
  for (uint32_t w = f.nearest_weekday & valid; w != 0; w &= w - 1) {
    unsigned d = static_cast<unsigned>(std::countr_zero(w));
    unsigned wd = weekday_of(d);
    if (wd == 6)
      d = d == 1 ? 3 : d - 1;  // Saturday: Friday, or Monday the 3rd
    else if (wd == 0)
      d = d == ndays ? d - 2 : d + 1;  // Sunday: Monday, or Friday before
    dom |= uint32_t{1} << d;
  }

  uint32_t dow = f.dow_days[first_wd];
  for (unsigned w = 0; w < 7; ++w) {
    if (f.dow_nth[w] != 0) {
      unsigned first = 1 + (w + 7 - first_wd) % 7;
      for (unsigned n = 1; n <= 5; ++n) {
        const unsigned d = first + 7 * (n - 1);
        if ((f.dow_nth[w] & (1u << n)) && d <= ndays) dow |= uint32_t{1} << d;
      }
    }
    if (f.dow_last & (1u << w)) dow |= uint32_t{1} << (ndays - (weekday_of(ndays) + 7 - w) % 7);
  }

  uint32_t days;
  if (f.days_all) {
    days = (f.dom_restricted ? dom : valid) & (f.dow_restricted ? dow : valid);
  } else if (f.dom_restricted && f.dow_restricted) {
    days = dom | dow;
  } else if (f.dom_restricted) {
    days = dom;
  } else if (f.dow_restricted) {
    days = dow;
  } else {
    days = valid;
  }
  return days & valid;
}

std::expected<CronExpr, CronError> CronExpr::parse(std::string_view text, std::string_view job) {
  auto fields = std::make_shared<Fields>();
  std::size_t lead = text.find_first_not_of(" \t");
  if (lead == std::string_view::npos) {
    return error_at(0,
                    "empty schedule: expected 5 fields (minute hour day-of-month month "
                    "day-of-week), 6 (seconds first) or an @macro such as @daily");
  }
  std::size_t trail = text.find_last_not_of(" \t");
  fields->text = std::string(text.substr(lead, trail - lead + 1));
  fields->resolved = fields->text;

  std::vector<Token> tokens = split_fields(text);
  if (tokens.front().text.starts_with('@')) {
    const Token macro = tokens.front();
    if (tokens.size() > 1) {
      return error_at(tokens[1].column, fmt::format("{} takes no fields after it", macro.text));
    }
    if (iequals(macro.text, "@reboot")) {
      fields->reboot = true;
      CronExpr expr;
      expr.fields_ = std::move(fields);
      return expr;
    }
    const Macro* found = nullptr;
    for (const Macro& m : kMacros) {
      if (iequals(macro.text, m.name)) found = &m;
    }
    if (found == nullptr) {
      return error_at(macro.column, fmt::format("unknown macro '{}' (use @yearly, @annually, "
                                                "@monthly, @weekly, @daily, @midnight, "
                                                "@hourly or @reboot)",
                                                macro.text));
    }
    tokens = split_fields(found->expansion);
    for (Token& t : tokens) t.column = macro.column;
  } else if (tokens.size() == 5) {
    tokens.insert(tokens.begin(), Token{"0", tokens.front().column});
  } else if (tokens.size() != 6) {
    std::size_t column = tokens.size() > 6 ? tokens[6].column : text.size();
    return error_at(column, fmt::format("expected 5 fields (minute hour day-of-month month "
                                        "day-of-week) or 6 (seconds first), got {}",
                                        tokens.size()));
  }

  // '&' before the day-of-week field: a day must match both day fields
  // (cronie's rule when a day field starts with '*'; jobhost import-crontab
  // writes it). Parsed as the field without it, then put back in its text.
  Token& dow_token = tokens[kDayOfWeek];
  const bool days_all = dow_token.text.starts_with('&');
  if (days_all) {
    dow_token = Token{dow_token.text.substr(1), dow_token.column + 1};
    if (dow_token.text.empty()) {
      return error_at(dow_token.column,
                      "day-of-week field: '&' must be followed by the field, e.g. &MON");
    }
  }

  // H: each field hashes the name with a salt of its own, so that "H H * * *"
  // picks minute and hour independently.
  const uint64_t name_hash = fnv1a(job);
  std::array<FieldBits, kFieldCount> bits;
  for (int i = 0; i < kFieldCount; ++i) {
    std::optional<uint64_t> hash;
    if (!job.empty()) hash = splitmix64(name_hash ^ splitmix64(static_cast<uint64_t>(i)));
    auto parsed = FieldParser(static_cast<CronField>(i), tokens[i].text, tokens[i].column, hash,
                              fields->warnings)
                      .parse();
    if (!parsed) return std::unexpected(parsed.error());
    bits[i] = std::move(*parsed);
    fields->field_text[i] = bits[i].text;
  }
  if (days_all) {
    dow_token = Token{text.substr(dow_token.column - 1, dow_token.text.size() + 1),
                      dow_token.column - 1};
    bits[kDayOfWeek].text.insert(0, 1, '&');
    fields->field_text[kDayOfWeek] = bits[kDayOfWeek].text;
  }
  // Right to left, so the columns of the fields still to replace stay right.
  for (int i = kFieldCount - 1; i >= 0; --i) {
    if (bits[i].text != tokens[i].text) {
      fields->resolved.replace(tokens[i].column - lead, tokens[i].text.size(), bits[i].text);
    }
  }

  Fields& f = *fields;
  f.seconds = bits[kSecond].values;
  f.minutes = bits[kMinute].values;
  f.hours = static_cast<uint32_t>(bits[kHour].values);
  f.months = static_cast<uint16_t>(bits[kMonth].values);
  f.real_time = tokens[kHour].text.starts_with('*');

  const FieldBits& dom = bits[kDayOfMonth];
  f.dom = static_cast<uint32_t>(dom.values);
  f.nearest_weekday = dom.nearest_weekday;
  f.last_day = dom.last_day;
  f.last_weekday = dom.last_weekday;
  constexpr uint32_t kAllDays = 0xFFFFFFFEu;  // bits 1-31
  f.dom_restricted = !(f.dom == kAllDays);

  const FieldBits& dow = bits[kDayOfWeek];
  f.dow = static_cast<uint8_t>(dow.values);
  f.dow_last = dow.dow_last;
  f.dow_nth = dow.dow_nth;
  f.dow_restricted = !(f.dow == 0x7F);
  f.days_all = days_all;
  for (unsigned first_wd = 0; first_wd < 7; ++first_wd) {
    uint32_t mask = 0;
    for (unsigned d = 1; d <= 31; ++d) {
      if (f.dow & (1u << ((first_wd + d - 1) % 7))) mask |= uint32_t{1} << d;
    }
    f.dow_days[first_wd] = mask;
  }

  // Day matching depends only on the calendar of a year (leap or not, weekday
  // of January 1st); 2000-2027 contains all 14 kinds, so no match there means
  // no match ever.
  uint16_t dead_months = f.months;
  for (int year = 2000; year < 2028 && dead_months != 0; ++year) {
    for (unsigned m = 1; m <= 12; ++m) {
      if ((dead_months & (1u << m)) && matching_days(f, year, m) != 0) {
        dead_months = static_cast<uint16_t>(dead_months & ~(1u << m));
      }
    }
  }
  if (dead_months == f.months) {
    const bool blame_dow = !f.dom_restricted;
    const CronField at = blame_dow ? kDayOfWeek : kDayOfMonth;
    // A field with H is quoted with the values it stands for: those never occur.
    auto quoted = [&](CronField i) {
      if (bits[i].text == tokens[i].text) return fmt::format("'{}'", tokens[i].text);
      return fmt::format("'{}' (here {})", tokens[i].text, bits[i].text);
    };
    std::string days = f.dom_restricted && f.dow_restricted
                           ? fmt::format("day-of-month {} and day-of-week {}", quoted(kDayOfMonth),
                                         quoted(kDayOfWeek))
                       : blame_dow ? fmt::format("day-of-week {}", quoted(kDayOfWeek))
                                   : fmt::format("day-of-month {}", quoted(kDayOfMonth));
    return error_at(tokens[at].column,
                    fmt::format("schedule never fires: {} never occurs in {} (month field {})",
                                days, month_list(f.months), quoted(kMonth)));
  }

  CronExpr expr;
  expr.fields_ = std::move(fields);
  return expr;
}

bool CronExpr::is_reboot() const {
  return fields().reboot;
}
bool CronExpr::follows_real_time() const {
  return fields().real_time;
}
const std::string& CronExpr::text() const {
  return fields().text;
}
const std::string& CronExpr::resolved() const {
  return fields().resolved;
}
const std::vector<CronError>& CronExpr::warnings() const {
  return fields().warnings;
}

const CronExpr::Fields& CronExpr::fields() const {
  return fields_ ? *fields_ : never_fields();
}

}  // namespace jobhost::schedule
