// The alert state machine (observe/alert_rules.h), table-driven: sequences
// of fire outcomes and clock ticks in, notices out.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "observe/alert_rules.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace std::chrono_literals;

namespace {

TimePoint at_s(int s) {
  return TimePoint(Duration(std::chrono::seconds(s)));
}

// One step: a fire's last outcome ('S' succeeded, 'F' failed, 'T' timed_out,
// 'C' crashed, 'L' limit_exceeded, 'W' stalled, 'I' interrupted, 'K' skipped,
// 'R' replaced) or a silence check ('.'), each one second after the last.
// Notices come out as "A:failing", "R:failing", "A:silent", "R:silent".
std::vector<std::string> play(const std::string& steps, AlertSettings settings,
                              JobAlertState state = {}) {
  if (!state.silent.window_start) state.silent.window_start = at_s(0);
  std::vector<std::string> out;
  int t = 0;
  for (char c : steps) {
    ++t;
    std::vector<Notice> notices;
    if (c == '.') {
      if (auto n = check_silence("job", state, settings, at_s(t))) notices.push_back(*n);
    } else {
      Outcome o = Outcome::succeeded;
      switch (c) {
        case 'S':
          o = Outcome::succeeded;
          break;
        case 'F':
          o = Outcome::failed;
          break;
        case 'T':
          o = Outcome::timed_out;
          break;
        case 'C':
          o = Outcome::crashed;
          break;
        case 'L':
          o = Outcome::limit_exceeded;
          break;
        case 'W':
          o = Outcome::stalled;
          break;
        case 'I':
          o = Outcome::interrupted;
          break;
        case 'K':
          o = Outcome::skipped;
          break;
        case 'R':
          o = Outcome::replaced;
          break;
        default:
          FAIL("bad step " << c);
      }
      notices = on_fire_end("job", state, settings, o, "boom", at_s(t));
    }
    for (const auto& n : notices) {
      out.push_back(std::string(n.recovered ? "R:" : "A:") + std::string(to_string(n.kind)));
    }
  }
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("alert_after: the N-th consecutive failed fire alerts once, a success recovers",
          "[observe][alerts]") {
  struct Case {
    const char* steps;
    int alert_after;
    V expected;
  };
  const Case cases[] = {
      {"FF", 3, {}},
      {"FFF", 3, {"A:failing"}},
      {"FFFFFF", 3, {"A:failing"}},              // once, not per failure
      {"FFFS", 3, {"A:failing", "R:failing"}},   // one recovery
      {"FFFSS", 3, {"A:failing", "R:failing"}},  // and only one
      {"FFSFF", 3, {}},                          // a success resets the count
      {"FFSFFF", 3, {"A:failing"}},
      {"FFFSFFF", 3, {"A:failing", "R:failing", "A:failing"}},  // alerts again after recovering
      {"TCL", 3, {"A:failing"}},                                // every failure outcome counts
      {"FWF", 3, {"A:failing"}},
      {"FFIF", 3, {"A:failing"}},   // interrupted is neutral: no reset
      {"FFKRF", 3, {"A:failing"}},  // skipped, replaced too
      {"FFFI", 3, {"A:failing"}},   // a neutral outcome does not recover
      {"F", 1, {"A:failing"}},
      {"FFFFF", 0, {}},  // off
      {"S", 3, {}},      // nothing to recover
  };
  for (const auto& c : cases) {
    INFO("steps " << c.steps << ", alert_after " << c.alert_after);
    CHECK(play(c.steps, AlertSettings{c.alert_after, 0ms}) == c.expected);
  }
}

TEST_CASE("expect_success_within: silence past the window alerts once, a success recovers",
          "[observe][alerts]") {
  struct Case {
    const char* steps;
    int window_s;
    V expected;
  };
  const Case cases[] = {
      {"..", 3, {}},
      {"...", 3, {"A:silent"}},    // t=3: 3 s since the window start
      {".....", 3, {"A:silent"}},  // once
      {"...S", 3, {"A:silent", "R:silent"}},
      {"...SS", 3, {"A:silent", "R:silent"}},  // one recovery
      {".S..", 3, {}},                         // a success restarts the window (t=2 -> t=5)
      {".S...", 3, {"A:silent"}},
      {"FFF", 3, {}},             // failures do not check the clock
      {"FFF.", 3, {"A:silent"}},  // whatever the cause: failing,
      {"KKK.", 3, {"A:silent"}},  // skipped,
      {"III.", 3, {"A:silent"}},  // interrupted
      {"...FS", 3, {"A:silent", "R:silent"}},
      {"......", 0, {}},  // off
  };
  for (const auto& c : cases) {
    INFO("steps " << c.steps << ", window " << c.window_s << "s");
    CHECK(play(c.steps, AlertSettings{0, std::chrono::seconds(c.window_s)}) == c.expected);
  }
}

TEST_CASE("both kinds at once, each notified on its own", "[observe][alerts]") {
  const AlertSettings both{2, 3s};
  CHECK(play("FF.S", both) == V{"A:failing", "A:silent", "R:failing", "R:silent"});
  CHECK(play("FS.", both) == V{});
}

TEST_CASE("state read back from the ledger continues where it was", "[observe][alerts]") {
  // A restart in the middle: the state a previous host saved.
  JobAlertState firing;
  firing.failing = KindState{true, at_s(0), at_s(0), 3, std::nullopt};
  CHECK(play("F", AlertSettings{3, 0ms}, firing) == V{});             // no second alert
  CHECK(play("S", AlertSettings{3, 0ms}, firing) == V{"R:failing"});  // the recovery is kept

  JobAlertState counting;
  counting.failing.failed_fires = 2;
  CHECK(play("F", AlertSettings{3, 0ms}, counting) == V{"A:failing"});

  JobAlertState silent_firing;
  silent_firing.silent = KindState{true, at_s(0), at_s(5), 0, at_s(0)};
  CHECK(play("..", AlertSettings{0, 1s}, silent_firing) == V{});
  CHECK(play(".S", AlertSettings{0, 1s}, silent_firing) == V{"R:silent"});
}

TEST_CASE("notice texts name the job, the count and the last message", "[observe][alerts]") {
  JobAlertState state;
  const AlertSettings settings{2, 0ms};
  CHECK(on_fire_end("backup", state, settings, Outcome::failed, "disk full", at_s(1)).empty());
  auto alert = on_fire_end("backup", state, settings, Outcome::timed_out, "slow", at_s(2));
  REQUIRE(alert.size() == 1);
  CHECK(alert[0].message == "job backup failed 2 times in a row: last outcome timed_out: slow");
  CHECK(state.failing.since == at_s(2));
  auto recovery = on_fire_end("backup", state, settings, Outcome::succeeded, "", at_s(3));
  REQUIRE(recovery.size() == 1);
  CHECK(recovery[0].recovered);
  CHECK(recovery[0].message.find("succeeded again after 2 failed fire(s)") != std::string::npos);

  JobAlertState quiet;
  quiet.silent.window_start = at_s(0);
  auto silent = check_silence("report", quiet, AlertSettings{0, 26h}, at_s(26 * 3600));
  REQUIRE(silent.has_value());
  CHECK(silent->message ==
        "job report has not succeeded for 26h (expect_success_within = 26h): no success since "
        "1970-01-01T00:00:00.000Z");
  CHECK(silence_deadline(quiet, AlertSettings{0, 26h}) == std::nullopt);  // firing
}

TEST_CASE("classify_fire: failures, success, and the neutral rest", "[observe][alerts]") {
  CHECK(classify_fire(Outcome::succeeded) == FireResult::success);
  for (Outcome o : {Outcome::failed, Outcome::timed_out, Outcome::stalled, Outcome::crashed,
                    Outcome::limit_exceeded}) {
    CHECK(classify_fire(o) == FireResult::failure);
  }
  for (Outcome o : {Outcome::interrupted, Outcome::skipped, Outcome::replaced}) {
    CHECK(classify_fire(o) == FireResult::neutral);
  }
}
