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
// Not seen: retention (retention::Pruner deleting runs older than keep_runs
// or beyond a job's keep_last). A job whose last 100 finished runs reach back
// further than that keeps them here until the daemon restarts, while the
// ledger's window shrinks. TODO: a prune notice (observer call or TimedStore
// hook) that re-reads the affected jobs' windows (Store::window_runs).
#pragma once

#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "engine/observer.h"
#include "ledger/records.h"
#include "ledger/store.h"

namespace jobhost::observe {

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
  Result<void> seed(ledger::Store& store);

  // The job's entry, or null for a job the book has not seen.
  const Entry* find(std::string_view job) const;
  std::size_t size() const { return jobs_.size(); }

  void on_run_started(const ledger::RunStart& run, Duration lateness) override;
  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport& report) override;
  void on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) override;
  void on_skipped(const ledger::SkipRecord& skip) override;

 private:
  Entry& entry(const std::string& job);
  void claimed(Entry& e, const ledger::RunStart& run);
  void ended(Entry& e, const ledger::RunStart& run, const ledger::RunEnd& end);
  // Recomputes the window's figures in e.stats.
  static void refigure(Entry& e);

  std::map<std::string, Entry, std::less<>> jobs_;
};

}  // namespace jobhost::observe
