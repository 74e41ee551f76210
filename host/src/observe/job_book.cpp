#include "observe/job_book.h"

#include <algorithm>
#include <tuple>

namespace jobhost::observe {
namespace {

// As the ledger counts them (ledger/sqlite_store.cpp, finish_run).
bool counts_as_failure(Outcome o) {
  switch (o) {
    case Outcome::failed:
    case Outcome::timed_out:
    case Outcome::stalled:
    case Outcome::crashed:
    case Outcome::limit_exceeded:
      return true;
    default:
      return false;
  }
}

// The window's order: started_at, then run_id, descending.
bool newer(const ledger::WindowRun& a, const ledger::WindowRun& b) {
  return std::tie(a.started_at, a.run_id) > std::tie(b.started_at, b.run_id);
}

}  // namespace

Result<void> JobBook::seed(ledger::Store& store) {
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
  return {};
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
