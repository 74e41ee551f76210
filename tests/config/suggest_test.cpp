// Edit distance and "did you mean", table-driven.
#include <array>

#include <catch2/catch.hpp>

#include "config/suggest.h"

using jobhost::config::closest_match;
using jobhost::config::edit_distance;

TEST_CASE("edit_distance counts insertions, deletions, substitutions and swaps") {
  struct Case {
    const char* a;
    const char* b;
    std::size_t expected;
  };
  const Case cases[] = {
      {"", "", 0},
      {"abc", "", 3},
      {"", "abc", 3},
      {"timeout", "timeout", 0},
      {"timout", "timeout", 1},
      {"timeuot", "timeout", 1},
      {"Timeout", "timeout", 0},
      {"kitten", "sitting", 3},
      {"max-concurrency", "max_concurrency", 1},
      {"ab", "ba", 1},
      {"ca", "abc", 3},
  };
  for (const Case& c : cases) {
    INFO(c.a << " / " << c.b);
    CHECK(edit_distance(c.a, c.b) == c.expected);
    CHECK(edit_distance(c.b, c.a) == c.expected);
  }
}

TEST_CASE("closest_match suggests only likely typos") {
  constexpr std::array<std::string_view, 6> kKeys = {"timeout",  "stall_timeout", "kill_grace",
                                                     "schedule", "every",         "at"};
  struct Case {
    const char* word;
    const char* expected;  // nullptr: no suggestion
  };
  const Case cases[] = {
      {"timout", "timeout"},
      {"TIMEOUT", "timeout"},
      {"schedul", "schedule"},
      {"shcedule", "schedule"},
      {"evry", "every"},
      {"a", "at"},
      {"stall-timeout", "stall_timeout"},
      {"kill_grace_period", nullptr},
      {"xyz", nullptr},
      {"timeout", nullptr},
      {"cron", nullptr},
      {"", nullptr},
  };
  for (const Case& c : cases) {
    INFO(c.word);
    auto match = closest_match(c.word, kKeys);
    if (c.expected == nullptr) {
      CHECK_FALSE(match.has_value());
    } else {
      REQUIRE(match.has_value());
      CHECK(*match == c.expected);
    }
  }
}
