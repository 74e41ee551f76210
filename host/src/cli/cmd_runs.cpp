// run, run-once, trigger, history, status: the commands about runs.
#include <fmt/core.h>

#include <chrono>
#include <algorithm>
#include <expected>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "cli/recorded_run.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "engine/engine.h"
#include "ledger/sqlite_store.h"

namespace jobhost::cli {
namespace {

using nlohmann::json;

std::string duration_text(const std::optional<Duration>& d) {
  return d ? format_elapsed(*d) : "-";
}

// One line of text, cut for a table cell.
std::string cell(std::string_view text, std::size_t width) {
  std::string out(text.substr(0, text.find('\n')));
  if (out.size() > width) out = out.substr(0, width - 3) + "...";
  return out;
}

}  // namespace

int cmd_run(const std::string& config_flag) {
  auto config = load_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  return daemon::run_daemon(std::move(*config));
}

int cmd_run_once(const std::string& config_flag, const std::string& job_name) {
  auto config = load_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  const auto* job = config->find_job(job_name);
  if (!job) {
    fmt::print(stderr, "no job named \"{}\" in {}\n", job_name, config->file.string());
    return kExitFailed;
  }
  log::init(log::Format::text);
  auto scan = scan_plugins(*config);
  const auto* plugin = scan.find(job->settings->plugin);
  if (!plugin) {
    fmt::print(stderr, "job \"{}\": plugin \"{}\" is not available (see `jobhost plugins`)\n",
               job->name, job->settings->plugin);
    return kExitFailed;
  }
  auto store = open_ledger_or_report(config->host, ledger::Access::read_write);
  if (!store) return kExitFailed;
  return run_recorded(*config, *store, *job, build_of(*plugin), OneOffRun{});
}

int cmd_trigger(const std::string& config_flag, const std::string& job_name,
                const std::string& payload) {
  // The daemon runs the config it loaded: only its state directory and the
  // job's name are read here (docs/cli.md).
  auto config = load_host_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  if (!config->has_job(job_name)) {
    fmt::print(stderr, "no job named \"{}\" in {}\n", job_name, config->file.string());
    return kExitFailed;
  }
  json request = {{"op", "trigger"}, {"job", job_name}};
  if (!payload.empty()) {
    auto event = read_payload(payload);
    if (!event) {
      fmt::print(stderr, "trigger {}: {}\n", job_name, event.error());
      return kExitUsage;
    }
    request["payload"] = std::move(*event);
  }
  auto reply = daemon::control_request(config->host.state_dir, request, std::chrono::seconds(5));
  if (!reply) {
    return report_control_error(reply.error());
  }
  if (!reply->value("ok", false)) {
    fmt::print(stderr, "trigger {}: {}\n", job_name, reply->value("error", "refused"));
    return kExitFailed;
  }
  fmt::print("triggered {} (slot {})\n", job_name, reply->value("scheduled_for", ""));
  return kExitOk;
}

namespace {

// Sends one action op to the daemon; prints `done` on success.
int control_action(const config::HostSection& config, const json& request, const std::string& what,
                   const std::function<std::string(const json&)>& done) {
  auto reply = daemon::control_request(config.host.state_dir, request, std::chrono::seconds(5));
  if (!reply) return report_control_error(reply.error());
  if (!reply->value("ok", false)) {
    fmt::print(stderr, "{}: {}\n", what, reply->value("error", "refused"));
    return kExitFailed;
  }
  fmt::print("{}\n", done(*reply));
  return kExitOk;
}

}  // namespace

int cmd_pause(const std::string& config_flag, const std::string& job_name, bool pause) {
  auto config = load_host_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  if (!config->has_job(job_name)) {
    fmt::print(stderr, "no job named \"{}\" in {}\n", job_name, config->file.string());
    return kExitFailed;
  }
  const std::string op = pause ? "pause" : "resume";
  return control_action(*config, {{"op", op}, {"job", job_name}}, op + " " + job_name,
                        [&](const json& reply) {
                          const bool changed = reply.value("changed", false);
                          if (pause) {
                            return changed ? fmt::format(
                                                 "paused {}: its fires are recorded as "
                                                 "skipped until `jobhost resume {}`",
                                                 job_name, job_name)
                                           : fmt::format("{} was already paused", job_name);
                          }
                          return changed ? fmt::format("resumed {}", job_name)
                                         : fmt::format("{} was not paused", job_name);
                        });
}

int cmd_cancel(const std::string& config_flag, const std::string& run_id) {
  auto config = load_host_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  return control_action(
      *config, {{"op", "cancel"}, {"run_id", run_id}}, "cancel " + run_id, [&](const json&) {
        return fmt::format("cancelling {}: it is being stopped and will end cancelled", run_id);
      });
}

int cmd_reload(const std::string& config_flag) {
  // An invalid config is what a reload is often asked to check: it only
  // needs [host] to find the daemon, which then reports every error.
  auto config = load_host_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  const auto& state_dir = config->host.state_dir;
  // A reload may wait for a probe (up to its 5 s timeout per new file) and
  // for a cycle already in progress.
  auto reply = daemon::control_request(state_dir, {{"op", "reload"}}, std::chrono::seconds(60));
  if (!reply) {
    return report_control_error(reply.error());
  }
  for (const auto& line : reply->value("lines", json::array())) {
    fmt::print("{}\n", line.get<std::string>());
  }
  if (reply->contains("error"))
    fmt::print(stderr, "reload: {}\n", (*reply)["error"].get<std::string>());
  return reply->value("ok", false) ? kExitOk : kExitFailed;
}

int cmd_history(const std::string& config_flag, const std::string& job, int limit, bool as_json) {
  // Only the state directory is needed: a mistake in a job, or 100,000 jobs
  // to check, must not stand between the user and the ledger (docs/cli.md).
  auto config = load_host_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  auto store = open_ledger_or_report(config->host, ledger::Access::read_only);
  if (!store) return kExitFailed;
  auto runs =
      store->history(job.empty() ? std::nullopt : std::optional<std::string_view>(job), limit);
  if (!runs) {
    fmt::print(stderr, "{}\n", runs.error().message);
    return kExitFailed;
  }
  if (as_json) {
    json out = json::array();
    for (const auto& run : *runs) out.push_back(run);
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{:<26} {:<16} {:<24} {:>3} {:<14} {:>8}  {}\n", "RUN", "JOB", "STARTED", "ATT",
             "OUTCOME", "DURATION", "MESSAGE");
  for (const auto& run : *runs) {
    fmt::print("{:<26} {:<16} {:<24} {:>3} {:<14} {:>8}  {}\n", run.run_id, cell(run.job, 16),
               ledger::format_utc(run.started_at), run.attempt,
               run.outcome ? to_string(*run.outcome) : "running", duration_text(run.duration),
               cell(run.message, 60));
  }
  return kExitOk;
}

namespace {

// The daemon's ledger backlog (engine snapshot "ledger_backlog"), when there is one.
void print_ledger_backlog(const json& backlog) {
  if (!backlog.is_object() || !backlog["refusing_since"].is_string()) return;
  auto text = [&](const char* key) {
    return backlog[key].is_string() ? backlog[key].get<std::string>() : std::string("-");
  };
  fmt::print(
      "ledger: refusing writes since {}; {} record(s) kept in memory (oldest since {}), "
      "runs wait: see the daemon's log\n",
      text("refusing_since"), backlog.value("records", 0), text("oldest_kept_since"));
}

}  // namespace

int cmd_status(const std::string& config_flag, bool as_json) {
  auto config = load_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  auto store = open_ledger_or_report(config->host, ledger::Access::read_only);
  if (!store) return kExitFailed;
  int daemon_pid = daemon::running_daemon_pid(config->host.state_dir);
  auto running = store->running_runs();
  if (!running) {
    fmt::print(stderr, "{}\n", running.error().message);
    return kExitFailed;
  }
  std::vector<std::string> names;
  names.reserve(config->jobs.size());
  for (const auto& job : config->jobs) names.push_back(job.name);
  auto stats = store->job_stats_of(names);
  if (!stats) {
    fmt::print(stderr, "{}\n", stats.error().message);
    return kExitFailed;
  }
  json jobs = json::array();
  for (std::size_t i = 0; i < config->jobs.size(); ++i) {
    json entry = (*stats)[i];
    entry["enabled"] = config->jobs[i].settings->enabled;
    entry["plugin"] = config->jobs[i].settings->plugin;
    jobs.push_back(std::move(entry));
  }
  // The build each job's next run will load and the ledger backlog: only
  // the daemon knows them.
  json backlog = nullptr;
  json cluster = nullptr;  // on a shared ledger: the lease and the skew between hosts
  if (daemon_pid != 0) {
    auto reply = daemon::control_request(config->host.state_dir, {{"op", "status"}},
                                         std::chrono::seconds(2));
    if (reply && reply->value("ok", false) && (*reply)["jobs"].is_array()) {
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        auto& entry = jobs[i];
        for (const auto& live : (*reply)["jobs"]) {
          if (live.value("job", "") != config->jobs[i].name) continue;
          entry["next_build"] = live.value("next_build", json(nullptr));
          if (live.contains("blocked")) entry["blocked"] = live["blocked"];
        }
      }
      backlog = reply->value("ledger_backlog", json(nullptr));
      cluster = reply->value("cluster", json(nullptr));
    }
  }
  json in_flight = json::array();
  for (const auto& run : *running) in_flight.push_back(run);
  if (as_json) {
    json out = {{"daemon",
                 {{"running", daemon_pid != 0},
                  {"pid", daemon_pid},
                  {"ledger_backlog", backlog},
                  {"cluster", cluster}}},
                {"jobs", jobs},
                {"running", in_flight}};
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("daemon: {}\n",
             daemon_pid ? fmt::format("running (pid {})", daemon_pid) : std::string("not running"));
  print_ledger_backlog(backlog);
  if (cluster.is_object() && cluster["skew"].is_object()) {
    const json& skew = cluster["skew"];
    for (const auto& other : skew.value("hosts_with_other_definitions", json::array())) {
      fmt::print(
          "skew: host {} defines the jobs differently from most hosts (jobhost cluster "
          "status)\n",
          other.get<std::string>());
    }
    for (const auto& [plugin, builds] :
         skew.value("plugins_built_differently", json::object()).items()) {
      fmt::print(
          "skew: plugin {} runs in {} different builds across the hosts (jobhost cluster "
          "status)\n",
          plugin, builds.size());
    }
  }
  fmt::print("{:<20} {:<14} {:<24} {:<24} {:>5} {:>8} {:>9}\n", "JOB", "LAST", "LAST RUN",
             "NEXT FIRE", "FAILS", "SUCCESS", "MEAN");
  for (const auto& j : jobs) {
    auto text = [&](const char* key) {
      return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string("-");
    };
    std::string rate = j.contains("success_rate") && j["success_rate"].is_number()
                           ? fmt::format("{:.0f}%", j["success_rate"].get<double>() * 100)
                           : "-";
    std::string mean = j.contains("mean_duration_ms") && j["mean_duration_ms"].is_number()
                           ? duration_text(Duration(j["mean_duration_ms"].get<int64_t>()))
                           : "-";
    fmt::print("{:<20} {:<14} {:<24} {:<24} {:>5} {:>8} {:>9}\n", text("job"), text("last_outcome"),
               text("last_started"), text("next_fire"), j.value("consecutive_failures", 0), rate,
               mean);
    if (j.value("paused", false)) {
      fmt::print("  paused since {} by {}: fires are recorded as skipped\n", text("paused_at"),
                 text("paused_by"));
    }
    if (j.contains("next_build") && j["next_build"].is_object()) {
      fmt::print("  next run: {} {} (sha256 {})\n", j.value("plugin", ""),
                 j["next_build"].value("version", ""),
                 j["next_build"].value("sha256", "").substr(0, 12));
    } else if (j.contains("blocked")) {
      fmt::print("  blocked: {}\n", j["blocked"].get<std::string>());
    }
  }
  for (const auto& run : *running) {
    fmt::print("in flight: {} {} attempt {} since {}{}\n", run.job, run.run_id, run.attempt,
               ledger::format_utc(run.started_at),
               run.progress ? fmt::format(" progress {:.0f}%", *run.progress * 100) : "");
  }
  return kExitOk;
}

}  // namespace jobhost::cli
