#include "observe/job_book.h"

#include <algorithm>
#include <tuple>

#include "common/log.h"

namespace jobhost::observe {
namespace {

// The window's order: started_at, then run_id, descending.
bool newer(const ledger::WindowRun& a, const ledger::WindowRun& b) {
  return std::tie(a.started_at, a.run_id) > std::tie(b.started_at, b.run_id);
}

int64_t minute_of(TimePoint t) {
  return std::chrono::floor<std::chrono::minutes>(t.time_since_epoch()).count();
}

}  // namespace

TimePoint hour_window_start(TimePoint now) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::minutes(minute_of(now - std::chrono::hours(1)))));
}

Result<void> JobBook::seed(ledger::Store& store, TimePoint now) {
  auto minutes = store.run_minutes(hour_window_start(now));
  if (!minutes) return std::unexpected(minutes.error());
  auto summaries = store.job_summaries();
  if (!summaries) return std::unexpected(summaries.error());
  std::map<std::string, Entry, std::less<>> jobs;
  std::vector<std::string> names;
  names.reserve(summaries->size());
  for (auto& s : *summaries) {
    names.push_back(s.job);
    Entry e;
    e.stats = std::move(s);
    jobs.emplace(names.back(), std::move(e));
  }
  auto windows = store.window_runs(names);
  if (!windows) return std::unexpected(windows.error());
  for (auto& [job, runs] : *windows) {
    auto it = jobs.find(job);
    if (it == jobs.end()) continue;
    it->second.window.assign(std::make_move_iterator(runs.begin()),
                             std::make_move_iterator(runs.end()));
    refigure(it->second);
  }
  jobs_ = std::move(jobs);
  minutes_ = {};
  for (const auto& m : *minutes) {
    Minute& slot = minutes_[static_cast<std::size_t>(m.minute) % kMinutes];
    if (slot.minute > m.minute) continue;  // a later minute shares the slot
    slot = Minute{m.minute, m.runs, m.failed, m.duration_ms, m.with_duration};
  }
  store_ = &store;
  return {};
}

ledger::RunSummary JobBook::last_hour(TimePoint now) const {
  const int64_t from = minute_of(hour_window_start(now));
  ledger::RunSummary out;
  int64_t duration_ms = 0, with_duration = 0;
  for (const Minute& m : minutes_) {
    if (m.minute < from) continue;
    out.runs += m.runs;
    out.failed += m.failed;
    duration_ms += m.duration_ms;
    with_duration += m.with_duration;
  }
  if (with_duration > 0) out.mean_duration = Duration(duration_ms / with_duration);
  return out;
}

void JobBook::count_minute(TimePoint started_at, Outcome outcome,
                           std::optional<Duration> duration) {
  const int64_t minute = minute_of(started_at);
  if (minute < 0) return;
  Minute& slot = minutes_[static_cast<std::size_t>(minute) % kMinutes];
  if (slot.minute > minute) return;
  if (slot.minute < minute) slot = Minute{minute};
  ++slot.runs;
  if (counts_as_failure(outcome)) ++slot.failed;
  if (duration) {
    slot.duration_ms += duration->count();
    ++slot.with_duration;
  }
}

void JobBook::reread(const std::vector<std::string>& jobs) {
  if (!store_ || jobs.empty()) return;
  auto windows = store_->window_runs(jobs);
  if (!windows) {
    log::warn("the jobs' figures may count pruned runs: " + windows.error().message);
    return;
  }
  std::vector<std::string> missing = jobs;
  for (auto& [job, runs] : *windows) {
    std::erase(missing, job);
    auto it = jobs_.find(job);
    if (it == jobs_.end()) continue;
    it->second.window.assign(std::make_move_iterator(runs.begin()),
                             std::make_move_iterator(runs.end()));
    refigure(it->second);
  }
  // A job with no finished run left has no row in the answer.
  for (const auto& job : missing) {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) continue;
    it->second.window.clear();
    refigure(it->second);
  }
}

void JobBook::on_runs_pruned(const retention::PrunedRuns& pruned) {
  std::vector<std::string> jobs;
  if (!pruned.job.empty()) {
    if (jobs_.contains(pruned.job)) jobs.push_back(pruned.job);
  } else {
    // By age: only runs started before pruned.before went, so only windows
    // reaching back that far can have lost runs.
    for (const auto& [job, e] : jobs_) {
      if (!e.window.empty() && e.window.back().started_at < pruned.before) jobs.push_back(job);
    }
  }
  reread(jobs);
}

const JobBook::Entry* JobBook::find(std::string_view job) const {
  auto it = jobs_.find(job);
  return it == jobs_.end() ? nullptr : &it->second;
}

JobBook::Entry& JobBook::entry(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) {
    it = jobs_.emplace(job, Entry{}).first;
    it->second.stats.job = job;
  }
  return it->second;
}

void JobBook::claimed(Entry& e, const ledger::RunStart& run) {
  // The ledger advances last_fire when attempt 1 of a schedule or catch-up
  // fire claims its slot.
  if (run.attempt == 1 &&
      (run.trigger == ledger::Trigger::schedule || run.trigger == ledger::Trigger::catchup)) {
    e.stats.last_fire = std::max(e.stats.last_fire.value_or(run.scheduled_for), run.scheduled_for);
  }
  e.stats.last_started = std::max(e.stats.last_started.value_or(run.started_at), run.started_at);
  // The ledger's jobs row takes the definition of the claim that creates it.
  if (!e.stats.definition_hash) e.stats.definition_hash = run.definition_hash;
}

void JobBook::ended(Entry& e, const ledger::RunStart& run, const ledger::RunEnd& end) {
  if (end.outcome == Outcome::succeeded) {
    e.stats.consecutive_failures = 0;
  } else if (counts_as_failure(end.outcome)) {
    ++e.stats.consecutive_failures;
  }
  if (end.outcome == Outcome::skipped) return;
  count_minute(run.started_at, end.outcome, end.duration);
  ledger::WindowRun w{run.run_id, run.started_at, end.outcome, end.duration};
  auto at = std::lower_bound(e.window.begin(), e.window.end(), w, newer);
  if (at == e.window.end() && e.window.size() >= static_cast<std::size_t>(ledger::kStatsWindow)) {
    return;  // older than the whole window
  }
  e.window.insert(at, std::move(w));
  while (e.window.size() > static_cast<std::size_t>(ledger::kStatsWindow)) e.window.pop_back();
  refigure(e);
}

void JobBook::refigure(Entry& e) {
  auto& s = e.stats;
  s.window_runs = static_cast<int>(e.window.size());
  s.last_outcome.reset();
  s.success_rate.reset();
  s.mean_duration.reset();
  s.p50_duration.reset();
  s.p95_duration.reset();
  if (e.window.empty()) return;
  s.last_outcome = e.window.front().outcome;
  int succeeded = 0;
  int64_t total_ms = 0;
  std::vector<Duration> durations;
  durations.reserve(e.window.size());
  for (const auto& r : e.window) {
    if (r.outcome == Outcome::succeeded) ++succeeded;
    if (r.duration) {
      total_ms += r.duration->count();
      durations.push_back(*r.duration);
    }
  }
  s.success_rate = static_cast<double>(succeeded) / s.window_runs;
  if (!durations.empty()) {
    s.mean_duration = Duration(total_ms / static_cast<int64_t>(durations.size()));
    std::sort(durations.begin(), durations.end());
    s.p50_duration = ledger::percentile(durations, 50);
    s.p95_duration = ledger::percentile(durations, 95);
  }
}

void JobBook::on_run_started(const ledger::RunStart& run, Duration) {
  Entry& e = entry(run.job);
  claimed(e, run);
  ++e.stats.runs_in_flight;
}

void JobBook::on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                              const exec::RunReport&) {
  Entry& e = entry(run.job);
  if (e.stats.runs_in_flight > 0) --e.stats.runs_in_flight;
  ended(e, run, end);
}

void JobBook::on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) {
  Entry& e = entry(run.job);
  claimed(e, run);
  ended(e, run, end);
}

void JobBook::on_skipped(const ledger::SkipRecord& skip) {
  Entry& e = entry(skip.job);
  if (!e.stats.definition_hash) e.stats.definition_hash = skip.definition_hash;
  if (skip.trigger == ledger::Trigger::schedule || skip.trigger == ledger::Trigger::catchup) {
    e.stats.last_fire =
        std::max(e.stats.last_fire.value_or(skip.scheduled_for), skip.scheduled_for);
  }
}

}  // namespace jobhost::observe
