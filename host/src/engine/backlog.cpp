#include "engine/backlog.h"

#include <fmt/core.h>

#include "common/log.h"

namespace jobhost::engine {

Backlog::Backlog(ledger::Store& store, Clock clock, Hooks hooks)
    : store_(store), clock_(std::move(clock)), hooks_(std::move(hooks)) {}

void Backlog::add(PendingWrite w) {
  queued_.push_back(std::move(w));
  note_queued();
}

void Backlog::set_next_fire(const std::string& job, const std::string& definition_hash,
                            std::optional<TimePoint> next_fire) {
  next_unwritten_[job] = NextFire{definition_hash, next_fire};
  note_queued();
}

void Backlog::heartbeat(std::string_view run_id, std::optional<double> progress) {
  if (resting()) return;
  auto [it, added] = heartbeats_.try_emplace(std::string(run_id), Heartbeat{clock_(), progress});
  if (!added) it->second = Heartbeat{clock_(), progress};
  note_queued();
}

void Backlog::note_queued() {
  if (flush_due_) return;
  flush_due_ = true;
  if (hooks_.on_queued) hooks_.on_queued();
}

std::vector<Result<bool>> Backlog::flush(std::span<const ledger::RunStart> claims) {
  flush_due_ = false;
  std::vector<Result<bool>> results;
  results.reserve(claims.size());
  const auto refuse_claims = [&](const Error& error) {
    while (results.size() < claims.size()) results.emplace_back(std::unexpected(error));
  };
  if (!pending() && claims.empty()) return results;
  if (resting()) {
    refuse_claims(Error{"the ledger refused a write less than a second ago"});
    keep_refused(std::nullopt);
    return results;
  }
  if (auto begun = store_.begin_group(); !begun) {
    refuse_claims(begun.error());
    keep_refused(begun.error());
    return results;
  }
  // In the group's order; stops at the first refusal.
  std::optional<Error> refused;
  std::size_t kept_written = 0, queued_written = 0;
  std::vector<std::string_view> recorded;  // jobs of the run ends and skips written
  const auto write_each = [&](const std::deque<PendingWrite>& records, std::size_t& written) {
    for (const auto& w : records) {
      if (refused) return;
      auto r = write(w);
      if (!r) {
        refused = r.error();
        return;
      }
      const bool is_record = std::holds_alternative<ledger::RunEnd>(w.record) ||
                             std::holds_alternative<ledger::SkipRecord>(w.record);
      if (*r && is_record) recorded.push_back(w.job);
      ++written;
    }
  };
  write_each(kept_, kept_written);
  write_each(queued_, queued_written);
  for (const auto& start : claims) {
    if (refused) break;
    results.push_back(store_.claim_and_start(start));
    if (!results.back()) refused = results.back().error();
  }
  auto next_fires = std::exchange(next_unwritten_, {});
  auto next_written = next_fires.begin();  // [begin, next_written) are written
  while (!refused && next_written != next_fires.end()) {
    const auto& [job, next] = *next_written;
    if (auto written = store_.upsert_job(job, next.definition_hash, next.at, clock_()); !written) {
      refused = written.error();
      break;
    }
    ++next_written;
  }
  for (const auto& [run_id, beat] : std::exchange(heartbeats_, {})) {
    if (refused) break;
    if (auto r = store_.heartbeat(run_id, beat.at, beat.progress); !r) refused = r.error();
  }

  if (auto committed = store_.commit_group(); !committed) {
    // Nothing of the group was written: the claims are refused, the records
    // kept, the next fires written again later.
    results.clear();
    refuse_claims(committed.error());
    next_unwritten_.merge(next_fires);
    keep_refused(committed.error());
    return results;
  }
  next_fires.erase(next_fires.begin(), next_written);
  next_unwritten_.merge(next_fires);  // those not written
  if (hooks_.on_recorded) {
    for (std::string_view job : recorded) hooks_.on_recorded(job);
  }
  kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(kept_written));
  queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(queued_written));
  if (refused) {
    refuse_claims(*refused);
    keep_refused(*refused);
  } else {
    note_written();
  }
  return results;
}

void Backlog::keep_refused(const std::optional<Error>& error) {
  if (error) {
    resting_until_ = clock_() + kLedgerRetry;
    if (!down_since_) {
      down_since_ = clock_();
      kept_in_outage_ = 0;
      log::error(error->message +
                 "; until the ledger accepts writes again, no run starts (fires wait), finished "
                 "runs and skipped slots are kept in memory and retried every second (`jobhost "
                 "status` shows the backlog)");
    }
  }
  heartbeats_.clear();
  for (auto& w : queued_) {
    // One line per record (not per retry): what an operator needs to recover it.
    log::warn("kept in memory until the ledger accepts it: " + describe(w),
              {w.job, record_run_id(w)});
    ++kept_in_outage_;
    kept_.push_back(std::move(w));
  }
  queued_.clear();
  if (hooks_.on_refused) hooks_.on_refused();
}

bool Backlog::resting() const {
  TimePoint t = clock_();
  return t < resting_until_ && resting_until_ - t <= kLedgerRetry;
}

std::optional<TimePoint> Backlog::wake_at(bool claims_waiting) const {
  if (!down_since_ || (kept_.empty() && next_unwritten_.empty() && !claims_waiting)) {
    return std::nullopt;
  }
  return resting() ? resting_until_ : clock_() + kLedgerRetry;
}

Result<bool> Backlog::write(const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) return store_.finish_run(*end);
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) {
    return store_.record_skipped(*skip);
  }
  if (const auto* unclaim = std::get_if<ledger::Unclaim>(&w.record)) {
    return store_.unclaim_parked(*unclaim);
  }
  if (auto added = store_.add_event(std::get<ledger::Event>(w.record)); !added) {
    return std::unexpected(added.error());
  }
  return true;
}

void Backlog::note_written() {
  if (!down_since_ || !kept_.empty() || !next_unwritten_.empty()) return;
  log::info(
      fmt::format("the ledger accepts writes again after {}: {} record(s) kept in memory "
                  "were written",
                  format_elapsed(clock_() - *down_since_), kept_in_outage_));
  down_since_.reset();
}

void Backlog::give_up() {
  resting_until_ = {};  // one last try, however recent the last refusal
  flush();
  if (kept_.empty()) return;
  log::error(fmt::format(
      "the ledger still refuses writes: {} record(s) kept in memory are lost with this exit, each "
      "logged below; at the next start, runs left open are closed as interrupted and scheduled "
      "slots not recorded are handled as missed",
      kept_.size()));
  for (const auto& w : kept_) {
    log::error("not recorded in the ledger: " + describe(w), {w.job, record_run_id(w)});
  }
  kept_.clear();
}

nlohmann::json Backlog::json() const {
  nlohmann::json out = {{"records", kept_.size()},
                        {"refusing_since", nullptr},
                        {"oldest_kept_since", nullptr},
                        {"oldest_age_ms", nullptr}};
  if (down_since_) out["refusing_since"] = ledger::format_utc(*down_since_);
  if (!kept_.empty()) {
    TimePoint oldest = kept_.front().kept_since;
    out["oldest_kept_since"] = ledger::format_utc(oldest);
    out["oldest_age_ms"] = std::max<int64_t>(0, (clock_() - oldest).count());
  }
  return out;
}

std::string Backlog::describe(const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) {
    std::string text =
        fmt::format("end of run {} (slot {}): {} at {}", end->run_id, ledger::format_utc(w.slot),
                    to_string(end->outcome), ledger::format_utc(end->finished_at));
    if (end->exit_code) text += fmt::format(", exit code {}", *end->exit_code);
    if (end->retry_at) text += fmt::format(", retry at {}", ledger::format_utc(*end->retry_at));
    return text + ": " + end->message;
  }
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) {
    return fmt::format("skipped slot {} (run {}, trigger {}) at {}: {}",
                       ledger::format_utc(skip->scheduled_for), skip->run_id,
                       to_string(skip->trigger), ledger::format_utc(skip->at), skip->reason);
  }
  if (const auto* unclaim = std::get_if<ledger::Unclaim>(&w.record)) {
    return fmt::format("undoing the claim of parked run {} (slot {}) at {}: {}", unclaim->run_id,
                       ledger::format_utc(w.slot), ledger::format_utc(unclaim->at), unclaim->why);
  }
  const auto& event = std::get<ledger::Event>(w.record);
  return fmt::format("{} event at {}: {}", event.kind, ledger::format_utc(event.at), event.detail);
}

std::string_view Backlog::record_run_id(const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) return end->run_id;
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) return skip->run_id;
  if (const auto* unclaim = std::get_if<ledger::Unclaim>(&w.record)) return unclaim->run_id;
  return {};
}

}  // namespace jobhost::engine
