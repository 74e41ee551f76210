// `jobhost cluster status`: the hosts sharing the ledger (docs/cluster.md),
// their leases, versions and runs in flight, read from the ledger.
#include <fmt/core.h>

#include <map>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/context.h"

namespace jobhost::cli {
namespace {

using nlohmann::json;

// live: renewing; expired: its lease ran out and nobody took it over yet;
// taken over: by another host; stopped: it ended its lease itself.
std::string host_state(const ledger::HostRecord& h, TimePoint now) {
  if (h.taken_over_at) return h.taken_over_by == h.id ? "stopped" : "taken over";
  return h.lease_until >= now ? "live" : "expired";
}

}  // namespace

int cmd_cluster_status(const std::string& config_flag, bool as_json) {
  auto host = load_host_or_report(resolve_config_path(config_flag));
  if (!host) return kExitFailed;
  auto store = open_ledger_or_report(host->host, ledger::Access::read_only);
  if (!store) return kExitFailed;
  auto hosts = store->hosts();
  auto running = hosts ? store->running_runs() : Result<std::vector<ledger::RunRecord>>{};
  if (!hosts || !running) {
    fmt::print(stderr, "{}\n", (!hosts ? hosts.error() : running.error()).message);
    return kExitFailed;
  }
  std::map<std::string, int> in_flight;
  for (const auto& run : *running) ++in_flight[run.host.value_or("")];
  const TimePoint now = wall_now();
  json out = json::array();
  for (const auto& h : *hosts) {
    out.push_back({{"id", h.id},
                   {"state", host_state(h, now)},
                   {"this_host", h.id == host->host.id},
                   {"pid", h.pid},
                   {"version", h.version},
                   {"incarnation", h.incarnation},
                   {"started_at", ledger::format_utc(h.started_at)},
                   {"heartbeat_at", ledger::format_utc(h.heartbeat_at)},
                   {"heartbeat_age_ms", (now - h.heartbeat_at).count()},
                   {"lease_until", ledger::format_utc(h.lease_until)},
                   {"taken_over_at",
                    h.taken_over_at ? json(ledger::format_utc(*h.taken_over_at)) : json(nullptr)},
                   {"taken_over_by", h.taken_over_by ? json(*h.taken_over_by) : json(nullptr)},
                   {"runs_in_flight", in_flight[h.id]},
                   {"definitions", h.definitions},
                   {"plugins", h.plugins}});
  }
  const json skew = ledger::to_json(ledger::skew_of(*hosts, now));
  if (as_json) {
    fmt::print("{}\n", json{{"store", host->host.store_url.empty() ? "sqlite" : "postgresql"},
                            {"hosts", out},
                            {"skew", skew}}
                           .dump(2));
    return kExitOk;
  }
  if (out.empty()) {
    fmt::print(
        "no host has joined this ledger: hosts share a PostgreSQL ledger ([store] url, "
        "docs/cluster.md); an SQLite ledger serves one host\n");
    return kExitOk;
  }
  fmt::print("{:<24} {:<11} {:>10} {:>7} {:<10} {:<12} {}\n", "HOST", "STATE", "HEARTBEAT", "RUNS",
             "VERSION", "DEFINITIONS", "SINCE");
  for (const auto& h : out) {
    const std::string id = h["id"].get<std::string>() + (h["this_host"] ? " *" : "");
    fmt::print("{:<24} {:<11} {:>9.1f}s {:>7} {:<10} {:<12} {}\n", id,
               h["state"].get<std::string>(), h["heartbeat_age_ms"].get<int64_t>() / 1000.0,
               h["runs_in_flight"].get<int>(), h["version"].get<std::string>(),
               h["definitions"].get<std::string>().substr(0, 12),
               h["started_at"].get<std::string>());
  }
  // Skew among the live hosts (docs/cluster.md#rolling-deploys).
  for (const auto& other : skew["hosts_with_other_definitions"]) {
    fmt::print("skew: host {} defines the jobs differently from most hosts ({})\n",
               other.get<std::string>(), skew["definitions"].get<std::string>().substr(0, 12));
  }
  for (const auto& [plugin, builds] : skew["plugins_built_differently"].items()) {
    std::string text;
    for (const auto& [sha, ids] : builds.items()) {
      std::string names;
      for (const auto& id : ids) names += (names.empty() ? "" : ", ") + id.get<std::string>();
      text += fmt::format("{}{} on {}", text.empty() ? "" : "; ", sha.substr(0, 12), names);
    }
    fmt::print("skew: plugin {} is built differently: {}\n", plugin, text);
  }
  return kExitOk;
}

}  // namespace jobhost::cli
