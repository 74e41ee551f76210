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

Pruner::Pruner(boost::asio::io_context& io, ledger::Store& store, RetentionPolicy policy,
               Clock clock)
    : timer_(io), store_(store), policy_(std::move(policy)), clock_(std::move(clock)) {}

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
    if (!ec && generation == generation_ && !stopped_) on_timer();
  });
}

void Pruner::on_timer() {
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_age_pass_) {
    if (policy_.keep_runs.count() > 0) queue(Step{});  // the cutoff moved on
    report_due_ = true;
    next_age_pass_ = now + kPruneAgeInterval;
  }
  const auto until_age_pass = std::chrono::duration_cast<Duration>(next_age_pass_ - now);
  // Batches that found nothing to delete are cheap (one indexed read): go on
  // with the next step for up to kPruneTurn, so that a reload lowering
  // keep_last for 100,000 jobs takes seconds, not 100,000 timer turns.
  const auto turn_ends = now + kPruneTurn;
  while (!steps_.empty()) {
    const auto deleted = run_batch();
    if (!deleted) {
      arm(until_age_pass);  // the ledger refused: keep the steps, try again then
      return;
    }
    if (*deleted > 0 || std::chrono::steady_clock::now() >= turn_ends) break;
  }
  if (!steps_.empty()) {
    arm(kPruneBatchGap);
    return;
  }
  if (report_due_ && deleted_.any()) {
    report(deleted_, spdlog::level::info);
    deleted_ = {};
  }
  report_due_ = false;
  arm(until_age_pass);
}

std::optional<int64_t> Pruner::run_batch() {
  const Step& step = steps_.front();
  const auto began = std::chrono::steady_clock::now();
  bool more = false;
  int64_t deleted = 0;
  if (step.job.empty()) {
    step_before_ = clock_() - policy_.keep_runs;
    auto pruned = store_.prune(step_before_, kPruneBatchRows);
    if (!pruned) {
      log::warn("retention: " + pruned.error().message);
      return std::nullopt;
    }
    deleted = pruned->runs + pruned->events;
    deleted_.by_age += pruned->runs;
    step_runs_ += pruned->runs;
    deleted_.events += pruned->events;
    more = pruned->runs == kPruneBatchRows || pruned->events == kPruneBatchRows;
  } else {
    auto pruned = store_.prune_excess(step.job, policy_.keep_last.at(step.job), kPruneBatchRows);
    if (!pruned) {
      log::warn("retention: " + pruned.error().message, {step.job});
      return std::nullopt;
    }
    deleted = *pruned;
    deleted_.by_count += *pruned;
    step_runs_ += *pruned;
    more = *pruned == kPruneBatchRows;
  }
  const auto took = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - began);
  if (took > std::chrono::milliseconds(50)) {
    log::write(spdlog::level::debug, {step.job},
               fmt::format("retention: one batch took {} ms", took.count()));
  }
  if (!more) {
    PrunedRuns done{step.job, step_before_};
    const bool any = step_runs_ > 0;
    step_runs_ = 0;
    queued_.erase(step.job);
    steps_.pop_front();
    if (any && on_pruned_) on_pruned_(done);
  }
  return deleted;
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
