// The forecast behind `jobhost simulate` and GET /api/v1/forecast: every
// fire of a window and how the engine would dispatch it, simulated with each
// job's expected run time. Pure: no clock, no ledger, no engine; the shells
// read those and pass plain values in. The model is in docs/cli.md
// ("jobhost simulate"); tests/engine/forecast_test.cpp checks it against the
// engine itself on a fake clock. Concurrency groups and priorities fit in as
// built: a group is one more ForecastLimit in its jobs' `limits`, and a
// priority one more field first in the ready queue's order (forecast.cpp).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/time.h"
#include "config/config.h"
#include "schedule/schedule.h"

namespace jobhost::engine {

// The run time assumed for a job without a finished run in its stats window.
inline constexpr Duration kNoHistoryRun = std::chrono::seconds(1);

// The anchor of an `every` grid that has no last fire yet, at `t`: the
// second of `t`, or, on a ledger several hosts share, the grid's point since
// the epoch before `t` (docs/cluster.md). The engine and the forecast use it.
TimePoint new_every_anchor(Duration period, TimePoint t, bool shared_ledger);

// A bound on the runs at once. limits[0] of a forecast is the host's
// max_concurrency; a concurrency group would be one more, named by its jobs.
struct ForecastLimit {
  std::string name;  // "max_concurrency"
  int max = 1;
};

// One job as the forecast sees it.
struct ForecastJob {
  std::string name;
  schedule::Spec spec;  // an Every anchored on the grid the engine uses
  // Only slots strictly after this one are simulated.
  TimePoint after{};
  // false: no fires (a disabled job); its runs in flight still count.
  bool fires = true;
  bool paused = false;  // each fire is skipped "paused"
  Duration jitter{};
  config::Concurrency concurrency = config::Concurrency::forbid;
  Duration timeout{};           // a run ends by then (<= 0: no bound)
  std::optional<Duration> p95;  // of its stats window; nullopt: no history
  // Indexes into ForecastInput::limits, each of which a run of the job takes.
  std::vector<std::size_t> limits{0};
  int priority = 0;  // orders the ready queue first, higher first (as the engine)

  // What a run of the job is expected to last: its p95 (kNoHistoryRun
  // without history), cut at its timeout.
  Duration expected_run() const;
};

// The job's schedule, jitter, policy and timeout, with the host's limit; the
// caller sets the grid's anchor, `after`, `paused` and `p95`.
ForecastJob forecast_job(const config::JobConfig& job);

// A run in flight when the simulation starts: it holds its limits until
// started_at + its job's expected run.
struct ForecastRun {
  std::size_t job;  // into ForecastInput::jobs
  TimePoint started_at;
};

struct ForecastInput {
  // The window: fires whose slot is in [from, to) are reported. Fires before
  // `from` (from each job's `after` on) are simulated for the runs they leave
  // in flight, not reported.
  TimePoint from{};
  TimePoint to{};
  std::vector<ForecastLimit> limits;
  std::vector<ForecastJob> jobs;
  std::vector<ForecastRun> running;
  std::optional<uint64_t> seed;  // the ledger's jitter seed; nullopt: no jitter
  // Most fires simulated; past it the forecast ends early (truncated).
  std::size_t max_fires = 100000;
};

// Adds a limit per [groups.NAME] of `config` to `in` (after the host's) and
// to the jobs in `in.jobs` that name it (concurrency_group).
void add_group_limits(const config::Config& config, ForecastInput& in);

// Why a fire does not run.
enum class ForecastSkip {
  none,
  paused,
  forbid_running,  // concurrency = forbid: the job's previous run is in flight
  forbid_waiting,  // concurrency = forbid: the job's previous fire waits to start
  replaced,        // concurrency = replace: a newer fire came before it started
  queue_full,      // engine::kMaxReady fires were waiting already
};
// "paused", "forbid", "forbid", "replaced", "queue_full" ("" for none).
std::string_view skip_kind(ForecastSkip skip);
// The reason in words, as the engine records it.
std::string_view skip_reason(ForecastSkip skip);

struct ForecastFire {
  std::size_t job;  // into ForecastInput::jobs
  TimePoint slot;
  TimePoint due;  // slot + jitter, never before the due of the job's previous fire
  ForecastSkip skip = ForecastSkip::none;
  // When it runs; unset when skipped.
  std::optional<TimePoint> start{};
  std::optional<TimePoint> end{};
  // Waited (start > due): the limit (into ForecastInput::limits) that was
  // full when it came due.
  std::optional<std::size_t> waited_for{};
  bool cut_short = false;  // concurrency = replace: a newer fire ended it

  Duration waited() const { return start && *start > due ? *start - due : Duration::zero(); }
};

struct Forecast {
  // The fires whose slot is in [from, covered_to), by slot, then in the
  // order of ForecastInput::jobs.
  std::vector<ForecastFire> fires;
  // `to`, or, when max_fires stopped the forecast, the first slot left out:
  // the window is complete only up to there.
  TimePoint covered_to{};
  bool truncated = false;
  // The runs at once: (instant, count) at each change, in time order.
  std::vector<std::pair<TimePoint, int>> load;

  struct Summary {
    std::size_t fires = 0;
    std::size_t runs = 0;       // fires that run
    std::size_t waited = 0;     // runs that started after their due
    Duration total_wait{};      // summed over those
    std::size_t paused = 0;     // skipped: paused
    std::size_t forbid = 0;     // skipped: concurrency = forbid
    std::size_t replaced = 0;   // skipped: concurrency = replace, before they started
    std::size_t cut_short = 0;  // runs a newer fire ended (concurrency = replace)
    std::size_t queue_full = 0;
    int peak = 0;                      // most runs at once in [from, covered_to)
    std::optional<TimePoint> peak_at;  // when first reached; unset when peak is 0
  } summary;
};

// Simulates the window (the model: docs/cli.md "jobhost simulate").
Forecast simulate(const ForecastInput& input);

// The most runs at once in [from, to) of `load` and the first instant it is
// reached (unset when 0).
std::pair<int, std::optional<TimePoint>> peak_runs(
    const std::vector<std::pair<TimePoint, int>>& load, TimePoint from, TimePoint to);

// The forecast in `count` intervals of `width` from `from`, for a chart:
// per interval its fires (by slot), the runs among them, those that wait and
// those skipped, and the most runs at once in it.
struct ForecastBucket {
  TimePoint start;
  std::size_t fires = 0;
  std::size_t runs = 0;
  std::size_t waited = 0;
  std::size_t skipped = 0;
  int peak = 0;
};
std::vector<ForecastBucket> forecast_buckets(const Forecast& forecast, TimePoint from,
                                             Duration width, std::size_t count);

// The summary as JSON, the same for `simulate --json` and the API: fires,
// runs, waited, wait_ms, skipped {paused, forbid, replaced, queue_full},
// cut_short, peak_runs, peak_at (RFC 3339 UTC or null).
nlohmann::json summary_json(const Forecast::Summary& summary);

}  // namespace jobhost::engine
