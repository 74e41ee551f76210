#include "ledger/records.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace jobhost;
using namespace jobhost::ledger;

namespace {
TimePoint at_ms(int64_t ms) {
  return TimePoint(Duration(ms));
}
}  // namespace

TEST_CASE("trigger names round-trip", "[ledger][records]") {
  for (auto t : {Trigger::schedule, Trigger::manual, Trigger::retry, Trigger::catchup,
                 Trigger::replay, Trigger::reboot}) {
    CHECK(trigger_from_string(to_string(t)) == t);
  }
  CHECK(to_string(Trigger::catchup) == "catchup");
  CHECK_FALSE(trigger_from_string("cron"));
}

TEST_CASE("format_utc is RFC 3339 UTC with milliseconds", "[ledger][records]") {
  struct Case {
    int64_t ms;
    const char* text;
  };
  for (auto c :
       {Case{0, "1970-01-01T00:00:00.000Z"}, Case{1764403200123, "2025-11-29T08:00:00.123Z"},
        Case{1709251199999, "2024-02-29T23:59:59.999Z"}, Case{-1, "1969-12-31T23:59:59.999Z"}}) {
    CHECK(format_utc(at_ms(c.ms)) == c.text);
  }
}

TEST_CASE("to_json gives the history --json fields", "[ledger][records]") {
  RunRecord run;
  run.run_id = "01KB7A0G3V041061050R3GG28A";
  run.job = "backup";
  run.trace_id = "01KB7A0G3VVTPVXVR024H36H2N";
  run.attempt = 2;
  run.trigger = Trigger::retry;
  run.scheduled_for = at_ms(1764403200000);
  run.started_at = at_ms(1764403200123);

  SECTION("a running run has nulls where nothing is known yet") {
    nlohmann::json j = run;
    for (const char* key : {"run_id", "job", "trace_id", "attempt", "scheduled_for", "started_at",
                            "finished_at", "duration_ms", "outcome", "exit_code", "signal",
                            "message", "plugin", "plugin_version", "plugin_sha256"}) {
      INFO(key);
      CHECK(j.contains(key));
    }
    CHECK(j["finished_at"].is_null());
    CHECK(j["outcome"].is_null());
    CHECK(j["plugin_sha256"].is_null());
    CHECK(j["scheduled_for"] == "2025-11-29T08:00:00.000Z");
    CHECK(j["attempt"] == 2);
    CHECK(j["trigger"] == "retry");
    CHECK_FALSE(j.contains("output_tail"));
  }
  SECTION("a finished run, with bytes that are not UTF-8 in its message") {
    run.finished_at = at_ms(1764403201123);
    run.outcome = Outcome::crashed;
    run.signal = "SIGSEGV";
    run.duration = Duration(1000);
    run.plugin = "hello";
    run.message = std::string("bad \xff\xfe byte");
    nlohmann::json j = run;
    CHECK(j["outcome"] == "crashed");
    CHECK(j["signal"] == "SIGSEGV");
    CHECK(j["duration_ms"] == 1000);
    CHECK(j["exit_code"].is_null());
    CHECK(j["message"] == "bad \xEF\xBF\xBD\xEF\xBF\xBD byte");
    CHECK_NOTHROW(j.dump());
  }
}

TEST_CASE("to_json of job stats", "[ledger][records]") {
  JobStats s;
  s.job = "hello";
  s.success_rate = 0.75;
  s.mean_duration = Duration(150);
  s.window_runs = 100;
  nlohmann::json j = s;
  CHECK(j["success_rate"] == 0.75);
  CHECK(j["mean_duration_ms"] == 150);
  CHECK(j["last_outcome"].is_null());
}
