#include "ledger/records.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/sha256.h"

namespace jobhost::ledger {
namespace {

constexpr std::array<std::string_view, 9> kTriggerNames = {
    "schedule", "manual", "retry", "catchup", "replay", "reboot", "file", "webhook", "chain"};

using nlohmann::json;

// Texts can hold bytes from plugins (messages, output) that are not UTF-8;
// nlohmann would throw on dump(). Replace invalid sequences by U+FFFD once here.
json text(const std::string& s) {
  return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}

template <class T, class F>
json or_null(const std::optional<T>& value, F&& convert) {
  return value ? json(convert(*value)) : json(nullptr);
}

json opt_text(const std::optional<std::string>& s) {
  return s ? text(*s) : json(nullptr);
}
json opt_time(const std::optional<TimePoint>& t) {
  return or_null(t, [](TimePoint v) { return format_utc(v); });
}

}  // namespace

bool storable_metric(std::string_view name, double value) {
  return !name.empty() && name.size() <= kMaxMetricNameBytes && std::isfinite(value);
}

std::string_view to_string(Trigger trigger) {
  return kTriggerNames[static_cast<std::size_t>(trigger)];
}

std::optional<Trigger> trigger_from_string(std::string_view text) {
  for (std::size_t i = 0; i < kTriggerNames.size(); ++i) {
    if (kTriggerNames[i] == text) return static_cast<Trigger>(i);
  }
  return std::nullopt;
}

std::string format_utc(TimePoint at) {
  using namespace std::chrono;
  auto day = floor<days>(at);
  year_month_day ymd(day);
  hh_mm_ss hms(at - day);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     hms.subseconds().count());
}

Duration percentile(const std::vector<Duration>& sorted, int p) {
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  std::size_t rank = (sorted.size() * static_cast<std::size_t>(p) + 99) / 100;
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

void to_json(json& out, const RunRecord& run) {
  out = json{
      {"run_id", run.run_id},
      {"job", text(run.job)},
      {"trace_id", run.trace_id},
      {"attempt", run.attempt},
      {"trigger", to_string(run.trigger)},
      {"scheduled_for", format_utc(run.scheduled_for)},
      {"started_at", format_utc(run.started_at)},
      {"finished_at", opt_time(run.finished_at)},
      {"duration_ms", or_null(run.duration, [](Duration d) { return d.count(); })},
      {"outcome", or_null(run.outcome, [](Outcome o) { return to_string(o); })},
      {"exit_code", or_null(run.exit_code, [](int c) { return c; })},
      {"signal", opt_text(run.signal)},
      {"message", text(run.message)},
      {"plugin", opt_text(run.plugin)},
      {"plugin_version", opt_text(run.plugin_version)},
      {"plugin_sha256", opt_text(run.plugin_sha256)},
      {"definition_hash", opt_text(run.definition_hash)},
      {"last_heartbeat", opt_time(run.last_heartbeat)},
      {"progress", or_null(run.progress, [](double p) { return p; })},
      {"replay_of", opt_text(run.replay_of)},
      {"host", opt_text(run.host)},
      {"host_pid", run.host_pid},
      {"cpu_seconds", or_null(run.cpu_seconds, [](double s) { return s; })},
      {"max_rss_bytes", or_null(run.max_rss_bytes, [](uint64_t b) { return b; })},
      {"metrics", json::object()},
  };
  // The trigger's payload, as the JSON it was (run detail only: get_run).
  if (run.event) {
    out["event"] = json::parse(*run.event, nullptr, false);
    if (out["event"].is_discarded()) out["event"] = text(*run.event);
  }
  // Names are plugin bytes: invalid UTF-8 is replaced, as in every text.
  // Values were finite when stored; a non-finite one read back is null.
  auto& metrics = out["metrics"];
  for (const auto& [name, value] : run.metrics) {
    metrics[text(name).get<std::string>()] = std::isfinite(value) ? json(value) : json(nullptr);
  }
}

void to_json(json& out, const JobStats& stats) {
  out = json{
      {"job", text(stats.job)},
      {"definition_hash", opt_text(stats.definition_hash)},
      {"last_fire", opt_time(stats.last_fire)},
      {"next_fire", opt_time(stats.next_fire)},
      {"consecutive_failures", stats.consecutive_failures},
      {"last_outcome", or_null(stats.last_outcome, [](Outcome o) { return to_string(o); })},
      {"last_started", opt_time(stats.last_started)},
      {"window_runs", stats.window_runs},
      {"success_rate", or_null(stats.success_rate, [](double r) { return r; })},
      {"mean_duration_ms", or_null(stats.mean_duration, [](Duration d) { return d.count(); })},
      {"p50_duration_ms", or_null(stats.p50_duration, [](Duration d) { return d.count(); })},
      {"p95_duration_ms", or_null(stats.p95_duration, [](Duration d) { return d.count(); })},
      {"runs_in_flight", stats.runs_in_flight},
      {"paused", stats.paused_at.has_value()},
      {"paused_at", opt_time(stats.paused_at)},
      {"paused_by", opt_text(stats.paused_by)},
  };
}

void to_json(json& out, const Event& event) {
  out = json{
      {"id", event.id},
      {"at", format_utc(event.at)},
      {"kind", text(event.kind)},
      {"job", opt_text(event.job)},
      {"run_id", opt_text(event.run_id)},
      {"detail", text(event.detail)},
  };
}

std::string definitions_digest(std::span<const std::pair<std::string, std::string>> jobs) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(jobs.size());
  std::string bytes;
  for (const auto& job : jobs) {
    sorted.push_back(&job);
    bytes.reserve(bytes.size() + job.first.size() + job.second.size() + 2);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (const auto* job : sorted) {
    bytes += job->first;
    bytes += '\0';
    bytes += job->second;
    bytes += '\n';
  }
  return sha256_hex(bytes);
}

Skew skew_of(std::span<const HostRecord> hosts, TimePoint now) {
  Skew skew;
  std::map<std::string, std::vector<std::string>> by_definitions;
  std::map<std::string, std::map<std::string, std::vector<std::string>>> builds;
  std::vector<std::string> unknown;  // live, but wrote no digest: an older jobhost
  for (const auto& h : hosts) {
    if (h.taken_over_at || h.lease_until < now) continue;
    if (h.definitions.empty()) {
      unknown.push_back(h.id);
      continue;
    }
    by_definitions[h.definitions].push_back(h.id);
    for (const auto& [plugin, sha] : h.plugins) builds[plugin][sha].push_back(h.id);
  }
  // Most hosts' digest; a tie goes to the smaller digest, so that every
  // host sees the same.
  std::size_t most = 0;
  for (const auto& [digest, ids] : by_definitions) {
    if (ids.size() > most) {
      most = ids.size();
      skew.definitions = digest;
    }
  }
  for (const auto& [digest, ids] : by_definitions) {
    if (digest == skew.definitions) continue;
    skew.other_definitions.insert(skew.other_definitions.end(), ids.begin(), ids.end());
  }
  // Hosts that say nothing are not known to agree: different, once some
  // host says something.
  if (!skew.definitions.empty()) {
    skew.other_definitions.insert(skew.other_definitions.end(), unknown.begin(), unknown.end());
  }
  std::sort(skew.other_definitions.begin(), skew.other_definitions.end());
  for (auto& [plugin, shas] : builds) {
    if (shas.size() > 1) skew.plugins.emplace(plugin, std::move(shas));
  }
  return skew;
}

nlohmann::json to_json(const Skew& skew) {
  nlohmann::json plugins = nlohmann::json::object();
  for (const auto& [plugin, shas] : skew.plugins) plugins[plugin] = shas;
  return {{"definitions", skew.definitions},
          {"hosts_with_other_definitions", skew.other_definitions},
          {"plugins_built_differently", plugins}};
}

}  // namespace jobhost::ledger
