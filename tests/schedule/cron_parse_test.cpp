// Parsing: what is accepted, what is rejected (with the column at fault), and
// the expression in words.
#include <catch2/catch.hpp>

#include "schedule/schedule_test_util.h"

using jobhost::schedule::CronExpr;

namespace {

struct ErrorCase {
  const char* text;
  std::size_t column;
  const char* message_part;
};

}  // namespace

TEST_CASE("cron: valid expressions parse", "[schedule][parse]") {
  const char* valid[] = {
      "* * * * *",       "* * * * * *",    "*/15 * * * *",    "10-50/10 * * * *",
      "5/10 * * * *",    "0 0 1,15 * *",   "0 0 * JAN-MAR *", "0 0 * jan,Feb,mAR *",
      "0 0 * * MON-FRI", "0 0 * * sun",    "0 0 * * 0",       "0 0 * * 7",
      "0 0 * * 5-7",     "0 0 * * 0-7",    "0 0 L * *",       "0 0 LW * *",
      "0 0 15W * *",     "0 0 1W,L * *",   "0 0 * * FRI#2",   "0 0 * * 5#5",
      "0 0 * * 5L",      "0 0 * * friL",   "0 0 ? * MON",     "0 0 1 * ?",
      "@yearly",         "@annually",      "@monthly",        "@weekly",
      "@daily",          "@midnight",      "@hourly",         "@reboot",
      "@DAILY",          "  0 0 * * *  ",  "0\t0\t*\t*\t*",   "59 59 23 31 12 *",
      "0 0 29 2 *",      "0 0 L 2 *",      "0 0 * 2 MON#5",   "0 0 30 1,2 *",
      "*/59 * * * * *",  "0 0 1-31/2 * *", "00 05 * * *",     "0 0 * * 1-7/2",
  };
  for (const char* text : valid) {
    INFO(text);
    auto parsed = CronExpr::parse(text);
    CHECK(parsed.has_value());
    if (!parsed) UNSCOPED_INFO(parsed.error().message);
  }
}

TEST_CASE("cron: errors name the field and point at the character", "[schedule][parse]") {
  const ErrorCase cases[] = {
      {"", 0, "empty schedule"},
      {"   ", 0, "empty schedule"},
      {"* * * *", 7, "got 4"},
      {"* * * * * * *", 12, "got 7"},
      {"60 * * * *", 0, "minute field: 60 is out of range"},
      {"* 24 * * *", 2, "hour field: 24 is out of range"},
      {"* * 0 * *", 4, "day-of-month field: 0 is out of range"},
      {"* * 32 * *", 4, "day-of-month field: 32"},
      {"* * * 13 *", 6, "month field: 13"},
      {"* * * 0 *", 6, "month field: 0"},
      {"* * * * 8", 8, "day-of-week field: 8"},
      {"60 * * * * *", 0, "second field: 60"},
      {"0 60 * * * *", 2, "minute field: 60"},
      {"  60 * * * *", 2, "minute field"},
      {"*/0 * * * *", 2, "step 0"},
      {"1-2-3 * * * *", 3, "unexpected character '-'"},
      {"*/5-10 * * * *", 3, "unexpected character '-'"},
      {"*-5 * * * *", 1, "'*' cannot start a range"},
      {"5-1 * * * *", 2, "reversed"},
      {"1,,2 * * * *", 2, "empty list item"},
      {"1, * * * *", 1, "list ends with ','"},
      {"* * * * 1-", 10, "expected a value"},
      {"99999 * * * *", 0, "number too large"},
      {"a * * * *", 0, "only allowed in the month and day-of-week"},
      {"MON * * * *", 0, "only allowed in the month and day-of-week"},
      {"* * * JANUARY *", 6, "unknown month name 'JANUARY'"},
      {"* * * * FUNDAY", 8, "unknown day name 'FUNDAY'"},
      {"* * * * * 1.5", 11, "unexpected character '.'"},
      {"? * * * *", 0, "'?' is only allowed"},
      {"* * * * L", 8, "needs a weekday before it"},
      {"* * L-3 * *", 4, "only 'L' (last day) and 'LW'"},
      {"* * 1-5W * *", 5, "'W' takes a single day"},
      {"* * W * *", 4, "expected a value"},
      {"0 0 */2 * &", 11, "'&' must be followed by the field"},
      {"0 0 */2 * &&1", 11, "unexpected character '&'"},
      {"0 0 & * 1", 4, "unexpected character '&'"},
      {"0 0 */2 * &FUNDAY", 11, "unknown day name 'FUNDAY'"},
      {"* * * * FRI#6", 12, "followed by 1-5"},
      {"* * * * FRI#", 12, "followed by 1-5"},
      {"* * * * #2", 8, "'#' needs a weekday"},
      {"* * * * 1-3#2", 9, "'#' takes a single weekday"},
      {"@daly", 0, "unknown macro '@daly'"},
      {"@daily 5", 7, "takes no fields"},
      {"0 0 30 2 *", 4, "never fires: day-of-month '30' never occurs in FEB"},
      {"0 0 31 4 *", 4, "never occurs in APR"},
      {"0 0 31 2,4,6,9,11 *", 4, "never occurs in FEB,APR,JUN,SEP,NOV"},
      {"0 0 31 APR,JUN *", 4, "never fires"},
      {"0 0 30W 2 *", 4, "never fires"},
      {"0 0 30,31 2 *", 4, "never fires"},
      {"0 0 0 30 feb *", 6, "never fires"},
  };
  for (const ErrorCase& c : cases) {
    INFO("expression: \"" << c.text << "\"");
    auto parsed = CronExpr::parse(c.text);
    REQUIRE_FALSE(parsed.has_value());
    INFO("message: " << parsed.error().message);
    CHECK(parsed.error().column == c.column);
    CHECK_THAT(parsed.error().message, Catch::Matchers::Contains(c.message_part));
  }
}

TEST_CASE("cron: a step wider than its range is accepted with a warning, as cron does",
          "[schedule][parse]") {
  // Vixie cron and cronie take the range's first value; the warning says so
  // and points at the step.
  struct Case {
    const char* text;
    std::size_t column;
    const char* message_part;
    std::vector<std::string> fires;  // after 2026-03-01T00:00:00Z, UTC
  };
  const Case cases[] = {
      {"0 0 1 */15 *",
       8,
       "month field: step 15 is larger than the range 1-12, so it selects only 1",
       {"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
      {"36-38/3 * * * *",
       6,
       "minute field: step 3 is larger than the range 36-38, so it selects only 36",
       {"2026-03-01T00:36:00Z", "2026-03-01T01:36:00Z"}},
      {"*/60 * * * * *",
       2,
       "second field: step 60 is larger than the range 0-59, so it selects only 0; write that "
       "value instead",
       {"2026-03-01T00:01:00Z", "2026-03-01T00:02:00Z"}},
      {"0 0-30/31 * * * *",
       7,
       "step 31 is larger than the range 0-30",
       {"2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"}},
  };
  for (const Case& c : cases) {
    INFO("expression: \"" << c.text << "\"");
    auto parsed = CronExpr::parse(c.text);
    REQUIRE(parsed.has_value());
    REQUIRE(parsed->warnings().size() == 1);
    CHECK(parsed->warnings()[0].column == c.column);
    CHECK_THAT(parsed->warnings()[0].message, Catch::Matchers::Contains(c.message_part));
    CHECK(jobhost::schedule::test::next_fires(c.text, "UTC", "2026-03-01T00:00:00Z",
                                              c.fires.size()) == c.fires);
  }
  // A step that fits gives no warning, nor does a step from a single value.
  for (const char* text :
       {"*/15 * * * *", "0 0 1 */6 *", "36-38/2 * * * *", "59/10 * * * *", "0 0 * * 1-7/2"}) {
    INFO(text);
    auto parsed = CronExpr::parse(text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->warnings().empty());
  }
}

TEST_CASE("cron: @reboot and real-time hour fields", "[schedule][parse]") {
  struct Case {
    const char* text;
    bool reboot;
    bool real_time;
  };
  const Case cases[] = {
      {"@reboot", true, false},         {"@REBOOT", true, false},
      {"* * * * *", false, true},       {"0 */2 * * *", false, true},
      {"@hourly", false, true},         {"0 2 * * *", false, false},
      {"@daily", false, false},         {"0 0 2-23/2 * * *", false, false},
      {"0 0 0-23 * * *", false, false},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto parsed = CronExpr::parse(c.text);
    REQUIRE(parsed);
    CHECK(parsed->is_reboot() == c.reboot);
    CHECK(parsed->follows_real_time() == c.real_time);
  }
  CHECK(CronExpr::parse("  0 0 * * *  ")->text() == "0 0 * * *");
}

TEST_CASE("cron: describe() in words", "[schedule][describe]") {
  struct Case {
    const char* text;
    const char* words;
  };
  const Case cases[] = {
      {"* * * * * *", "every second"},
      {"*/10 * * * * *", "every 10 seconds"},
      {"5/10 * * * * *", "every 10 seconds from second 5"},
      {"* * * * *", "every minute"},
      {"*/15 * * * *", "every 15 minutes"},
      {"10-50/10 * * * *", "every 10 minutes from minute 10 to 50"},
      {"0 * * * *", "every hour"},
      {"30 * * * *", "every hour at minute 30"},
      {"0 */2 * * *", "every 2 hours"},
      {"30 2 * * *", "at 02:30 every day"},
      {"15 30 2 * * *", "at 02:30:15 every day"},
      {"0 0 8,12,18 * * *", "at 08:00, 12:00 and 18:00 every day"},
      {"0 9 * * MON-FRI", "at 09:00 on Monday to Friday"},
      {"0 9-17 * * *", "at minute 0 past hours 9 to 17"},
      {"0 0 1 * *", "at 00:00 on day 1 of the month"},
      {"0 0 29 2 *", "at 00:00 on February 29"},
      {"0 0 L * *", "at 00:00 on the last day of the month"},
      {"0 0 LW * *", "at 00:00 on the last weekday of the month"},
      {"0 0 15W * *", "at 00:00 on the weekday nearest day 15 of the month"},
      {"0 0 * * FRI#2", "at 00:00 on the second Friday"},
      {"0 0 * * 5L", "at 00:00 on the last Friday of the month"},
      {"0 0 1,15 * MON", "at 00:00 on days 1 and 15 of the month or on Monday"},
      {"0 0 13 * &FRI", "at 00:00 on day 13 of the month if also on Friday"},
      {"0 0 * * &MON", "at 00:00 on Monday"},
      {"0 0 * * 1-7/2", "at 00:00 on Monday, Wednesday, Friday and Sunday"},
      {"0 0 1 1,4,7,10 *", "at 00:00 on day 1 of the month in January, April, July and October"},
      {"@daily", "at 00:00 every day"},
      {"@weekly", "at 00:00 on Sunday"},
      {"@yearly", "at 00:00 on January 1"},
      {"@hourly", "every hour"},
      {"@reboot", "at host start"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto parsed = CronExpr::parse(c.text);
    REQUIRE(parsed);
    CHECK(parsed->describe() == c.words);
  }
  CHECK(CronExpr{}.describe() == "never");
}
