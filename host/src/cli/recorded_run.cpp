#include "cli/recorded_run.h"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>

#include "cli/cli.h"
#include "exec/fork_executor.h"
#include "exec/isolation.h"
#include "ledger/ids.h"

namespace jobhost::cli {
namespace {

TimePoint now_ms() {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

std::string duration_text(Duration d) {
  if (d < std::chrono::seconds(10)) return fmt::format("{}ms", d.count());
  return fmt::format("{:.1f}s", static_cast<double>(d.count()) / 1000.0);
}

exec::ExecutorOptions executor_options(const config::Config& config) {
  exec::ExecutorOptions options;
  exec::DetectOptions detect;
  // A parent cgroup of its own, removed when the run ends: under the
  // daemon's, a daemon starting meanwhile would kill the run as a stale one.
  detect.parent_name =
      fmt::format("{}-once-{}", exec::parent_cgroup_name(config.host.state_dir), getpid());
  options.isolation = exec::detect_isolation(detect);
  return options;
}

// The end of a run as the ledger records it, from the executor's report.
ledger::RunEnd end_of(const std::string& run_id, const Result<exec::RunReport>& report) {
  ledger::RunEnd end{.run_id = run_id, .finished_at = now_ms()};
  if (!report) {
    end.outcome = Outcome::failed;
    end.message = "could not start the run: " + report.error().message;
    return end;
  }
  end.outcome = report->outcome;
  end.exit_code = report->exit_code;
  if (!report->signal_name.empty()) end.signal = report->signal_name;
  end.message = report->message;
  end.output_tail = report->output_tail;
  return end;
}

}  // namespace

Build build_of(const catalog::PluginInfo& plugin) {
  return Build{plugin.name, plugin.version, plugin.sha256, plugin.shadow_path};
}

int run_recorded(const config::Config& config, ledger::Store& store, const config::JobConfig& job,
                 const Build& build, const OneOffRun& run) {
  const TimePoint slot = now_ms();
  ledger::RunStart start{.run_id = ledger::new_id(slot),
                         .job = job.name,
                         .scheduled_for = slot,
                         .attempt = 1,
                         .trace_id = ledger::new_id(slot),
                         .trigger = run.trigger,
                         .started_at = slot,
                         .plugin = build.plugin,
                         .plugin_version = build.version,
                         .plugin_sha256 = build.sha256,
                         .definition_hash = job.definition_hash,
                         .replay_of = run.replay_of,
                         .host_pid = getpid()};
  auto claimed = store.claim_and_start(start);
  if (!claimed || !*claimed) {
    fmt::print(stderr, "cannot record the run in the ledger: {}\n",
               claimed ? "slot already claimed" : claimed.error().message);
    return kExitFailed;
  }
  const auto steady_start = std::chrono::steady_clock::now();
  const exec::ExecutorOptions options = executor_options(config);
  auto report =
      exec::run_blocking(exec::RunRequest{.job = job.name,
                                          .run_id = start.run_id,
                                          .trace_id = start.trace_id,
                                          .attempt = run.plugin_attempt,
                                          .scheduled_for = run.plugin_scheduled_for.value_or(slot),
                                          .plugin_path = build.path,
                                          .params = job.params,
                                          .secrets = {},
                                          .limits = job.limits,
                                          .timeout = job.timeout,
                                          .stall_timeout = job.stall_timeout,
                                          .kill_grace = job.kill_grace,
                                          .user = job.user,
                                          .group = job.group},
                         options);
  exec::remove_parent_cgroups(options.isolation);
  ledger::RunEnd end = end_of(start.run_id, report);
  end.duration =
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - steady_start);
  if (auto r = store.finish_run(end); !r) {
    fmt::print(stderr, "cannot record the end of the run in the ledger: {}\n", r.error().message);
  }
  fmt::print("{} {} in {}: {}\n", start.run_id, to_string(end.outcome),
             duration_text(*end.duration), end.message);
  return end.outcome == Outcome::succeeded ? kExitOk : kExitFailed;
}

}  // namespace jobhost::cli
