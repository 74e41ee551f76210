// Durations and sizes as written in the config: "1h30m", "512MiB".
#include <array>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/core.h>

#include "config/config.h"

namespace jobhost::config {
namespace {

struct Unit {
  std::string_view name;
  uint64_t factor;
};

constexpr std::array<Unit, 5> kDurationUnits = {{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

constexpr std::array<Unit, 9> kSizeUnits = {{
    {"b", 1},
    {"kib", 1ull << 10},
    {"mib", 1ull << 20},
    {"gib", 1ull << 30},
    {"tib", 1ull << 40},
    {"kb", 1'000},
    {"mb", 1'000'000},
    {"gb", 1'000'000'000},
    {"tb", 1'000'000'000'000},
}};

constexpr std::string_view kDurationHelp =
    "write a whole number and a unit (ms, s, m, h, d), e.g. \"250ms\", \"30s\", \"1h30m\"";
constexpr std::string_view kSizeHelp =
    "write a whole number of bytes or a number and a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, "
    "TB), e.g. \"64KiB\", \"512MiB\"";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads the digits at `text[pos...]` into `value`; false on overflow.
bool read_number(std::string_view text, std::size_t& pos, uint64_t& value) {
  value = 0;
  while (pos < text.size() && is_digit(text[pos])) {
    if (__builtin_mul_overflow(value, 10u, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(text[pos] - '0'), &value)) {
      return false;
    }
    ++pos;
  }
  return true;
}

// The reason `text` starts wrong, or empty when it starts like a number.
std::string bad_start(std::string_view text) {
  if (text.empty()) return "it is empty";
  if (text.front() == '-') return "it is negative";
  if (text.front() == '+') return "drop the '+'";
  if (text.front() == ' ' || text.back() == ' ') return "remove the spaces";
  if (!is_digit(text.front())) return "it does not start with a number";
  return {};
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const auto error = [&](std::string_view why) {
    return fail(fmt::format("invalid duration \"{}\": {}; {}", text, why, kDurationHelp));
  };
  if (auto why = bad_start(text); !why.empty()) return error(why);
  if (text == "0") return Duration{0};

  constexpr uint64_t kMax = static_cast<uint64_t>(Duration::max().count());
  uint64_t total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!is_digit(text[pos])) {
      return error(fmt::format("unexpected '{}' where a number should be", text[pos]));
    }
    uint64_t value = 0;
    if (!read_number(text, pos, value)) return error("the number is too large");
    if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
      return error("whole numbers only (write \"1h30m\" rather than \"1.5h\")");
    }
    const std::size_t unit_start = pos;
    while (pos < text.size() && is_letter(text[pos])) ++pos;
    const std::string_view unit = text.substr(unit_start, pos - unit_start);
    if (unit.empty()) {
      if (pos == text.size()) return error(fmt::format("missing unit after {}", value));
      return error(fmt::format("unexpected '{}' after {}", text[pos], value));
    }
    const Unit* found = nullptr;
    for (const Unit& u : kDurationUnits) {
      if (u.name == unit) found = &u;
    }
    if (found == nullptr) return error(fmt::format("unknown unit \"{}\"", unit));
    uint64_t ms = 0;
    if (__builtin_mul_overflow(value, found->factor, &ms) ||
        __builtin_add_overflow(total, ms, &total) || total > kMax) {
      return error("it is too large");
    }
  }
  return Duration{static_cast<Duration::rep>(total)};
}

std::string format_duration(Duration d) {
  if (d.count() <= 0) return "0s";
  uint64_t rest = static_cast<uint64_t>(d.count());
  std::string out;
  for (const Unit& u : kDurationUnits) {
    if (rest >= u.factor) {
      out += fmt::format("{}{}", rest / u.factor, u.name);
      rest %= u.factor;
    }
  }
  return out;
}

Result<uint64_t> parse_size(std::string_view text) {
  const auto error = [&](std::string_view why) {
    return fail(fmt::format("invalid size \"{}\": {}; {}", text, why, kSizeHelp));
  };
  if (auto why = bad_start(text); !why.empty()) return error(why);

  std::size_t pos = 0;
  uint64_t value = 0;
  if (!read_number(text, pos, value)) return error("the number is too large");
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    return error("whole numbers only (write \"1536MiB\" rather than \"1.5GiB\")");
  }
  if (pos < text.size() && text[pos] == ' ') ++pos;  // "64 MiB" reads fine too
  const std::string_view unit = text.substr(pos);
  if (unit.empty()) return value;  // trailing spaces were refused by bad_start
  const std::string key = lowercase(unit);
  for (const Unit& u : kSizeUnits) {
    if (u.name != key) continue;
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(value, u.factor, &bytes)) return error("it is too large");
    return bytes;
  }
  return error(fmt::format("unknown unit \"{}\"", unit));
}

}  // namespace jobhost::config
