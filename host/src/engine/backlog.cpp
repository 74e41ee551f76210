#include "engine/backlog.h"

#include <fmt/core.h>

#include "common/log.h"

namespace jobhost::engine {

Backlog::Backlog(ledger::Store& store, Clock clock, Hooks hooks)
    : store_(store), clock_(std::move(clock)), hooks_(std::move(hooks)) {}

void Backlog::write_or_keep(PendingWrite w) {
  if (kept_.empty() && !resting()) {
    auto written = write(w);
    if (written) return note_written();
    note_refused(written.error());
  }
  // One line per record (not per retry): what an operator needs to recover it.
  log::warn("kept in memory until the ledger accepts it: " + describe(w),
            {w.job, record_run_id(w)});
  ++kept_in_outage_;
  kept_.push_back(std::move(w));
}

Result<bool> Backlog::claim(const ledger::RunStart& start) {
  auto claimed = store_.claim_and_start(start);
  if (claimed) {
    note_written();
  } else {
    note_refused(claimed.error());
  }
  return claimed;
}

void Backlog::write_next_fire(const std::string& job, const std::string& definition_hash,
                              std::optional<TimePoint> next_fire) {
  if (!holding_ && !resting()) {
    auto written = store_.upsert_job(job, definition_hash, next_fire, clock_());
    if (written) {
      next_unwritten_.erase(job);
      return note_written();
    }
    note_refused(written.error());
  }
  next_unwritten_[job] = NextFire{definition_hash, next_fire};
}

void Backlog::heartbeat(std::string_view run_id, std::optional<double> progress) {
  if (resting()) return;
  if (auto r = store_.heartbeat(run_id, clock_(), progress); !r) {
    note_refused(r.error());
  } else {
    note_written();
  }
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
  Result<bool> written = true;
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) {
    written = store_.finish_run(*end);
  } else if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) {
    written = store_.record_skipped(*skip);
  } else if (auto added = store_.add_event(std::get<ledger::Event>(w.record)); !added) {
    written = std::unexpected(added.error());
  }
  if (written && *written && !std::holds_alternative<ledger::Event>(w.record) &&
      hooks_.on_recorded) {
    hooks_.on_recorded(w.job);
  }
  return written;
}

void Backlog::note_refused(const Error& error) {
  resting_until_ = clock_() + kLedgerRetry;
  if (!down_since_) {
    down_since_ = clock_();
    kept_in_outage_ = 0;
    log::error(error.message +
               "; until the ledger accepts writes again, no run starts (fires wait), finished "
               "runs and skipped slots are kept in memory and retried every second (`jobhost "
               "status` shows the backlog)");
  }
  if (hooks_.on_refused) hooks_.on_refused();
}

void Backlog::note_written() {
  if (!down_since_ || !kept_.empty() || !next_unwritten_.empty()) return;
  log::info(
      fmt::format("the ledger accepts writes again after {}: {} record(s) kept in memory "
                  "were written",
                  format_elapsed(clock_() - *down_since_), kept_in_outage_));
  down_since_.reset();
}

void Backlog::flush() {
  if (resting()) return;
  while (!kept_.empty()) {
    auto written = write(kept_.front());
    if (!written) return note_refused(written.error());
    kept_.pop_front();
  }
  if (!next_unwritten_.empty()) {
    std::vector<ledger::JobMark> rows;
    rows.reserve(next_unwritten_.size());
    for (const auto& [job, next] : next_unwritten_) {
      rows.push_back({job, next.definition_hash, std::nullopt, next.at});
    }
    auto written = store_.upsert_jobs(rows, clock_());
    if (!written) return note_refused(written.error());
    next_unwritten_.clear();
  }
  note_written();
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
  const auto& event = std::get<ledger::Event>(w.record);
  return fmt::format("{} event at {}: {}", event.kind, ledger::format_utc(event.at), event.detail);
}

std::string_view Backlog::record_run_id(const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) return end->run_id;
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) return skip->run_id;
  return {};
}

}  // namespace jobhost::engine
