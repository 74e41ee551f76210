// compute_definition_hash writes its canonical text by hand; the text must
// stay byte for byte what it was when it was built as an nlohmann::json
// object, or every ledger would see every job as redefined after an upgrade.
// reference_hash below is that json-built version, kept as the oracle.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "common/sha256.h"
#include "config/config.h"
#include "config/temp_config.h"

namespace {

using jobhost::config::JobConfig;
using nlohmann::json;

json reference_schedule(const JobConfig& job) {
  struct Visitor {
    const JobConfig& job;
    json operator()(const jobhost::schedule::Cron& cron) const {
      return {{"kind", "cron"}, {"expr", cron.expr.text()}, {"timezone", job.settings->timezone}};
    }
    json operator()(const jobhost::schedule::Every& every) const {
      return {{"kind", "every"}, {"period_ms", every.period.count()}};
    }
    json operator()(const jobhost::schedule::At& at) const {
      return {{"kind", "at"}, {"instant_ms", at.instant.time_since_epoch().count()}};
    }
    json operator()(const jobhost::schedule::Manual&) const {
      return {{"kind", "manual"}, {"on_reboot", job.on_reboot}};
    }
  };
  return std::visit(Visitor{job}, job.schedule);
}

std::string reference_hash(const JobConfig& job) {
  using jobhost::config::to_string;
  const json retry = {
      {"max_attempts", job.settings->retry.max_attempts},
      {"initial_delay_ms", job.settings->retry.initial_delay.count()},
      {"max_delay_ms", job.settings->retry.max_delay.count()},
      {"multiplier", job.settings->retry.multiplier},
      {"jitter", to_string(job.settings->retry.jitter)},
  };
  const json limits = {
      {"memory_bytes", job.settings->limits.memory_bytes},
      {"cpu_time_ms", job.settings->limits.cpu_time.count()},
      {"open_files", job.settings->limits.open_files},
      {"processes", job.settings->limits.processes},
      {"file_size", job.settings->limits.file_size},
      {"output_bytes", job.settings->limits.output_bytes},
  };
  json canonical = {
      {"version", 1},
      {"plugin", job.settings->plugin},
      {"schedule", reference_schedule(job)},
      {"timeout_ms", job.settings->timeout.count()},
      {"stall_timeout_ms", job.settings->stall_timeout.count()},
      {"kill_grace_ms", job.settings->kill_grace.count()},
      {"jitter_ms", job.settings->jitter.count()},
      {"concurrency", to_string(job.settings->concurrency)},
      {"misfire", to_string(job.settings->misfire)},
      {"misfire_limit", job.settings->misfire_limit},
      {"catchup_spread_ms", job.settings->catchup_spread.count()},
      {"enabled", job.settings->enabled},
      {"retry", retry},
      {"limits", limits},
      {"params", job.settings->params},
      {"user", job.settings->user ? json(*job.settings->user) : json(nullptr)},
      {"group", job.settings->group ? json(*job.settings->group) : json(nullptr)},
  };
  const auto& sb = job.settings->sandbox;
  if (sb != jobhost::config::Sandbox{}) {
    canonical["sandbox"] = {
        {"network", to_string(sb.network)},
        {"private_tmp", sb.private_tmp},
        {"read_only", sb.read_only},
        {"read_write_paths", sb.read_write_paths},
        {"syscall_filter", to_string(sb.syscall_filter)},
    };
  }
  if (!job.settings->env.empty()) canonical["env"] = job.settings->env;
  if (!job.settings->secrets.empty()) {
    json secrets = json::array();
    for (const auto& s : job.settings->secrets) {
      secrets.push_back({{"name", s.name}, {"source", to_string(s.source)}, {"at", s.location}});
    }
    canonical["secrets"] = std::move(secrets);
  }
  if (const auto& w = job.settings->watch) {
    json events = json::array();
    for (auto e : w->events) events.push_back(to_string(e));
    canonical["watch"] = {
        {"paths", w->paths}, {"events", events}, {"debounce_ms", w->debounce.count()}};
  }
  if (job.dynamic_uid) canonical["dynamic_uid"] = *job.dynamic_uid;
  return jobhost::sha256_hex(canonical.dump());
}

}  // namespace

TEST_CASE("compute_definition_hash: the same text as the json-built canonical form",
          "[config][definition-hash]") {
  jobhost::config::test::TempConfig file(R"(
[secrets.token]
env = "HOME"

[jobs.cron]
plugin = "p"
schedule = "*/5 * * * * *"

[jobs.every]
plugin = "p"
every = "90s"
params = { greeting = "grüß \"dich\"\tok", n = 3, ratio = 0.25, on = true }
env = { A = "1", B = "zwei\n" }

[jobs.at]
plugin = "p"
at = 2030-01-01T00:00:00Z
enabled = false

[jobs.reboot]
plugin = "p"
schedule = "@reboot"

[jobs.manual]
plugin = "p"
schedule = "@manual"

[jobs.zoned]
plugin = "p"
schedule = "30 2 * * *"
timezone = "Europe/Berlin"
user = "nobody"
group = "nogroup"
concurrency = "replace"
misfire = "run_all"
misfire_limit = 7
jitter = "3s"
catchup_spread = "1m"
timeout = "1h"
stall_timeout = "10m"
kill_grace = "1s"
retry = { max_attempts = 5, initial_delay = "2s", max_delay = "1h", multiplier = 1.5, jitter = "equal" }
limits = { memory = "1GiB", cpu_time = "1h", open_files = 1024, processes = 10, file_size = "0", output = "1MiB" }

[jobs.sandboxed]
plugin = "p"
every = "1m"
network = "none"
private_tmp = true
read_only = true
read_write_paths = ["/srv/data", "/var/lib/x"]
syscall_filter = "none"
secrets = ["token"]

[jobs.watched]
plugin = "p"
watch = { paths = ["/srv/in/*.csv", "/srv/in/ready"], events = ["moved_to", "delete"], debounce = "500ms" }
)");
  auto config = jobhost::config::load_config(file.file());
  REQUIRE(config);
  REQUIRE(config->jobs.size() == 8);
  for (JobConfig job : config->jobs) {
    INFO(job.name);
    // As load_config wrote it (compute_definition_hashes: the settings' part
    // written once for cron, reboot and manual, which share their block).
    CHECK(job.definition_hash == reference_hash(job));
    CHECK(jobhost::config::compute_definition_hash(job) == reference_hash(job));
    // With a dynamic uid too (a root host gives jobs without a user one).
    job.dynamic_uid = 61234;
    CHECK(jobhost::config::compute_definition_hash(job) == reference_hash(job));
  }
}
