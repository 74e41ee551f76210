// compute_definition_hash: a canonical JSON of the effective settings, hashed;
// diff_jobs compares two job tables by it.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "common/sha256.h"
#include "config/config.h"

namespace jobhost::config {
namespace {

// The canonical text is the JSON object of the job's effective settings with
// its keys sorted, as nlohmann::json's dump() writes it (no spaces): the text
// (and so every hash in existing ledgers) is the same as when it was built
// as a json object, which cost 100,000 jobs 1.5 s. Keys are written here in
// sorted order by hand; values that need escaping or number formatting go
// through nlohmann::json. tests/config/definition_hash_test.cpp holds the
// json-built text as the reference.
class Canonical {
 public:
  Canonical() = default;
  // Goes on after `written`, a part that has keys: the next key takes a comma.
  explicit Canonical(std::string written) : out_(std::move(written)), first_(false) {}

  Canonical& open() {
    out_ += '{';
    first_ = true;
    return *this;
  }
  Canonical& close() {
    out_ += '}';
    first_ = false;
    return *this;
  }
  // "key": then a value
  Canonical& key(std::string_view name) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += '"';
    out_ += name;  // keys are fixed ASCII names: nothing to escape
    out_ += "\":";
    return *this;
  }
  Canonical& number(int64_t v) { return raw(fmt::format_int(v).str()); }
  Canonical& unsigned_number(uint64_t v) { return raw(fmt::format_int(v).str()); }
  Canonical& boolean(bool v) { return raw(v ? "true" : "false"); }
  Canonical& json(const nlohmann::json& v) { return raw(v.dump()); }
  Canonical& text(std::string_view v) {
    // Plain printable ASCII without '"' or '\\' is written as is, as dump() would.
    if (std::all_of(v.begin(), v.end(),
                    [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; })) {
      out_ += '"';
      out_ += v;
      out_ += '"';
      return *this;
    }
    return json(nlohmann::json(std::string(v)));
  }
  Canonical& null() { return raw("null"); }
  // Text written as is (a value, or parts written by another Canonical).
  Canonical& raw(std::string_view v) {
    out_ += v;
    first_ = false;
    return *this;
  }
  // What was written so far; the next key still takes a comma.
  std::string take() {
    std::string out = std::move(out_);
    out_.clear();
    return out;
  }

 private:
  std::string out_;
  bool first_ = true;
};

void write_schedule(Canonical& c, const JobConfig& job) {
  c.open();
  std::visit(
      [&](const auto& s) {
        using S = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<S, schedule::Cron>) {
          c.key("expr").text(s.expr.text()).key("kind").text("cron");
          c.key("timezone").text(job.settings->timezone);
        } else if constexpr (std::is_same_v<S, schedule::Every>) {
          c.key("kind").text("every").key("period_ms").number(s.period.count());
        } else if constexpr (std::is_same_v<S, schedule::At>) {
          c.key("instant_ms").number(s.instant.time_since_epoch().count());
          c.key("kind").text("at");
        } else {
          c.key("kind").text("manual").key("on_reboot").boolean(job.on_reboot);
        }
      },
      job.schedule);
  c.close();
}

}  // namespace

namespace {

// The canonical text's parts that come from the settings alone: before the
// job's dynamic_uid, between it and the job's schedule, and after that. Jobs
// sharing a settings block share them (compute_definition_hashes).
struct SettingsParts {
  std::string head;
  std::string middle;
  std::string tail;
};

SettingsParts settings_parts(const JobSettings& s) {
  SettingsParts parts;
  Canonical c;
  c.open();
  c.key("catchup_spread_ms").number(s.catchup_spread.count());
  c.key("concurrency").text(to_string(s.concurrency));
  parts.head = c.take();  // the job's dynamic_uid goes here
  c.key("enabled").boolean(s.enabled);
  // Environment and secrets (issue 13): only when set, so that the hashes of
  // jobs without them stay what they were.
  if (!s.env.empty()) c.key("env").json(s.env);
  c.key("group");
  s.group ? c.text(*s.group) : c.null();
  c.key("jitter_ms").number(s.jitter.count());
  c.key("kill_grace_ms").number(s.kill_grace.count());
  const Limits& l = s.limits;
  c.key("limits").open();
  c.key("cpu_time_ms").number(l.cpu_time.count()).key("file_size").unsigned_number(l.file_size);
  c.key("memory_bytes").unsigned_number(l.memory_bytes);
  c.key("open_files").unsigned_number(l.open_files);
  c.key("output_bytes").unsigned_number(l.output_bytes);
  c.key("processes").unsigned_number(l.processes);
  c.close();
  c.key("misfire").text(to_string(s.misfire));
  c.key("misfire_limit").number(s.misfire_limit);
  c.key("params").json(s.params);
  c.key("plugin").text(s.plugin);
  const RetryPolicy& r = s.retry;
  c.key("retry").open();
  c.key("initial_delay_ms").number(r.initial_delay.count());
  c.key("jitter").text(to_string(r.jitter));
  c.key("max_attempts").number(r.max_attempts);
  c.key("max_delay_ms").number(r.max_delay.count());
  c.key("multiplier").json(r.multiplier);
  c.close();
  // Sandbox keys join the hash only when not at their defaults, so adding
  // them did not change the hash (and the ledger's definition) of other jobs.
  if (const Sandbox& sb = s.sandbox; sb != Sandbox{}) {
    c.key("sandbox").open();
    c.key("network").text(to_string(sb.network));
    c.key("private_tmp").boolean(sb.private_tmp);
    c.key("read_only").boolean(sb.read_only);
    c.key("read_write_paths").json(sb.read_write_paths);
    c.key("syscall_filter").text(to_string(sb.syscall_filter));
    c.close();
  }
  parts.middle = c.take();
  // Secrets by name and source, never by value (a rotated value is not a new
  // definition).
  if (!s.secrets.empty()) {
    nlohmann::json secrets = nlohmann::json::array();
    for (const auto& secret : s.secrets) {
      secrets.push_back(
          {{"name", secret.name}, {"source", to_string(secret.source)}, {"at", secret.location}});
    }
    c.key("secrets").json(secrets);
  }
  c.key("stall_timeout_ms").number(s.stall_timeout.count());
  c.key("timeout_ms").number(s.timeout.count());
  c.key("user");
  s.user ? c.text(*s.user) : c.null();
  c.key("version").number(1);
  // File triggers: only when set, so that the hashes of other jobs stay what they were.
  if (s.watch) {
    nlohmann::json events = nlohmann::json::array();
    for (FileEvent e : s.watch->events) events.push_back(to_string(e));
    c.key("watch").open();
    c.key("debounce_ms").number(s.watch->debounce.count());
    c.key("events").json(events);
    c.key("paths").json(s.watch->paths);
    c.close();
  }
  c.close();
  parts.tail = c.take();
  return parts;
}

std::string definition_hash(const JobConfig& job, const SettingsParts& parts) {
  Canonical c(parts.head);
  // Dynamic users: a job's runs change uid with it (and only then is the key there).
  if (job.dynamic_uid) c.key("dynamic_uid").unsigned_number(*job.dynamic_uid);
  c.raw(parts.middle);
  c.key("schedule");
  write_schedule(c, job);
  c.raw(parts.tail);
  return sha256_hex(c.take());
}

}  // namespace

std::string compute_definition_hash(const JobConfig& job) {
  return definition_hash(job, settings_parts(*job.settings));
}

void compute_definition_hashes(std::vector<JobConfig>& jobs) {
  std::unordered_map<const JobSettings*, SettingsParts> parts;
  for (JobConfig& job : jobs) {
    auto it = parts.find(job.settings.get());
    if (it == parts.end())
      it = parts.emplace(job.settings.get(), settings_parts(*job.settings)).first;
    job.definition_hash = definition_hash(job, it->second);
  }
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
