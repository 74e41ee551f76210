#include "engine/run_records.h"

#include <unistd.h>

namespace jobhost::engine {

Build build_of(const catalog::PluginInfo& plugin) {
  return Build{plugin.name, plugin.version, plugin.sha256, plugin.shadow_path};
}

ledger::RunStart run_start(const config::JobConfig& job, const std::optional<Build>& build,
                           const Fire& fire, std::string run_id, TimePoint started_at) {
  return ledger::RunStart{.run_id = std::move(run_id),
                          .job = job.name,
                          .scheduled_for = fire.slot,
                          .attempt = fire.attempt,
                          .trace_id = fire.trace_id,
                          .trigger = fire.trigger,
                          .started_at = started_at,
                          .plugin = build ? std::optional(build->plugin) : std::nullopt,
                          .plugin_version = build ? std::optional(build->version) : std::nullopt,
                          .plugin_sha256 = build ? std::optional(build->sha256) : std::nullopt,
                          .definition_hash = job.definition_hash,
                          .replay_of = std::nullopt,
                          .host_pid = getpid(),
                          .event = fire.event ? std::optional(*fire.event) : std::nullopt};
}

exec::RunRequest run_request(const config::JobConfig& job, const std::filesystem::path& state_dir,
                             const Build& build, const ledger::RunStart& start) {
  return exec::RunRequest{.job = job.name,
                          .run_id = start.run_id,
                          .trace_id = start.trace_id,
                          .attempt = static_cast<uint32_t>(start.attempt),
                          .scheduled_for = start.scheduled_for,
                          .plugin_path = build.path,
                          .params = job.settings->params,
                          .secrets = {},
                          .limits = job.settings->limits,
                          .timeout = job.settings->timeout,
                          .stall_timeout = job.settings->stall_timeout,
                          .kill_grace = job.settings->kill_grace,
                          .user = job.settings->user,
                          .group = job.settings->group,
                          .state_directory = state_dir / "jobs" / job.name,
                          .env = job.settings->env,
                          .sandbox = job.settings->sandbox,
                          .time_zone = job.settings->timezone,
                          .secret_sources = job.settings->secrets,
                          .dynamic_uid = job.dynamic_uid,
                          .parked = false,
                          .trigger_kind = std::string(ledger::to_string(start.trigger)),
                          .event = start.event};
}

ledger::RunEnd run_end(const exec::RunReport& report, TimePoint finished_at, Duration duration) {
  return ledger::RunEnd{
      .run_id = report.run_id,
      .finished_at = finished_at,
      .outcome = report.outcome,
      .exit_code = report.exit_code,
      .signal = report.signal_name.empty() ? std::nullopt : std::optional(report.signal_name),
      .duration = duration,
      .message = report.message,
      .output_tail = report.output_tail,
      .retry_at = std::nullopt,
      .cpu_seconds = report.cpu_seconds,
      // 0: not known (the leader was not reaped by us).
      .max_rss_bytes =
          report.max_rss_bytes > 0 ? std::optional(report.max_rss_bytes) : std::nullopt,
      .metrics = report.metrics};
}

ledger::RunEnd unstarted_end(std::string run_id, TimePoint finished_at, std::string message) {
  return ledger::RunEnd{.run_id = std::move(run_id),
                        .finished_at = finished_at,
                        .outcome = Outcome::failed,
                        .duration = Duration{0},
                        .message = std::move(message)};
}

}  // namespace jobhost::engine
