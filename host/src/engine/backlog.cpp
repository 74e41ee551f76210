#include "engine/backlog.h"

#include <fmt/core.h>

#include <set>

#include "common/log.h"

namespace jobhost::engine {

Backlog::Backlog(ledger::StoreWorker& ledger, Clock clock, Hooks hooks)
    : ledger_(&ledger), clock_(std::move(clock)), hooks_(std::move(hooks)) {}

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

void Backlog::flush(std::vector<ledger::RunStart> claims, Flushed done) {
  if (in_flight_) {
    // The group in flight takes no more; its end flushes again (flush_due_).
    // Claims are not tried (the caller keeps their fires).
    if (!claims.empty() && done) {
      done(std::vector<Result<bool>>(claims.size(),
                                     std::unexpected(Error{"a write group is in flight"})));
    }
    return;
  }
  flush_due_ = false;
  const auto refuse_all = [&](const Error& error) {
    std::vector<Result<bool>> refused(claims.size(), std::unexpected(error));
    if (done) done(std::move(refused));
  };
  if (!pending() && claims.empty()) {
    if (done) done({});
    return;
  }
  if (resting()) {
    keep_refused(std::nullopt);
    return refuse_all(Error{"the ledger refused a write less than a second ago"});
  }
  auto group = std::make_shared<Group>();
  group->records.assign(kept_.begin(), kept_.end());
  group->kept = kept_.size();
  group->records.insert(group->records.end(), queued_.begin(), queued_.end());
  group->claims = std::move(claims);
  group->next_fires = std::exchange(next_unwritten_, {});
  group->heartbeats = std::exchange(heartbeats_, {});
  group->at = clock_();
  in_flight_ = true;
  ledger_->run([group](ledger::Store& store) { return write_group(store, *group); },
               [this, group, done = std::move(done)](Written written) mutable {
                 in_flight_ = false;
                 auto results = apply(*group, std::move(written));
                 if (done) done(std::move(results));
                 if (flush_due_ && !in_flight_) {
                   flush_due_ = false;
                   note_queued();
                 }
               });
}

Backlog::Written Backlog::write_group(ledger::Store& store, const Group& group) {
  Written out;
  if (auto begun = store.begin_group(); !begun) {
    out.refused = begun.error();
    out.committed = false;
    return out;
  }
  {
    std::set<std::string> jobs;
    for (const auto& w : group.records) jobs.insert(w.job);
    for (const auto& start : group.claims) jobs.insert(start.job);
    for (const auto& [job, next] : group.next_fires) jobs.insert(job);
    const std::vector<std::string> sorted(jobs.begin(), jobs.end());
    if (auto locked = store.lock_jobs(sorted); !locked) out.refused = locked.error();
  }
  // In the group's order; stops at the first refusal.
  for (const auto& w : group.records) {
    if (out.refused) break;
    auto r = write(store, w);
    if (!r) {
      out.refused = r.error();
      break;
    }
    out.fresh.push_back(*r);
  }
  for (const auto& start : group.claims) {
    if (out.refused) break;
    out.claims.push_back(store.claim_and_start(start));
    if (!out.claims.back()) {
      out.refused = out.claims.back().error();
      out.claims.pop_back();
    }
  }
  for (const auto& [job, next] : group.next_fires) {
    if (out.refused) break;
    if (auto written = store.upsert_job(job, next.definition_hash, next.at, group.at); !written) {
      out.refused = written.error();
      break;
    }
    ++out.next_written;
  }
  for (const auto& [run_id, beat] : group.heartbeats) {
    if (out.refused) break;
    if (auto r = store.heartbeat(run_id, beat.at, beat.progress); !r) out.refused = r.error();
  }
  if (auto committed = store.commit_group(); !committed) {
    // Nothing of the group was written.
    out.refused = committed.error();
    out.committed = false;
  }
  return out;
}

std::vector<Result<bool>> Backlog::apply(Group& group, Written written) {
  std::vector<Result<bool>> results;
  results.reserve(group.claims.size());
  if (!written.committed) {
    // The claims are refused, the records kept, the next fires written again later.
    results.assign(group.claims.size(), std::unexpected(*written.refused));
    next_unwritten_.merge(group.next_fires);  // newer ones made meanwhile win
    keep_refused(*written.refused);
    return results;
  }
  auto next_fires = std::move(group.next_fires);
  auto unwritten = next_fires.begin();
  std::advance(unwritten, static_cast<std::ptrdiff_t>(written.next_written));
  next_fires.erase(next_fires.begin(), unwritten);
  next_unwritten_.merge(next_fires);  // those not written, unless made again meanwhile
  const std::size_t records = written.fresh.size();
  const std::size_t kept_written = std::min(records, group.kept);
  if (hooks_.on_recorded) {
    for (std::size_t i = 0; i < records; ++i) {
      const auto& w = group.records[i];
      const bool is_record = std::holds_alternative<ledger::RunEnd>(w.record) ||
                             std::holds_alternative<ledger::SkipRecord>(w.record);
      if (written.fresh[i] && is_record) hooks_.on_recorded(w.job);
    }
  }
  kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(kept_written));
  queued_.erase(queued_.begin(),
                queued_.begin() + static_cast<std::ptrdiff_t>(records - kept_written));
  results = std::move(written.claims);
  if (written.refused) {
    while (results.size() < group.claims.size())
      results.emplace_back(std::unexpected(*written.refused));
    keep_refused(*written.refused);
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

Result<bool> Backlog::write(ledger::Store& store, const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) return store.finish_run(*end);
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) {
    return store.record_skipped(*skip);
  }
  if (const auto* unclaim = std::get_if<ledger::Unclaim>(&w.record)) {
    return store.unclaim_parked(*unclaim);
  }
  if (std::holds_alternative<DropRetry>(w.record)) return store.remove_retry(w.job, w.slot);
  if (auto added = store.add_event(std::get<ledger::Event>(w.record)); !added) {
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
  ledger_->settle();    // the group in flight, if any
  resting_until_ = {};  // one last try, however recent the last refusal
  flush();
  ledger_->settle();
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
                        {"writing", in_flight_},
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
  if (const auto* drop = std::get_if<DropRetry>(&w.record)) {
    return fmt::format("dropping the pending retry of slot {}: {}", ledger::format_utc(w.slot),
                       drop->why);
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
