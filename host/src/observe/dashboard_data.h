// The figures of the dashboard's header tiles, which GET /api/v1/status adds
// as its "summary": short reads (the engine's snapshot, one aggregate ledger
// query over the last hour's runs or the JobBook's per-minute sums, the
// pending retries).
#pragma once

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/time.h"
#include "ledger/store.h"
#include "observe/job_book.h"

namespace jobhost::observe {

// {"runs", "failed", "failure_rate", "mean_duration_ms"} over the finished,
// not skipped runs that started at or after hour_window_start(now) (the last
// 60 whole minutes plus the current one; failure_rate and mean_duration_ms
// are null when there are none): the book's figures when `book` is given,
// else one ledger query (Store::run_summary). Error: ledger unreadable.
Result<nlohmann::json> last_hour_json(ledger::Store& store, TimePoint now,
                                      const JobBook* book = nullptr);

// {"runs_in_flight", "queue_depth", "pending_retries", "last_hour" (see
// last_hour_json), "ledger": {"healthy", "backlog", "reason"}} from the
// engine's snapshot() and `store`. The ledger is healthy while no write waits
// in the engine's backlog; "reason" says what waits, null when healthy.
// Error: ledger unreadable.
Result<nlohmann::json> status_summary(ledger::Store& store, const nlohmann::json& engine_snapshot,
                                      TimePoint now, const JobBook* book = nullptr);
// The same from what was read: `last_hour` (last_hour_json) and the number
// of pending retries.
nlohmann::json status_summary(const nlohmann::json& engine_snapshot, nlohmann::json last_hour,
                              std::size_t pending_retries);

}  // namespace jobhost::observe
