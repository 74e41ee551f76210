// Fuzz target: schedule text as a config file gives it. Every input is tried
// as a cron expression of a job with a fixed name, for H (parse; if it
// parses: describe, warnings, the resolved expression parses without a name
// to the same words, and the next fires in UTC and in a zone with DST, each
// strictly later than the last), as an RFC 3339 instant (parse, then format
// and parse back to the same instant, within the minute in a zone) and as a
// time zone name.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "schedule/schedule.h"

using namespace jobhost;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const date::time_zone* berlin = *schedule::find_zone("Europe/Berlin");

  if (auto expr = schedule::CronExpr::parse(text, "fuzz-job")) {
    const std::string words = expr->describe();
    for (const auto& warning : expr->warnings()) check(warning.column <= text.size());
    // H written out: an expression of its own, meaning the same.
    auto resolved = schedule::CronExpr::parse(expr->resolved());
    check(resolved.has_value() && resolved->describe() == words);
    for (const date::time_zone* zone : {static_cast<const date::time_zone*>(nullptr), berlin}) {
      schedule::Cron cron{*expr, zone};
      (void)schedule::describe(schedule::Spec(cron));
      // 2026-03-29T00:30:00Z, before a DST change in Berlin.
      TimePoint after = TimePoint(std::chrono::seconds(1774744200));
      for (int i = 0; i < 4; ++i) {
        const auto next = schedule::next_fire_after(cron, after);
        if (!next) break;
        check(*next > after);
        after = *next;
      }
    }
  } else {
    check(expr.error().column <= text.size());
    check(!expr.error().message.empty());
  }

  if (auto instant = schedule::parse_rfc3339(text)) {
    for (const date::time_zone* zone : {static_cast<const date::time_zone*>(nullptr), berlin}) {
      const std::string again = schedule::format_rfc3339(*instant, zone);
      auto back = schedule::parse_rfc3339(again);
      // An offset has whole minutes: local mean time (Berlin before 1893,
      // +00:53:28) cannot be written exactly.
      check(back.has_value() && (zone == nullptr ? *back == *instant
                                                 : *back - *instant < std::chrono::minutes(1) &&
                                                       *instant - *back < std::chrono::minutes(1)));
    }
  }

  (void)schedule::find_zone(text);
  return 0;
}
