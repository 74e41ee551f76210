// compute_definition_hash: a canonical JSON of the effective settings, hashed;
// diff_jobs compares two job tables by it.
#include <map>
#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "config/config.h"

namespace jobhost::config {
namespace {

// nlohmann::json objects keep their keys sorted, so the text is canonical.
nlohmann::json schedule_json(const JobConfig& job) {
  using nlohmann::json;
  struct Visitor {
    const JobConfig& job;
    json operator()(const schedule::Cron& cron) const {
      return {{"kind", "cron"}, {"expr", cron.expr.text()}, {"timezone", job.timezone}};
    }
    json operator()(const schedule::Every& every) const {
      return {{"kind", "every"}, {"period_ms", every.period.count()}};
    }
    json operator()(const schedule::At& at) const {
      return {{"kind", "at"}, {"instant_ms", at.instant.time_since_epoch().count()}};
    }
    json operator()(const schedule::Manual&) const {
      return {{"kind", "manual"}, {"on_reboot", job.on_reboot}};
    }
  };
  return std::visit(Visitor{job}, job.schedule);
}

}  // namespace

std::string compute_definition_hash(const JobConfig& job) {
  using nlohmann::json;
  const json retry = {
      {"max_attempts", job.retry.max_attempts},
      {"initial_delay_ms", job.retry.initial_delay.count()},
      {"max_delay_ms", job.retry.max_delay.count()},
      {"multiplier", job.retry.multiplier},
      {"jitter", to_string(job.retry.jitter)},
  };
  const json limits = {
      {"memory_bytes", job.limits.memory_bytes}, {"cpu_time_ms", job.limits.cpu_time.count()},
      {"open_files", job.limits.open_files},     {"processes", job.limits.processes},
      {"file_size", job.limits.file_size},       {"output_bytes", job.limits.output_bytes},
  };
  json canonical = {
      {"version", 1},
      {"plugin", job.plugin},
      {"schedule", schedule_json(job)},
      {"timeout_ms", job.timeout.count()},
      {"stall_timeout_ms", job.stall_timeout.count()},
      {"kill_grace_ms", job.kill_grace.count()},
      {"jitter_ms", job.jitter.count()},
      {"concurrency", to_string(job.concurrency)},
      {"misfire", to_string(job.misfire)},
      {"misfire_limit", job.misfire_limit},
      {"catchup_spread_ms", job.catchup_spread.count()},
      {"enabled", job.enabled},
      {"retry", retry},
      {"limits", limits},
      {"params", job.params},
      {"user", job.user ? json(*job.user) : json(nullptr)},
      {"group", job.group ? json(*job.group) : json(nullptr)},
  };
  // Sandbox keys join the hash only when not at their defaults, so adding
  // them did not change the hash (and the ledger's definition) of other jobs.
  const Sandbox& sb = job.sandbox;
  if (sb != Sandbox{}) {
    canonical["sandbox"] = {
        {"network", to_string(sb.network)},
        {"private_tmp", sb.private_tmp},
        {"read_only", sb.read_only},
        {"read_write_paths", sb.read_write_paths},
        {"syscall_filter", to_string(sb.syscall_filter)},
    };
  }
  // Environment and secrets (issue 13): only when set, so that the hashes of
  // jobs without them stay what they were. Secrets by name and source, never
  // by value (a rotated value is not a new definition).
  if (!job.env.empty()) canonical["env"] = job.env;
  if (!job.secrets.empty()) {
    json secrets = json::array();
    for (const auto& s : job.secrets) {
      secrets.push_back({{"name", s.name}, {"source", to_string(s.source)}, {"at", s.location}});
    }
    canonical["secrets"] = std::move(secrets);
  }
  // Dynamic users: a job's runs change uid with it (and only then is the key there).
  if (job.dynamic_uid) canonical["dynamic_uid"] = *job.dynamic_uid;
  return sha256_hex(canonical.dump());
}

JobDiff diff_jobs(const std::vector<JobConfig>& before, const std::vector<JobConfig>& after) {
  std::map<std::string, const JobConfig*> old_jobs, new_jobs;
  for (const auto& job : before) old_jobs[job.name] = &job;
  for (const auto& job : after) new_jobs[job.name] = &job;
  JobDiff diff;
  for (const auto& [name, job] : new_jobs) {
    auto it = old_jobs.find(name);
    if (it == old_jobs.end()) {
      diff.added.push_back(name);
    } else if (it->second->definition_hash != job->definition_hash) {
      diff.changed.push_back(name);
    } else {
      diff.unchanged.push_back(name);
    }
  }
  for (const auto& [name, job] : old_jobs) {
    if (!new_jobs.contains(name)) diff.removed.push_back(name);
  }
  return diff;
}

}  // namespace jobhost::config
