// The Engine's parking (docs/running.md, "Parking"): scheduled fires due
// within park_lead are claimed (one write group) and their processes forked
// and set up ahead (Executor::park), then released at their instant, when
// only a byte on a socket stands between the instant and the plugin's code.
//
// A fire keeps every guarantee it has without parking:
//  - its slot is claimed once, in slot order (one parked run per job, none
//    while an older fire of the job waits to be claimed);
//  - the claim is marked parked until a transaction at the instant removes
//    the mark, before any process is released: a host that dies before
//    that leaves the mark, and the next start undoes the claim
//    (Store::close_orphaned_runs), so the slot is handled like a missed
//    fire, per the job's misfire policy;
//  - a pause, a reload that changes or removes the job, a new build of its
//    plugin, or a shutdown before the instant discards the process and
//    undoes the claim (Store::unclaim_parked); the fire goes back to the
//    timeline and is decided again as any fire (or, at shutdown, is left to
//    the next start);
//  - concurrency and max_concurrency are decided at the instant: a run that
//    may not start then is unparked and its fire handed to admit().
#include <fmt/core.h>

#include <algorithm>

#include "common/log.h"
#include "engine/engine.h"
#include "engine/misfire.h"

namespace jobhost::engine {

std::size_t Engine::park_bound() const {
  const config::HostConfig& host = config_.host;
  // Not on a ledger several hosts share (docs/cluster.md): a parked claim
  // undone (shutdown, pause, reload, fencing) frees its slot after the other
  // hosts, which lost the race for it, have moved on; nobody would fire it.
  if (host.park_lead <= Duration::zero() || !host.store_url.empty()) return 0;
  return static_cast<std::size_t>(std::min(host.max_parked, host.max_concurrency));
}

bool Engine::parkable(const Fire& fire, const JobState& job) const {
  // First attempts of the schedule and catch-ups; retries and manual fires
  // start when they come.
  if (fire.attempt != 1 ||
      (fire.trigger != ledger::Trigger::schedule && fire.trigger != ledger::Trigger::catchup)) {
    return false;
  }
  // Slots are claimed in order: not while an older fire of the job waits
  // for its claim (queued, or a skip waiting to be written).
  if (job.retired || job.paused || job.parked > 0 || job.queued > 0 || !job.skips_waiting.empty()) {
    return false;
  }
  // A group's limit is counted when its runs start (pump), not ahead.
  if (!job.config->settings->concurrency_group.empty()) return false;
  return plugins_.find(job.config->settings->plugin) != nullptr;
}

bool Engine::successor_due_first(const JobState& job, const Fire& fire) const {
  const auto next = schedule::next_fire_after(job.spec, fire.slot);
  if (!next) return false;
  return *next +
             schedule::jitter_for(job.config->name, *next, job.config->settings->jitter, seed_) <
         fire.due;
}

void Engine::park_ahead() {
  const std::size_t bound = park_bound();
  if (bound == 0 || shutting_down_ || fenced_ || lease_expired() || !backlog_.may_claim()) {
    return;
  }
  const TimePoint t = now();
  if (park_resume_at_ - t > kParkPause) park_resume_at_ = {};  // the clock was set back
  if (t < park_resume_at_) return;
  const TimePoint horizon = t + config_.host.park_lead;
  const auto max_runs = static_cast<std::size_t>(config_.host.max_concurrency);
  const auto room = [&](std::size_t more) {
    const std::size_t parked = parked_.size() + more;
    return parked < bound && active_.size() + parked < max_runs;
  };
  std::vector<ledger::RunStart> claims;
  std::vector<Fire> fires;
  std::vector<Build> builds;
  for (auto it = timeline_.begin();
       it != timeline_.end() && it->due <= horizon && room(claims.size());) {
    const auto job_it = jobs_.find(it->job);
    if (it->due <= t || job_it == jobs_.end() || !parkable(*it, job_it->second)) {
      ++it;
      continue;
    }
    JobState& job = job_it->second;
    if (it->trigger == ledger::Trigger::schedule && successor_due_first(job, *it)) {
      ++it;  // a jitter longer than the period: it goes as without parking
      continue;
    }
    Fire fire = *it;
    it = timeline_.erase(it);
    ++job.parked;
    // Its successor joins the timeline now (after `it`, or before: either
    // way not parkable while this one is parked).
    if (fire.trigger == ledger::Trigger::schedule) schedule_next(job, fire.slot);
    fire.trace_id = next_id();
    builds.push_back(build_of(*plugins_.find(job.config->settings->plugin)));
    ledger::RunStart start = run_start(*job.config, builds.back(), fire, next_id(), fire.due);
    start.parked = true;
    claims.push_back(std::move(start));
    fires.push_back(std::move(fire));
  }
  if (claims.empty()) return;
  std::vector<ledger::RunStart> starts = claims;
  flush_writes(std::move(claims), [this, claims = std::move(starts), fires = std::move(fires),
                                   builds = std::move(builds)](
                                      std::vector<Result<bool>> claimed) mutable {
    for (std::size_t i = 0; i < claims.size(); ++i) {
      Fire& fire = fires[i];
      JobState& job = jobs_.find(fire.job)->second;
      log::Fields fields{fire.job, claims[i].run_id, fire.trace_id, fire.attempt};
      if (i >= claimed.size() || !claimed[i]) {
        // Nothing written: the fire starts at its instant as any other.
        --job.parked;
        restore_fire(job, std::move(fire));
        continue;
      }
      if (!*claimed[i]) {
        --job.parked;
        ++claims_lost_;
        if (config_.host.store_url.empty()) {
          log::info(fmt::format("slot {} was already claimed (before a restart); not running it "
                                "again",
                                ledger::format_utc(fire.slot)),
                    fields);
        }
        continue;
      }
      auto pid = executor_.park(
          run_request(*job.config, config_.host.state_dir, builds[i], claims[i]),
          [this](exec::RunReport report) { on_run_done(std::move(report)); }, fire.due);
      if (!pid) {
        log::warn(fmt::format("could not fork the run ahead ({}); it starts at its instant",
                              pid.error().message),
                  fields);
        --job.parked;
        const TimePoint at = now();
        backlog_.add(PendingWrite{fire.job, fire.slot, at,
                                  ledger::Unclaim{claims[i].run_id, "it could not be forked", at}});
        restore_fire(job, std::move(fire));
        continue;
      }
      std::string run_id = claims[i].run_id;
      parked_.emplace(std::move(run_id), ParkedRun{std::move(fire), std::move(claims[i])});
    }
  });
}

void Engine::release_due(TimePoint t) {
  std::vector<ParkedRun*> due;
  std::vector<std::string> jumped, set_back;
  for (auto& [run_id, parked] : parked_) {
    // Further ahead than park_lead: the clock was set back (or park_lead
    // lowered by a reload): no process and claim held that long.
    if (parked.fire.due - t > config_.host.park_lead) set_back.push_back(run_id);
    if (parked.fire.due > t) continue;
    // Suspended, or the clock jumped: back to the timeline, where on_timer
    // hands the slots to the job's misfire policy.
    if (is_forward_jump(parked.fire.due, t, kLateTolerance)) {
      jumped.push_back(run_id);
    } else {
      due.push_back(&parked);
    }
  }
  for (const auto& run_id : jumped) {
    unpark(run_id, "the clock jumped or the host was suspended before its instant", true);
  }
  for (const auto& run_id : set_back) {
    unpark(run_id, "the clock was set back, or park_lead lowered, before its instant", true);
  }
  if (due.empty()) return;
  std::sort(due.begin(), due.end(),
            [](const ParkedRun* a, const ParkedRun* b) { return a->fire < b->fire; });
  const auto max_runs = static_cast<std::size_t>(config_.host.max_concurrency);
  std::vector<std::string> releasing;
  std::vector<std::pair<std::string, std::string>> handed_back;  // run id, why
  for (const ParkedRun* parked : due) {
    const JobState& job = jobs_.find(parked->fire.job)->second;
    const bool busy = !job.active.empty() || job.queued > 0;
    if (busy && job.config->settings->concurrency == config::Concurrency::forbid) {
      handed_back.emplace_back(parked->start.run_id,
                               "an earlier run of the job was still in flight at its instant "
                               "(concurrency = forbid)");
    } else if (active_.size() + releasing.size() >= max_runs) {
      handed_back.emplace_back(parked->start.run_id,
                               "no run slot was free at its instant (max_concurrency)");
    } else {
      releasing.push_back(parked->start.run_id);
    }
  }
  // The marks go before any process is released: a host that dies after
  // this commit has runs in flight (closed as interrupted at the next
  // start), one that dies before it has claims to undo (misfires).
  if (!releasing.empty()) {
    if (auto marked = store_.release_parked(releasing); !marked) {
      log::warn(
          fmt::format("cannot release {} parked run(s): {}; they start as the ledger "
                      "allows",
                      releasing.size(), marked.error().message));
      for (auto& run_id : releasing) handed_back.emplace_back(std::move(run_id), "ledger refused");
      releasing.clear();
    }
  }
  // The others go first (executor.h: discard, then release), so that the
  // gate opens for the released ones alone; their fires are decided as any
  // fire due now, below (skipped, or queued for a run slot and claimed
  // again then).
  std::vector<Fire> back;
  for (const auto& [run_id, why] : handed_back) {
    back.push_back(parked_.find(run_id)->second.fire);
    back.back().trace_id.clear();
    unpark(run_id, why, false);
  }
  executor_.release(releasing);
  const TimePoint released_at = now();
  if (!releasing.empty()) park_resume_at_ = released_at + kParkPause;
  for (const std::string& run_id : releasing) {
    auto it = parked_.find(run_id);
    ParkedRun parked = std::move(it->second);
    parked_.erase(it);
    JobState& job = jobs_.find(parked.fire.job)->second;
    if (job.config->settings->concurrency == config::Concurrency::replace &&
        (!job.active.empty() || job.queued > 0)) {
      replace_older(job);
    }
    const Duration lateness = released_at - parked.fire.due;
    activate(std::move(parked), lateness);
  }
  for (Fire& fire : back) admit(std::move(fire));
}

void Engine::activate(ParkedRun parked, Duration lateness) {
  JobState& job = jobs_.find(parked.fire.job)->second;
  --job.parked;
  const ledger::RunStart& start = parked.start;
  log::info(fmt::format("started: slot {} attempt {} plugin {} {} (forked ahead)",
                        ledger::format_utc(start.scheduled_for), start.attempt,
                        start.plugin.value_or("?"), start.plugin_version.value_or("?")),
            {start.job, start.run_id, start.trace_id, start.attempt});
  job.active.push_back(start.run_id);
  std::string run_id = start.run_id;
  const ActiveRun& active =
      active_
          .emplace(std::move(run_id),
                   ActiveRun{std::move(parked.start), std::chrono::steady_clock::now()})
          .first->second;
  for (Observer* o : observers_) o->on_run_started(active.start, lateness);
}

void Engine::unpark(const std::string& run_id, const std::string& why, bool restore) {
  const auto it = parked_.find(run_id);
  if (it == parked_.end()) return;
  ParkedRun parked = std::move(it->second);
  parked_.erase(it);
  JobState& job = jobs_.find(parked.fire.job)->second;
  --job.parked;
  executor_.discard(run_id);
  const TimePoint t = now();
  log::info(fmt::format("run forked ahead for slot {} discarded before its instant: {}",
                        ledger::format_utc(parked.fire.slot), why),
            {parked.fire.job, run_id, parked.start.trace_id, 1});
  backlog_.add(PendingWrite{parked.fire.job, parked.fire.slot, t, ledger::Unclaim{run_id, why, t}});
  if (restore) {
    job.unparked_slot = parked.fire.slot;
    parked.fire.trace_id.clear();
    restore_fire(job, std::move(parked.fire));
  }
}

void Engine::unpark_job(const JobState& job, const std::string& why) {
  if (job.parked == 0) return;
  std::vector<std::string> ids;
  for (const auto& [run_id, parked] : parked_) {
    if (parked.fire.job == job.config->name) ids.push_back(run_id);
  }
  for (const auto& run_id : ids) unpark(run_id, why, true);
}

void Engine::restore_fire(JobState& job, Fire fire) {
  // The fire scheduled after this one when it was parked leaves again:
  // schedule_next makes it once this one is due, as without parking.
  if (fire.trigger == ledger::Trigger::schedule && job.next_slot && *job.next_slot > fire.slot) {
    const Duration delay =
        schedule::jitter_for(job.config->name, *job.next_slot, job.config->settings->jitter, seed_);
    timeline_.erase(Fire{*job.next_slot + delay,
                         job.config->name,
                         *job.next_slot,
                         1,
                         {},
                         ledger::Trigger::schedule});
    job.next_slot = fire.slot;
    write_next_fire(job);
  }
  timeline_.insert(std::move(fire));
}

std::optional<TimePoint> Engine::next_park_at() const {
  const std::size_t bound = park_bound();
  if (bound == 0 || shutting_down_ || parked_.size() >= bound ||
      active_.size() + parked_.size() >= static_cast<std::size_t>(config_.host.max_concurrency)) {
    return std::nullopt;
  }
  const Duration lead = config_.host.park_lead;
  const TimePoint t = now();
  // Fires within the lead wait for the pause after a release to end.
  if (t < park_resume_at_ && !timeline_.empty() && timeline_.begin()->due <= t + lead) {
    return park_resume_at_;
  }
  // The first fire beyond the lead (those within it were parked, or may not be).
  const auto it =
      timeline_.lower_bound(Fire{t + lead + Duration(1), {}, TimePoint::min(), 0, {}, {}});
  if (it == timeline_.end()) return std::nullopt;
  return std::max(it->due - lead, park_resume_at_);
}

}  // namespace jobhost::engine
