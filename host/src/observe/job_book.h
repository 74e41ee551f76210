// Per-job figures kept in memory for the JSON API (observe/api.h): the
// ledger's JobStats figures that runs change (last outcome, last run, last
// fire, consecutive failures, runs in flight, the stats window's success
// rate, mean, p50 and p95) and the window's runs themselves, newest first.
// Seeded once from the ledger at daemon start (Store::job_summaries and
// Store::window_runs), then kept up to date as the engine reports runs and
// skips, so that answering GET /api/v1/jobs or /status aggregates no runs.
// The figures equal what the ledger's queries give for the same runs
// (tests/observe/job_book_test.cpp). Loop thread only.
//
// Retention: when the engine's pruner has deleted runs (on_runs_pruned), the
// windows of the jobs it may have touched are read again from the ledger.
//
// Also kept: the dashboard's last-hour figures (Store::run_summary since
// hour_window_start(now)) as per-minute sums of the finished, non-skipped
// runs by the minute they started in, seeded with Store::run_minutes. Unlike
// the job windows these are not re-read after a prune: they count the runs
// that ran, including ones retention (keep_last) deleted since. 62 minutes
// are kept in a ring: a run starting a full ring ahead of an older minute
// (a wall clock set back an hour) replaces that minute.
#pragma once

#include <array>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "engine/observer.h"
#include "ledger/records.h"
#include "ledger/store.h"

namespace jobhost::observe {

// The start of the dashboard's "last hour" at `now`: the start of the UTC
// minute one hour before now. So the window is the last 60 whole minutes plus
// the current one so far (60 to 61 minutes).
TimePoint hour_window_start(TimePoint now);

class JobBook final : public engine::Observer {
 public:
  struct Entry {
    // job, last_fire, consecutive_failures, last_outcome, last_started,
    // window_runs, success_rate, mean/p50/p95_duration, runs_in_flight.
    // next_fire and paused_* are as seeded (the engine has their current
    // values); definition_hash as seeded or set by the first run or skip
    // (the engine's upsert_job writes the config's with each next fire).
    ledger::JobStats stats;
    // The stats window: the last kStatsWindow finished, non-skipped runs,
    // newest first (started_at, then run_id, descending).
    std::deque<ledger::WindowRun> window;
  };

  // Replaces every entry with the ledger's figures (one job_summaries and one
  // window_runs query). Call before the engine starts.
  // Also reads the last-hour figures at `now` (one run_minutes query).
  Result<void> seed(ledger::Store& store, TimePoint now);

  // The finished, non-skipped runs that started at or after
  // hour_window_start(now), as Store::run_summary counts them.
  ledger::RunSummary last_hour(TimePoint now) const;

  // The job's entry, or null for a job the book has not seen.
  const Entry* find(std::string_view job) const;
  std::size_t size() const { return jobs_.size(); }

  void on_run_started(const ledger::RunStart& run, Duration lateness) override;
  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport& report) override;
  void on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) override;
  void on_skipped(const ledger::SkipRecord& skip) override;
  void on_runs_pruned(const retention::PrunedRuns& pruned) override;

  // The ledger the book re-reads windows from after a prune (seed sets it).
  void set_store(ledger::Store* store) { store_ = store; }

 private:
  Entry& entry(const std::string& job);
  void claimed(Entry& e, const ledger::RunStart& run);
  void ended(Entry& e, const ledger::RunStart& run, const ledger::RunEnd& end);
  // Recomputes the window's figures in e.stats.
  static void refigure(Entry& e);

  // Adds a finished run to the minute it started in (dropped when that
  // minute's slot already holds a newer minute: out of any window by then).
  void count_minute(TimePoint started_at, Outcome outcome, std::optional<Duration> duration);
  // Re-reads these jobs' windows from store_ (after a prune).
  void reread(const std::vector<std::string>& jobs);

  struct Minute {
    int64_t minute = std::numeric_limits<int64_t>::min();  // none yet
    int runs = 0;
    int failed = 0;
    int64_t duration_ms = 0;
    int with_duration = 0;
  };
  static constexpr std::size_t kMinutes = 62;  // 61 in the window, one spare

  std::map<std::string, Entry, std::less<>> jobs_;
  std::array<Minute, kMinutes> minutes_{};
  ledger::Store* store_ = nullptr;
};

}  // namespace jobhost::observe
