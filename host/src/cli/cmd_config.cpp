// validate, plugins, list, next: the commands that need no daemon (list and
// plugins ask one if it runs; list reads the ledger when none does).
#include <fmt/core.h>
#include <fmt/format.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "daemon/daemon.h"
#include "exec/secrets.h"
#include "ledger/open_store.h"
#include "reload/reload.h"
#include "schedule/schedule.h"

namespace jobhost::cli {
namespace {

using nlohmann::json;

// An Every grid needs an anchor; without a daemon we anchor it at `from`.
schedule::Spec anchored(schedule::Spec spec, TimePoint from) {
  if (auto* every = std::get_if<schedule::Every>(&spec); every && every->anchor == TimePoint{}) {
    every->anchor = std::chrono::floor<std::chrono::seconds>(from);
  }
  return spec;
}

std::vector<TimePoint> next_fires(const schedule::Spec& spec, TimePoint from, int count) {
  std::vector<TimePoint> out;
  TimePoint t = from;
  for (int i = 0; i < count; ++i) {
    auto next = schedule::next_fire_after(spec, t);
    if (!next) break;
    out.push_back(*next);
    t = *next;
  }
  return out;
}

// `plugins` as the running daemon answers it (see Reloader::plugins_json).
int print_daemon_plugins(json reply, bool as_json) {
  reply.erase("ok");
  const bool clean = reply["rejected"].empty();
  if (as_json) {
    fmt::print("{}\n", reply.dump(2));
    return clean ? kExitOk : kExitFailed;
  }
  std::vector<std::string> dirs;
  if (reply["plugin_dirs"].is_array()) {
    for (const auto& dir : reply["plugin_dirs"]) {
      if (dir.is_string()) dirs.push_back(dir.get<std::string>());
    }
  }
  fmt::print("plugins in service in the running daemon ({})\n", fmt::join(dirs, ", "));
  for (const auto& p : reply["accepted"]) {
    fmt::print("  accepted  {:<16} {:<10} abi {}  sha256 {}  {}\n", p.value("name", ""),
               p.value("version", ""), p.value("abi", ""), p.value("sha256", "").substr(0, 12),
               p.value("path", ""));
  }
  for (const auto& r : reply["rejected"]) {
    fmt::print("  rejected  {}: {}\n", r.value("path", ""), r.value("reason", ""));
  }
  for (const auto& j : reply["jobs"]) {
    if (j["next_build"].is_object()) {
      fmt::print("  job {:<20} next run loads {} {} (sha256 {})\n", j.value("job", ""),
                 j.value("plugin", ""), j["next_build"].value("version", ""),
                 j["next_build"].value("sha256", "").substr(0, 12));
    } else {
      fmt::print("  job {:<20} blocked: {}\n", j.value("job", ""), j.value("blocked", ""));
    }
  }
  return clean ? kExitOk : kExitFailed;
}

}  // namespace

int cmd_validate(const std::string& config_flag) {
  auto file = resolve_config_path(config_flag);
  catalog::ScanResult scan;
  auto config = config::load_config(
      file, [&](const config::HostConfig& host) -> std::optional<std::set<std::string>> {
        scan = catalog::Catalog(host.plugin_dirs, host.state_dir / "plugins").scan();
        std::set<std::string> names;
        for (const auto& p : scan.accepted) names.insert(p.name);
        return names;
      });
  if (!config) {
    for (const auto& error : config.error()) {
      std::string line = error.to_string();
      // A job naming a plugin whose file was rejected: say why it was rejected.
      for (const auto& r : scan.rejected) {
        if (error.kind == config::ConfigError::Kind::unknown_plugin &&
            error.plugin == r.path.stem().string()) {
          line += fmt::format(" ({} was rejected: {})", r.path.filename().string(), r.reason);
        }
      }
      fmt::print(stderr, "{}\n", line);
    }
    // A plugin_dir that cannot be used explains every "unknown plugin" above.
    for (const auto& r : scan.rejected) {
      if (r.path.extension() != ".so") fmt::print(stderr, "{}: {}\n", r.path.string(), r.reason);
    }
    return kExitFailed;
  }
  for (const auto& warning : config->warnings) fmt::print(stderr, "{}\n", warning.to_string());
  // Each secret is read as a run would, and its value wiped; a message never
  // holds a value. env and credential sources live in the daemon's
  // environment, which this shell may not share: only a warning for them.
  bool secrets_ok = true;
  for (const auto& secret : config->secrets) {
    auto value = exec::read_secret(secret);
    if (value) {
      exec::wipe(*value);
      continue;
    }
    if (secret.source == config::SecretConfig::Source::file) {
      fmt::print(stderr, "{}\n",
                 config::ConfigError{secret.pos, value.error().message}.to_string());
      secrets_ok = false;
    } else {
      const config::ConfigError warning{
          secret.pos,
          value.error().message + " (checked in this shell's environment; the daemon's may differ)",
          config::ConfigError::Kind::warning};
      fmt::print(stderr, "{}\n", warning.to_string());
    }
  }
  if (!secrets_ok) return kExitFailed;
  const std::string files = config->included_files.empty()
                                ? std::string()
                                : fmt::format(" in {} files", 1 + config->included_files.size());
  fmt::print("{}: valid ({} jobs{}; {} plugins accepted, {} rejected)\n", file.string(),
             config->jobs.size(), files, scan.accepted.size(), scan.rejected.size());
  return kExitOk;
}

int cmd_plugins(const std::string& config_flag, bool as_json) {
  auto config = load_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  // A running daemon knows what its runs load (a rejected new build leaves
  // the previous one in service); without one, scan plugin_dir.
  if (daemon::running_daemon_pid(config->host.state_dir) != 0) {
    auto reply = daemon::control_request(config->host.state_dir, {{"op", "plugins"}},
                                         std::chrono::seconds(5));
    if (reply && reply->value("ok", false)) return print_daemon_plugins(*reply, as_json);
  }
  auto scan = scan_plugins(*config);
  if (as_json) {
    json dirs = json::array();
    for (const auto& dir : config->host.plugin_dirs) dirs.push_back(dir.string());
    json out = {{"plugin_dirs", dirs}, {"accepted", json::array()}, {"rejected", json::array()}};
    for (const auto& p : scan.accepted) out["accepted"].push_back(reload::plugin_json(p));
    for (const auto& r : scan.rejected) {
      out["rejected"].push_back({{"path", r.path.string()}, {"reason", r.reason}});
    }
    fmt::print("{}\n", out.dump(2));
  } else {
    std::vector<std::string> dirs;
    for (const auto& dir : config->host.plugin_dirs) dirs.push_back(dir.string());
    fmt::print("plugins in {}\n", fmt::join(dirs, ", "));
    for (const auto& p : scan.accepted) {
      fmt::print("  accepted  {:<16} {:<10} abi {}.{}  sha256 {}  {}\n", p.name, p.version,
                 p.abi_major, p.abi_minor, p.sha256.substr(0, 12), p.path.string());
    }
    for (const auto& r : scan.rejected) {
      fmt::print("  rejected  {}: {}\n", r.path.string(), r.reason);
    }
  }
  return scan.rejected.empty() ? kExitOk : kExitFailed;
}

// Where `jobhost list` got its next fires from, and the fires by job.
struct PlannedFires {
  std::string source;  // "daemon", "ledger" or "config"
  std::string note;    // for the text output; empty for "daemon"
  struct Next {
    TimePoint due;   // when it starts: the slot plus its jitter / spread delay
    TimePoint slot;  // the scheduled_for the ledger will claim
  };
  std::map<std::string, std::optional<Next>, std::less<>> next;
};

// The running daemon's planned fires (op next_fires), or an error.
std::optional<PlannedFires> fires_from_daemon(const config::Config& config, std::string* why) {
  auto reply = daemon::control_request(config.host.state_dir, {{"op", "next_fires"}},
                                       std::chrono::seconds(5));
  if (!reply) {
    if (reply.error().kind != daemon::ControlError::Kind::no_daemon) *why = reply.error().message;
    return std::nullopt;
  }
  if (!reply->value("ok", false) || !reply->contains("jobs")) {
    *why = reply->value("error", std::string("the daemon does not report its next fires"));
    return std::nullopt;
  }
  PlannedFires out{"daemon", "", {}};
  for (const auto& entry : (*reply)["jobs"]) {
    std::optional<PlannedFires::Next> next;
    if (entry["next_fire"].is_object()) {
      auto due = schedule::parse_rfc3339(entry["next_fire"].value("due", ""));
      auto slot = schedule::parse_rfc3339(entry["next_fire"].value("slot", ""));
      if (due && slot) next = PlannedFires::Next{*due, *slot};
    }
    out.next[entry.value("job", "")] = next;
  }
  return out;
}

// Without a daemon: what the engine would plan if it started now, from the
// ledger's anchors (each job's last fire, the stored jitter seed), as
// Engine::start does; catch-ups of missed slots are not shown.
PlannedFires fires_from_ledger(const config::Config& config, TimePoint now,
                               const std::string& why) {
  const std::string lead =
      why.empty() ? "daemon not running" : "daemon not answering (" + why + ")";
  PlannedFires out;
  auto store = ledger::open_store(config.host, ledger::Access::read_only);
  std::optional<uint64_t> seed;
  if (store) {
    if (auto s = (*store)->jitter_seed()) seed = *s;
  }
  if (store) {
    out.source = "ledger";
    out.note = lead + ": next fires computed from the ledger";
    if (!seed) out.note += " (no jitter seed yet: jitter not included)";
  } else {
    out.source = "config";
    out.note = lead + ", no ledger yet: next fires computed from the config at now" +
               " (jitter not included)";
  }
  // Every job's last fire in one read (not a query per job).
  std::unordered_map<std::string, TimePoint> last_fires;
  if (store) {
    if (auto marks = (*store)->job_marks()) {
      for (auto& m : *marks) {
        if (m.last_fire) last_fires.emplace(std::move(m.job), *m.last_fire);
      }
    }
  }
  for (const auto& job : config.jobs) {
    std::optional<TimePoint> last;
    if (auto l = last_fires.find(job.name); l != last_fires.end()) last = l->second;
    auto spec = job.schedule;
    if (auto* every = std::get_if<schedule::Every>(&spec)) {
      every->anchor = last ? *last : std::chrono::floor<std::chrono::seconds>(now);
    }
    std::optional<PlannedFires::Next> next;
    if (job.settings->enabled) {
      if (auto slot = schedule::next_fire_after(spec, last ? std::max(now, *last) : now)) {
        Duration delay =
            seed ? schedule::jitter_for(job.name, *slot, job.settings->jitter, *seed) : Duration(0);
        next = PlannedFires::Next{*slot + delay, *slot};
      }
    }
    out.next[job.name] = next;
  }
  return out;
}

int cmd_list(const std::string& config_flag, bool as_json) {
  auto config = load_or_report(resolve_config_path(config_flag));
  if (!config) return kExitFailed;
  TimePoint now = wall_now();
  std::string why;
  auto planned = fires_from_daemon(*config, &why);
  if (!planned) planned = fires_from_ledger(*config, now, why);
  json out = json::array();
  for (const auto& job : config->jobs) {
    auto spec = anchored(job.schedule, now);
    std::optional<PlannedFires::Next> next;
    if (auto it = planned->next.find(job.name);
        it != planned->next.end() && job.settings->enabled) {
      next = it->second;
    }
    const auto* zone = display_zone(*config, job);
    std::string next_text = next ? schedule::format_rfc3339(next->due, zone) : std::string();
    std::string words = job.on_reboot ? "once at host start" : schedule::describe(spec);
    const std::string resolved = config::resolved_schedule(job);
    if (as_json) {
      out.push_back(
          {{"job", job.name},
           {"plugin", job.settings->plugin},
           {"schedule", job.schedule_text},
           {"schedule_resolved", resolved},
           {"description", words},
           {"timezone", job.settings->timezone},
           {"enabled", job.settings->enabled},
           {"next_fire", next ? json(next_text) : json(nullptr)},
           {"next_slot", next ? json(schedule::format_rfc3339(next->slot, zone)) : json(nullptr)},
           {"source", planned->source}});
    } else {
      if (resolved != job.schedule_text) words += fmt::format(" [{}]", resolved);
      fmt::print("{:<20} {:<12} {:<44} {}\n", job.name, job.settings->plugin, words,
                 !job.settings->enabled ? "disabled"
                 : next                 ? next_text
                                        : "never");
    }
  }
  if (as_json) {
    fmt::print("{}\n", out.dump(2));
  } else if (!planned->note.empty()) {
    fmt::print("({})\n", planned->note);
  }
  return kExitOk;
}

int cmd_next(const NextOptions& options) {
  TimePoint from = wall_now();
  if (!options.from.empty()) {
    auto parsed = schedule::parse_rfc3339(options.from);
    if (!parsed) {
      fmt::print(stderr, "--from: {}\n", parsed.error().message);
      return kExitUsage;
    }
    from = *parsed;
  }
  schedule::Spec spec;
  const date::time_zone* zone = nullptr;
  std::string written;
  std::string resolved;
  if (!options.expr.empty()) {
    auto expr = schedule::CronExpr::parse(options.expr, options.name);
    // Valid with any name: only the name that H derives from is missing.
    if (!expr && options.name.empty() && schedule::CronExpr::parse(options.expr, "-")) {
      fmt::print(stderr,
                 "--expr: H needs a job name to derive its values from: jobhost next JOB for a "
                 "configured job, or give --name NAME\n");
      return kExitUsage;
    }
    if (!expr) {
      fmt::print(stderr, "--expr: {}\n  {}\n  {}^\n", expr.error().message, options.expr,
                 std::string(expr.error().column, ' '));
      return kExitFailed;
    }
    auto found = schedule::find_zone(options.tz.empty() ? "UTC" : options.tz);
    if (!found) {
      fmt::print(stderr, "--tz: {}\n", found.error().message);
      return kExitFailed;
    }
    zone = *found;
    spec = schedule::Cron{*expr, zone};
    written = expr->text();
    resolved = expr->resolved();
  } else {
    auto config = load_or_report(resolve_config_path(options.config));
    if (!config) return kExitFailed;
    const auto* job = config->find_job(options.job);
    if (!job) {
      fmt::print(stderr, "no job named \"{}\" in {}\n", options.job, config->file.string());
      return kExitFailed;
    }
    spec = anchored(job->schedule, from);
    zone = display_zone(*config, *job);
    written = job->schedule_text;
    resolved = config::resolved_schedule(*job);
  }
  auto fires = next_fires(spec, from, options.count);
  if (options.json) {
    json out = json::array();
    for (auto t : fires) out.push_back(schedule::format_rfc3339(t, zone));
    fmt::print("{}\n", out.dump());
  } else {
    if (resolved != written) fmt::print("# {} = {}\n", written, resolved);
    for (auto t : fires) fmt::print("{}\n", schedule::format_rfc3339(t, zone));
  }
  return kExitOk;
}

}  // namespace jobhost::cli
