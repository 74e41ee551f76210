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
// Memory: one 48-byte Entry per job, its name once in an arena, its
// definition hash as 32 bytes (docs/observability.md "Memory"); a job's
// window (observe/run_window.h, 40 bytes a run) exists only once it has a
// finished run. Entry pointers from find() stay valid until the book next
// changes (a run, a skip, a prune).
//
// Retention: when the engine's pruner has deleted runs (on_runs_pruned), the
// windows of the jobs it may have touched are read again from the ledger,
// through read_through's worker (on PostgreSQL a thread of its own: the loop
// never waits on the database). Until the answer, the windows stay as they
// are. The engine tells of a run once its write has committed, so the runs
// told before the question are in the answer; a run of those jobs told
// after it is added at once and also remembered with the question, and on
// the answer added again unless the answer has it (by run id): whether the
// read saw its write or not, it is neither dropped nor counted twice. The
// worker answers in the order it was asked, so the questions wait in a
// queue and each answer is the oldest's: two rereads in flight apply in
// order. An answer that comes back after the book is gone is dropped.
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
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "engine/observer.h"
#include "ledger/records.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "observe/run_window.h"

namespace jobhost::observe {

// The start of the dashboard's "last hour" at `now`: the start of the UTC
// minute one hour before now. So the window is the last 60 whole minutes plus
// the current one so far (60 to 61 minutes).
TimePoint hour_window_start(TimePoint now);

class JobBook final : public engine::Observer {
 public:
  // One job's figures that runs change: last fire, consecutive failures,
  // last started, runs in flight, and its stats window (last outcome,
  // window runs, success rate, mean, p50 and p95 come from it). The
  // definition hash is as seeded, or set by the job's first run or skip
  // (the engine's upsert_job writes the config's with each next fire).
  class Entry {
   public:
    int consecutive_failures() const { return consecutive_failures_; }
    int runs_in_flight() const { return runs_in_flight_; }
    std::optional<TimePoint> last_fire() const { return time_of(has_last_fire_, last_fire_ms_); }
    std::optional<TimePoint> last_started() const {
      return time_of(has_last_started_, last_started_ms_);
    }
    int window_runs() const { return window_ ? static_cast<int>(window_->size()) : 0; }
    std::optional<double> success_rate() const;
    // The stats window (newest first), or null while the job has no finished run in it.
    const RunWindow* window() const { return window_.get(); }

   private:
    friend class JobBook;
    static std::optional<TimePoint> time_of(bool has, int64_t ms) {
      return has ? std::optional(TimePoint(Duration(ms))) : std::nullopt;
    }

    uint32_t name_at_ = 0;  // in JobBook::names_
    uint32_t name_size_ = 0;
    int64_t last_fire_ms_ = 0;
    int64_t last_started_ms_ = 0;
    int32_t consecutive_failures_ = 0;
    int32_t runs_in_flight_ = 0;
    uint32_t definition_ = 0;  // JobBook::definition_hash
    bool has_last_fire_ = false;
    bool has_last_started_ = false;
    std::unique_ptr<RunWindow> window_;
  };

  // Replaces every entry with the ledger's figures (one job_summaries query,
  // and one window_runs query for the jobs that have finished runs). Call
  // before the engine starts. On an error the book is left as it was, or
  // empty.
  // Also reads the last-hour figures at `now` (one run_minutes query).
  // `store` must outlive the book: it re-reads windows from it after a
  // prune, unless read_through gives a worker.
  Result<void> seed(ledger::Store& store, TimePoint now);
  // Windows are re-read after a prune through `reads` from now on (a worker
  // of its own on PostgreSQL); `reads` must outlive the book.
  void read_through(ledger::StoreWorker& reads) { reads_ = &reads; }

  // The finished, non-skipped runs that started at or after
  // hour_window_start(now), as Store::run_summary counts them.
  ledger::RunSummary last_hour(TimePoint now) const;

  // The job's entry, or null for a job the book has not seen.
  const Entry* find(std::string_view job) const;
  std::size_t size() const { return entries_.size(); }
  std::string_view name(const Entry& e) const { return {names_.data() + e.name_at_, e.name_size_}; }
  std::optional<std::string> definition_hash(const Entry& e) const;
  // The entry's figures as the ledger's JobStats has them (Store::job_stats);
  // next_fire and paused_* are left unset: the engine has them.
  ledger::JobStats stats(const Entry& e) const;
  // The bytes the book holds for its jobs: entries, names, definition
  // hashes and windows (capacities; the allocator's own overhead and the
  // last-hour minutes not counted).
  std::size_t memory_bytes() const;
  // Every entry, by name.
  template <class F>
  void for_each(F&& f) const {
    for (uint32_t i : by_name_) f(name(entries_[i]), entries_[i]);
  }

  void on_run_started(const ledger::RunStart& run, Duration lateness) override;
  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport& report) override;
  void on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) override;
  void on_skipped(const ledger::SkipRecord& skip) override;
  void on_runs_pruned(const retention::PrunedRuns& pruned) override;

 private:
  // The job's entry, made if needed; or null if there is none.
  Entry& entry(std::string_view job);
  Entry* lookup(std::string_view job);
  // Where the job is or would go in by_name_.
  std::size_t position(std::string_view job) const;
  Entry& add_entry(std::string_view job, std::size_t position);
  uint32_t intern_definition(std::string_view hash);
  void clear();
  void claimed(Entry& e, const ledger::RunStart& run);
  void ended(Entry& e, const ledger::RunStart& run, const ledger::RunEnd& end);
  static void set_window(Entry& e, const std::vector<ledger::WindowRun>& runs);

  // Adds a finished run to the minute it started in (dropped when that
  // minute's slot already holds a newer minute: out of any window by then).
  void count_minute(TimePoint started_at, Outcome outcome, std::optional<Duration> duration);
  using Windows = Result<std::vector<std::pair<std::string, std::vector<ledger::WindowRun>>>>;
  // Asks for these jobs' windows (by name) again (after a prune).
  void reread(std::vector<std::string> jobs);
  // The answer to the oldest reread asked.
  void reread_answered(Windows windows);

  struct Minute {
    int64_t minute = std::numeric_limits<int64_t>::min();  // none yet
    int runs = 0;
    int failed = 0;
    int64_t duration_ms = 0;
    int with_duration = 0;
  };
  static constexpr std::size_t kMinutes = 62;  // 61 in the window, one spare

  std::vector<Entry> entries_;     // in the order the book first saw them
  std::vector<uint32_t> by_name_;  // indexes into entries_, by name
  std::string names_;              // every entry's name, one after the other
  // Definition hashes: Entry::definition_ is 0 (none), i + 1 for digests_[i]
  // (a hash of 64 lower-case hex digits, as config::compute_definition_hash
  // makes), or kOtherDefinition | i for other_definitions_[i] (any other text).
  static constexpr uint32_t kOtherDefinition = 0x8000'0000u;
  std::vector<std::array<uint8_t, 32>> digests_;
  std::vector<std::string> other_definitions_;
  std::array<Minute, kMinutes> minutes_{};
  // A reread asked and not answered yet: its jobs, by name, and their runs
  // that ended since it was asked.
  struct Reread {
    std::shared_ptr<const std::vector<std::string>> jobs;
    std::vector<std::pair<std::string, ledger::WindowRun>> ended;
  };
  std::deque<Reread> rereads_;                             // oldest first, as the worker answers
  std::unique_ptr<ledger::StoreWorker> inline_reads_;      // over the store seed() read
  ledger::StoreWorker* reads_ = nullptr;                   // read_through's, else inline_reads_
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // answers check it
};

}  // namespace jobhost::observe
