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
// job. Single-threaded, like the engine.
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

namespace jobhost::engine {

// After the ledger refuses a write, no other write is tried for this long: a
// refused write can cost the store's busy timeout, and the loop must stay
// responsive. Kept records and waiting claims are retried then.
inline constexpr Duration kLedgerRetry = std::chrono::seconds(1);

// A record for the ledger, kept in memory while the ledger refuses it.
struct PendingWrite {
  std::string job;
  TimePoint slot;        // for the log, should it be lost
  TimePoint kept_since;  // when it was made
  std::variant<ledger::RunEnd, ledger::SkipRecord, ledger::Event, ledger::Unclaim> record;
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

  // `store` must outlive the backlog.
  Backlog(ledger::Store& store, Clock clock, Hooks hooks);

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
  // written: the caller keeps the fire). Does nothing but keep what is
  // queued while resting.
  std::vector<Result<bool>> flush(std::span<const ledger::RunStart> claims = {});

  // Claims may go ahead: nothing is kept and the ledger is not resting.
  bool may_claim() const { return kept_.empty() && !resting(); }
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

  // At shutdown: one last try, then every record still refused is logged
  // (error, one line each) so that an operator can recover it.
  void give_up();
  // For status: records kept, refusing since, oldest kept and its age.
  nlohmann::json json() const;

 private:
  // One write; false when the ledger already had it. Error: refused.
  Result<bool> write(const PendingWrite& w);
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

  struct NextFire {
    std::string definition_hash;
    std::optional<TimePoint> at;
  };

  struct Heartbeat {
    TimePoint at;
    std::optional<double> progress;
  };

  ledger::Store& store_;
  Clock clock_;
  Hooks hooks_;
  std::deque<PendingWrite> kept_;                                // refused, oldest first
  std::deque<PendingWrite> queued_;                              // not tried yet, behind kept_
  std::map<std::string, NextFire, std::less<>> next_unwritten_;  // latest of each job
  std::map<std::string, Heartbeat, std::less<>> heartbeats_;     // latest of each run
  bool flush_due_ = false;               // on_queued was called, no flush() since
  TimePoint resting_until_{};            // no write is tried before it
  std::optional<TimePoint> down_since_;  // the first refusal of this outage
  std::size_t kept_in_outage_ = 0;
};

}  // namespace jobhost::engine
