// Retention: deletes old runs and events from the ledger ([host] keep_runs,
// keep_last per job) in small batches from a timer on the event loop, so that
// no prune holds the loop, or the ledger's write lock, for long. The batches
// go through the engine's ledger worker: inline on SQLite, on the worker's
// thread on PostgreSQL, where one host prunes at a time (a host whose turn
// it is not waits kPruneBusyWait). What a prune never deletes is in
// ledger/store.h.
#pragma once

#include <spdlog/common.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/flat_map.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "config/config.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"

namespace jobhost::retention {

struct RetentionPolicy {
  Duration keep_runs{0};  // 0 = no age limit
  // Only jobs with a count limit (> 0). A sorted vector: 100,000 jobs cost it
  // 4 MB, against 9 MB as a std::map.
  boost::container::flat_map<std::string, int, std::less<>> keep_last;
};

// The policy of a config: [host] keep_runs and each job's keep_last.
RetentionPolicy retention_policy(const config::Config& config);

// How many runs of a job with keep_last = `keep` are recorded between two
// prunes of it: a tenth of keep, at least 1. So the job holds at most
// keep + prune_slack(keep) finished runs, and each prune is one small batch.
int prune_slack(int keep);

// Rows deleted in one transaction at most.
inline constexpr int kPruneBatchRows = 500;
// The loop is free for this long between two batches.
inline constexpr Duration kPruneBatchGap = std::chrono::milliseconds(20);
// Steps that delete nothing follow each other in one timer turn for this long.
inline constexpr Duration kPruneTurn = std::chrono::milliseconds(5);
// Pruning by age runs this often (and once shortly after start).
inline constexpr Duration kPruneAgeInterval = std::chrono::minutes(1);
inline constexpr Duration kPruneFirstPass = std::chrono::seconds(2);
// Another host sharing the ledger prunes: the next try comes this much later.
inline constexpr Duration kPruneBusyWait = std::chrono::seconds(1);

// What one prune step deleted runs of: one job's runs beyond its keep_last,
// or (job empty) runs of any job that started before `before`.
struct PrunedRuns {
  std::string job;
  TimePoint before{};
};

class Pruner {
 public:
  using Clock = std::function<TimePoint()>;
  // Told after each prune step (a job's excess, or a pass by age, in as
  // many batches as it took) that deleted at least one run.
  using OnPruned = std::function<void(const PrunedRuns&)>;

  // `io` and `ledger` must outlive the pruner; everything but the batches
  // themselves runs on io's thread.
  Pruner(boost::asio::io_context& io, ledger::StoreWorker& ledger, RetentionPolicy policy,
         Clock clock);
  // Prunes through `ledger` from now on (no batch may be in flight).
  void write_through(ledger::StoreWorker& ledger) { ledger_ = &ledger; }

  // Arms the first pass by age. Jobs with keep_last are pruned from their
  // first run or skip recorded after this (no sweep over every job).
  void start();
  // No batch starts after this.
  void stop();
  // A reloaded config's policy; queues a prune of each job whose keep_last
  // is new or lower.
  void set_policy(RetentionPolicy policy);
  // A run or skip of `job` was recorded; the first since start, then every
  // prune_slack(keep_last) of them, queues a prune of the job. A no-op for
  // jobs without keep_last.
  void note_recorded(std::string_view job);
  void on_pruned(OnPruned callback) { on_pruned_ = std::move(callback); }

 private:
  // One thing to prune: by age (job empty) or one job's excess.
  struct Step {
    std::string job;
  };
  struct Totals {
    int64_t by_age = 0;
    int64_t by_count = 0;
    int64_t events = 0;
    bool any() const { return by_age + by_count + events > 0; }
  };

  void arm(Duration delay);
  void on_timer();
  void queue(Step step);
  // What one batch deleted, or why not.
  struct Batch {
    ledger::Pruned pruned;  // runs (by age or excess) and events
    std::optional<Error> error;
    std::chrono::steady_clock::time_point began;
    std::chrono::steady_clock::duration took{};
  };
  // One batch of the front step on the worker; on_batch gets its result.
  // With no step left, logs the totals and waits for the next age pass.
  void next_batch();
  // Counts what the batch deleted, ends its step when it found less than a
  // full batch, then goes on (this turn, or after kPruneBatchGap).
  void on_batch(const std::string& job, const Batch& batch);
  void report(const Totals& totals, spdlog::level::level_enum level) const;

  boost::asio::steady_timer timer_;
  ledger::StoreWorker* ledger_;
  RetentionPolicy policy_;
  Clock clock_;
  std::deque<Step> steps_;
  std::set<std::string, std::less<>> queued_;            // the jobs of steps_ ("" = by age)
  std::map<std::string, int, std::less<>> since_prune_;  // runs recorded since the job's last prune
  Totals deleted_;                                       // since the last info line
  OnPruned on_pruned_;
  int64_t step_runs_ = 0;    // runs the front step deleted so far
  TimePoint step_before_{};  // the front step's latest cutoff (by age)
  std::chrono::steady_clock::time_point next_age_pass_{};
  uint64_t generation_ = 0;  // a newer arm() makes older handlers no-ops
  bool idle_ = true;         // the timer waits for the next age pass, not a batch
  bool report_due_ = false;  // an age tick came: log the totals when the queue is empty
  bool stopped_ = true;
  bool in_flight_ = false;  // a batch is on the worker
  std::chrono::steady_clock::time_point turn_ends_{};
};

}  // namespace jobhost::retention
