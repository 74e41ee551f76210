// The records of one run, built in one place: the fire that starts it, the
// ledger's claim (RunStart), what the executor is given (RunRequest) and the
// ledger's end (RunEnd). The engine's runs and the CLI's `run-once` and
// `replay` all build them here, so a field added to a run is added once.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "catalog/catalog.h"
#include "common/time.h"
#include "config/config.h"
#include "exec/executor.h"
#include "ledger/records.h"

namespace jobhost::engine {

// One fire waiting for its time or for a free run slot.
struct Fire {
  TimePoint due;  // when it may start: the slot plus jitter, or the retry time
  std::string job;
  TimePoint slot;  // the scheduled_for of the fire: what the ledger claims
  int attempt = 1;
  std::string trace_id;  // empty for attempt 1: made when it starts
  ledger::Trigger trigger = ledger::Trigger::schedule;
  // The trigger's payload (JSON), shared by the fire's attempts; null: none.
  std::shared_ptr<const std::string> event{};
  int priority = 0;  // the job's, when it joined the ready queue (ReadyOrder)

  // Deterministic order: due time, then job name, then slot and attempt.
  bool operator<(const Fire& other) const {
    return std::tie(due, job, slot, attempt) <
           std::tie(other.due, other.job, other.slot, other.attempt);
  }
};

// The order of fires waiting for a run slot: higher priority first, then as
// Fire's own order (due time, job name, slot, attempt).
struct ReadyOrder {
  bool operator()(const Fire& a, const Fire& b) const {
    return a.priority != b.priority ? a.priority > b.priority : a < b;
  }
};

// A payload as a Fire holds it (null: none).
inline std::shared_ptr<const std::string> shared_event(const std::optional<std::string>& event) {
  return event ? std::make_shared<const std::string>(*event) : nullptr;
}

// The build a run loads: the plugin's descriptor name and version, the
// sha256 of its content, and the shadow copy to load.
struct Build {
  std::string plugin;
  std::string version;
  std::string sha256;
  std::filesystem::path path;
};

Build build_of(const catalog::PluginInfo& plugin);

// The claim of `fire` (its trace id set) as run `run_id` of `job`, started
// at `started_at` by this process, on `build` (nullopt: a retry whose plugin
// is gone; the run then ends unstarted).
ledger::RunStart run_start(const config::JobConfig& job, const std::optional<Build>& build,
                           const Fire& fire, std::string run_id, TimePoint started_at);

// What the executor is given to run the claimed `start` of `job` on `build`:
// the job's params, limits, timeouts and user, and its state directory,
// <state_dir>/jobs/<name>. The plugin sees the claim's slot and attempt (a
// replay overrides them with the replayed run's).
exec::RunRequest run_request(const config::JobConfig& job, const std::filesystem::path& state_dir,
                             const Build& build, const ledger::RunStart& start);

// The end of a run as the ledger records it, from the executor's report.
ledger::RunEnd run_end(const exec::RunReport& report, TimePoint finished_at, Duration duration);

// The end of a claimed run that never started (the executor refused it, or
// its plugin is gone): failed, with `message`.
ledger::RunEnd unstarted_end(std::string run_id, TimePoint finished_at, std::string message);

}  // namespace jobhost::engine
