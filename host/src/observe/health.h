// Health endpoints for probes (Kubernetes style): /healthz says the event
// loop turns (it is answered from the loop, so an answer is the proof);
// /readyz says the daemon can do its work: config loaded, ledger writable
// (a real write, at most once a second), no ledger write backlog.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "common/error.h"
#include "common/time.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "observe/http.h"

namespace jobhost::observe {

// What /readyz looks at, gathered when it is asked.
struct Readiness {
  bool config_loaded = false;
  Result<void> ledger_writable;    // LedgerWriteProbe::check()
  std::size_t ledger_backlog = 0;  // records the engine keeps in memory for the ledger
  std::string backlog_since;       // when the oldest of them was made ("" if none)
  bool stopping = false;           // a stop was asked: runs in flight are finishing
};

// 200 {"status":"ready"}, or 503 {"status":"not ready","reasons":[...]} with
// one sentence per failed check.
Response readiness_response(const Readiness& readiness);

// Store::probe_writable at most once per `interval`; between, the last
// verdict is returned, so a probe storm cannot hammer the ledger. Through a
// threaded ledger worker (PostgreSQL) the probe does not hold the loop: the
// verdict is the last probe's, and a probe unanswered for two intervals is
// a failure of its own.
class LedgerWriteProbe {
 public:
  using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;
  // `store` must outlive the probe.
  explicit LedgerWriteProbe(ledger::Store& store,
                            std::chrono::milliseconds interval = std::chrono::seconds(1),
                            SteadyClock steady = &std::chrono::steady_clock::now);

  // The last verdict, probing first when it is older than the interval.
  Result<void> check();
  // Probes through `worker` from now on (it must outlive the probe).
  void write_through(ledger::StoreWorker& worker) { worker_ = &worker; }
  // Probes really written so far.
  int probes() const { return probes_; }

 private:
  ledger::Store& store_;
  ledger::StoreWorker inline_{store_};
  ledger::StoreWorker* worker_ = &inline_;
  bool in_flight_ = false;
  std::chrono::milliseconds interval_;
  SteadyClock steady_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  Result<void> verdict_;
  int probes_ = 0;
};

// Adds GET /healthz and GET /readyz (HEAD too) to `router`; `readiness` is
// called on each /readyz.
void add_health_routes(Router& router, std::function<Readiness()> readiness);

}  // namespace jobhost::observe
