#include "observe/job_book.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace jobhost::observe {
namespace {

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
  clear();
  entries_.reserve(summaries->size());
  by_name_.reserve(summaries->size());
  digests_.reserve(summaries->size());
  std::size_t name_bytes = 0;
  for (const auto& s : *summaries) name_bytes += s.job.size();
  names_.reserve(name_bytes);
  std::vector<std::string> with_runs;  // the jobs whose window is not empty
  for (const auto& s : *summaries) {
    Entry& e = add_entry(s.job, by_name_.size());
    if (s.definition_hash) e.definition_ = intern_definition(*s.definition_hash);
    e.has_last_fire_ = s.last_fire.has_value();
    if (s.last_fire) e.last_fire_ms_ = s.last_fire->time_since_epoch().count();
    e.has_last_started_ = s.last_started.has_value();
    if (s.last_started) e.last_started_ms_ = s.last_started->time_since_epoch().count();
    e.consecutive_failures_ = s.consecutive_failures;
    e.runs_in_flight_ = s.runs_in_flight;
    if (s.window_runs > 0) with_runs.push_back(s.job);
  }
  summaries->clear();
  summaries->shrink_to_fit();
  // job_summaries comes by name (ORDER BY name): sorting is only a safeguard.
  auto less = [this](uint32_t a, uint32_t b) { return name(entries_[a]) < name(entries_[b]); };
  if (!std::is_sorted(by_name_.begin(), by_name_.end(), less)) {
    std::sort(by_name_.begin(), by_name_.end(), less);
  }
  if (!with_runs.empty()) {
    auto windows = store.window_runs(with_runs);
    if (!windows) {
      clear();
      return std::unexpected(windows.error());
    }
    for (const auto& [job, runs] : *windows) {
      if (Entry* e = lookup(job)) set_window(*e, runs);
    }
  }
  minutes_ = {};
  for (const auto& m : *minutes) {
    Minute& slot = minutes_[static_cast<std::size_t>(m.minute) % kMinutes];
    if (slot.minute > m.minute) continue;  // a later minute shares the slot
    slot = Minute{m.minute, m.runs, m.failed, m.duration_ms, m.with_duration};
  }
  inline_reads_ = std::make_unique<ledger::StoreWorker>(store);
  return {};
}

void JobBook::clear() {
  std::vector<Entry>().swap(entries_);
  std::vector<uint32_t>().swap(by_name_);
  std::string().swap(names_);
  std::vector<std::array<uint8_t, 32>>().swap(digests_);
  std::vector<std::string>().swap(other_definitions_);
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

void JobBook::reread(std::vector<std::string> jobs) {
  ledger::StoreWorker* reads = reads_ ? reads_ : inline_reads_.get();
  if (!reads || jobs.empty()) return;
  auto asked = std::make_shared<const std::vector<std::string>>(std::move(jobs));
  rereads_.push_back(Reread{asked, {}});
  reads->run([asked](ledger::Store& store) { return store.window_runs(*asked); },
             [this, alive = std::weak_ptr<int>(alive_)](Windows windows) {
               if (!alive.expired()) reread_answered(std::move(windows));
             });
}

void JobBook::reread_answered(Windows windows) {
  const Reread asked = std::move(rereads_.front());
  rereads_.pop_front();
  if (!windows) {
    log::warn("the jobs' figures may count pruned runs: " + windows.error().message);
    return;
  }
  // A job with no finished run left has no row in the answer. The jobs are
  // by name: found by a binary search (a pass by age may ask for every job).
  const std::vector<std::string>& jobs = *asked.jobs;
  std::vector<bool> answered(jobs.size());
  for (const auto& [job, runs] : *windows) {
    const auto at = std::lower_bound(jobs.begin(), jobs.end(), job);
    if (at != jobs.end() && *at == job)
      answered[static_cast<std::size_t>(at - jobs.begin())] = true;
    if (Entry* found = lookup(job)) set_window(*found, runs);
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (answered[i]) continue;
    if (Entry* found = lookup(jobs[i])) found->window_.reset();
  }
  // The runs that ended after the question: the answer may predate them.
  for (const auto& [job, run] : asked.ended) {
    Entry* found = lookup(job);
    if (!found) continue;
    if (!found->window_) found->window_ = std::make_unique<RunWindow>();
    if (!found->window_->contains(run.run_id)) found->window_->add(run);
  }
}

void JobBook::on_runs_pruned(const retention::PrunedRuns& pruned) {
  std::vector<std::string> jobs;
  if (!pruned.job.empty()) {
    if (find(pruned.job)) jobs.push_back(pruned.job);
  } else {
    // By age: only runs started before pruned.before went, so only windows
    // reaching back that far can have lost runs.
    for_each([&](std::string_view job, const Entry& e) {
      if (e.window_ && e.window_->oldest_started() < pruned.before) jobs.emplace_back(job);
    });
  }
  reread(std::move(jobs));  // by name (for_each's order), as Reread keeps them
}

std::optional<double> JobBook::Entry::success_rate() const {
  if (!window_ || window_->empty()) return std::nullopt;
  return static_cast<double>(window_->succeeded()) / static_cast<double>(window_->size());
}

std::size_t JobBook::position(std::string_view job) const {
  return static_cast<std::size_t>(
      std::lower_bound(by_name_.begin(), by_name_.end(), job,
                       [this](uint32_t i, std::string_view n) { return name(entries_[i]) < n; }) -
      by_name_.begin());
}

const JobBook::Entry* JobBook::find(std::string_view job) const {
  const std::size_t at = position(job);
  if (at == by_name_.size()) return nullptr;
  const Entry& e = entries_[by_name_[at]];
  return name(e) == job ? &e : nullptr;
}

JobBook::Entry* JobBook::lookup(std::string_view job) {
  return const_cast<Entry*>(std::as_const(*this).find(job));
}

JobBook::Entry& JobBook::add_entry(std::string_view job, std::size_t at) {
  Entry e;
  e.name_at_ = static_cast<uint32_t>(names_.size());
  e.name_size_ = static_cast<uint32_t>(job.size());
  names_.append(job);
  entries_.push_back(std::move(e));
  by_name_.insert(by_name_.begin() + static_cast<std::ptrdiff_t>(at),
                  static_cast<uint32_t>(entries_.size() - 1));
  return entries_.back();
}

JobBook::Entry& JobBook::entry(std::string_view job) {
  const std::size_t at = position(job);
  if (at < by_name_.size() && name(entries_[by_name_[at]]) == job) {
    return entries_[by_name_[at]];
  }
  return add_entry(job, at);
}

uint32_t JobBook::intern_definition(std::string_view hash) {
  std::array<uint8_t, 32> digest{};
  bool hex = hash.size() == 64;
  for (std::size_t i = 0; hex && i < hash.size(); ++i) {
    const char c = hash[i];
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (v < 0) hex = false;
    if (hex) digest[i / 2] = static_cast<uint8_t>(digest[i / 2] << 4 | v);
  }
  if (hex) {
    digests_.push_back(digest);
    return static_cast<uint32_t>(digests_.size());
  }
  other_definitions_.emplace_back(hash);
  return kOtherDefinition | static_cast<uint32_t>(other_definitions_.size() - 1);
}

std::optional<std::string> JobBook::definition_hash(const Entry& e) const {
  if (e.definition_ == 0) return std::nullopt;
  if (e.definition_ & kOtherDefinition)
    return other_definitions_[e.definition_ & ~kOtherDefinition];
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digests_[e.definition_ - 1]) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::size_t JobBook::memory_bytes() const {
  std::size_t bytes = entries_.capacity() * sizeof(Entry) + by_name_.capacity() * sizeof(uint32_t) +
                      names_.capacity() + digests_.capacity() * sizeof(digests_[0]) +
                      other_definitions_.capacity() * sizeof(std::string);
  for (const auto& d : other_definitions_) {
    if (d.capacity() > std::string().capacity()) bytes += d.capacity() + 1;
  }
  for (const Entry& e : entries_) {
    if (e.window_) bytes += e.window_->memory_bytes();
  }
  return bytes;
}

ledger::JobStats JobBook::stats(const Entry& e) const {
  ledger::JobStats s;
  s.job = std::string(name(e));
  s.definition_hash = definition_hash(e);
  s.last_fire = e.last_fire();
  s.consecutive_failures = e.consecutive_failures_;
  s.last_started = e.last_started();
  s.runs_in_flight = e.runs_in_flight_;
  if (const RunWindow* w = e.window()) {
    s.window_runs = static_cast<int>(w->size());
    s.last_outcome = w->last_outcome();
    s.success_rate = e.success_rate();
    s.mean_duration = w->mean_duration();
    s.p50_duration = w->p50_duration();
    s.p95_duration = w->p95_duration();
  }
  return s;
}

void JobBook::set_window(Entry& e, const std::vector<ledger::WindowRun>& runs) {
  if (runs.empty()) {
    e.window_.reset();
  } else {
    e.window_ = std::make_unique<RunWindow>(runs);
  }
}

void JobBook::claimed(Entry& e, const ledger::RunStart& run) {
  // The ledger advances last_fire when attempt 1 of a schedule or catch-up
  // fire claims its slot.
  if (run.attempt == 1 &&
      (run.trigger == ledger::Trigger::schedule || run.trigger == ledger::Trigger::catchup)) {
    const int64_t slot = run.scheduled_for.time_since_epoch().count();
    e.last_fire_ms_ = e.has_last_fire_ ? std::max(e.last_fire_ms_, slot) : slot;
    e.has_last_fire_ = true;
  }
  const int64_t started = run.started_at.time_since_epoch().count();
  e.last_started_ms_ = e.has_last_started_ ? std::max(e.last_started_ms_, started) : started;
  e.has_last_started_ = true;
  // The ledger's jobs row takes the definition of the claim that creates it.
  if (e.definition_ == 0 && run.definition_hash) {
    e.definition_ = intern_definition(*run.definition_hash);
  }
}

void JobBook::ended(Entry& e, const ledger::RunStart& run, const ledger::RunEnd& end) {
  if (end.outcome == Outcome::succeeded) {
    e.consecutive_failures_ = 0;
  } else if (counts_as_failure(end.outcome)) {
    ++e.consecutive_failures_;
  }
  if (end.outcome == Outcome::skipped) return;
  count_minute(run.started_at, end.outcome, end.duration);
  const ledger::WindowRun finished{run.run_id, run.started_at, end.outcome, end.duration};
  if (!e.window_) e.window_ = std::make_unique<RunWindow>();
  e.window_->add(finished);
  for (Reread& r : rereads_) {
    if (std::binary_search(r.jobs->begin(), r.jobs->end(), run.job)) {
      r.ended.emplace_back(run.job, finished);
    }
  }
}

void JobBook::on_run_started(const ledger::RunStart& run, Duration) {
  Entry& e = entry(run.job);
  claimed(e, run);
  ++e.runs_in_flight_;
}

void JobBook::on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                              const exec::RunReport&) {
  Entry& e = entry(run.job);
  if (e.runs_in_flight_ > 0) --e.runs_in_flight_;
  ended(e, run, end);
}

void JobBook::on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) {
  Entry& e = entry(run.job);
  claimed(e, run);
  ended(e, run, end);
}

void JobBook::on_skipped(const ledger::SkipRecord& skip) {
  Entry& e = entry(skip.job);
  if (e.definition_ == 0 && skip.definition_hash) {
    e.definition_ = intern_definition(*skip.definition_hash);
  }
  if (skip.trigger == ledger::Trigger::schedule || skip.trigger == ledger::Trigger::catchup) {
    const int64_t slot = skip.scheduled_for.time_since_epoch().count();
    e.last_fire_ms_ = e.has_last_fire_ ? std::max(e.last_fire_ms_, slot) : slot;
    e.has_last_fire_ = true;
  }
}

}  // namespace jobhost::observe
