#include "observe/dashboard_data.h"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace jobhost::observe {

Result<nlohmann::json> last_hour_json(ledger::Store& store, TimePoint now) {
  auto summary = store.run_summary(now - std::chrono::hours(1));
  if (!summary) return std::unexpected(summary.error());
  nlohmann::json out = {{"runs", summary->runs},
                        {"failed", summary->failed},
                        {"failure_rate", nullptr},
                        {"mean_duration_ms", nullptr}};
  if (summary->runs > 0) {
    out["failure_rate"] = static_cast<double>(summary->failed) / summary->runs;
  }
  if (summary->mean_duration) out["mean_duration_ms"] = summary->mean_duration->count();
  return out;
}

Result<void> add_recent_runs(ledger::Store& store, nlohmann::json& jobs, int per_job) {
  if (!jobs.is_array()) return {};
  std::vector<std::string> names;
  for (const auto& job : jobs) {
    if (job.is_object() && job.contains("name") && job["name"].is_string()) {
      names.push_back(job["name"].get<std::string>());
    }
  }
  std::map<std::string, nlohmann::json, std::less<>> strips;
  if (!names.empty()) {
    auto recent = store.recent_runs(names, per_job);
    if (!recent) return std::unexpected(recent.error());
    for (const auto& [job, runs] : *recent) {
      auto& strip = strips[job] = nlohmann::json::array();
      for (const auto& run : runs) {
        strip.push_back({{"outcome", to_string(run.outcome)},
                         {"duration_ms", run.duration ? nlohmann::json(run.duration->count())
                                                      : nlohmann::json(nullptr)}});
      }
    }
  }
  for (auto& job : jobs) {
    if (!job.is_object()) continue;
    auto it = job.contains("name") && job["name"].is_string()
                  ? strips.find(job["name"].get<std::string>())
                  : strips.end();
    job["recent"] = it == strips.end() ? nlohmann::json::array() : it->second;
  }
  return {};
}

}  // namespace jobhost::observe
