// The forecast's simulation: a merge of every job's slots, then the engine's
// dispatch replayed instant by instant (the runs that end, then the fires
// that come due, the ready queue pumped after each), each run lasting its
// job's expected run time.
#include "engine/forecast.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>

#include "engine/engine.h"
#include "ledger/records.h"

namespace jobhost::engine {
namespace {

constexpr TimePoint kNever = TimePoint::max();

// A simulated run: a fire's, or one in flight at the start (fire unset).
struct Run {
  std::size_t job;
  std::optional<std::size_t> fire;  // into the simulation's fires
  TimePoint end;
  bool over = false;
};

// The engine's ready queue order (Fire::operator<): due time, then job name,
// then slot. A priority would come first here.
struct ReadyKey {
  int priority;  // higher first, as engine::ReadyOrder
  TimePoint due;
  std::string_view job;
  TimePoint slot;
  std::size_t fire;
  bool operator<(const ReadyKey& other) const {
    return std::tie(other.priority, due, job, slot, fire) <
           std::tie(priority, other.due, other.job, other.slot, other.fire);
  }
};

class Simulation {
 public:
  Simulation(const ForecastInput& in, std::vector<ForecastFire>& fires)
      : in_(in), fires_(fires), jobs_(in.jobs.size()), taken_(in.limits.size(), 0) {}

  void run() {
    std::optional<TimePoint> first_start;
    for (const auto& r : in_.running) {
      if (r.job >= jobs_.size()) continue;
      start_run(r.job, std::nullopt, r.started_at);
      first_start = std::min(first_start.value_or(r.started_at), r.started_at);
    }
    if (first_start) note_load(*first_start);
    // The fires in the order they come due (as the engine's timeline).
    std::vector<std::size_t> order(fires_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    // In time order (the ready queue's own order puts priority first).
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const ReadyKey x = key(a), y = key(b);
      return std::tie(x.due, x.job, x.slot, x.fire) < std::tie(y.due, y.job, y.slot, y.fire);
    });
    std::size_t next = 0;
    std::vector<std::size_t> admitted;
    for (;;) {
      while (!ends_.empty() && runs_[ends_.top().second].over) ends_.pop();
      const TimePoint end_at = ends_.empty() ? kNever : ends_.top().first;
      const TimePoint due_at = next < order.size() ? fires_[order[next]].due : kNever;
      if (end_at == kNever && due_at == kNever) break;
      const TimePoint t = std::min(end_at, due_at);
      // A run expected to end at the instant a fire comes due has ended.
      while (!ends_.empty() && ends_.top().first <= t) {
        const std::size_t run = ends_.top().second;
        ends_.pop();
        if (!runs_[run].over) end_run(run, runs_[run].end, false);
      }
      // As the engine: a run's end pumps before the timer admits the fires.
      pump(t);
      admitted.clear();
      for (; next < order.size() && fires_[order[next]].due == t; ++next) {
        if (admit(order[next], t)) admitted.push_back(order[next]);
      }
      pump(t);
      for (std::size_t f : admitted) {
        if (!fires_[f].start && fires_[f].skip == ForecastSkip::none) {
          fires_[f].waited_for = full_limit(fires_[f].job);
        }
      }
      note_load(t);
    }
  }

  std::vector<std::pair<TimePoint, int>> take_load() { return std::move(load_); }

 private:
  struct JobState {
    std::vector<std::size_t> active;  // into runs_
    int queued = 0;
  };

  ReadyKey key(std::size_t f) const {
    const ForecastFire& fire = fires_[f];
    return ReadyKey{in_.jobs[fire.job].priority, fire.due, in_.jobs[fire.job].name, fire.slot, f};
  }

  // Engine::admit: paused, then the concurrency policy, then the queue's bound.
  bool admit(std::size_t f, TimePoint t) {
    ForecastFire& fire = fires_[f];
    const ForecastJob& job = in_.jobs[fire.job];
    JobState& state = jobs_[fire.job];
    if (job.paused) {
      fire.skip = ForecastSkip::paused;
      return false;
    }
    if (!state.active.empty() || state.queued > 0) {
      switch (job.concurrency) {
        case config::Concurrency::forbid:
          fire.skip =
              state.active.empty() ? ForecastSkip::forbid_waiting : ForecastSkip::forbid_running;
          return false;
        case config::Concurrency::replace:
          replace_older(fire.job, t);
          break;
        case config::Concurrency::allow:
          break;
      }
    }
    if (ready_.size() >= kMaxReady) {
      fire.skip = ForecastSkip::queue_full;
      return false;
    }
    ready_.insert(key(f));
    ++state.queued;
    return true;
  }

  // Engine::replace_older: the job's waiting fires are skipped and its runs
  // stopped (here they end at once; the engine's end within kill_grace).
  void replace_older(std::size_t job, TimePoint t) {
    for (auto it = ready_.begin(); it != ready_.end();) {
      if (fires_[it->fire].job == job) {
        fires_[it->fire].skip = ForecastSkip::replaced;
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
    jobs_[job].queued = 0;
    const std::vector<std::size_t> active = jobs_[job].active;
    for (std::size_t run : active) end_run(run, t, true);
  }

  bool fits(std::size_t job) const {
    for (std::size_t l : in_.jobs[job].limits) {
      if (taken_[l] >= in_.limits[l].max) return false;
    }
    return true;
  }
  // The first of the job's limits that is full (its first when none is).
  std::size_t full_limit(std::size_t job) const {
    for (std::size_t l : in_.jobs[job].limits) {
      if (taken_[l] >= in_.limits[l].max) return l;
    }
    return in_.jobs[job].limits.empty() ? 0 : in_.jobs[job].limits.front();
  }

  // Engine::pump: the ready fires start in order while run slots are free.
  // A fire whose own limits are full lets the next ones pass; once the
  // host's (limits[0]) is full nothing more can start.
  void pump(TimePoint t) {
    for (auto it = ready_.begin(); it != ready_.end();) {
      if (!in_.limits.empty() && taken_[0] >= in_.limits[0].max) break;
      const std::size_t f = it->fire;
      if (!fits(fires_[f].job)) {
        ++it;
        continue;
      }
      it = ready_.erase(it);
      --jobs_[fires_[f].job].queued;
      fires_[f].start = t;
      start_run(fires_[f].job, f, t);
    }
  }

  void start_run(std::size_t job, std::optional<std::size_t> fire, TimePoint t) {
    const TimePoint end = t + in_.jobs[job].expected_run();
    runs_.push_back(Run{job, fire, end});
    const std::size_t run = runs_.size() - 1;
    jobs_[job].active.push_back(run);
    for (std::size_t l : in_.jobs[job].limits) ++taken_[l];
    ++running_;
    if (fire) fires_[*fire].end = end;
    ends_.emplace(end, run);
  }

  void end_run(std::size_t run, TimePoint t, bool cut_short) {
    Run& r = runs_[run];
    r.over = true;
    std::erase(jobs_[r.job].active, run);
    for (std::size_t l : in_.jobs[r.job].limits) --taken_[l];
    --running_;
    if (r.fire && cut_short) {
      fires_[*r.fire].end = t;
      fires_[*r.fire].cut_short = true;
    }
  }

  void note_load(TimePoint t) {
    if (!load_.empty() && load_.back().second == running_) return;
    if (!load_.empty() && load_.back().first == t) {
      load_.back().second = running_;
    } else {
      load_.emplace_back(t, running_);
    }
  }

  const ForecastInput& in_;
  std::vector<ForecastFire>& fires_;
  std::vector<JobState> jobs_;
  std::vector<int> taken_;  // runs holding each limit
  std::vector<Run> runs_;
  std::set<ReadyKey> ready_;
  std::priority_queue<std::pair<TimePoint, std::size_t>,
                      std::vector<std::pair<TimePoint, std::size_t>>, std::greater<>>
      ends_;  // (end, run), soonest first; ended runs are dropped when met
  int running_ = 0;
  std::vector<std::pair<TimePoint, int>> load_;
};

// Every job's slots in (after, to), merged by slot, at most `max` of them;
// `covered_to` is lowered to the first slot left out.
std::vector<ForecastFire> gather_fires(const ForecastInput& in, TimePoint& covered_to,
                                       bool& truncated) {
  using Next = std::pair<TimePoint, std::size_t>;  // slot, job
  std::priority_queue<Next, std::vector<Next>, std::greater<>> heap;
  for (std::size_t j = 0; j < in.jobs.size(); ++j) {
    if (!in.jobs[j].fires) continue;
    auto slot = schedule::next_fire_after(in.jobs[j].spec, in.jobs[j].after);
    if (slot && *slot < in.to) heap.emplace(*slot, j);
  }
  std::vector<ForecastFire> out;
  std::vector<TimePoint> last_due(in.jobs.size(), TimePoint::min());
  while (!heap.empty()) {
    const auto [slot, j] = heap.top();
    if (out.size() >= in.max_fires) {
      truncated = true;
      covered_to = slot;
      // The window ends before this slot: none of its fires is kept.
      while (!out.empty() && out.back().slot == slot) out.pop_back();
      break;
    }
    heap.pop();
    const ForecastJob& job = in.jobs[j];
    TimePoint due =
        slot + (in.seed ? schedule::jitter_for(job.name, slot, job.jitter, *in.seed) : Duration(0));
    // The engine plans a job's next slot when the previous one comes due.
    due = std::max(due, last_due[j]);
    last_due[j] = due;
    out.push_back(ForecastFire{.job = j, .slot = slot, .due = due});
    auto next = schedule::next_fire_after(job.spec, slot);
    if (next && *next < in.to) heap.emplace(*next, j);
  }
  return out;
}

}  // namespace

TimePoint new_every_anchor(Duration period, TimePoint t, bool shared_ledger) {
  if (!shared_ledger || period <= Duration(0)) return std::chrono::floor<std::chrono::seconds>(t);
  const Duration since_epoch = t.time_since_epoch();
  return TimePoint(since_epoch - since_epoch % period);
}

Duration ForecastJob::expected_run() const {
  const Duration run = p95.value_or(kNoHistoryRun);
  return timeout > Duration::zero() ? std::min(run, timeout) : run;
}

ForecastJob forecast_job(const config::JobConfig& job) {
  ForecastJob out;
  out.name = job.name;
  out.spec = job.schedule;
  out.fires = job.settings->enabled;
  out.jitter = job.settings->jitter;
  out.concurrency = job.settings->concurrency;
  out.timeout = job.settings->timeout;
  out.priority = job.settings->priority;
  return out;
}

void add_group_limits(const config::Config& config, ForecastInput& in) {
  if (config.groups.empty()) return;
  std::unordered_map<std::string_view, std::size_t> limit_of;
  for (const auto& group : config.groups) {
    limit_of.emplace(group.name, in.limits.size());
    in.limits.push_back({group.name, group.max_concurrency});
  }
  std::unordered_map<std::string_view, const config::JobConfig*> job_of;
  for (const auto& job : config.jobs) job_of.emplace(job.name, &job);
  for (auto& job : in.jobs) {
    const auto cfg = job_of.find(job.name);
    if (cfg == job_of.end()) continue;
    const auto limit = limit_of.find(cfg->second->settings->concurrency_group);
    if (limit != limit_of.end()) job.limits.push_back(limit->second);
  }
}

std::string_view skip_kind(ForecastSkip skip) {
  switch (skip) {
    case ForecastSkip::none:
      return "";
    case ForecastSkip::paused:
      return "paused";
    case ForecastSkip::forbid_running:
    case ForecastSkip::forbid_waiting:
      return "forbid";
    case ForecastSkip::replaced:
      return "replaced";
    case ForecastSkip::queue_full:
      return "queue_full";
  }
  return "";
}

std::string_view skip_reason(ForecastSkip skip) {
  switch (skip) {
    case ForecastSkip::none:
      return "";
    case ForecastSkip::paused:
      return "paused";
    case ForecastSkip::forbid_running:
      return "the previous run is still running (concurrency = forbid)";
    case ForecastSkip::forbid_waiting:
      return "the previous fire is still waiting to start (concurrency = forbid)";
    case ForecastSkip::replaced:
      return "replaced by a newer fire before it started";
    case ForecastSkip::queue_full:
      return "dispatch queue full";
  }
  return "";
}

Forecast simulate(const ForecastInput& input) {
  Forecast out;
  out.covered_to = input.to;
  std::vector<ForecastFire> fires = gather_fires(input, out.covered_to, out.truncated);
  Simulation simulation(input, fires);
  simulation.run();
  out.load = simulation.take_load();
  auto& s = out.summary;
  for (auto& fire : fires) {
    if (fire.slot < input.from) continue;  // before the window: only its runs count
    ++s.fires;
    switch (fire.skip) {
      case ForecastSkip::none:
        ++s.runs;
        if (fire.waited() > Duration::zero()) {
          ++s.waited;
          s.total_wait += fire.waited();
        }
        if (fire.cut_short) ++s.cut_short;
        break;
      case ForecastSkip::paused:
        ++s.paused;
        break;
      case ForecastSkip::forbid_running:
      case ForecastSkip::forbid_waiting:
        ++s.forbid;
        break;
      case ForecastSkip::replaced:
        ++s.replaced;
        break;
      case ForecastSkip::queue_full:
        ++s.queue_full;
        break;
    }
    if (fire.waited() == Duration::zero()) fire.waited_for.reset();
    out.fires.push_back(std::move(fire));
  }
  std::tie(s.peak, s.peak_at) = peak_runs(out.load, input.from, out.covered_to);
  return out;
}

std::pair<int, std::optional<TimePoint>> peak_runs(
    const std::vector<std::pair<TimePoint, int>>& load, TimePoint from, TimePoint to) {
  // The count at `from` is the last change at or before it.
  auto it = std::upper_bound(load.begin(), load.end(), from,
                             [](TimePoint t, const auto& step) { return t < step.first; });
  int peak = it == load.begin() ? 0 : std::prev(it)->second;
  TimePoint at = from;
  for (; it != load.end() && it->first < to; ++it) {
    if (it->second > peak) {
      peak = it->second;
      at = it->first;
    }
  }
  return {peak, peak > 0 ? std::optional(at) : std::nullopt};
}

std::vector<ForecastBucket> forecast_buckets(const Forecast& forecast, TimePoint from,
                                             Duration width, std::size_t count) {
  std::vector<ForecastBucket> out;
  if (width <= Duration::zero()) return out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const TimePoint start = from + static_cast<Duration::rep>(i) * width;
    out.push_back(ForecastBucket{.start = start});
    out.back().peak = peak_runs(forecast.load, start, start + width).first;
  }
  for (const auto& fire : forecast.fires) {
    if (fire.slot < from) continue;
    const auto i = static_cast<std::size_t>((fire.slot - from) / width);
    if (i >= count) continue;
    ForecastBucket& b = out[i];
    ++b.fires;
    if (fire.skip != ForecastSkip::none) {
      ++b.skipped;
    } else {
      ++b.runs;
      if (fire.waited() > Duration::zero()) ++b.waited;
    }
  }
  return out;
}

nlohmann::json summary_json(const Forecast::Summary& s) {
  return {{"fires", s.fires},
          {"runs", s.runs},
          {"waited", s.waited},
          {"wait_ms", s.total_wait.count()},
          {"skipped",
           {{"paused", s.paused},
            {"forbid", s.forbid},
            {"replaced", s.replaced},
            {"queue_full", s.queue_full}}},
          {"cut_short", s.cut_short},
          {"peak_runs", s.peak},
          {"peak_at",
           s.peak_at ? nlohmann::json(ledger::format_utc(*s.peak_at)) : nlohmann::json(nullptr)}};
}

}  // namespace jobhost::engine
