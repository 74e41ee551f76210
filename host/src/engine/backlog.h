// The engine's writes to the ledger, grouped, and what it does while the
// ledger refuses them (a locked, full or read-only database). Records (run
// ends, skipped slots, events), next fires and heartbeats are queued as the
// engine makes them and written by flush(), together with the claims the
// engine is about to start, in one write group (Store::begin_group): one
// commit for everything of a loop turn. Refused records are kept in memory,
// in the order they were made, and written first by the next flush once the
// ledger accepts writes again; each job's next fire is written again then.
// After a refusal no write is tried for kLedgerRetry, so that the loop is
// not held by the store's busy timeout on every record. Slots are claimed
// only behind every record made before them (a claim is written after them
// in the group, and never while one is kept), so skipped slots are claimed
// in slot order and a run's end is committed before the next run of its
// job. The group is written by a ledger::StoreWorker: inline (SQLite), or
// on the worker's thread (PostgreSQL), the loop going on meanwhile. One
// group is in flight at a time; what is made meanwhile waits for the next.
// Single-threaded, like the engine.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/error.h"
#include "common/time.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"

namespace jobhost::engine {

// After the ledger refuses a write, no other write is tried for this long: a
// refused write can cost the store's busy timeout, and the loop must stay
// responsive. Kept records and waiting claims are retried then.
inline constexpr Duration kLedgerRetry = std::chrono::seconds(1);

// A pending retry of the record's job and slot to delete from the ledger (a
// reload lowered retry.max_attempts, or removed the job): queued behind the
// run end that scheduled it, so that the row exists when it runs.
struct DropRetry {
  std::string why;
};

// A record for the ledger, kept in memory while the ledger refuses it.
struct PendingWrite {
  std::string job;
  TimePoint slot;        // for the log, should it be lost; DropRetry's slot
  TimePoint kept_since;  // when it was made
  std::variant<ledger::RunEnd, ledger::SkipRecord, ledger::Event, ledger::Unclaim, DropRetry>
      record;
};

class Backlog {
 public:
  using Clock = std::function<TimePoint()>;
  struct Hooks {
    // A run end or skip was committed (not an event, not a duplicate).
    std::function<void(std::string_view job)> on_recorded;
    // The ledger refused a write, or records were kept while it rests: the
    // engine arms its timer for wake_at().
    std::function<void()> on_refused;
    // Something was queued and no flush() came since: the engine flushes at
    // the end of its loop turn.
    std::function<void()> on_queued;
  };

  // The claims' results, in their order.
  using Flushed = std::function<void(std::vector<Result<bool>>)>;

  // `ledger` must outlive the backlog.
  Backlog(ledger::StoreWorker& ledger, Clock clock, Hooks hooks);
  // Writes through `ledger` from now on (nothing may be in flight).
  void write_through(ledger::StoreWorker& ledger) { ledger_ = &ledger; }

  // Queues `w` behind every record made before it, for the next flush().
  void add(PendingWrite w);
  // Queues the job's next fire (the latest one is written; only status and
  // an `at` job that never fired read it).
  void set_next_fire(const std::string& job, const std::string& definition_hash,
                     std::optional<TimePoint> next_fire);
  // Queues a heartbeat (the latest of each run is written; a refused one is
  // dropped: the next supersedes it).
  void heartbeat(std::string_view run_id, std::optional<double> progress);

  // One write group, one commit: the kept records, then the queued ones (in
  // the order made), then `claims` (store.claim_and_start, in order), then
  // the next fires and heartbeats. Stops at the first refusal: that record
  // and every later one are kept, later claims are not tried. A failed
  // commit refuses them all. Returns one result per claim: true claimed and
  // committed, false already claimed, Error refused or not tried (nothing
  // written: the caller keeps the fire), to `done` once the group is
  // written (at once when inline). Does nothing but keep what is queued
  // while resting. While a group is in flight, does nothing (`claims` must
  // be empty): its end flushes again if something was queued meanwhile.
  void flush(std::vector<ledger::RunStart> claims = {}, Flushed done = {});
  // A group is being written.
  bool flushing() const { return in_flight_; }

  // Claims may go ahead: nothing is kept, the ledger is not resting, and no
  // group is in flight.
  bool may_claim() const { return kept_.empty() && !resting() && !in_flight_; }
  // Something waits for a flush(): queued, or kept.
  bool pending() const {
    return !kept_.empty() || !queued_.empty() || !next_unwritten_.empty() || !heartbeats_.empty();
  }
  // No write is tried before resting_until (a clock set back does not stretch it).
  bool resting() const;
  // The ledger refused a write and has not accepted every kept one since.
  bool refusing() const { return down_since_.has_value(); }
  // Records kept after a refusal (not those merely queued).
  bool empty() const { return kept_.empty(); }
  std::size_t size() const { return kept_.size(); }
  // When the engine should wake to retry: nullopt when the ledger is not
  // refusing, or nothing waits for it (`claims_waiting`: fires in ready).
  std::optional<TimePoint> wake_at(bool claims_waiting) const;

  // At shutdown: waits for the group in flight, one last try (waited for),
  // then every record still refused is logged
  // (error, one line each) so that an operator can recover it.
  void give_up();
  // For status: records kept, a group in flight, refusing since, oldest
  // kept and its age.
  nlohmann::json json() const;

 private:
  struct NextFire {
    std::string definition_hash;
    std::optional<TimePoint> at;
  };
  struct Heartbeat {
    TimePoint at;
    std::optional<double> progress;
  };
  // A write group: copies of the kept and queued records (those stay in
  // kept_ and queued_ until it is written), the claims, next fires, beats.
  struct Group {
    std::vector<PendingWrite> records;  // kept ones first
    std::size_t kept = 0;
    std::vector<ledger::RunStart> claims;
    std::map<std::string, NextFire, std::less<>> next_fires;
    std::map<std::string, Heartbeat, std::less<>> heartbeats;
    TimePoint at;
  };
  // What of a group the store took. Not committed: nothing.
  struct Written {
    bool committed = true;
    std::optional<Error> refused;      // the first refusal (or the commit's)
    std::vector<bool> fresh;           // per record written: new, not a duplicate
    std::vector<Result<bool>> claims;  // per claim tried and not refused
    std::size_t next_written = 0;
  };
  // On the worker: the group in one transaction, stopping at the first refusal.
  static Written write_group(ledger::Store& store, const Group& group);
  // Back on the loop: drops what was written, keeps what was refused, and
  // returns the claims' results.
  std::vector<Result<bool>> apply(Group& group, Written written);
  // One write; false when the ledger already had it. Error: refused.
  static Result<bool> write(ledger::Store& store, const PendingWrite& w);
  // After a refusal (`error`; nullopt while resting from an earlier one):
  // rests kLedgerRetry, logs the outage once, moves every queued record
  // behind the kept ones (logging each), drops the heartbeats, and tells
  // the engine (on_refused) so that it wakes at wake_at().
  void keep_refused(const std::optional<Error>& error);
  // A write went through: log the end of an outage once nothing is kept.
  void note_written();
  void note_queued();
  static std::string describe(const PendingWrite& w);
  static std::string_view record_run_id(const PendingWrite& w);

  ledger::StoreWorker* ledger_;
  Clock clock_;
  Hooks hooks_;
  std::deque<PendingWrite> kept_;                                // refused, oldest first
  std::deque<PendingWrite> queued_;                              // not tried yet, behind kept_
  std::map<std::string, NextFire, std::less<>> next_unwritten_;  // latest of each job
  std::map<std::string, Heartbeat, std::less<>> heartbeats_;     // latest of each run
  bool flush_due_ = false;               // on_queued was called, no flush() since
  bool in_flight_ = false;               // a group is being written
  TimePoint resting_until_{};            // no write is tried before it
  std::optional<TimePoint> down_since_;  // the first refusal of this outage
  std::size_t kept_in_outage_ = 0;
};

}  // namespace jobhost::engine
