// parse_duration, format_duration and parse_size, table-driven.
#include <catch2/catch.hpp>

#include "config/config.h"

using jobhost::Duration;
using jobhost::config::format_duration;
using jobhost::config::parse_duration;
using jobhost::config::parse_size;
using namespace std::chrono_literals;

TEST_CASE("parse_duration accepts whole numbers with units, and sums") {
  struct Case {
    const char* text;
    Duration expected;
  };
  const Case cases[] = {
      {"0", 0ms},
      {"0s", 0ms},
      {"250ms", 250ms},
      {"30s", 30s},
      {"5m", 5min},
      {"2h", 2h},
      {"1d", 24h},
      {"1h30m", 90min},
      {"1d2h3m4s5ms", 24h + 2h + 3min + 4s + 5ms},
      {"90s", 90s},
      {"30m1h", 90min},
      {"007s", 7s},
      {"9223372036854775807ms", Duration::max()},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto d = parse_duration(c.text);
    REQUIRE(d.has_value());
    CHECK(*d == c.expected);
  }
}

TEST_CASE("parse_duration refuses what it cannot read, saying why") {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "it is empty"},
      {"-5s", "it is negative"},
      {"+5s", "drop the '+'"},
      {" 5s", "remove the spaces"},
      {"5s ", "remove the spaces"},
      {"1h 30m", "unexpected ' '"},
      {"s", "does not start with a number"},
      {"30", "missing unit after 30"},
      {"1h30", "missing unit after 30"},
      {"5x", "unknown unit \"x\""},
      {"5min", "unknown unit \"min\""},
      {"5S", "unknown unit \"S\""},
      {"1.5h", "whole numbers only"},
      {"5s!", "unexpected '!'"},
      {"99999999999999999999s", "the number is too large"},
      {"9223372036854775808ms", "too large"},
      {"106751991168d", "too large"},
      {"106751991167300d", "too large"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto d = parse_duration(c.text);
    REQUIRE_FALSE(d.has_value());
    CHECK_THAT(d.error().message, Catch::Contains(c.why));
    // Every error says what is accepted.
    CHECK_THAT(d.error().message, Catch::Contains("\"1h30m\""));
  }
}

TEST_CASE("format_duration writes the shortest text that reads back") {
  struct Case {
    Duration d;
    const char* text;
  };
  const Case cases[] = {
      {0ms, "0s"},      {250ms, "250ms"}, {30s, "30s"},           {5min, "5m"},
      {90min, "1h30m"}, {24h, "1d"},      {25h + 1ms, "1d1h1ms"}, {1500ms, "1s500ms"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    CHECK(format_duration(c.d) == c.text);
    auto back = parse_duration(c.text);
    REQUIRE(back.has_value());
    CHECK(*back == c.d);
  }
}

TEST_CASE("parse_size accepts bytes and binary or decimal units") {
  struct Case {
    const char* text;
    uint64_t expected;
  };
  const Case cases[] = {
      {"0", 0},
      {"1000", 1000},
      {"12B", 12},
      {"64KiB", 64ull << 10},
      {"512MiB", 512ull << 20},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"64KB", 64'000},
      {"5MB", 5'000'000},
      {"3GB", 3'000'000'000},
      {"1TB", 1'000'000'000'000},
      {"64kib", 64ull << 10},
      {"64 MiB", 64ull << 20},
      {"16777215TiB", 16777215ull << 40},
      {"18446744073709551615", 18446744073709551615ull},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto s = parse_size(c.text);
    REQUIRE(s.has_value());
    CHECK(*s == c.expected);
  }
}

TEST_CASE("parse_size refuses what it cannot read, saying why") {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "it is empty"},
      {"-1", "it is negative"},
      {"-1KiB", "it is negative"},
      {"KiB", "does not start with a number"},
      {"1.5GiB", "whole numbers only"},
      {"64 ", "remove the spaces"},
      {"64  MiB", "unknown unit \" MiB\""},
      {"64K", "unknown unit \"K\""},
      {"64MiB!", "unknown unit \"MiB!\""},
      {"16777216TiB", "too large"},
      {"18446744073709551616", "the number is too large"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto s = parse_size(c.text);
    REQUIRE_FALSE(s.has_value());
    CHECK_THAT(s.error().message, Catch::Contains(c.why));
    CHECK_THAT(s.error().message, Catch::Contains("\"512MiB\""));
  }
}
