#include "observe/health.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

namespace jobhost::observe {

Response readiness_response(const Readiness& readiness) {
  nlohmann::json reasons = nlohmann::json::array();
  if (readiness.stopping) reasons.push_back("stopping: no new runs start");
  if (!readiness.config_loaded) reasons.push_back("no config loaded");
  if (!readiness.ledger_writable) {
    reasons.push_back("ledger not writable: " + readiness.ledger_writable.error().message);
  }
  if (readiness.ledger_backlog > 0) {
    std::string reason = fmt::format(
        "ledger write backlog: {} record(s) kept in memory until the ledger accepts them",
        readiness.ledger_backlog);
    if (!readiness.backlog_since.empty()) reason += ", oldest from " + readiness.backlog_since;
    reasons.push_back(std::move(reason));
  }
  if (reasons.empty()) return Response::json(200, R"({"status":"ready"})");
  nlohmann::json body = {{"status", "not ready"}, {"reasons", std::move(reasons)}};
  return Response::json(503, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

LedgerWriteProbe::LedgerWriteProbe(ledger::Store& store, std::chrono::milliseconds interval,
                                   SteadyClock steady)
    : store_(store), interval_(interval), steady_(std::move(steady)) {}

Result<void> LedgerWriteProbe::check() {
  const auto now = steady_();
  if (in_flight_) {
    if (last_ && now - *last_ >= 2 * interval_) {
      return fail(
          fmt::format("the ledger has not answered a write probe for {} ms",
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - *last_).count()));
    }
    return verdict_;
  }
  if (!last_ || now - *last_ >= interval_) {
    last_ = now;
    ++probes_;
    in_flight_ = true;
    worker_->run([at = wall_now()](ledger::Store& store) { return store.probe_writable(at); },
                 [this](Result<void> verdict) {
                   verdict_ = std::move(verdict);
                   in_flight_ = false;
                 });
  }
  return verdict_;
}

void add_health_routes(Router& router, std::function<Readiness()> readiness) {
  router.add("GET", "/healthz", [](const Request&, const Respond& respond) {
    respond(Response::json(200, R"({"status":"ok"})"));
  });
  router.add("GET", "/readyz",
             [readiness = std::move(readiness)](const Request&, const Respond& respond) {
               respond(readiness_response(readiness()));
             });
}

}  // namespace jobhost::observe
