// Helpers for the ledger tests: the temp directory and run records.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "ledger/ids.h"
#include "ledger/sqlite_store.h"
#include "support/temp_dir.h"
#include "support/test_ledger.h"

namespace jobhost::ledger::testing {

using jobhost::testing::TempDir;
using jobhost::testing::TestLedger;

inline TimePoint at_ms(int64_t ms) {
  return TimePoint(Duration(ms));
}

// 2026-11-29T08:00:00Z, a base for test times.
inline constexpr int64_t kBase = 1795939200000;

inline std::unique_ptr<Store> open_store(
    const std::filesystem::path& file, config::Durability durability = config::Durability::normal) {
  auto store = open_sqlite_store(file, durability);
  INFO((store ? std::string() : store.error().message));
  REQUIRE(store.has_value());
  return std::move(*store);
}

// A first attempt of slot (job, kBase + slot_ms), started `started_ms` after kBase.
inline RunStart make_start(std::string job, int64_t slot_ms, int64_t started_ms = 0,
                           Trigger trigger = Trigger::schedule) {
  RunStart r;
  r.started_at = at_ms(kBase + started_ms);
  r.run_id = new_id(r.started_at);
  r.trace_id = new_id(r.started_at);
  r.job = std::move(job);
  r.scheduled_for = at_ms(kBase + slot_ms);
  r.trigger = trigger;
  r.plugin = "hello";
  r.plugin_version = "1.0.0";
  r.plugin_sha256 = std::string(64, 'a');
  r.definition_hash = "def1";
  r.host_pid = 4242;
  return r;
}

inline RunEnd make_end(const RunStart& start, Outcome outcome, int64_t duration_ms = 10) {
  RunEnd e;
  e.run_id = start.run_id;
  e.finished_at = start.started_at + Duration(duration_ms);
  e.outcome = outcome;
  e.duration = Duration(duration_ms);
  e.exit_code = outcome == Outcome::succeeded ? 0 : 1;
  e.message = std::string(to_string(outcome));
  return e;
}

inline SkipRecord make_skip(std::string job, int64_t slot_ms, std::string reason,
                            Trigger trigger = Trigger::schedule) {
  SkipRecord s;
  s.at = at_ms(kBase + slot_ms);
  s.run_id = new_id(s.at);
  s.trace_id = new_id(s.at);
  s.job = std::move(job);
  s.scheduled_for = at_ms(kBase + slot_ms);
  s.trigger = trigger;
  s.reason = std::move(reason);
  s.host_pid = 4242;
  return s;
}

}  // namespace jobhost::ledger::testing
