#include "cli/cli.h"

#include <CLI/CLI.hpp>

#include <functional>

#include "cli/commands.h"
#include "common/version.h"

namespace jobhost::cli {
namespace {

CLI::Option* add_config_flag(CLI::App* sub, std::string& target) {
  return sub->add_option("-c,--config", target,
                         "Config file (default: $JOBHOST_CONFIG, ./jobhost.toml, then " JOBHOST_INSTALLED_CONFIG ")");
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"jobhost: runs scheduled jobs from .so plugins, each run isolated and recorded"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "jobhost " + std::string(kVersion));

  std::function<int()> command;
  std::string config;
  bool json = false;

  auto* validate =
      app.add_subcommand("validate", "Check the config and plugins; exit 0 valid, 1 invalid");
  add_config_flag(validate, config);
  validate->callback([&] { command = [&] { return cmd_validate(config); }; });

  auto* plugins = app.add_subcommand("plugins", "List accepted and rejected plugins, with reasons");
  add_config_flag(plugins, config);
  plugins->add_flag("--json", json, "Print JSON");
  plugins->callback([&] { command = [&] { return cmd_plugins(config, json); }; });

  auto* list = app.add_subcommand("list", "List jobs, their schedule and next fire");
  add_config_flag(list, config);
  list->add_flag("--json", json, "Print JSON");
  list->callback([&] { command = [&] { return cmd_list(config, json); }; });

  NextOptions next_options;
  auto* next =
      app.add_subcommand("next", "Print the next fire times of a job or a cron expression");
  add_config_flag(next, next_options.config);
  auto* job_opt = next->add_option("job", next_options.job, "A configured job");
  auto* expr_opt =
      next->add_option("--expr", next_options.expr, "A cron expression instead of a job");
  job_opt->excludes(expr_opt);
  next->add_option("--tz", next_options.tz, "Time zone for --expr (default UTC)")->needs(expr_opt);
  next->add_option("--name", next_options.name, "The job name H in --expr derives its values from")
      ->needs(expr_opt);
  next->add_option("--from", next_options.from, "Start after this RFC 3339 instant (default now)");
  next->add_option("--count", next_options.count, "How many fire times (default 5)")
      ->check(CLI::Range(1, 100000));
  next->add_flag("--json", next_options.json, "Print a JSON array of RFC 3339 strings");
  next->callback([&] {
    if (next_options.job.empty() && next_options.expr.empty()) {
      throw CLI::RequiredError("JOB or --expr");
    }
    command = [&] { return cmd_next(next_options); };
  });

  SimulateOptions simulate_options;
  auto* simulate = app.add_subcommand(
      "simulate", "Forecast a window: every fire, the runs at once, waits and forbid skips");
  add_config_flag(simulate, simulate_options.config);
  simulate->add_option("--from", simulate_options.from, "Start: RFC 3339 or now (default now)");
  auto* to_opt =
      simulate->add_option("--to", simulate_options.to, "End (excluded): RFC 3339 or now");
  auto* for_opt = simulate->add_option("--for", simulate_options.duration,
                                       "Length instead of --to, e.g. 24h (default 24h)");
  to_opt->excludes(for_opt);
  simulate->add_option("--limit", simulate_options.limit, "Most fires simulated (default 10000)")
      ->check(CLI::Range(1, kMaxSimulateLimit));
  simulate->add_flag("--json", simulate_options.json, "Print JSON");
  simulate->callback([&] { command = [&] { return cmd_simulate(simulate_options); }; });

  ImportCrontabOptions import_options;
  auto* import_crontab = app.add_subcommand(
      "import-crontab",
      "Print TOML jobs (exec plugin) for a crontab; exit 1 if some line was not imported");
  import_crontab->add_option("file", import_options.file, "The crontab (- for stdin)")->required();
  auto* system_flag = import_crontab->add_flag(
      "--system", import_options.system,
      "A system crontab (/etc/crontab, /etc/cron.d/*): a user field after the time fields");
  import_crontab
      ->add_option("--user", import_options.user,
                   "The user a user crontab's jobs run as (its owner)")
      ->excludes(system_flag);
  import_crontab->add_option("--timezone", import_options.timezone,
                             "The zone of jobs without CRON_TZ (where cron ran)");
  import_crontab->callback([&] { command = [&] { return cmd_import_crontab(import_options); }; });

  auto* run =
      app.add_subcommand("run", "Run the daemon in the foreground (SIGTERM/SIGINT stop it)");
  add_config_flag(run, config);
  run->callback([&] { command = [&] { return cmd_run(config); }; });

  std::string job;
  auto* run_once = app.add_subcommand(
      "run-once", "Run JOB once now, isolated and recorded; exit 0 iff it succeeded");
  add_config_flag(run_once, config);
  run_once->add_option("job", job, "The job")->required();
  run_once->callback([&] { command = [&] { return cmd_run_once(config, job); }; });

  RunPluginOptions run_plugin_options;
  auto* run_plugin = app.add_subcommand(
      "run-plugin",
      "Run a plugin file once in the foreground, isolated, not recorded; exit 0 iff it succeeded");
  run_plugin->add_option("file", run_plugin_options.file, "The plugin (.so)")->required();
  // One value per --param / --secret: a second word is FILE, not another param.
  run_plugin->add_option("--param", run_plugin_options.params, "KEY=VALUE, a param (repeatable)")
      ->allow_extra_args(false);
  run_plugin
      ->add_option("--secret", run_plugin_options.secrets,
                   "NAME=FILE, a secret read from FILE (mode 0600; repeatable)")
      ->allow_extra_args(false);
  run_plugin->add_option("--timeout", run_plugin_options.timeout,
                         "Stop the run after this long, e.g. 30s (default 5m)");
  run_plugin->add_option("--trigger", run_plugin_options.trigger,
                         "What trigger_kind() says (default manual)");
  run_plugin->add_option("--event", run_plugin_options.event,
                         "A file (- for stdin) holding the JSON document event() gives");
  run_plugin->callback([&] { command = [&] { return cmd_run_plugin(run_plugin_options); }; });

  auto* trigger = app.add_subcommand("trigger", "Ask the running daemon to run JOB now");
  add_config_flag(trigger, config);
  trigger->add_option("job", job, "The job")->required();
  std::string payload;
  trigger->add_option("--payload", payload,
                      "A file (- for stdin) holding the JSON document the run gets as its event");
  trigger->callback([&] { command = [&] { return cmd_trigger(config, job, payload); }; });

  auto* pause = app.add_subcommand(
      "pause", "Pause JOB in the running daemon: its fires are recorded as skipped until resumed");
  add_config_flag(pause, config);
  pause->add_option("job", job, "The job")->required();
  pause->callback([&] { command = [&] { return cmd_pause(config, job, true); }; });

  auto* resume = app.add_subcommand("resume", "Resume a paused JOB in the running daemon");
  add_config_flag(resume, config);
  resume->add_option("job", job, "The job")->required();
  resume->callback([&] { command = [&] { return cmd_pause(config, job, false); }; });

  std::string cancel_run_id;
  auto* cancel = app.add_subcommand(
      "cancel", "Stop a run in flight in the running daemon: it ends cancelled, not retried");
  add_config_flag(cancel, config);
  cancel->add_option("run_id", cancel_run_id, "The run (see `jobhost status`)")->required();
  cancel->callback([&] { command = [&] { return cmd_cancel(config, cancel_run_id); }; });

  auto* reload = app.add_subcommand(
      "reload",
      "Ask the running daemon to reload plugins and config now; exit 1 if it rejected any");
  add_config_flag(reload, config);
  reload->callback([&] { command = [&] { return cmd_reload(config); }; });

  int limit = 20;
  auto* history = app.add_subcommand("history", "Recorded runs, newest first");
  add_config_flag(history, config);
  history->add_option("job", job, "Only this job");
  history->add_option("--limit", limit, "At most this many runs (default 20)")
      ->check(CLI::Range(1, 1000000));
  history->add_flag("--json", json, "Print a JSON array");
  history->callback([&] { command = [&] { return cmd_history(config, job, limit, json); }; });

  auto* status =
      app.add_subcommand("status", "Per job: last outcome, next fire, failures, success rate");
  add_config_flag(status, config);
  status->add_flag("--json", json, "Print JSON");
  status->callback([&] { command = [&] { return cmd_status(config, json); }; });

  auto* cluster =
      app.add_subcommand("cluster", "The hosts sharing a PostgreSQL ledger (docs/cluster.md)");
  cluster->require_subcommand(1);
  auto* cluster_status =
      cluster->add_subcommand("status", "Hosts, their leases, versions and runs in flight");
  add_config_flag(cluster_status, config);
  cluster_status->add_flag("--json", json, "Print JSON");
  cluster_status->callback([&] { command = [&] { return cmd_cluster_status(config, json); }; });

  std::string run_id;
  bool current = false;
  auto* replay = app.add_subcommand(
      "replay", "Run a recorded run again as a new run linked to it; exit 0 iff it succeeded");
  add_config_flag(replay, config);
  replay->add_option("run_id", run_id, "The run to replay (see `jobhost history`)")->required();
  replay->add_flag("--current", current,
                   "Use the build plugin_dir has now, not the one the run recorded");
  replay->callback([&] { command = [&] { return cmd_replay(config, run_id, current); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return command ? command() : kExitUsage;
}

}  // namespace jobhost::cli
