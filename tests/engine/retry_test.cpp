#include "engine/retry.h"

#include <catch2/catch.hpp>

using jobhost::Duration;
using jobhost::config::Jitter;
using jobhost::config::RetryPolicy;
using namespace std::chrono_literals;

TEST_CASE("backoff ceiling: min(max_delay, initial * multiplier^(retry-1))", "[retry]") {
  struct Row {
    Duration initial, max;
    double multiplier;
    int retry;
    Duration expected;
  };
  const Row rows[] = {
      {1s, 5min, 2.0, 1, 1s},       {1s, 5min, 2.0, 2, 2s},      {1s, 5min, 2.0, 3, 4s},
      {1s, 5min, 2.0, 9, 256s},     {1s, 5min, 2.0, 10, 300s},   {1s, 5min, 2.0, 100, 300s},
      {1s, 5min, 2.0, 5000, 300s},  {250ms, 10s, 3.0, 1, 250ms}, {250ms, 10s, 3.0, 2, 750ms},
      {250ms, 10s, 3.0, 4, 6750ms}, {250ms, 10s, 3.0, 5, 10s},   {2s, 2s, 2.0, 7, 2s},
      {1s, 1h, 1.0, 50, 1s},        {100ms, 1s, 1.5, 3, 225ms},
  };
  for (const auto& row : rows) {
    RetryPolicy policy{5, row.initial, row.max, row.multiplier, Jitter::none};
    INFO("initial " << row.initial.count() << "ms x" << row.multiplier << " retry " << row.retry);
    CHECK(jobhost::engine::backoff_ceiling(policy, row.retry) == row.expected);
  }
}

TEST_CASE("retry delay jitter modes stay in their ranges and are seedable", "[retry]") {
  RetryPolicy policy{5, 1s, 5min, 2.0, Jitter::none};
  std::mt19937_64 rng(42);
  for (int retry = 1; retry <= 12; ++retry) {
    Duration ceiling = jobhost::engine::backoff_ceiling(policy, retry);
    policy.jitter = Jitter::none;
    CHECK(jobhost::engine::retry_delay(policy, retry, rng) == ceiling);
    Duration full_min = ceiling, full_max{0}, equal_min = ceiling, equal_max{0};
    for (int i = 0; i < 2000; ++i) {
      policy.jitter = Jitter::full;
      Duration full = jobhost::engine::retry_delay(policy, retry, rng);
      CHECK(full >= 0ms);
      CHECK(full <= ceiling);
      full_min = std::min(full_min, full);
      full_max = std::max(full_max, full);
      policy.jitter = Jitter::equal;
      Duration equal = jobhost::engine::retry_delay(policy, retry, rng);
      CHECK(equal >= ceiling / 2);
      CHECK(equal <= ceiling);
      equal_min = std::min(equal_min, equal);
      equal_max = std::max(equal_max, equal);
    }
    // Spread over the range, not stuck at one end.
    CHECK(full_min < ceiling / 10);
    CHECK(full_max > ceiling * 9 / 10);
    CHECK(equal_min < ceiling * 6 / 10);
    CHECK(equal_max > ceiling * 9 / 10);
  }
  policy.jitter = Jitter::full;
  std::mt19937_64 a(7), b(7);
  for (int i = 1; i < 20; ++i) {
    CHECK(jobhost::engine::retry_delay(policy, i, a) == jobhost::engine::retry_delay(policy, i, b));
  }
}
