// bench_next_fire: next_fire_after for 100,000 mixed (expression, zone,
// instant) cases; prints the median and p90 ns per call, overall and per
// class. Prints figures only: it never fails on time.
#include <date/tz.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "schedule/schedule.h"

using namespace jobhost;
using namespace jobhost::schedule;

namespace {

constexpr int kCases = 100'000;

struct Class {
  const char* name;
  std::vector<const char*> expressions;
  std::vector<const char*> zones;
  int weight;  // share of the mix, in percent
};

struct Case {
  std::size_t class_index;
  Cron cron;
  TimePoint after;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  auto at = v.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), at, v.end());
  return *at;
}

}  // namespace

int main() {
  const std::vector<Class> classes = {
      {"dense (every second/minute)",
       {"* * * * * *", "*/10 * * * * *", "* * * * *", "*/5 * * * *", "0 */15 * * * *"},
       {"UTC"},
       25},
      {"typical (daily, weekdays, hourly)",
       {"30 2 * * *", "0 9 * * MON-FRI", "0 0 1 * *", "*/15 9-17 * * 1-5", "0 0 * * SUN", "@hourly",
        "@daily", "0 30 8,12,18 * * *", "0 0 L * *", "0 0 * * FRI#2"},
       {"UTC"},
       35},
      {"sparse (0 0 29 2 *, MON#5 in Feb, ...)",
       {"0 0 29 2 *", "0 0 * 2 MON#5", "0 0 31 12 *", "0 0 L 2 *", "0 0 1 1 *", "0 0 29 2 MON#5"},
       {"UTC"},
       15},
      {"typical, in a DST time zone",
       {"30 2 * * *", "0 9 * * MON-FRI", "*/15 * * * *", "0 0 1 * *", "@hourly", "*/10 2 * * *"},
       {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"},
       25},
  };

  std::mt19937_64 rng(12345);
  std::vector<int> class_of_percent;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    for (int k = 0; k < classes[i].weight; ++k) class_of_percent.push_back(static_cast<int>(i));
  }
  const auto lo = date::sys_days{date::year{2024} / 1 / 1};
  const int span_seconds = 12 * 365 * 86400;  // 2024-2035: within the tzdb's explicit rules
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };

  std::vector<Case> cases;
  cases.reserve(kCases);
  std::vector<double> parse_ns;
  for (int i = 0; i < kCases; ++i) {
    const std::size_t ci =
        static_cast<std::size_t>(class_of_percent[pick(class_of_percent.size())]);
    const Class& c = classes[ci];
    const char* text = c.expressions[pick(c.expressions.size())];
    const auto start = std::chrono::steady_clock::now();
    auto expr = CronExpr::parse(text);
    parse_ns.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
    if (!expr) {
      fmt::print(stderr, "bench: cannot parse {}: {}\n", text, expr.error().message);
      return 1;
    }
    const date::time_zone* zone = *find_zone(c.zones[pick(c.zones.size())]);
    const TimePoint after =
        TimePoint{lo} +
        std::chrono::seconds{std::uniform_int_distribution<int>(0, span_seconds)(rng)} +
        std::chrono::milliseconds{std::uniform_int_distribution<int>(0, 999)(rng)};
    cases.push_back({ci, Cron{*expr, zone}, after});
  }

  // Warm up (loads each zone's data once), then time every call on its own.
  int64_t checksum = 0;
  for (const Case& c : cases)
    checksum += next_fire_after(c.cron, c.after)->time_since_epoch().count() & 1;

  std::vector<double> clock_ns;
  for (int i = 0; i < 10'000; ++i) {
    const auto a = std::chrono::steady_clock::now();
    const auto b = std::chrono::steady_clock::now();
    clock_ns.push_back(std::chrono::duration<double, std::nano>(b - a).count());
  }
  const double overhead = percentile(clock_ns, 0.5);

  std::vector<double> all;
  std::vector<std::vector<double>> per_class(classes.size());
  for (const Case& c : cases) {
    const auto a = std::chrono::steady_clock::now();
    const auto next = next_fire_after(c.cron, c.after);
    const auto b = std::chrono::steady_clock::now();
    checksum += next ? next->time_since_epoch().count() & 0xFF : 0;
    const double ns =
        std::max(0.0, std::chrono::duration<double, std::nano>(b - a).count() - overhead);
    all.push_back(ns);
    per_class[c.class_index].push_back(ns);
  }

  fmt::print("bench_next_fire: {} next_fire_after calls (clock overhead {:.0f} ns subtracted)\n",
             cases.size(), overhead);
  fmt::print("  {:<42} {:>8} {:>10} {:>10}\n", "class", "calls", "median ns", "p90 ns");
  for (std::size_t i = 0; i < classes.size(); ++i) {
    fmt::print("  {:<42} {:>8} {:>10.0f} {:>10.0f}\n", classes[i].name, per_class[i].size(),
               percentile(per_class[i], 0.5), percentile(per_class[i], 0.9));
  }
  fmt::print("  {:<42} {:>8} {:>10.0f} {:>10.0f}\n", "all (mixed)", all.size(),
             percentile(all, 0.5), percentile(all, 0.9));
  fmt::print("  CronExpr::parse (incl. the never-fires check): median {:.0f} ns\n",
             percentile(parse_ns, 0.5));
  fmt::print("  (checksum {})\n", checksum);
  return 0;
}
