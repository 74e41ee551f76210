// The ledger: the durable record of every fire slot, run, retry and event.
// An interface in domain terms, served by SQLite (sqlite_store.h: one host)
// and PostgreSQL (pg_store.h: one or several hosts). docs/ledger.md has the
// schema and the guarantees.
//
// Every operation is one short transaction (or one part of a write group,
// see begin_group) and returns an Error (naming the database and what to do)
// when the ledger cannot be read or written: locked by another process, disk
// full, read-only. A failed write changes nothing, so the caller may keep the
// record and try again later. A Store is used from one thread and never in a
// forked child.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/time.h"
#include "ledger/records.h"

namespace jobhost::ledger {

// How a store is opened.
enum class Access {
  read_write,  // the daemon and run-once: creates and migrates the schema
  read_only,   // readers (history, status): never writes, needs a current schema
};

class Store {
 public:
  virtual ~Store() = default;

  // The exactly-once guard. In one transaction: attempt 1 claims the slot
  // (run.job, run.scheduled_for); attempt n > 1 claims that attempt of an
  // already-claimed slot (and consumes its pending retry); then the run row
  // is written as started, with a `started` event. Returns false, writing
  // nothing, when the slot or attempt was already claimed (by anyone, before
  // or after a restart). Error: ledger unwritable, empty ids, or attempt n > 1
  // of a slot that was never claimed or with another trace id.
  virtual Result<bool> claim_and_start(const RunStart& run) = 0;

  // Parking (docs/running.md): a RunStart with `parked` is claimed by
  // claim_and_start as usual and also marked as not begun. release_parked
  // removes the marks of runs that begin now, in one transaction (their
  // processes may start only once it is committed); unknown ids are
  // ignored.
  virtual Result<void> release_parked(std::span<const std::string> run_ids) = 0;
  // Undoes the claim of a parked run that never began: its run row, events
  // and slot go, and its job's last fire is set back to what it was before
  // the claim, so that the slot is fired again when due, or handled like a
  // missed fire once past. An `unclaimed` event (no run id) says why. False,
  // writing nothing, if the run is not parked (released, finished, unknown).
  virtual Result<bool> unclaim_parked(const Unclaim& unclaim) = 0;

  // Completes a started run: outcome, finish time, exit code or signal,
  // duration, message, output tail; updates the job's consecutive failures
  // (0 after succeeded; +1 after failed, timed_out, stalled, crashed,
  // limit_exceeded; unchanged otherwise, cancelled included); schedules end.retry_at as the next
  // attempt; writes `finished` (and `retried`) events. Idempotent: returns
  // false and changes nothing if the run is already finished. Error: unknown
  // run id, ledger unwritable.
  virtual Result<bool> finish_run(const RunEnd& end) = 0;

  // Claims slot (skip.job, skip.scheduled_for) and records it as a finished
  // run with outcome skipped and skip.reason as message, plus a `skipped`
  // event, so that every slot is either run or recorded. False if the slot
  // was already claimed.
  virtual Result<bool> record_skipped(const SkipRecord& skip) = 0;

  // Notes a heartbeat (and progress, if given) of a running run. False if
  // the run is unknown or already finished. Callers should coalesce
  // heartbeats (every write is a transaction).
  virtual Result<bool> heartbeat(std::string_view run_id, TimePoint at,
                                 std::optional<double> progress) = 0;

  // Closes every run that has no finish (left open by a host that died) as
  // `interrupted` with `message`, finished_at = now and an unknown duration,
  // with an `interrupted` event each; returns the closed runs. Runs still
  // parked (the host died before their instant: they never began) are
  // unclaimed instead (unclaim_parked): their slots are returned as freed.
  // Called once at daemon start, under the state_dir lock. On PostgreSQL,
  // only the runs of this store's host ([host] id).
  virtual Result<Takeover> close_orphaned_runs(TimePoint now, std::string_view message) = 0;

  // Several hosts (docs/cluster.md). Registers or renews the lease of host
  // me.id for incarnation me.incarnation (one per daemon start), with
  // me.heartbeat_at and me.lease_until. A row of an older incarnation of the
  // id is replaced (the host restarted: close_orphaned_runs closes what it
  // left). Lease::lost, writing nothing, when another host took this
  // incarnation over, or a newer incarnation holds the id.
  virtual Result<Lease> renew_lease(const HostRecord& me) = 0;
  // A clean stop: the lease of (id, incarnation) ends at `now`, with nothing
  // left for another host to take over. Unknown ids are ignored.
  virtual Result<void> end_lease(std::string_view id, std::string_view incarnation,
                                 TimePoint now) = 0;
  // Every host that ever shared the ledger, by id.
  virtual Result<std::vector<HostRecord>> hosts() = 0;
  // Takes over each host other than `by` whose lease ran out before `now`
  // and that nobody took over yet: closes its open runs as interrupted with
  // `message` and undoes its parked claims (as close_orphaned_runs does for
  // the host itself), and marks it taken over by `by`, in one transaction.
  // Each host is taken over once, by one host, however many try at once.
  // Returns the runs closed and the slots freed.
  virtual Result<Takeover> take_over_expired(std::string_view by, TimePoint now,
                                             std::string_view message) = 0;

  // Runs newest first (by started_at, then run_id), of one job or all, at
  // most `limit` of them (limit <= 0 is an Error).
  virtual Result<std::vector<RunRecord>> history(std::optional<std::string_view> job,
                                                 int limit) = 0;
  // One run, or nullopt if there is no such run id; with its slot's event.
  virtual Result<std::optional<RunRecord>> get_run(std::string_view run_id) = 0;
  // Runs not finished yet, oldest first.
  virtual Result<std::vector<RunRecord>> running_runs() = 0;

  // Status figures of one job (all empty/zero for a job never seen).
  virtual Result<JobStats> job_stats(std::string_view job) = 0;
  // Status figures of every job the ledger knows, by name.
  virtual Result<std::vector<JobStats>> all_job_stats() = 0;
  // Status figures of each of `jobs`, in that order (a job never seen has
  // empty figures), as of one instant where the store can: `status` of
  // thousands of jobs. By default, job_stats of each.
  virtual Result<std::vector<JobStats>> job_stats_of(const std::vector<std::string>& jobs) {
    std::vector<JobStats> out;
    out.reserve(jobs.size());
    for (const auto& job : jobs) {
      auto stats = job_stats(job);
      if (!stats) return std::unexpected(stats.error());
      out.push_back(std::move(*stats));
    }
    return out;
  }

  // Figures of every job the ledger knows, by name, from one aggregate
  // query (for lists of thousands of jobs): as all_job_stats() but without
  // the duration figures (mean, p50, p95), which window_runs() gives for
  // the few jobs a page shows.
  virtual Result<std::vector<JobStats>> job_summaries() = 0;
  // The runs of each job's stats window (its last kStatsWindow finished,
  // non-skipped runs), newest first, for the given jobs, in one query.
  virtual Result<std::vector<std::pair<std::string, std::vector<WindowRun>>>> window_runs(
      const std::vector<std::string>& jobs) = 0;

  // The finished, not skipped runs that started at or after `since`.
  virtual Result<RunSummary> run_summary(TimePoint since) = 0;
  // The same runs, by the minute they started in (oldest first), for those
  // who keep the figures per minute (observe::JobBook).
  virtual Result<std::vector<RunMinute>> run_minutes(TimePoint since) = 0;

  // Runs matching `query`, newest first (started_at DESC, run_id DESC),
  // after query.after if set, at most query.limit (<= 0 is an Error). Paging
  // with the last run of each page as the next cursor returns every run
  // exactly once, however many runs start meanwhile (they sort first).
  virtual Result<std::vector<RunRecord>> query_runs(const RunQuery& query) = 0;
  // Every attempt of the slot (job, scheduled_for), attempt order.
  virtual Result<std::vector<RunRecord>> slot_runs(std::string_view job,
                                                   TimePoint scheduled_for) = 0;

  // Pauses (paused = true) or resumes the job: records when and by whom
  // (e.g. "uid 1000", "http token 127.0.0.1:5000") with a `paused` or
  // `resumed` event, creating the job's row if needed. Returns false,
  // writing nothing, if the job already was in that state.
  virtual Result<bool> set_paused(std::string_view job, bool paused, std::string_view by,
                                  TimePoint at) = 0;
  // The paused jobs with when and by whom (JobStats with only job,
  // paused_at and paused_by set), by name.
  virtual Result<std::vector<JobStats>> paused_jobs() = 0;

  // The latest slot claimed with trigger schedule or catchup (run or
  // skipped): misfire detection starts after it. nullopt if none.
  virtual Result<std::optional<TimePoint>> last_fire(std::string_view job) = 0;
  // The latest slot of `job` claimed with `trigger` whose first attempt was
  // not skipped: on PostgreSQL among this store's host's runs ([host] id),
  // on SQLite among all. Where a file watch's catch-up starts
  // (docs/triggers.md). nullopt if none.
  virtual Result<std::optional<TimePoint>> last_claimed(std::string_view job, Trigger trigger) = 0;
  // Creates or updates the job's row: definition hash and next fire.
  virtual Result<void> upsert_job(std::string_view job, std::string_view definition_hash,
                                  std::optional<TimePoint> next_fire, TimePoint now) = 0;

  // Every job row, by name, in one query: what the engine's start needs of
  // 100,000 jobs without a query each.
  virtual Result<std::vector<JobMark>> job_marks() = 0;

  // Appends to the audit trail (event.id is ignored).
  virtual Result<void> add_event(const Event& event) = 0;
  // The newest `limit` (> 0) events, of one job or all, newest first.
  virtual Result<std::vector<Event>> events(std::optional<std::string_view> job, int limit) = 0;

  // Events with id > after_id, oldest first, at most `limit` (> 0).
  virtual Result<std::vector<Event>> events_after(int64_t after_id, int limit) = 0;
  // The events of one run, oldest first, at most `limit` (> 0).
  virtual Result<std::vector<Event>> run_events(std::string_view run_id, int limit) = 0;

  // Persists a retry (replacing any other pending retry of the same slot),
  // with a `retried` event. Error if the slot was never claimed.
  virtual Result<void> schedule_retry(const PendingRetry& retry, TimePoint now) = 0;
  // Every pending retry, soonest first.
  virtual Result<std::vector<PendingRetry>> pending_retries() = 0;
  // Drops the slot's pending retry (job removed, retries cancelled). False if
  // there was none. claim_and_start of the retry's attempt drops it too.
  virtual Result<bool> remove_retry(std::string_view job, TimePoint scheduled_for) = 0;

  // Retention by age, one small batch per call (call again while either
  // count reaches max_rows): deletes up to `max_rows` finished runs started
  // before `before` with their events, then up to `max_rows` other events
  // older than `before`, and the slots left with no run and no pending
  // retry. Never deleted: runs not finished, the runs of each job's newest
  // slot, pending retries (their slots stay), the jobs table (its last_fire
  // is what keeps the engine from firing a pruned slot again).
  virtual Result<Pruned> prune(TimePoint before, int max_rows) = 0;
  // Retention by count, one small batch per call (call again while it
  // returns max_rows): deletes up to `max_rows` finished runs of `job` that
  // are older than its newest `keep` runs (by started_at, any outcome,
  // running ones included), with their events and emptied slots. Never
  // deletes what prune() never deletes. keep < 0 or max_rows <= 0 is an Error.
  virtual Result<int> prune_excess(std::string_view job, int keep, int max_rows) = 0;

  // The seed of the jitter and catch-up spread delays (schedule::jitter_for),
  // so that a slot is delayed by the same amount across restarts. The first
  // call makes it from std::random_device and stores it; every later call,
  // after a reopen too, returns the same value. Error: ledger unreadable, or
  // no seed yet and the ledger is not writable (a read-only store).
  virtual Result<uint64_t> jitter_seed() = 0;

  // Alerts (observe/alerts.h). Every (job, kind) alert state, by job then kind.
  virtual Result<std::vector<AlertRecord>> alert_states() = 0;
  // Creates or replaces the state of (state.job, state.kind), and appends
  // `event` (if given) in the same transaction.
  virtual Result<void> save_alert_state(const AlertRecord& state, TimePoint now,
                                        const std::optional<Event>& event) = 0;
  // When `job` last succeeded (finished_at of its newest succeeded run) and
  // when its oldest run still in the ledger started; each nullopt if none.
  struct SuccessBounds {
    std::optional<TimePoint> last_success;
    std::optional<TimePoint> first_run;
  };
  virtual Result<SuccessBounds> success_bounds(std::string_view job) = 0;

  // Housekeeping for idle moments: moves the write-ahead log into the main
  // file without waiting for readers. Writes do it by themselves when the log
  // grows large, but then the write that triggers it pays for it (tens of ms);
  // calling this when nothing is due keeps writes short. A no-op for stores
  // without such a log.
  virtual Result<void> checkpoint() = 0;

  // Write groups: many writes, one commit. Between begin_group() and
  // commit_group() every write operation above is part of one transaction:
  // each still changes nothing when it fails and returns its Error (the
  // others stay in the group), but none is durable, nor seen by another
  // connection, before commit_group() commits them all at once (one sync of
  // the log with durability full). Error from commit_group(): none of the
  // group's writes was made. Error from begin_group(): the ledger refuses
  // writes (locked, read-only); no group is open. A write whose error undid
  // the whole transaction (disk full, I/O error) makes every later write of
  // the group and its commit fail. A group is opened and committed within
  // one synchronous sequence of calls: reads in between, on this store, see
  // its writes. The default, for stores without groups: no-ops, each write
  // is its own transaction.
  virtual Result<void> begin_group() { return {}; }
  // In a group, before its writes: locks the rows of `jobs` (sorted), so
  // that concurrent groups of several hosts on one database cannot deadlock
  // on them. A no-op where one writer holds the whole database (SQLite).
  virtual Result<void> lock_jobs(std::span<const std::string> /*jobs*/) { return {}; }
  virtual Result<void> commit_group() { return {}; }

  // Readiness: proves the ledger takes writes now with one tiny real write
  // transaction (the time `now` in one settings row), committed. Error: the
  // ledger refuses writes (read-only, full, locked past the busy timeout),
  // with the store's message. Costs a commit: callers rate-limit it.
  virtual Result<void> probe_writable(TimePoint now) = 0;
};

}  // namespace jobhost::ledger
