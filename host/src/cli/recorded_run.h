// One isolated run outside the daemon, recorded in the ledger: what
// `run-once` and `replay` share.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "common/time.h"
#include "config/config.h"
#include "engine/run_records.h"
#include "exec/executor.h"
#include "ledger/store.h"

namespace jobhost::cli {

// The build a run loads (engine/run_records.h).
using engine::Build;
using engine::build_of;

// How the run is recorded and what its plugin is told.
struct OneOffRun {
  ledger::Trigger trigger = ledger::Trigger::manual;
  std::optional<std::string> replay_of;  // the run id replayed
  std::optional<std::string> event;      // the trigger's payload (a replay: the replayed run's)
  // What the plugin's scheduled_for() and attempt() return. Default: the
  // run's own slot (now) and 1. A replay passes those of the run it replays.
  std::optional<TimePoint> plugin_scheduled_for;
  uint32_t plugin_attempt = 1;
};

// What a run outside the daemon runs with (run-once, replay, run-plugin):
// the isolation detect_isolation() finds, under a parent cgroup of its own
// (remove it with exec::remove_parent_cgroups when the run ended), and run
// namespaces that hide `state_dir` when the host is not root.
exec::ExecutorOptions one_off_executor_options(const std::filesystem::path& state_dir);

// Claims a slot of its own at now (attempt 1, `run.trigger`), runs `job` on
// `build` in a forked child through the executor with the job's params,
// limits, timeout and user, blocking until it ends, records the end, and
// prints "RUN_ID OUTCOME in DURATION: MESSAGE" on stdout (the run's log lines
// go to stderr). Returns the exit code: 0 iff the run succeeded, 1 otherwise
// (failed, not started, or its start not recorded).
int run_recorded(const config::Config& config, ledger::Store& store, const config::JobConfig& job,
                 const Build& build, const OneOffRun& run);

}  // namespace jobhost::cli
