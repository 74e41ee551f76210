#include "observe/dashboard_data.h"

#include <fmt/format.h>

#include <chrono>
#include <string>

namespace jobhost::observe {

Result<nlohmann::json> last_hour_json(ledger::Store& store, TimePoint now, const JobBook* book) {
  Result<ledger::RunSummary> summary = book ? Result<ledger::RunSummary>(book->last_hour(now))
                                            : store.run_summary(hour_window_start(now));
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

Result<nlohmann::json> status_summary(ledger::Store& store, const nlohmann::json& engine_snapshot,
                                      TimePoint now, const JobBook* book) {
  auto hour = last_hour_json(store, now, book);
  if (!hour) return std::unexpected(hour.error());
  auto retries = store.pending_retries();
  if (!retries) return std::unexpected(retries.error());
  return status_summary(engine_snapshot, std::move(*hour), retries->size());
}

nlohmann::json status_summary(const nlohmann::json& engine_snapshot, nlohmann::json last_hour,
                              std::size_t pending_retries) {
  const auto running = engine_snapshot.value("running", nlohmann::json::array());
  const auto backlog = engine_snapshot.value("ledger_backlog", nlohmann::json::object());
  const auto waiting = backlog.value("records", std::size_t{0});
  nlohmann::json ledger = {{"healthy", waiting == 0}, {"backlog", waiting}, {"reason", nullptr}};
  if (waiting > 0) {
    std::string since =
        backlog.contains("oldest_kept_since") && backlog["oldest_kept_since"].is_string()
            ? " since " + backlog["oldest_kept_since"].get<std::string>()
            : "";
    ledger["reason"] = fmt::format("{} ledger write(s) waiting{}", waiting, since);
  }
  return nlohmann::json{{"runs_in_flight", running.is_array() ? running.size() : 0},
                        {"queue_depth", engine_snapshot.value("queued", std::size_t{0})},
                        {"pending_retries", pending_retries},
                        {"last_hour", std::move(last_hour)},
                        {"ledger", std::move(ledger)}};
}

}  // namespace jobhost::observe
