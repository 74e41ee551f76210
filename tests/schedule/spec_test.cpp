// Every, At, Manual, describe(Spec), jitter, time zones by name and RFC 3339.
#include <catch2/catch.hpp>

#include <date/tz.h>

#include <map>
#include <set>

#include "schedule/schedule.h"

using namespace jobhost;
using namespace jobhost::schedule;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

namespace {

TimePoint at(const char* text) {
  auto t = parse_rfc3339(text);
  REQUIRE(t);
  return *t;
}

const date::time_zone* zone(const char* name) {
  auto z = find_zone(name);
  REQUIRE(z);
  return *z;
}

}  // namespace

TEST_CASE("every: a fixed grid from the anchor, no drift", "[schedule][every]") {
  const TimePoint anchor = at("2026-01-01T00:00:00Z");
  const Every every{seconds{90}, anchor};
  struct Case {
    TimePoint after;
    TimePoint expected;
  };
  const Case cases[] = {
      {anchor - hours{1}, anchor + seconds{90}},
      {anchor, anchor + seconds{90}},
      {anchor + seconds{1}, anchor + seconds{90}},
      {anchor + seconds{90}, anchor + seconds{180}},
      {anchor + seconds{91}, anchor + seconds{180}},
      {anchor + seconds{3600}, anchor + seconds{3690}},  // 3600 = 40 x 90: on the grid
      {anchor + seconds{3600} - milliseconds{1}, anchor + seconds{3600}},
      // However late a run was, the grid stays: 1 day + 7 s late is still on the grid.
      {anchor + hours{24} + seconds{7}, anchor + seconds{86400 + 90}},
  };
  for (const Case& c : cases) {
    INFO(format_rfc3339(c.after, nullptr));
    CHECK(next_fire_after(Spec{every}, c.after) == c.expected);
  }
  // The n-th fire is exactly anchor + n * period.
  TimePoint t = anchor;
  for (int n = 1; n <= 1000; ++n) t = *next_fire_after(Spec{every}, t);
  CHECK(t == anchor + 1000 * seconds{90});

  CHECK_FALSE(next_fire_after(Spec{Every{Duration::zero(), anchor}}, anchor));
  CHECK_FALSE(next_fire_after(Spec{Every{-seconds{5}, anchor}}, anchor));
  CHECK(next_fire_after(Spec{Every{milliseconds{250}, anchor}}, anchor + milliseconds{600}) ==
        anchor + milliseconds{750});
}

TEST_CASE("at fires once; manual and @reboot never on their own", "[schedule][at]") {
  const TimePoint instant = at("2026-12-01T00:00:00Z");
  CHECK(next_fire_after(Spec{At{instant}}, instant - milliseconds{1}) == instant);
  CHECK(next_fire_after(Spec{At{instant}}, instant - hours{24 * 365}) == instant);
  CHECK_FALSE(next_fire_after(Spec{At{instant}}, instant));
  CHECK_FALSE(next_fire_after(Spec{At{instant}}, instant + seconds{1}));
  CHECK_FALSE(next_fire_after(Spec{Manual{}}, instant));
  CHECK_FALSE(next_fire_after(Spec{Cron{*CronExpr::parse("@reboot"), zone("UTC")}}, instant));
  CHECK_FALSE(next_fire_after(Spec{Cron{}}, instant));  // a default Cron never fires
  // A Cron without a zone is evaluated in UTC.
  CHECK(next_fire_after(Spec{Cron{*CronExpr::parse("30 2 * * *"), nullptr}}, instant) ==
        at("2026-12-01T02:30:00Z"));
}

TEST_CASE("describe(Spec) in words", "[schedule][describe]") {
  struct Case {
    Spec spec;
    const char* words;
  };
  const TimePoint anchor = at("2026-01-01T00:00:00Z");
  const Case cases[] = {
      {Cron{*CronExpr::parse("*/10 * * * * *"), zone("UTC")}, "every 10 seconds (UTC)"},
      {Cron{*CronExpr::parse("30 2 * * *"), zone("Europe/Berlin")},
       "at 02:30 every day (Europe/Berlin)"},
      {Cron{*CronExpr::parse("@reboot"), zone("UTC")}, "at host start"},
      {Cron{*CronExpr::parse("0 9 * * MON-FRI"), nullptr}, "at 09:00 on Monday to Friday"},
      {Every{seconds{90}, anchor}, "every 90s"},
      {Every{minutes{5}, anchor}, "every 5m"},
      {Every{minutes{90}, anchor}, "every 90m"},
      {Every{hours{24}, anchor}, "every 1d"},
      {Every{milliseconds{250}, anchor}, "every 250ms"},
      {Every{seconds{3600 * 100 + 1}, anchor}, "every 4d4h1s"},
      {At{at("2026-12-01T00:00:00Z")}, "once at 2026-12-01T00:00:00Z"},
      {Manual{}, "only when triggered"},
  };
  for (const Case& c : cases) CHECK(describe(c.spec) == c.words);
}

TEST_CASE("jitter: deterministic in (job, slot, seed), uniform in [0, max)", "[schedule][jitter]") {
  const TimePoint slot = at("2026-01-01T00:00:00Z");
  const Duration max = seconds{30};
  CHECK(jitter_for("backup", slot, Duration::zero(), 1) == Duration::zero());
  CHECK(jitter_for("backup", slot, -seconds{1}, 1) == Duration::zero());
  CHECK(jitter_for("backup", slot, milliseconds{1}, 1) == Duration::zero());
  CHECK(jitter_for("backup", slot, max, 7) == jitter_for("backup", slot, max, 7));

  // Over many slots: always in range, every bucket about equally full, and the
  // job name, the slot and the seed each change the value.
  constexpr int kSlots = 100'000;
  constexpr int kBuckets = 10;
  std::array<int, kBuckets> buckets{};
  int same_as_other_job = 0;
  int same_as_other_seed = 0;
  int out_of_range = 0;
  std::set<Duration::rep> distinct;
  for (int i = 0; i < kSlots; ++i) {
    const TimePoint s = slot + i * seconds{10};
    const Duration j = jitter_for("backup", s, max, 42);
    if (j < Duration::zero() || j >= max) {
      ++out_of_range;
      continue;
    }
    ++buckets[static_cast<std::size_t>(j.count() * kBuckets / max.count())];
    same_as_other_job += j == jitter_for("backup2", s, max, 42);
    same_as_other_seed += j == jitter_for("backup", s, max, 43);
    distinct.insert(j.count());
  }
  CHECK(out_of_range == 0);
  for (int count : buckets) {
    CHECK(count > kSlots / kBuckets * 95 / 100);
    CHECK(count < kSlots / kBuckets * 105 / 100);
  }
  CHECK(same_as_other_job < 100);  // chance of equal values is 1 in 30000 per slot
  CHECK(same_as_other_seed < 100);
  CHECK(distinct.size() > 25'000);  // of 30000 possible millisecond values
}

TEST_CASE("find_zone", "[schedule][zone]") {
  CHECK(find_zone("Europe/Berlin").value()->name() == "Europe/Berlin");
  CHECK(find_zone("UTC").has_value());
  auto bad = find_zone("Europe/Berln");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Matchers::Contains("unknown time zone \"Europe/Berln\""));
  auto empty = find_zone("");
  REQUIRE_FALSE(empty);
  CHECK_THAT(empty.error().message, Catch::Matchers::Contains("empty time zone"));
}

TEST_CASE("RFC 3339: parse", "[schedule][rfc3339]") {
  const TimePoint base = TimePoint{date::sys_days{date::year{2026} / 3 / 29}};
  struct Case {
    const char* text;
    TimePoint expected;
  };
  const Case valid[] = {
      {"2026-03-29T00:00:00Z", base},
      {"2026-03-29T03:00:00+02:00", base + hours{1}},
      {"2026-03-29T03:00:00.250Z", base + hours{3} + milliseconds{250}},
      {"2026-03-29T03:00:00.5Z", base + hours{3} + milliseconds{500}},
      {"2026-03-29T03:00:00.123456789Z", base + hours{3} + milliseconds{123}},
      {"2026-03-29t03:00:00z", base + hours{3}},
      {"2026-03-29 03:00:00Z", base + hours{3}},
      {"2026-03-29T00:00:00-05:30", base + hours{5} + minutes{30}},
      {"2026-03-29T01:00:00+01:00", base},
      {"1969-12-31T23:59:59Z", TimePoint{} - seconds{1}},
  };
  for (const Case& c : valid) {
    INFO(c.text);
    auto t = parse_rfc3339(c.text);
    REQUIRE(t);
    CHECK(*t == c.expected);
  }
  struct Bad {
    const char* text;
    const char* message_part;
  };
  const Bad invalid[] = {
      {"", "YYYY-MM-DD"},
      {"2026-02-30T00:00:00Z", "no such date"},
      {"2026-13-01T00:00:00Z", "no such date"},
      {"2026-12-01T00:00:00", "add 'Z' for UTC"},
      {"2026-12-01", "a 'T' and a time"},
      {"2026-12-01T24:00:00Z", "no such time of day"},
      {"2026-12-01T00:00:60Z", "no such time of day"},
      {"2026-12-01T00:00Z", "HH:MM:SS"},
      {"2026-12-01T00:00:00+2:00", "+HH:MM"},
      {"2026-12-01T00:00:00Zjunk", "unexpected text"},
      {"2026-12-01T00:00:00.Z", "followed by digits"},
      {"26-12-01T00:00:00Z", "YYYY-MM-DD"},
  };
  for (const Bad& c : invalid) {
    INFO(c.text);
    auto t = parse_rfc3339(c.text);
    REQUIRE_FALSE(t);
    CHECK_THAT(t.error().message, Catch::Matchers::Contains(c.message_part));
    CHECK_THAT(t.error().message, Catch::Matchers::Contains("RFC 3339"));
  }
}

TEST_CASE("RFC 3339: format with the zone's offset", "[schedule][rfc3339]") {
  const TimePoint t = at("2026-03-29T01:00:00Z");
  struct Case {
    TimePoint t;
    const char* zone;  // nullptr: no zone
    const char* expected;
  };
  const Case cases[] = {
      {t, "Europe/Berlin", "2026-03-29T03:00:00+02:00"},
      {t - seconds{1}, "Europe/Berlin", "2026-03-29T01:59:59+01:00"},
      {t, nullptr, "2026-03-29T01:00:00Z"},
      {t, "UTC", "2026-03-29T01:00:00Z"},
      {t + milliseconds{250}, "UTC", "2026-03-29T01:00:00.250Z"},
      {t + milliseconds{7}, nullptr, "2026-03-29T01:00:00.007Z"},
      {t, "Asia/Kolkata", "2026-03-29T06:30:00+05:30"},
      {t, "America/New_York", "2026-03-28T21:00:00-04:00"},
      {at("2026-01-15T12:00:00Z"), "Europe/London", "2026-01-15T12:00:00+00:00"},
      {at("2026-04-04T15:00:00Z"), "Australia/Lord_Howe", "2026-04-05T01:30:00+10:30"},
      {TimePoint{} - seconds{1}, nullptr, "1969-12-31T23:59:59Z"},
  };
  for (const Case& c : cases) {
    CHECK(format_rfc3339(c.t, c.zone ? zone(c.zone) : nullptr) == c.expected);
    CHECK(parse_rfc3339(c.expected).value() == c.t);  // round trip
  }
}
