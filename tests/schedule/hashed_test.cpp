// Cron H: values derived from the job's name. Pinned per name and form, always
// in range, stable, independent between fields, and even over many jobs.
#include <catch2/catch.hpp>

#include <array>
#include <charconv>
#include <string>
#include <vector>

#include "schedule/schedule_test_util.h"

using namespace jobhost;
using jobhost::schedule::CronExpr;

namespace {

std::vector<int> numbers_of(const std::string& resolved) {
  std::vector<int> out;
  std::size_t i = 0;
  while (i < resolved.size()) {
    const std::size_t end = std::min(resolved.find(' ', i), resolved.size());
    int v = -1;
    std::from_chars(resolved.data() + i, resolved.data() + end, v);
    out.push_back(v);
    i = end + 1;
  }
  return out;
}

std::string job_name(int i) {
  return "job-" + std::to_string(i);
}

}  // namespace

TEST_CASE("cron H: the values for a name are fixed (pinned once, never to change)",
          "[schedule][hashed]") {
  // A changed value here moves the jobs of every config that uses H: only
  // ever with a note in the changelog.
  struct Case {
    const char* job;
    const char* text;
    const char* resolved;
  };
  const Case cases[] = {
      {"backup", "H * * * *", "6 * * * *"},
      {"backup", "H(0-29) 2 * * *", "3 2 * * *"},
      {"backup", "H/15 * * * *", "1/15 * * * *"},
      {"backup", "H(0-29)/10 H(9-17) * * *", "1-29/10 12 * * *"},
      {"backup", "H H H * * *", "31 6 10 * * *"},
      {"backup", "0 0 H/7 * H", "0 0 6-28/7 * 3"},
      {"backup", "0 0 * * H(MON-FRI)", "0 0 * * 3"},
      {"report", "H * * * *", "0 * * * *"},
      {"report", "H/15 * * * *", "0/15 * * * *"},
      {"report", "0 0 H H * *", "0 0 8 17 * *"},
      {"job-0", "H * * * *", "51 * * * *"},
      {"job-0", "H(0-29) 2 * * *", "25 2 * * *"},
      {"job-0", "H/15 * * * *", "12/15 * * * *"},
      {"job-1", "H * * * *", "32 * * * *"},
      {"job-1", "0 0 H/7 * H", "0 0 4-28/7 * 5"},
      {"nightly db dump", "H H H * * *", "38 52 15 * * *"},
      {"café", "H * * * *", "9 * * * *"},
      // A list keeps its other items; blanks between fields stay as written.
      {"backup", "H,30  2 * * *", "6,30  2 * * *"},
      // Without H, the name changes nothing.
      {"backup", "0 3 * * *", "0 3 * * *"},
      {"backup", "@hourly", "@hourly"},
  };
  for (const Case& c : cases) {
    INFO(c.job << ": " << c.text);
    auto parsed = CronExpr::parse(c.text, c.job);
    REQUIRE(parsed.has_value());
    CHECK(parsed->resolved() == c.resolved);
    CHECK(parsed->text() == c.text);
  }
  // describe() speaks of the resolved values.
  CHECK(CronExpr::parse("H(0-29) 2 * * *", "backup")->describe() == "at 02:03 every day");
  CHECK(CronExpr::parse("H/15 * * * *", "backup")->describe() == "every 15 minutes from minute 1");
}

TEST_CASE("cron H: fires as its resolved expression does", "[schedule][hashed]") {
  const char* forms[] = {"H * * * *",        "H(0-29) 2 * * *",       "H/15 * * * *",
                         "H H H * * *",      "H(10-40)/7 H/3 * * *",  "0 0 H/7 * H",
                         "0 0 0 H * H(1-7)", "H H(9-17) * * MON-FRI", "0 0 H(29-31) * *",
                         "H H * H/4 *"};
  const TimePoint from = *schedule::parse_rfc3339("2026-01-01T00:00:00Z");
  const date::time_zone* berlin = *schedule::find_zone("Europe/Berlin");
  for (int i = 0; i < 100; ++i) {
    for (const char* form : forms) {
      INFO(job_name(i) << ": " << form);
      auto hashed = CronExpr::parse(form, job_name(i));
      REQUIRE(hashed.has_value());
      // The resolved text is an expression of its own, without H.
      auto resolved = CronExpr::parse(hashed->resolved());
      REQUIRE(resolved.has_value());
      CHECK(resolved->describe() == hashed->describe());
      const schedule::Cron a{*hashed, berlin};
      const schedule::Cron b{*resolved, berlin};
      TimePoint t = from;
      for (int n = 0; n < 5; ++n) {
        const auto next = schedule::next_fire_after(a, t);
        REQUIRE(next.has_value());
        CHECK(next == schedule::next_fire_after(b, t));
        t = *next;
      }
    }
  }
}

TEST_CASE("cron H: in range, stable across calls, each field on its own", "[schedule][hashed]") {
  // The range H picks from in each field of "H H H H H H": day-of-month stops
  // at 28 (every month has it), day-of-week at 6 (7 is Sunday again).
  constexpr std::array<std::pair<int, int>, 6> kRange = {
      {{0, 59}, {0, 59}, {0, 23}, {1, 28}, {1, 12}, {0, 6}}};
  constexpr int kJobs = 1000;
  int out_of_range = 0;
  int unstable = 0;
  int second_is_minute = 0;
  int hour_follows_minute = 0;
  int month_follows_day = 0;
  std::array<std::array<bool, 60>, 6> seen{};
  for (int i = 0; i < kJobs; ++i) {
    const std::string name = job_name(i);
    const std::string resolved = CronExpr::parse("H H H H H H", name)->resolved();
    unstable += resolved != CronExpr::parse("H H H H H H", name)->resolved();
    const std::vector<int> v = numbers_of(resolved);
    REQUIRE(v.size() == 6);
    for (std::size_t f = 0; f < 6; ++f) {
      if (v[f] < kRange[f].first || v[f] > kRange[f].second) {
        ++out_of_range;
        continue;
      }
      seen[f][static_cast<std::size_t>(v[f])] = true;
    }
    // Fields hashed alike would give these for nearly every job; independent
    // ones for about 1 in 60, 1 in 24 and 1 in 12.
    second_is_minute += v[0] == v[1];
    hour_follows_minute += v[2] == v[1] * 24 / 60;
    month_follows_day += v[4] == 1 + (v[3] - 1) * 12 / 28;
  }
  CHECK(out_of_range == 0);
  CHECK(unstable == 0);
  CHECK(second_is_minute < kJobs / 60 * 3);
  CHECK(hour_follows_minute < kJobs / 24 * 3);
  CHECK(month_follows_day < kJobs / 12 * 3);
  // Over 1,000 names every value of every range comes up.
  for (std::size_t f = 0; f < 6; ++f) {
    for (int v = kRange[f].first; v <= kRange[f].second; ++v) {
      INFO("field " << f << " value " << v);
      CHECK(seen[f][static_cast<std::size_t>(v)]);
    }
  }
}

TEST_CASE("cron H: 1,000 hourly jobs spread over the hour", "[schedule][hashed]") {
  constexpr int kJobs = 1000;
  const TimePoint hour = *schedule::parse_rfc3339("2026-01-01T00:00:00Z");
  std::array<int, 60> per_minute{};
  int outside = 0;
  for (int i = 0; i < kJobs; ++i) {
    auto expr = CronExpr::parse("H * * * *", job_name(i));
    REQUIRE(expr.has_value());
    // The minute the job fires at in the first hour, not just its text.
    const auto fire =
        schedule::next_fire_after(schedule::Cron{*expr, nullptr}, hour - std::chrono::seconds(1));
    REQUIRE(fire.has_value());
    const auto minute = std::chrono::duration_cast<std::chrono::minutes>(*fire - hour).count();
    if (minute < 0 || minute > 59 || *fire - hour != std::chrono::minutes(minute)) {
      ++outside;
      continue;
    }
    CHECK(expr->resolved() == std::to_string(minute) + " * * * *");
    ++per_minute[static_cast<std::size_t>(minute)];
  }
  CHECK(outside == 0);
  const double mean = kJobs / 60.0;
  for (std::size_t m = 0; m < per_minute.size(); ++m) {
    INFO("minute " << m << ": " << per_minute[m] << " jobs");
    CHECK(per_minute[m] <= 2 * mean);
    CHECK(per_minute[m] > 0);
  }
}

TEST_CASE("cron H: bad forms are errors at the character at fault", "[schedule][hashed]") {
  struct Case {
    const char* text;
    std::size_t column;
    const char* message_part;
  };
  const Case cases[] = {
      {"H(30-10) * * * *", 5, "minute field: range H(30-10) is reversed; write H(10-30)"},
      {"H/0 * * * *", 2, "minute field: step 0 is not allowed"},
      {"H(0-99) * * * *", 4, "minute field: 99 is out of range (0-59)"},
      {"* H(0-24) * * *", 6, "hour field: 24 is out of range"},
      {"0 0 H(0-5) * *", 6, "day-of-month field: 0 is out of range"},
      {"H/61 * * * *", 2, "step 61 is larger than the range 0-59 that H picks from (at most 60)"},
      {"0 0 H/29 * *", 6, "step 29 is larger than the range 1-28"},
      {"0 0 * * H/8", 10, "day-of-week field: step 8 is larger than the range 0-6"},
      {"H(10-20)/12 * * * *", 9, "step 12 is larger than the range 10-20"},
      {"H(5) * * * *", 3, "H( takes a range and a ')'"},
      {"H(5-10 * * * *", 6, "H( takes a range and a ')'"},
      {"H() * * * *", 2, "unexpected character ')'"},
      {"Hx * * * *", 1, "unexpected character 'x' (H is written H, H(a-b), H/n or H(a-b)/n)"},
      {"H-5 * * * *", 1, "unexpected character '-'"},
      {"H/ * * * *", 2, "'/' must be followed by a step"},
      {"1,H( * * * *", 4, "expected a value"},
      {"0 0 HW * *", 5, "unexpected character 'W'"},
      {"0 0 * * H#2", 9, "unexpected character '#'"},
      {"0 0 H(30-31) 2 *", 4,
       "never fires: day-of-month 'H(30-31)' (here 31) never occurs in FEB (month field '2')"},
  };
  for (const Case& c : cases) {
    INFO("expression: \"" << c.text << "\"");
    auto parsed = CronExpr::parse(c.text, "backup");
    REQUIRE_FALSE(parsed.has_value());
    INFO("message: " << parsed.error().message);
    CHECK(parsed.error().column == c.column);
    CHECK_THAT(parsed.error().message, Catch::Matchers::Contains(c.message_part));
  }
  // Without a name H has nothing to derive from; the error points at the H.
  auto nameless = CronExpr::parse("0 H(0-11) * * *");
  REQUIRE_FALSE(nameless.has_value());
  CHECK(nameless.error().column == 2);
  CHECK_THAT(nameless.error().message,
             Catch::Matchers::Contains("hour field: H stands for a value derived from the job's "
                                       "name, and there is no job name here"));
}
