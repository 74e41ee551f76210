// run-plugin: one run of a plugin file in the foreground, isolated as the
// daemon's runs are, its output on the terminal, nothing recorded: a plugin
// author's edit-run loop (docs/cli.md).
#include <fmt/core.h>
#include <jobhost/plugin.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "cli/recorded_run.h"
#include "common/time.h"
#include "config/config.h"
#include "config/dynamic_users.h"
#include "engine/run_records.h"
#include "exec/fork_executor.h"
#include "exec/run_user.h"
#include "ledger/ids.h"

namespace jobhost::cli {
namespace {

namespace fs = std::filesystem;

// "KEY=VALUE" split at the first '='; nullopt when there is none or KEY is empty.
std::optional<std::pair<std::string, std::string>> split_assignment(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::pair(text.substr(0, eq), text.substr(eq + 1));
}

// The run's state directory: a fresh temporary one, removed with all the run
// left in it, so nothing of one run reaches the next.
class TempStateDir {
 public:
  // In $TMPDIR (else /tmp); the error says why not.
  static Result<TempStateDir> make() {
    std::error_code ec;
    fs::path parent = fs::temp_directory_path(ec);
    if (ec) parent = "/tmp";
    std::string pattern = (parent / "jobhost-run-plugin-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return std::unexpected(Error{fmt::format(
          "cannot make a temporary state directory in {}: {} (set TMPDIR to a directory you "
          "can write)",
          parent.string(), std::strerror(errno))});
    }
    return TempStateDir(pattern);
  }
  TempStateDir(TempStateDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempStateDir& operator=(TempStateDir&&) = delete;
  ~TempStateDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempStateDir(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::debug:
    case spdlog::level::trace:
      return "debug";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
    case spdlog::level::critical:
      return "error";
    default:
      return "info";
  }
}

// As each line of the run comes: its output as it printed it, its log()
// lines with their level, the host's lines about it (stopping it) marked.
void print_line(const exec::RunLogLine& line) {
  switch (line.stream) {
    case exec::LogStream::output:
      fmt::print("{}\n", line.text);
      break;
    case exec::LogStream::plugin:
      fmt::print("[{}] {}\n", level_name(line.level), line.text);
      break;
    case exec::LogStream::host:
      fmt::print("jobhost: {}\n", line.text);
      break;
  }
  std::fflush(stdout);
}

int exit_code_of(const exec::RunReport& report) {
  switch (report.outcome) {
    case Outcome::succeeded:
      return kExitOk;
    case Outcome::timed_out:
    case Outcome::stalled:
      return kExitRunTimedOut;
    case Outcome::cancelled:
      return kExitRunInterrupted;
    case Outcome::failed:
      return report.result_code == JOBHOST_RETRY ? kExitRunRetry : kExitFailed;
    default:
      return kExitFailed;  // crashed, limit_exceeded, interrupted
  }
}

// " (metrics: a=1, b=2.5)", or "" without any.
std::string metrics_text(const std::map<std::string, double>& metrics) {
  std::string out;
  for (const auto& [name, value] : metrics) {
    out += fmt::format("{}{}={}", out.empty() ? " (metrics: " : ", ", name, value);
  }
  return out.empty() ? out : out + ")";
}

// Runs `request` to its end on a private io_context, streaming its lines;
// SIGINT or SIGTERM cancels it (the plugin's cancelled() turns true, then
// SIGTERM, SIGKILL after kill_grace), a second one kills it at once.
// nullopt: killed by that second signal, no report.
Result<std::optional<exec::RunReport>> run_in_foreground(exec::RunRequest request,
                                                         exec::ExecutorOptions options) {
  boost::asio::io_context io;
  exec::ForkExecutor executor(io, std::move(options));
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::optional<exec::RunReport> report;
  const std::string run_id = request.run_id;
  auto started = executor.start(std::move(request), [&](exec::RunReport r) {
    report = std::move(r);
    signals.cancel();
  });
  if (!started) return std::unexpected(started.error());
  int signals_seen = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (++signals_seen == 1) {
          fmt::print(stderr, "jobhost: {}: cancelling the run (again to kill it)\n",
                     signo == SIGINT ? "SIGINT" : "SIGTERM");
          executor.stop(run_id, exec::StopReason::cancel);
          signals.async_wait(on_signal);
        } else {
          io.stop();  // ~ForkExecutor kills and reaps it
        }
      };
  signals.async_wait(on_signal);
  io.run();
  executor.remove_idle_cgroups();
  return report;
}

}  // namespace

int cmd_run_plugin(const RunPluginOptions& options) {
  auto usage = [](const std::string& text) {
    fmt::print(stderr, "run-plugin: {}\n", text);
    return kExitUsage;
  };
  std::map<std::string, std::string> params;
  for (const auto& text : options.params) {
    auto kv = split_assignment(text);
    if (!kv) return usage(fmt::format("--param \"{}\": write KEY=VALUE", text));
    params[kv->first] = kv->second;
  }
  std::vector<config::SecretConfig> secrets;
  for (const auto& text : options.secrets) {
    auto kv = split_assignment(text);
    if (!kv || kv->second.empty()) {
      return usage(fmt::format("--secret \"{}\": write NAME=FILE", text));
    }
    std::erase_if(secrets, [&](const auto& s) { return s.name == kv->first; });
    secrets.push_back({.name = kv->first,
                       .pos = {},
                       .source = config::SecretConfig::Source::file,
                       .location = fs::absolute(kv->second).lexically_normal().string()});
  }
  std::optional<Duration> timeout;
  if (!options.timeout.empty()) {
    auto parsed = config::parse_duration(options.timeout);
    if (!parsed || parsed->count() <= 0) {
      return usage(fmt::format("--timeout \"{}\": {}", options.timeout,
                               parsed ? "must be more than 0" : parsed.error().message));
    }
    timeout = *parsed;
  }
  const auto trigger = ledger::trigger_from_string(options.trigger);
  if (!trigger) {
    return usage(fmt::format(
        "--trigger \"{}\": one of schedule, manual, retry, catchup, replay, reboot, file, "
        "webhook, chain",
        options.trigger));
  }
  std::optional<std::string> event;
  if (!options.event.empty()) {
    auto payload = read_payload(options.event);
    if (!payload) return usage(fmt::format("--event: {}", payload.error()));
    event = payload->dump();
  }

  auto state = TempStateDir::make();
  if (!state) {
    fmt::print(stderr, "run-plugin: {}\n", state.error().message);
    return kExitRunNotStarted;
  }
  // Checked and probed in a child as the catalog checks a file in
  // plugin_dir, and run from its shadow copy: a file the daemon would
  // refuse is refused here, for the same reason.
  const fs::path file = fs::absolute(options.file).lexically_normal();
  catalog::Catalog catalog(file.parent_path(), state->path() / "plugins");
  auto plugin = catalog.probe_file(file);
  if (!plugin) {
    fmt::print(stderr, "{}: {}\n", file.string(), plugin.error().reason);
    return kExitRunRejected;
  }

  // A job of this plugin with the built-in defaults ([defaults] of an empty
  // config) and the options given.
  config::JobConfig job;
  job.name = plugin->name;
  {
    config::JobSettings& settings = config::own_settings(job);
    settings.plugin = plugin->name;
    settings.timezone = "UTC";  // [host] timezone's default
    settings.params = std::move(params);
    settings.secrets = std::move(secrets);
    if (timeout) settings.timeout = *timeout;
  }
  if (::geteuid() == 0) {
    auto uids = config::allocate_dynamic_uids(config::UidRange{}, {job.name}, {},
                                              config::account_ids_known());
    if (!uids) {
      fmt::print(stderr, "run-plugin: {}\n", uids.error().message);
      return kExitRunNotStarted;
    }
    job.dynamic_uid = uids->at(job.name);
  }
  const TimePoint slot = wall_now();
  const engine::Build build = engine::build_of(*plugin);
  const ledger::RunStart start =
      engine::run_start(job, build,
                        engine::Fire{slot, job.name, slot, 1, ledger::new_id(slot), *trigger,
                                     engine::shared_event(event)},
                        ledger::new_id(slot), slot);
  exec::RunRequest request = engine::run_request(job, state->path(), build, start);

  // As the daemon: the host's files out of the run's reach (exec/run_user.h).
  if (auto secured = exec::secure_state_dir(state->path()); !secured) {
    fmt::print(stderr, "warning: {}\n", secured.error().message);
  }
  exec::ExecutorOptions executor_options = one_off_executor_options(state->path());
  executor_options.log_sink = print_line;
  // A terminal, not the daemon's log: every line is shown.
  executor_options.log_lines_per_second = 1e9;
  executor_options.log_burst = 1e9;
  const exec::IsolationCaps isolation = executor_options.isolation;
  const auto steady_start = std::chrono::steady_clock::now();
  auto report = run_in_foreground(std::move(request), std::move(executor_options));
  exec::remove_parent_cgroups(isolation);
  if (!report) {
    fmt::print(stderr, "run-plugin: could not start the run: {}\n", report.error().message);
    return kExitRunNotStarted;
  }
  if (!*report) {
    fmt::print("{} {}: killed\n", plugin->name, plugin->version);
    return kExitRunInterrupted;
  }
  const auto took =
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - steady_start);
  const exec::RunReport& r = **report;
  fmt::print("{} {}: {} in {}: {}{}\n", plugin->name, plugin->version, to_string(r.outcome),
             format_elapsed(took), r.message, metrics_text(r.metrics));
  return exit_code_of(r);
}

}  // namespace jobhost::cli
