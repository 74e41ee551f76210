// One function per subcommand; each returns the process exit code (cli.h).
#pragma once

#include <string>
#include <vector>

namespace jobhost::cli {

int cmd_validate(const std::string& config_flag);
int cmd_plugins(const std::string& config_flag, bool json);
int cmd_list(const std::string& config_flag, bool json);

struct NextOptions {
  std::string config;
  std::string job;   // a configured job, or
  std::string expr;  // a cron expression
  std::string name;  // the job name H in expr derives from
  std::string tz;    // zone for expr (default UTC)
  std::string from;  // RFC 3339; default now
  int count = 5;
  bool json = false;
};
int cmd_next(const NextOptions& options);

// The most fires `simulate --limit` may ask for.
inline constexpr int kMaxSimulateLimit = 1000000;
struct SimulateOptions {
  std::string config;
  std::string from = "now";  // RFC 3339 or "now"
  std::string to;            // RFC 3339 or "now"; or
  std::string duration;      // --for, a config duration; neither: 24h
  int limit = 10000;         // most fires simulated
  bool json = false;
};
int cmd_simulate(const SimulateOptions& options);

// `import-crontab`: prints TOML jobs for the crontab in `file` ("-": stdin);
// problems go to stderr as FILE:LINE: error|warning: ...; exit 1 when a line
// could not be imported (the rest is printed all the same).
struct ImportCrontabOptions {
  std::string file;
  bool system = false;   // /etc/crontab format: a user field
  std::string user;      // a user crontab's owner: every job's `user`
  std::string timezone;  // for jobs no CRON_TZ applies to
};
int cmd_import_crontab(const ImportCrontabOptions& options);

int cmd_run(const std::string& config_flag);
int cmd_run_once(const std::string& config_flag, const std::string& job);
// run-plugin FILE: one run of a plugin file, isolated, not recorded.
struct RunPluginOptions {
  std::string file;
  std::vector<std::string> params;   // "KEY=VALUE", in order; the last of a key wins
  std::vector<std::string> secrets;  // "NAME=FILE"
  std::string timeout;               // a config duration; empty: the built-in default
  std::string trigger = "manual";    // what the plugin's trigger_kind() says
  std::string event;                 // a file holding its event (JSON), "-" stdin; empty: none
};
// Its exit codes besides kExitOk (succeeded), kExitFailed (failed, crashed,
// a limit) and kExitUsage (docs/cli.md "run-plugin").
inline constexpr int kExitRunRetry = 75;         // the plugin asked for a retry (EX_TEMPFAIL)
inline constexpr int kExitRunTimedOut = 124;     // timed out (as timeout(1))
inline constexpr int kExitRunNotStarted = 125;   // the run could not be started
inline constexpr int kExitRunRejected = 126;     // the file is not a plugin the host accepts
inline constexpr int kExitRunInterrupted = 130;  // cancelled by SIGINT or SIGTERM
int cmd_run_plugin(const RunPluginOptions& options);
// `payload`: a file holding the JSON the run gets as its event, "-" for
// stdin, empty for none.
int cmd_trigger(const std::string& config_flag, const std::string& job,
                const std::string& payload = {});
int cmd_reload(const std::string& config_flag);
// pause = false: resume.
int cmd_pause(const std::string& config_flag, const std::string& job, bool pause);
int cmd_cancel(const std::string& config_flag, const std::string& run_id);
int cmd_history(const std::string& config_flag, const std::string& job, int limit, bool json);
int cmd_status(const std::string& config_flag, bool json);
int cmd_cluster_status(const std::string& config_flag, bool json);
// `current`: run on the build plugin_dir has now, not the recorded one.
int cmd_replay(const std::string& config_flag, const std::string& run_id, bool current);

}  // namespace jobhost::cli
