// The engine's writes to the ledger after a claim, and what it does while
// the ledger refuses them (a locked, full or read-only database): run ends,
// skipped slots and events are kept in memory, in the order they were made,
// and written once the ledger accepts writes again; each job's next fire is
// written again then. After a refusal no write is tried for kLedgerRetry, so
// that the loop is not held by the store's busy timeout on every record.
// Slots are claimed only behind every kept record (may_claim), so skipped
// slots are claimed in slot order. Single-threaded, like the engine.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

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
  std::variant<ledger::RunEnd, ledger::SkipRecord, ledger::Event> record;
};

class Backlog {
 public:
  using Clock = std::function<TimePoint()>;
  struct Hooks {
    // A run end or skip was written (not an event, not a duplicate).
    std::function<void(std::string_view job)> on_recorded;
    // The ledger refused a write: the engine arms its timer for wake_at().
    std::function<void()> on_refused;
  };

  // `store` must outlive the backlog.
  Backlog(ledger::Store& store, Clock clock, Hooks hooks);

  // Writes `w` now, or keeps it behind the records already kept.
  void write_or_keep(PendingWrite w);
  // store.claim_and_start, noting a refusal (the caller keeps the fire).
  Result<bool> claim(const ledger::RunStart& start);
  // Writes the job's next fire, or writes it again once the ledger accepts
  // writes (only status and an `at` job that never fired read it).
  void write_next_fire(const std::string& job, const std::string& definition_hash,
                       std::optional<TimePoint> next_fire);
  // While held, next fires are only kept; the flush() after release writes
  // them all in one transaction (the engine's start tells one per job).
  void hold_next_fires(bool hold) { holding_ = hold; }
  // A heartbeat; not kept when refused (the next one supersedes it).
  void heartbeat(std::string_view run_id, std::optional<double> progress);

  // Claims may go ahead: nothing is kept and the ledger is not resting.
  bool may_claim() const { return kept_.empty() && !resting(); }
  // No write is tried before resting_until (a clock set back does not stretch it).
  bool resting() const;
  // The ledger refused a write and has not accepted every kept one since.
  bool refusing() const { return down_since_.has_value(); }
  bool empty() const { return kept_.empty(); }
  std::size_t size() const { return kept_.size(); }
  // When the engine should wake to retry: nullopt when the ledger is not
  // refusing, or nothing waits for it (`claims_waiting`: fires in ready).
  std::optional<TimePoint> wake_at(bool claims_waiting) const;

  // Writes the kept records in order, stopping at the first refusal, then
  // the next fires refused; does nothing while resting.
  void flush();
  // At shutdown: one last try, then every record still refused is logged
  // (error, one line each) so that an operator can recover it.
  void give_up();
  // For status: records kept, refusing since, oldest kept and its age.
  nlohmann::json json() const;

 private:
  // One write; false when the ledger already had it. Error: refused.
  Result<bool> write(const PendingWrite& w);
  // The ledger refused a write: log it once per outage, rest kLedgerRetry.
  void note_refused(const Error& error);
  // A write went through: log the end of an outage once nothing is kept.
  void note_written();
  static std::string describe(const PendingWrite& w);
  static std::string_view record_run_id(const PendingWrite& w);

  struct NextFire {
    std::string definition_hash;
    std::optional<TimePoint> at;
  };

  ledger::Store& store_;
  Clock clock_;
  Hooks hooks_;
  std::deque<PendingWrite> kept_;                                // oldest first
  std::map<std::string, NextFire, std::less<>> next_unwritten_;  // refused next fires, latest
  TimePoint resting_until_{};                                    // no write is tried before it
  std::optional<TimePoint> down_since_;                          // the first refusal of this outage
  std::size_t kept_in_outage_ = 0;
  bool holding_ = false;  // hold_next_fires
};

}  // namespace jobhost::engine
