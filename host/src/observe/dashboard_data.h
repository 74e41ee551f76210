// Figures the dashboard shows that the JSON API's handlers add to their
// answers: the header's last-hour tiles (GET status) and each job's strip of
// recent runs (GET jobs). Short ledger reads, bounded whatever the history.
#pragma once

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/time.h"
#include "ledger/store.h"

namespace jobhost::observe {

// How many finished runs a job's recent-runs strip shows.
inline constexpr int kRecentRunsPerJob = 20;

// {"runs", "failed", "failure_rate", "mean_duration_ms"} over the finished,
// not skipped runs that started in the hour before `now` (failure_rate and
// mean_duration_ms are null when there are none). Error: ledger unreadable.
Result<nlohmann::json> last_hour_json(ledger::Store& store, TimePoint now);

// Adds "recent": [{"outcome", "duration_ms"}, ...] (the job's newest
// `per_job` finished, not skipped runs, oldest first; [] for none) to every
// object of the array `jobs`, keyed by its "name", with one ledger query for
// the whole array. Error: ledger unreadable (`jobs` is then unchanged).
Result<void> add_recent_runs(ledger::Store& store, nlohmann::json& jobs,
                             int per_job = kRecentRunsPerJob);

}  // namespace jobhost::observe
