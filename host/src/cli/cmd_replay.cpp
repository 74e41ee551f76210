// replay: runs a recorded run again, as a new run linked to it (docs/cli.md).
#include <fmt/core.h>

#include <filesystem>

#include "catalog/shadow.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "cli/recorded_run.h"
#include "common/log.h"
#include "daemon/daemon.h"

namespace jobhost::cli {
namespace {

constexpr std::string_view kUseCurrent =
    "pass --current to replay it with the build plugin_dir has now";

// The run `run_id`, or why it cannot be replayed.
Result<ledger::RunRecord> replayable_run(ledger::Store& store, const std::string& run_id) {
  auto run = store.get_run(run_id);
  if (!run) return std::unexpected(run.error());
  if (!*run) {
    return fail(fmt::format("no run \"{}\" in the ledger (see `jobhost history`)", run_id));
  }
  if ((*run)->running()) {
    return fail(fmt::format("run {} has not finished yet: replay it once it has", run_id));
  }
  return std::move(**run);
}

// The run whose slot and attempt the plugin is told: replay_of followed back
// to the first run still in the ledger, so a replay of a replay still sees
// the original fire.
Result<ledger::RunRecord> origin_of(ledger::Store& store, ledger::RunRecord run) {
  for (int hops = 0; hops < 100 && run.trigger == ledger::Trigger::replay && run.replay_of;
       ++hops) {
    auto earlier = store.get_run(*run.replay_of);
    if (!earlier) return std::unexpected(earlier.error());
    if (!*earlier) break;  // pruned: the replay's own slot is all that is left
    run = std::move(**earlier);
  }
  return run;
}

// The build `run` loaded, if its shadow copy is still there and intact.
Result<Build> recorded_build(const config::Config& config, const ledger::RunRecord& run) {
  if (!run.plugin_sha256) {
    return fail(fmt::format("run {} recorded no build (it never started: {}); {}", run.run_id,
                            run.message, kUseCurrent));
  }
  const auto path = catalog::shadow_path_for(shadow_dir(config), *run.plugin_sha256);
  if (!catalog::is_intact_copy(path, *run.plugin_sha256)) {
    return fail(fmt::format(
        "the build run {} used (plugin {} {}, sha256 {}) is gone: its shadow copy {} was removed "
        "or changed; {}",
        run.run_id, run.plugin.value_or("?"), run.plugin_version.value_or("?"),
        run.plugin_sha256->substr(0, 12), path.string(), kUseCurrent));
  }
  return Build{run.plugin.value_or(""), run.plugin_version.value_or(""), *run.plugin_sha256, path};
}

// The build plugin_dir has now for `job`.
Result<Build> current_build(const config::Config& config, const config::JobConfig& job) {
  auto scan = scan_plugins(config);
  const auto* plugin = scan.find(job.settings->plugin);
  if (!plugin) {
    return fail(fmt::format("job \"{}\": plugin \"{}\" is not available (see `jobhost plugins`)",
                            job.name, job.settings->plugin));
  }
  return build_of(*plugin);
}

// Runs do not record their params: the job's current ones are used. They are
// the recorded ones exactly when the definition hash (which covers params,
// limits and timeout) is unchanged; say so when it is not.
void note_definition_change(const ledger::RunRecord& run, const config::JobConfig& job) {
  if (!run.definition_hash || *run.definition_hash == job.definition_hash) return;
  fmt::print(stderr,
             "note: job \"{}\" changed since run {} (definition {} then, {} now): the replay uses "
             "its current params, timeout and limits\n",
             job.name, run.run_id, run.definition_hash->substr(0, 12),
             job.definition_hash.substr(0, 12));
}

}  // namespace

int cmd_replay(const std::string& config_flag, const std::string& run_id, bool current) {
  auto config = load_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  const auto ledger_file = ledger::sqlite_path(config->host);
  if (config->host.store_url.empty() && !std::filesystem::exists(ledger_file)) {
    fmt::print(stderr, "no run \"{}\": there is no ledger at {} yet\n", run_id,
               ledger_file.string());
    return kExitFailed;
  }
  auto store = open_ledger_or_report(config->host, ledger::Access::read_write);
  if (!store) return kExitFailed;
  auto run = replayable_run(*store, run_id);
  if (!run) {
    fmt::print(stderr, "{}\n", run.error().message);
    return kExitFailed;
  }
  const auto* job = config->find_job(run->job);
  if (!job) {
    fmt::print(stderr,
               "run {} is of job \"{}\", which is no longer in {}: a replay needs the job's "
               "params, limits and timeout\n",
               run_id, run->job, config->file.string());
    return kExitFailed;
  }
  log::init(log::Format::text);
  auto build = current ? current_build(*config, *job) : recorded_build(*config, *run);
  auto origin = origin_of(*store, *run);
  if (!build || !origin) {
    fmt::print(stderr, "{}\n", build ? origin.error().message : build.error().message);
    return kExitFailed;
  }
  note_definition_change(*run, *job);
  fmt::print(stderr, "replaying run {} of job {} (slot {}, attempt {}) on {} {} (sha256 {})\n",
             run_id, job->name, ledger::format_utc(origin->scheduled_for), origin->attempt,
             build->plugin, build->version, build->sha256.substr(0, 12));
  return run_recorded(*config, *store, *job, *build,
                      OneOffRun{.trigger = ledger::Trigger::replay,
                                .replay_of = run->run_id,
                                .event = run->event,
                                .plugin_scheduled_for = origin->scheduled_for,
                                .plugin_attempt = static_cast<uint32_t>(origin->attempt)});
}

}  // namespace jobhost::cli
