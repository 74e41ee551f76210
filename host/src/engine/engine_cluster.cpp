// The engine's part in several hosts sharing one ledger (docs/cluster.md):
// fencing while this host's lease is lost, and adopting another host's runs.
#include <fmt/core.h>

#include <unordered_map>

#include "common/log.h"
#include "engine/engine.h"
#include "engine/retry.h"

namespace jobhost::engine {

void Engine::update_definitions_digest() {
  std::vector<std::pair<std::string, std::string>> jobs;
  jobs.reserve(config_.jobs.size());
  for (const auto& job : config_.jobs) jobs.emplace_back(job.name, job.definition_hash);
  definitions_digest_ = ledger::definitions_digest(jobs);
}

std::map<std::string, std::string> Engine::plugin_builds() const {
  std::map<std::string, std::string> out;
  for (const auto& p : plugins_.accepted) out[p.name] = p.sha256;
  return out;
}

void Engine::sync_paused(const std::vector<ledger::JobStats>& paused,
                         std::chrono::steady_clock::time_point read_at) {
  if (paused_here_at_ >= read_at) return;  // the read may predate a change made here
  std::unordered_map<std::string_view, const ledger::JobStats*> in_ledger;
  for (const auto& p : paused) in_ledger.emplace(p.job, &p);
  for (auto& [name, job] : jobs_) {
    const auto found = in_ledger.find(name);
    const bool should = found != in_ledger.end();
    if (job.retired || should == job.paused) continue;
    job.paused = should;
    if (!should) {
      log::info("resumed on another host sharing the ledger", {name});
      continue;
    }
    log::info(fmt::format("paused on another host sharing the ledger (by {}): fires are recorded "
                          "as skipped until resumed",
                          found->second->paused_by.value_or("?")),
              {name});
    unpark_job(job, "the job was paused");
    skip_queued(job, kPausedReason);
  }
  flush_writes();
}

void Engine::fence(std::string_view why) {
  if (fenced_) return;
  fenced_ = true;
  log::error(
      fmt::format("fenced: {}; no fire is claimed until the lease is renewed, and the {} "
                  "run(s) in flight are stopped (retried per their jobs' retry, by the "
                  "host that takes them over or by this one)",
                  why, active_.size()));
  std::vector<std::string> parked;
  for (const auto& [run_id, p] : parked_) parked.push_back(run_id);
  for (const auto& run_id : parked) unpark(run_id, "this host's lease was lost", true);
  for (const auto& [run_id, active] : active_) executor_.stop(run_id, exec::StopReason::shutdown);
}

void Engine::unfence() {
  if (!fenced_) return;
  fenced_ = false;
  log::info("the lease is renewed: claiming fires again");
  pump();
  arm_timer();
}

void Engine::add_retries(const std::vector<ledger::PendingRetry>& retries) {
  for (const auto& r : retries) {
    // Not one a reload dropped since (its row may have been written after).
    auto it = jobs_.find(r.job);
    if (it == jobs_.end() || it->second.retired ||
        r.next_attempt > it->second.config->settings->retry.max_attempts) {
      continue;
    }
    // The same retry twice is one Fire; a retry planned here and there at
    // different times is claimed once.
    timeline_.insert(Fire{r.due_at, r.job, r.scheduled_for, r.next_attempt, r.trace_id,
                          ledger::Trigger::retry, shared_event(r.event)});
  }
  arm_timer();
}

void Engine::lease_until(std::chrono::steady_clock::time_point until) {
  const bool was_expired = lease_expired();
  lease_until_ = until;
  if (was_expired && !lease_expired() && !fenced_) {
    pump();
    arm_timer();
  }
}

bool Engine::lease_expired() const {
  return lease_until_ && std::chrono::steady_clock::now() >= *lease_until_;
}

void Engine::load_pending_retries() {
  auto retries = store_.pending_retries();
  if (!retries) {
    log::error("cannot read pending retries from the ledger: " + retries.error().message);
    return;
  }
  add_retries(*retries);
}

void Engine::adopt(const ledger::Takeover& takeover) {
  const TimePoint t = now();
  std::vector<ledger::PendingRetry> retries;
  for (const auto& run : takeover.closed) {
    log::Fields fields{run.job, run.run_id, run.trace_id, run.attempt};
    log::warn(fmt::format("taken over from host {}: closed as interrupted",
                          run.host.value_or("(unknown)")),
              fields);
    auto it = jobs_.find(run.job);
    if (it == jobs_.end() || it->second.retired) continue;
    const config::RetryPolicy& policy = it->second.config->settings->retry;
    if (run.attempt >= policy.max_attempts) continue;
    ledger::PendingRetry retry{run.job,         run.scheduled_for,
                               run.attempt + 1, t + retry_delay(policy, run.attempt, rng_),
                               run.trace_id,    run.event};
    log::info(fmt::format("attempt {} of {} at {}", retry.next_attempt, policy.max_attempts,
                          ledger::format_utc(retry.due_at)),
              fields);
    retries.push_back(std::move(retry));
  }
  for (const auto& [job, slot] : takeover.freed) {
    auto it = jobs_.find(job);
    if (it == jobs_.end() || it->second.retired || !it->second.config->settings->enabled) {
      continue;
    }
    log::info(fmt::format("slot {} freed by a takeover (its parked run never began): fired here",
                          ledger::format_utc(slot)),
              {job});
    timeline_.insert(Fire{t, job, slot, 1, {}, ledger::Trigger::schedule});
  }
  // Written for any host to run (here, should this host stop first); run
  // here meanwhile: each attempt is claimed once either way.
  add_retries(retries);
  ledger_->run(
      [retries, t](ledger::Store& store) {
        std::vector<Error> refused;
        for (const auto& retry : retries) {
          if (auto written = store.schedule_retry(retry, t); !written) {
            refused.push_back(written.error());
          }
        }
        return refused;
      },
      [](const std::vector<Error>& refused) {
        for (const auto& error : refused) {
          log::error("cannot schedule the retry of a run taken over: " + error.message);
        }
      });
}

}  // namespace jobhost::engine
