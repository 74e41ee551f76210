// A ledger::Store that forwards every call to another store and times its
// writes into Metrics (jobhost_ledger_write_seconds). The daemon hands it to
// the engine and the reloader, so the engine's Backlog, which makes the
// writes, stays unaware of metrics. Reads are forwarded untimed. Inside a
// write group a write is timed without its commit, which is timed alone.
// Not final: a test derives from it to watch one call.
#pragma once

#include <functional>

#include "ledger/store.h"
#include "observe/metrics.h"

namespace jobhost::observe {

class TimedStore : public ledger::Store {
 public:
  // Where a write's duration goes.
  using Observe = std::function<void(LedgerOp, double seconds)>;

  // `inner` and `metrics` must outlive this store.
  TimedStore(ledger::Store& inner, Metrics& metrics)
      : TimedStore(inner, [&metrics](LedgerOp op, double seconds) {
          metrics.observe_ledger_write(op, seconds);
        }) {}
  // `observe` is called on the thread that writes (a ledger worker's: it
  // must hand the figure to the loop's thread itself).
  TimedStore(ledger::Store& inner, Observe observe) : inner_(inner), observe_(std::move(observe)) {}

  Result<bool> claim_and_start(const ledger::RunStart& run) override {
    return timed(LedgerOp::claim, [&] { return inner_.claim_and_start(run); });
  }
  Result<bool> finish_run(const ledger::RunEnd& end) override {
    return timed(LedgerOp::finish, [&] { return inner_.finish_run(end); });
  }
  Result<void> release_parked(std::span<const std::string> run_ids) override {
    return timed(LedgerOp::claim, [&] { return inner_.release_parked(run_ids); });
  }
  Result<bool> unclaim_parked(const ledger::Unclaim& unclaim) override {
    return timed(LedgerOp::other, [&] { return inner_.unclaim_parked(unclaim); });
  }
  Result<bool> record_skipped(const ledger::SkipRecord& skip) override {
    return timed(LedgerOp::skip, [&] { return inner_.record_skipped(skip); });
  }
  Result<bool> heartbeat(std::string_view run_id, TimePoint at,
                         std::optional<double> progress) override {
    return timed(LedgerOp::heartbeat, [&] { return inner_.heartbeat(run_id, at, progress); });
  }
  Result<ledger::Takeover> close_orphaned_runs(TimePoint now, std::string_view message) override {
    return timed(LedgerOp::other, [&] { return inner_.close_orphaned_runs(now, message); });
  }
  Result<ledger::Lease> renew_lease(const ledger::HostRecord& me) override {
    return inner_.renew_lease(me);
  }
  Result<void> end_lease(std::string_view id, std::string_view incarnation,
                         TimePoint now) override {
    return inner_.end_lease(id, incarnation, now);
  }
  Result<std::vector<ledger::HostRecord>> hosts() override { return inner_.hosts(); }
  Result<ledger::Takeover> take_over_expired(std::string_view by, TimePoint now,
                                             std::string_view message) override {
    return inner_.take_over_expired(by, now, message);
  }
  Result<std::vector<ledger::RunRecord>> history(std::optional<std::string_view> job,
                                                 int limit) override {
    return inner_.history(job, limit);
  }
  Result<std::optional<ledger::RunRecord>> get_run(std::string_view run_id) override {
    return inner_.get_run(run_id);
  }
  Result<std::vector<ledger::RunRecord>> running_runs() override { return inner_.running_runs(); }
  Result<ledger::JobStats> job_stats(std::string_view job) override {
    return inner_.job_stats(job);
  }
  Result<std::vector<ledger::JobStats>> all_job_stats() override { return inner_.all_job_stats(); }
  Result<std::optional<TimePoint>> last_fire(std::string_view job) override {
    return inner_.last_fire(job);
  }
  Result<std::optional<TimePoint>> last_claimed(std::string_view job,
                                                ledger::Trigger trigger) override {
    return inner_.last_claimed(job, trigger);
  }
  Result<void> upsert_job(std::string_view job, std::string_view definition_hash,
                          std::optional<TimePoint> next_fire, TimePoint now) override {
    return timed(LedgerOp::other,
                 [&] { return inner_.upsert_job(job, definition_hash, next_fire, now); });
  }
  Result<std::vector<ledger::JobMark>> job_marks() override { return inner_.job_marks(); }
  Result<void> add_event(const ledger::Event& event) override {
    return timed(LedgerOp::other, [&] { return inner_.add_event(event); });
  }
  Result<std::vector<ledger::Event>> events(std::optional<std::string_view> job,
                                            int limit) override {
    return inner_.events(job, limit);
  }
  Result<void> schedule_retry(const ledger::PendingRetry& retry, TimePoint now) override {
    return timed(LedgerOp::other, [&] { return inner_.schedule_retry(retry, now); });
  }
  Result<std::vector<ledger::PendingRetry>> pending_retries() override {
    return inner_.pending_retries();
  }
  Result<bool> remove_retry(std::string_view job, TimePoint scheduled_for) override {
    return timed(LedgerOp::other, [&] { return inner_.remove_retry(job, scheduled_for); });
  }
  Result<ledger::Pruned> prune(TimePoint before, int max_rows) override {
    return timed(LedgerOp::other, [&] { return inner_.prune(before, max_rows); });
  }
  Result<int> prune_excess(std::string_view job, int keep, int max_rows) override {
    return timed(LedgerOp::other, [&] { return inner_.prune_excess(job, keep, max_rows); });
  }
  Result<std::vector<ledger::JobStats>> job_summaries() override { return inner_.job_summaries(); }
  Result<std::vector<std::pair<std::string, std::vector<ledger::WindowRun>>>> window_runs(
      const std::vector<std::string>& jobs) override {
    return inner_.window_runs(jobs);
  }
  Result<ledger::RunSummary> run_summary(TimePoint since) override {
    return inner_.run_summary(since);
  }
  Result<std::vector<ledger::RunMinute>> run_minutes(TimePoint since) override {
    return inner_.run_minutes(since);
  }
  Result<std::vector<ledger::RunRecord>> query_runs(const ledger::RunQuery& query) override {
    return inner_.query_runs(query);
  }
  Result<std::vector<ledger::RunRecord>> slot_runs(std::string_view job,
                                                   TimePoint scheduled_for) override {
    return inner_.slot_runs(job, scheduled_for);
  }
  Result<bool> set_paused(std::string_view job, bool paused, std::string_view by,
                          TimePoint at) override {
    return timed(LedgerOp::other, [&] { return inner_.set_paused(job, paused, by, at); });
  }
  Result<std::vector<ledger::JobStats>> paused_jobs() override { return inner_.paused_jobs(); }
  Result<std::vector<ledger::Event>> events_after(int64_t after_id, int limit) override {
    return inner_.events_after(after_id, limit);
  }
  Result<std::vector<ledger::Event>> run_events(std::string_view run_id, int limit) override {
    return inner_.run_events(run_id, limit);
  }
  Result<uint64_t> jitter_seed() override { return inner_.jitter_seed(); }
  Result<void> begin_group() override {
    return timed(LedgerOp::other, [&] { return inner_.begin_group(); });
  }
  Result<void> lock_jobs(std::span<const std::string> jobs) override {
    return timed(LedgerOp::other, [&] { return inner_.lock_jobs(jobs); });
  }
  Result<void> commit_group() override {
    return timed(LedgerOp::commit, [&] { return inner_.commit_group(); });
  }
  Result<void> checkpoint() override {
    return timed(LedgerOp::other, [&] { return inner_.checkpoint(); });
  }
  Result<void> probe_writable(TimePoint now) override {
    return timed(LedgerOp::other, [&] { return inner_.probe_writable(now); });
  }
  Result<std::vector<ledger::AlertRecord>> alert_states() override { return inner_.alert_states(); }
  Result<void> save_alert_state(const ledger::AlertRecord& state, TimePoint now,
                                const std::optional<ledger::Event>& event) override {
    return timed(LedgerOp::other, [&] { return inner_.save_alert_state(state, now, event); });
  }
  Result<SuccessBounds> success_bounds(std::string_view job) override {
    return inner_.success_bounds(job);
  }

 private:
  template <class F>
  auto timed(LedgerOp op, F&& write) -> decltype(write()) {
    const auto t0 = std::chrono::steady_clock::now();
    auto result = write();
    observe_(op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return result;
  }

  ledger::Store& inner_;
  Observe observe_;
};

}  // namespace jobhost::observe
