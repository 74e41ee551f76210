#include "retention/retention.h"

#include <fmt/core.h>
#include <spdlog/common.h>

#include <algorithm>

#include "common/log.h"

namespace jobhost::retention {

RetentionPolicy retention_policy(const config::Config& config) {
  RetentionPolicy policy;
  policy.keep_runs = config.host.keep_runs;
  // Built as a vector and sorted once: inserting in file order would move
  // the vector's tail at each job.
  decltype(policy.keep_last)::sequence_type limits;
  for (const auto& job : config.jobs) {
    if (job.settings->keep_last > 0) limits.emplace_back(job.name, job.settings->keep_last);
  }
  policy.keep_last.adopt_sequence(std::move(limits));
  return policy;
}

int prune_slack(int keep) {
  return std::max(1, keep / 10);
}

Pruner::Pruner(boost::asio::io_context& io, ledger::StoreWorker& ledger, RetentionPolicy policy,
               Clock clock)
    : timer_(io), ledger_(&ledger), policy_(std::move(policy)), clock_(std::move(clock)) {}

void Pruner::start() {
  stopped_ = false;
  // No sweep over every job (100,000 queries at each start): a job's first
  // run or skip recorded after start queues its prune (note_recorded), which
  // catches up on what was recorded while no daemon counted and on a
  // keep_last lowered since. A job that never runs again keeps its excess
  // until keep_runs ages it out.
  since_prune_.clear();
  next_age_pass_ = std::chrono::steady_clock::now() + kPruneFirstPass;
  arm(kPruneFirstPass);
}

void Pruner::stop() {
  stopped_ = true;
  ++generation_;
  timer_.cancel();
}

void Pruner::set_policy(RetentionPolicy policy) {
  // Jobs that got a keep_last, or a lower one, are pruned at the next batch.
  std::vector<std::string> lowered;
  for (const auto& [job, keep] : policy.keep_last) {
    auto before = policy_.keep_last.find(job);
    if (before == policy_.keep_last.end() || keep < before->second) lowered.push_back(job);
  }
  policy_ = std::move(policy);
  // Steps of jobs that lost their keep_last go.
  std::erase_if(steps_, [&](const Step& s) {
    if (s.job.empty() || policy_.keep_last.contains(s.job)) return false;
    queued_.erase(s.job);
    return true;
  });
  std::erase_if(since_prune_, [&](const auto& e) { return !policy_.keep_last.contains(e.first); });
  if (stopped_) return;
  for (auto& job : lowered) queue(Step{std::move(job)});
  if (idle_) arm(kPruneBatchGap);
}

void Pruner::note_recorded(std::string_view job) {
  auto it = policy_.keep_last.find(job);
  if (stopped_ || it == policy_.keep_last.end()) return;
  // The job's first record since start always queues a prune (see start()).
  auto [counted, first] = since_prune_.try_emplace(it->first, 0);
  if (!first && ++counted->second < prune_slack(it->second)) return;
  counted->second = 0;
  queue(Step{it->first});
  if (idle_) arm(kPruneBatchGap);
}

void Pruner::queue(Step step) {
  if (queued_.insert(step.job).second) steps_.push_back(std::move(step));
}

void Pruner::arm(Duration delay) {
  idle_ = steps_.empty();
  const uint64_t generation = ++generation_;
  timer_.expires_after(std::max(delay, Duration(0)));
  // The generation, not operation_aborted, tells a replaced wait: a handler
  // already queued when the timer is re-armed still runs.
  timer_.async_wait([this, generation](const boost::system::error_code& ec) {
    if (!ec && generation == generation_ && !stopped_ && !in_flight_) on_timer();
  });
}

void Pruner::on_timer() {
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_age_pass_) {
    if (policy_.keep_runs.count() > 0) queue(Step{});  // the cutoff moved on
    report_due_ = true;
    next_age_pass_ = now + kPruneAgeInterval;
  }
  // Batches that found nothing to delete are cheap (one indexed read): go on
  // with the next step for up to kPruneTurn, so that a reload lowering
  // keep_last for 100,000 jobs takes seconds, not 100,000 timer turns.
  turn_ends_ = now + kPruneTurn;
  next_batch();
}

void Pruner::next_batch() {
  const auto now = std::chrono::steady_clock::now();
  const auto until_age_pass = std::chrono::duration_cast<Duration>(next_age_pass_ - now);
  if (steps_.empty()) {
    if (report_due_ && deleted_.any()) {
      report(deleted_, spdlog::level::info);
      deleted_ = {};
    }
    report_due_ = false;
    return arm(until_age_pass);
  }
  const std::string job = steps_.front().job;
  if (job.empty()) step_before_ = clock_() - policy_.keep_runs;
  const int keep = job.empty() ? 0 : policy_.keep_last.at(job);
  const TimePoint before = step_before_;
  in_flight_ = true;
  ledger_->run(
      [job, keep, before](ledger::Store& store) {
        Batch batch;
        batch.began = std::chrono::steady_clock::now();
        if (job.empty()) {
          auto pruned = store.prune(before, kPruneBatchRows);
          if (pruned)
            batch.pruned = *pruned;
          else
            batch.error = pruned.error();
        } else if (auto pruned = store.prune_excess(job, keep, kPruneBatchRows)) {
          batch.pruned.runs = *pruned;
        } else {
          batch.error = pruned.error();
        }
        batch.took = std::chrono::steady_clock::now() - batch.began;
        return batch;
      },
      [this, job](const Batch& batch) {
        in_flight_ = false;
        if (!stopped_) on_batch(job, batch);
      });
}

void Pruner::on_batch(const std::string& job, const Batch& batch) {
  const auto until_age_pass =
      std::chrono::duration_cast<Duration>(next_age_pass_ - std::chrono::steady_clock::now());
  if (batch.error) {
    if (batch.error->kind == Error::Kind::busy) {
      // Another host sharing the ledger prunes now: this step waits its turn.
      return arm(kPruneBusyWait);
    }
    log::warn("retention: " + batch.error->message, {job});
    return arm(until_age_pass);  // the ledger refused: keep the steps, try again then
  }
  if (batch.took > std::chrono::milliseconds(50)) {
    log::write(
        spdlog::level::debug, {job},
        fmt::format("retention: one batch took {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(batch.took).count()));
  }
  const int64_t deleted = batch.pruned.runs + batch.pruned.events;
  if (job.empty()) {
    deleted_.by_age += batch.pruned.runs;
    deleted_.events += batch.pruned.events;
  } else {
    deleted_.by_count += batch.pruned.runs;
  }
  // The step may have gone meanwhile (a reload took the job's keep_last).
  const bool same_step = !steps_.empty() && steps_.front().job == job;
  if (same_step) {
    step_runs_ += batch.pruned.runs;
    const bool more =
        batch.pruned.runs == kPruneBatchRows || batch.pruned.events == kPruneBatchRows;
    if (!more) {
      PrunedRuns done{job, step_before_};
      const bool any = step_runs_ > 0;
      step_runs_ = 0;
      queued_.erase(job);
      steps_.pop_front();
      if (any && on_pruned_) on_pruned_(done);
    }
  }
  // A timer armed meanwhile (note_recorded) is replaced by what follows.
  if (!steps_.empty() && (deleted > 0 || std::chrono::steady_clock::now() >= turn_ends_)) {
    return arm(kPruneBatchGap);
  }
  next_batch();
}

void Pruner::report(const Totals& totals, spdlog::level::level_enum level) const {
  const std::string age = config::format_duration(policy_.keep_runs);
  std::string parts;
  auto add = [&](int64_t n, std::string text) {
    if (n == 0) return;
    parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", n, text);
  };
  add(totals.by_count, "run(s) over keep_last");
  add(totals.by_age, "run(s) older than " + age);
  add(totals.events, "other event(s) older than " + age);
  log::write(level, {}, "retention: deleted " + parts);
}

}  // namespace jobhost::retention
