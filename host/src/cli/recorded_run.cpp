#include "cli/recorded_run.h"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>

#include "cli/cli.h"
#include "exec/fork_executor.h"
#include "exec/isolation.h"
#include "exec/run_user.h"
#include "exec/sandbox.h"
#include "ledger/ids.h"

namespace jobhost::cli {
exec::ExecutorOptions one_off_executor_options(const std::filesystem::path& state_dir) {
  exec::ExecutorOptions options;
  exec::DetectOptions detect;
  // A parent cgroup of its own, removed when the run ends: under the
  // daemon's, a daemon starting meanwhile would kill the run as a stale one.
  detect.parent_name = fmt::format("{}-once-{}", exec::parent_cgroup_name(state_dir), getpid());
  options.isolation = exec::detect_isolation(detect);
  exec::use_run_namespaces(options.isolation, state_dir);  // host not root
  return options;
}

int run_recorded(const config::Config& config, ledger::Store& store, const config::JobConfig& job,
                 const Build& build, const OneOffRun& run) {
  const TimePoint slot = wall_now();
  ledger::RunStart start =
      engine::run_start(job, build,
                        engine::Fire{slot, job.name, slot, 1, ledger::new_id(slot), run.trigger,
                                     engine::shared_event(run.event)},
                        ledger::new_id(slot), slot);
  start.replay_of = run.replay_of;
  auto claimed = store.claim_and_start(start);
  if (!claimed || !*claimed) {
    fmt::print(stderr, "cannot record the run in the ledger: {}\n",
               claimed ? "slot already claimed" : claimed.error().message);
    return kExitFailed;
  }
  // As the daemon: the host's files out of the run's reach (exec/run_user.h).
  if (auto secured = exec::secure_state_dir(config.host.state_dir); !secured) {
    fmt::print(stderr, "warning: {}\n", secured.error().message);
  }
  const auto steady_start = std::chrono::steady_clock::now();
  const exec::ExecutorOptions options = one_off_executor_options(config.host.state_dir);
  exec::RunRequest request = engine::run_request(job, config.host.state_dir, build, start);
  // What the plugin's scheduled_for() and attempt() return (a replay's are
  // those of the run it replays).
  request.scheduled_for = run.plugin_scheduled_for.value_or(slot);
  request.attempt = run.plugin_attempt;
  auto report = exec::run_blocking(std::move(request), options);
  exec::remove_parent_cgroups(options.isolation);
  const auto took =
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - steady_start);
  ledger::RunEnd end =
      report ? engine::run_end(*report, wall_now(), took)
             : engine::unstarted_end(start.run_id, wall_now(),
                                     "could not start the run: " + report.error().message);
  if (auto r = store.finish_run(end); !r) {
    fmt::print(stderr, "cannot record the end of the run in the ledger: {}\n", r.error().message);
  }
  fmt::print("{} {} in {}: {}\n", start.run_id, to_string(end.outcome),
             format_elapsed(*end.duration), end.message);
  return end.outcome == Outcome::succeeded ? kExitOk : kExitFailed;
}

}  // namespace jobhost::cli
