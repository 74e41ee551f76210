// Helpers for the schedule tables: the next fires of an expression as RFC 3339 text.
#pragma once

#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace jobhost::schedule::test {

// The next `count` fires of `expr` in `zone` after `from`, each formatted in
// the zone; "error: ..." when the expression, zone or instant is invalid.
inline std::vector<std::string> next_fires(const char* expr, const char* zone, const char* from,
                                           std::size_t count) {
  auto parsed = CronExpr::parse(expr);
  if (!parsed) return {"error: " + parsed.error().message};
  auto tz = find_zone(zone);
  if (!tz) return {"error: " + tz.error().message};
  auto t = parse_rfc3339(from);
  if (!t) return {"error: " + t.error().message};
  const Cron cron{*parsed, *tz};
  std::vector<std::string> out;
  TimePoint at = *t;
  for (std::size_t i = 0; i < count; ++i) {
    auto next = next_fire_after(cron, at);
    if (!next) {
      out.push_back("never");
      break;
    }
    if (*next <= at) {
      out.push_back("not after " + format_rfc3339(at, *tz));
      break;
    }
    out.push_back(format_rfc3339(*next, *tz));
    at = *next;
  }
  return out;
}

struct FireCase {
  const char* expr;
  const char* zone;
  const char* from;
  std::vector<std::string> fires;  // the next fires, in order
};

}  // namespace jobhost::schedule::test
