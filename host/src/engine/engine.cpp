#include "engine/engine.h"

#include <fmt/core.h>
#include <unistd.h>
#include <unordered_map>

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "engine/forecast.h"
#include "engine/misfire.h"
#include "engine/retry.h"
#include "engine/wall_timer.h"
#include "exec/outcome_classify.h"

namespace jobhost::engine {
Engine::Engine(boost::asio::io_context& io, config::Config config, catalog::ScanResult plugins,
               ledger::Store& store, exec::Executor& executor, uint64_t seed, Clock clock,
               std::unique_ptr<Timer> timer)
    : io_(io),
      config_(std::move(config)),
      plugins_(std::move(plugins)),
      store_(store),
      inline_ledger_(store),
      executor_(executor),
      seed_(seed),
      clock_(clock ? std::move(clock) : Clock(wall_now)),
      timer_(timer ? std::move(timer) : std::make_unique<WallTimer>(io)),
      rng_(seed),
      backlog_(inline_ledger_, clock_,
               Backlog::Hooks{.on_recorded =
                                  [this](std::string_view job) {
                                    pruner_.note_recorded(job);
                                    ++recorded_since_checkpoint_;
                                  },
                              .on_refused = [this] { arm_timer(); },
                              .on_queued = [this] { post_end_of_turn(); }}),
      pruner_(io, inline_ledger_, retention::retention_policy(config_), clock_) {
  pruner_.on_pruned([this](const retention::PrunedRuns& pruned) {
    for (Observer* o : observers_) o->on_runs_pruned(pruned);
  });
  for (const auto& job : config_.jobs) {
    jobs_.emplace(job.name, JobState{&job, job.schedule, std::nullopt, {}, 0});
  }
  // Only a shared ledger compares them (100,000 jobs hash in some 50 ms).
  if (!config_.host.store_url.empty()) update_definitions_digest();
}

Engine::~Engine() {
  // Records still queued are written (observers are not told: they may be
  // gone), and nothing starts.
  shutting_down_ = true;
  alive_.reset();
  ledger_->settle();
  backlog_.flush();
  ledger_->settle();
}

void Engine::start() {
  TimePoint t = now();
  if (auto paused = store_.paused_jobs()) {
    for (const auto& p : *paused) {
      auto it = jobs_.find(p.job);
      if (it == jobs_.end()) continue;
      it->second.paused = true;
      log::info(fmt::format("paused since {} by {}: fires are recorded as skipped",
                            ledger::format_utc(p.paused_at.value_or(t)), p.paused_by.value_or("?")),
                {p.job});
    }
  } else {
    log::error("cannot read the paused jobs from the ledger: " + paused.error().message);
  }
  // One read of every job's row and one write of every next fire, not one
  // of each per job: 100,000 jobs start in a second, not in minutes.
  auto marks = store_.job_marks();
  if (!marks) log::error("cannot read the last fires from the ledger: " + marks.error().message);
  std::unordered_map<std::string_view, const ledger::JobMark*> mark_of;
  if (marks) {
    mark_of.reserve(marks->size());
    for (const auto& m : *marks) mark_of.emplace(m.job, &m);
  }
  for (auto& [name, job] : jobs_) {
    const auto found = mark_of.find(name);
    const ledger::JobMark* mark = found == mark_of.end() ? nullptr : found->second;
    std::optional<TimePoint> last_fire = mark ? mark->last_fire : std::nullopt;
    if (auto* every = std::get_if<schedule::Every>(&job.spec)) {
      // Continue the grid the job was on; a new job is anchored now.
      every->anchor = last_fire ? *last_fire : new_anchor(*every, t);
    }
    if (!job.config->settings->enabled) continue;
    if (!plugins_.find(job.config->settings->plugin)) {
      log::error(fmt::format("plugin \"{}\" is not available (missing or rejected: see `jobhost "
                             "plugins`); fires of this job are recorded as skipped",
                             job.config->settings->plugin),
                 {name});
    }
    if (!last_fire) {
      // Never fired: if the previous host had scheduled a fire of this very
      // definition that is now past (an `at` during the downtime), it was missed.
      if (mark && mark->next_fire && *mark->next_fire <= t &&
          mark->definition_hash == job.config->definition_hash) {
        handle_misfires(job, *mark->next_fire - Duration(1), t, "the host was not running");
      }
    } else {
      handle_misfires(job, *last_fire, t, "the host was not running");
    }
    // Never re-fire a slot: start after the last one the ledger has, even if
    // the clock now reads earlier.
    schedule_next(job, last_fire ? std::max(t, *last_fire) : t);
    if (job.config->on_reboot) {
      admit(Fire{t, name, t, 1, {}, ledger::Trigger::reboot});
    }
  }
  backlog_.flush();  // every next fire in one write group
  load_pending_retries();
  pruner_.start();
  on_timer();
}

void Engine::handle_misfires(JobState& job, TimePoint last_fire, TimePoint t,
                             std::string_view why) {
  const auto& cfg = *job.config;
  auto plan =
      plan_misfires(job.spec, last_fire, t, cfg.settings->misfire, cfg.settings->misfire_limit,
                    CatchupSpread{cfg.settings->catchup_spread, catchup_phase(cfg.name, seed_)});
  if (plan.total_missed == 0) return;
  // Catch-ups start before the job's next on-time slot, so slots are claimed
  // in order: a crash can never leave the ledger's last fire past a planned
  // catch-up that was not claimed yet (it would be lost, not re-detected).
  auto next_on_time = schedule::next_fire_after(job.spec, t);
  std::size_t runs = 0;
  for (const auto& missed : plan.fires) {
    TimePoint start = missed.start_at;
    if (next_on_time && start >= *next_on_time) start = std::max(t, *next_on_time - Duration(1));
    Fire fire{start, cfg.name, missed.slot, 1, {}, ledger::Trigger::catchup};
    if (missed.action == MissedFire::Action::run) {
      timeline_.insert(std::move(fire));
      ++runs;
    } else {
      record_skipped(
          fire, fmt::format("missed: {} (misfire = {})", why, to_string(cfg.settings->misfire)));
    }
  }
  std::string summary =
      fmt::format("{}{} missed fire(s) since {} ({}): {} to run over the next {}, the rest skipped",
                  plan.truncated ? "at least " : "", plan.total_missed,
                  ledger::format_utc(plan.first_missed.value_or(last_fire)), why, runs,
                  config::format_duration(cfg.settings->catchup_spread));
  log::warn(summary, {cfg.name});
  if (plan.unlisted() > 0) {
    ledger::Event event{.at = t,
                        .kind = "skipped",
                        .job = cfg.name,
                        .run_id = std::nullopt,
                        .detail = fmt::format("{} older missed slot(s) not recorded one by one: {}",
                                              plan.unlisted(), summary)};
    backlog_.add(PendingWrite{cfg.name, t, t, std::move(event)});
  }
}

void Engine::schedule_next(JobState& job, TimePoint after) {
  job.next_slot = schedule::next_fire_after(job.spec, after);
  if (!job.next_slot) return;
  Duration delay =
      schedule::jitter_for(job.config->name, *job.next_slot, job.config->settings->jitter, seed_);
  timeline_.insert(Fire{
      *job.next_slot + delay, job.config->name, *job.next_slot, 1, {}, ledger::Trigger::schedule});
  write_next_fire(job);
}

void Engine::on_timer() {
  if (shutting_down_) return;
  // First: runs forked ahead whose instant came (engine_park.cpp).
  release_due(now());
  flush_writes();
  TimePoint t = now();
  while (!timeline_.empty() && timeline_.begin()->due <= t) {
    Fire fire = *timeline_.begin();
    timeline_.erase(timeline_.begin());
    auto it = jobs_.find(fire.job);
    if (it == jobs_.end() || it->second.retired) continue;
    if (fire.trigger == ledger::Trigger::schedule && fire.attempt == 1) {
      if (is_forward_jump(fire.due, t, kLateTolerance)) {
        // Suspended, or the clock jumped: the slots in between are misfires,
        // handled by the job's policy, not a burst of late fires.
        handle_misfires(it->second, fire.slot - Duration(1), t,
                        "the clock jumped or the host was suspended");
        schedule_next(it->second, t);
        continue;
      }
      schedule_next(it->second, fire.slot);
    }
    admit(std::move(fire));
  }
  pump();
  park_ahead();
  arm_timer();
}

void Engine::arm_timer() {
  if (shutting_down_) return;
  TimePoint at = timeline_.empty() ? TimePoint::max() : timeline_.begin()->due;
  for (const auto& [run_id, parked] : parked_) at = std::min(at, parked.fire.due);
  if (auto park = next_park_at()) at = std::min(at, *park);
  // While the ledger refuses writes, kept records and waiting claims are
  // retried once it has rested.
  if (auto retry = backlog_.wake_at(!ready_.empty())) at = std::min(at, *retry);
  if (at == TimePoint::max()) {
    timer_->cancel();
    return;
  }
  timer_->wait_until(at, [this](bool clock_changed) {
    if (clock_changed) log::info("the wall clock was set; re-checking due fires");
    on_timer();
  });
}

void Engine::admit(Fire fire) {
  JobState& job = jobs_.find(fire.job)->second;
  if (job.paused && fire.attempt == 1) {
    record_skipped_in_order(job, std::move(fire), kPausedReason);
    return;
  }
  if (fire.attempt == 1 && (!job.active.empty() || job.queued > 0)) {
    switch (job.config->settings->concurrency) {
      case config::Concurrency::forbid: {
        std::string reason =
            job.active.empty()
                ? "the previous fire is still waiting to start (concurrency = forbid)"
                : fmt::format("run {} is still running (concurrency = forbid)", job.active.front());
        record_skipped_in_order(job, std::move(fire), std::move(reason));
        return;
      }
      case config::Concurrency::replace:
        replace_older(job);
        break;
      case config::Concurrency::allow:
        break;
    }
  }
  if (ready_.size() >= kMaxReady) {
    record_skipped_in_order(
        job, std::move(fire),
        fmt::format("dispatch queue full ({} fires waiting for max_concurrency = {})",
                    ready_.size(), config_.host.max_concurrency));
    return;
  }
  // The same fire twice (a retry read again from the ledger while it waits)
  // is one.
  fire.priority = job.config->settings->priority;
  if (ready_.insert(std::move(fire)).second) ++job.queued;
}

void Engine::replace_older(JobState& job) {
  // Fires whose claims are in flight end as replaced when they come back.
  job.replacing = job.claiming > 0;
  for (auto it = ready_.begin(); it != ready_.end();) {
    if (it->job == job.config->name) {
      record_skipped(*it, "replaced by a newer fire before it started");
      --job.queued;
      it = ready_.erase(it);
    } else {
      ++it;
    }
  }
  record_waiting_skips(job);
  for (const auto& run_id : job.active) executor_.stop(run_id, exec::StopReason::replace);
}

void Engine::pump() {
  // A group in flight: its end pumps again.
  if (backlog_.flushing()) return;
  // The fires that may start now, claimed together in one write group
  // (with every record made before them), then started.
  std::vector<ledger::RunStart> claims;
  std::vector<Launch> launches;
  std::vector<std::string> touched;
  // Runs in flight per [groups.NAME]: a fire whose group is full waits, and
  // the fires behind it that may go, go.
  std::map<std::string_view, std::size_t> group_load = groups_running();
  group_waiting_.clear();
  for (auto it = ready_.begin();
       it != ready_.end() && !shutting_down_ && !fenced_ && !lease_expired() &&
       backlog_.may_claim() &&
       active_.size() + claims.size() < static_cast<std::size_t>(config_.host.max_concurrency);) {
    JobState& job = jobs_.find(it->job)->second;
    const std::string& group = job.config->settings->concurrency_group;
    if (!group.empty()) {
      const config::GroupConfig* limit = config_.find_group(group);
      if (limit && group_load[group] >= static_cast<std::size_t>(limit->max_concurrency)) {
        ++group_waiting_[group];
        ++it;
        continue;
      }
    }
    // The fire stays counted in its job's `queued` until its claim's result
    // (launch): concurrency and the order of skips see it meanwhile.
    Fire fire = *it;
    it = ready_.erase(it);
    ++job.claiming;
    touched.push_back(fire.job);
    const std::size_t before = claims.size();
    prepare_claim(std::move(fire), claims, launches);
    if (!group.empty() && claims.size() > before) ++group_load[group];  // not a skip
  }
  // Skips that waited behind a fire of their job: after its claim.
  const auto record_skips = [this](const std::vector<std::string>& jobs) {
    for (const auto& name : jobs) {
      auto it = jobs_.find(name);
      if (it != jobs_.end() && it->second.queued == 0) record_waiting_skips(it->second);
    }
  };
  if (claims.empty()) return record_skips(touched);
  std::vector<ledger::RunStart> starts = claims;
  flush_writes(std::move(claims), [this, launches = std::move(launches), starts = std::move(starts),
                                   touched = std::move(touched),
                                   record_skips](std::vector<Result<bool>> claimed) mutable {
    bool already_claimed = false;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      already_claimed |= launch(std::move(launches[i]), std::move(starts[i]), claimed[i]);
    }
    record_skips(touched);
    // A run slot went unused: fill it (posted: inline, this runs inside
    // pump(), and a long run of claims lost to a restart must not nest).
    if (already_claimed) {
      boost::asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
        if (!alive.expired()) pump();
      });
    }
  });
}

void Engine::prepare_claim(Fire fire, std::vector<ledger::RunStart>& claims,
                           std::vector<Launch>& launches) {
  const config::JobConfig& cfg = *jobs_.find(fire.job)->second.config;
  const catalog::PluginInfo* plugin = plugins_.find(cfg.settings->plugin);
  if (!plugin && fire.attempt == 1) {
    JobState& job = jobs_.find(fire.job)->second;
    --job.queued;
    --job.claiming;
    record_skipped(fire, fmt::format("blocked: plugin \"{}\" is not available (missing or "
                                     "rejected: see `jobhost plugins`)",
                                     cfg.settings->plugin));
    return;
  }
  if (fire.trace_id.empty()) fire.trace_id = next_id();
  std::optional<Build> build = plugin ? std::optional(build_of(*plugin)) : std::nullopt;
  claims.push_back(run_start(cfg, build, fire, next_id(), now()));
  launches.push_back(Launch{std::move(fire), std::move(build)});
}

bool Engine::launch(Launch launch, ledger::RunStart start, const Result<bool>& claimed) {
  Fire& fire = launch.fire;
  JobState& job = jobs_.find(fire.job)->second;
  const config::JobConfig& cfg = *job.config;
  log::Fields fields{cfg.name, start.run_id, fire.trace_id, fire.attempt};
  --job.claiming;
  const bool replaced = fire.attempt == 1 && job.replacing;
  if (job.claiming == 0) job.replacing = false;
  if (!claimed) {
    if (shutting_down_ || job.retired || ((job.paused || replaced) && fire.attempt == 1)) {
      // Stopped, removed, paused or replaced while its claim was tried:
      // skipped, as the fires waiting then were (a retry that never ran
      // leaves its slot as it was).
      --job.queued;
      const std::string why = shutting_down_ ? "the host shut down before it started"
                              : job.retired
                                  ? "the job was removed from the config before this fire started"
                              : replaced ? "replaced by a newer fire before it started"
                                         : kPausedReason;
      record_skipped_in_order(job, std::move(fire), why);
      return false;
    }
    // Nothing was written: the fire waits in ready_, in its place, until
    // the ledger accepts its claim (a run never starts unrecorded); if the
    // same fire came again meanwhile, it is there already.
    if (!ready_.insert(std::move(fire)).second) --job.queued;
    return false;
  }
  --job.queued;
  if (!*claimed) {
    // Before a restart; or by another host sharing the ledger
    // (docs/cluster.md), routinely: counted, not logged, there.
    ++claims_lost_;
    if (config_.host.store_url.empty()) {
      log::info(fmt::format("slot {} attempt {} was already claimed (before a restart); not "
                            "running it again",
                            ledger::format_utc(fire.slot), fire.attempt),
                fields);
    }
    return true;
  }

  auto finish_unstarted = [&](std::string message) {
    log::error(message, fields);
    ledger::RunEnd end = unstarted_end(start.run_id, now(), std::move(message));
    backlog_.add(PendingWrite{cfg.name, fire.slot, end.finished_at, end});
    fire_chains(cfg, start, end.outcome);
    acknowledge([this, start, end = std::move(end)] {
      for (Observer* o : observers_) o->on_run_unstarted(start, end);
    });
  };
  if (fenced_ || lease_expired() || shutting_down_ || job.retired || replaced) {
    // Claimed while its write group was in flight (a threaded ledger
    // worker), and stopped meanwhile: ended before it began. A fenced one
    // keeps its retry, as a run the fence stops does.
    const bool fenced = fenced_ || lease_expired();
    const std::string why = replaced         ? "replaced by a newer fire before it started"
                            : fenced         ? "this host's lease is not sure to hold"
                            : shutting_down_ ? "the host is shutting down"
                                             : "the job was removed from the config";
    log::warn("ended before it began: " + why, fields);
    ledger::RunEnd end = unstarted_end(start.run_id, now(), why);
    end.outcome = replaced ? Outcome::replaced : Outcome::interrupted;
    const config::RetryPolicy& policy = cfg.settings->retry;
    if (fenced && !replaced && !shutting_down_ && !job.retired &&
        start.attempt < policy.max_attempts) {
      end.retry_at = now() + retry_delay(policy, start.attempt, rng_);
      timeline_.insert(Fire{*end.retry_at, start.job, start.scheduled_for, start.attempt + 1,
                            start.trace_id, ledger::Trigger::retry, fire.event});
    }
    backlog_.add(PendingWrite{cfg.name, fire.slot, end.finished_at, end});
    acknowledge([this, start, end = std::move(end)] {
      for (Observer* o : observers_) o->on_run_unstarted(start, end);
    });
    return false;
  }
  if (!launch.build) {
    finish_unstarted(fmt::format("plugin \"{}\" is no longer available", cfg.settings->plugin));
    return false;
  }
  const Build& build = *launch.build;
  auto pid = executor_.start(run_request(cfg, config_.host.state_dir, build, start),
                             [this](exec::RunReport report) { on_run_done(std::move(report)); });
  if (!pid) {
    finish_unstarted("could not start the run: " + pid.error().message);
    return false;
  }
  log::info(
      fmt::format("started: slot {} attempt {} pid {} plugin {} {}", ledger::format_utc(fire.slot),
                  fire.attempt, *pid, build.plugin, build.version),
      fields);
  job.active.push_back(start.run_id);
  const Duration lateness = start.started_at - fire.due;
  std::string run_id = start.run_id;
  const ActiveRun& active =
      active_
          .emplace(std::move(run_id), ActiveRun{std::move(start), std::chrono::steady_clock::now()})
          .first->second;
  for (Observer* o : observers_) o->on_run_started(active.start, lateness);
  return false;
}

void Engine::on_run_done(exec::RunReport report) {
  if (auto parked = parked_.find(report.run_id); parked != parked_.end()) {
    // Its process ended before its instant (its setup failed, or it was
    // killed): a run that started and ended now, recorded as such (the
    // ledger moves its started_at back to now too).
    ParkedRun run = std::move(parked->second);
    parked_.erase(parked);
    run.start.started_at = std::min(run.start.started_at, now());
    activate(std::move(run), Duration::zero());
  }
  auto it = active_.find(report.run_id);
  if (it == active_.end()) return;
  ActiveRun active = std::move(it->second);
  active_.erase(it);
  const ledger::RunStart& run = active.start;
  auto job_it = jobs_.find(run.job);
  log::Fields fields{run.job, report.run_id, run.trace_id, run.attempt};
  ledger::RunEnd end = run_end(
      report, now(),
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - active.started));
  if (job_it != jobs_.end()) {
    std::erase(job_it->second.active, report.run_id);
    const config::RetryPolicy& policy = job_it->second.config->settings->retry;
    // A run the shutdown stopped is not retried; one that failed on its own
    // meanwhile keeps its retry, written to the ledger for the next start.
    // One stopped by fencing keeps its retry: if a takeover closed the run
    // first, this end changes nothing and the taker retries it; either way
    // the next attempt is claimed once.
    const bool stopped_by_shutdown = shutting_down_ && report.outcome == Outcome::interrupted;
    if (report.retryable && run.attempt < policy.max_attempts && !stopped_by_shutdown &&
        !active.cancelled && !job_it->second.retired) {
      end.retry_at = now() + retry_delay(policy, run.attempt, rng_);
    }
  }
  std::string summary = fmt::format("finished: {} in {}: {}", to_string(report.outcome),
                                    format_elapsed(*end.duration), report.message);
  if (end.retry_at) {
    summary += fmt::format(" (attempt {} of {} at {})", run.attempt + 1,
                           job_it->second.config->settings->retry.max_attempts,
                           ledger::format_utc(*end.retry_at));
  }
  if (report.outcome == Outcome::succeeded) {
    log::info(summary, fields);
  } else {
    log::warn(summary, fields);
  }
  backlog_.add(PendingWrite{run.job, run.scheduled_for, end.finished_at, end});
  if (!end.retry_at && job_it != jobs_.end()) fire_chains(*job_it->second.config, run, end.outcome);
  if (end.retry_at && !shutting_down_) {
    timeline_.insert(Fire{*end.retry_at, run.job, run.scheduled_for, run.attempt + 1, run.trace_id,
                          ledger::Trigger::retry, shared_event(run.event)});
  }
  acknowledge(
      [this, run = std::move(active.start), end = std::move(end), report = std::move(report)] {
        for (Observer* o : observers_) o->on_run_finished(run, end, report);
      });
  // The claims of the next runs commit this end with them; else the end of
  // the loop turn does.
  pump();
  park_ahead();
  arm_timer();
  notify_idle_if_done();
}

void Engine::fire_chains(const config::JobConfig& cfg, const ledger::RunStart& run,
                         Outcome outcome) {
  if (shutting_down_) return;
  const config::JobSettings& s = *cfg.settings;
  std::vector<std::string> next;
  const auto add = [&next](const std::vector<std::string>& names) {
    for (const auto& name : names) {
      if (std::find(next.begin(), next.end(), name) == next.end()) next.push_back(name);
    }
  };
  if (outcome == Outcome::succeeded) add(s.on_success);
  if (counts_as_failure(outcome)) add(s.on_failure);
  add(s.on_done);
  if (next.empty()) return;
  const std::string event =
      nlohmann::json{{"upstream",
                      {{"job", run.job},
                       {"run_id", run.run_id},
                       {"outcome", to_string(outcome)},
                       {"attempt", run.attempt},
                       {"scheduled_for", ledger::format_utc(run.scheduled_for)},
                       {"trigger", ledger::to_string(run.trigger)}}}}
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const auto shared = std::make_shared<const std::string>(event);
  for (const auto& name : next) {
    auto it = jobs_.find(name);
    if (it == jobs_.end() || it->second.retired) {
      log::warn(fmt::format("chain to \"{}\" not fired: no such job since the last reload", name),
                {run.job, run.run_id, run.trace_id, run.attempt});
      continue;
    }
    const TimePoint slot = own_slot(it->second);
    log::info(
        fmt::format("fired by the {} end of {} (run {})", to_string(outcome), run.job, run.run_id),
        {name, {}, run.trace_id, 1});
    admit(Fire{slot, name, slot, 1, run.trace_id, ledger::Trigger::chain, shared});
  }
  // From a run that ended unstarted, inside a dispatch that is over: the
  // chained fires wait for a run slot like any other (posted: not nested).
  boost::asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) pump();
  });
}

void Engine::post_end_of_turn() {
  if (end_of_turn_posted_) return;
  end_of_turn_posted_ = true;
  boost::asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    end_of_turn_posted_ = false;
    flush_writes();
    checkpoint_if_idle();
  });
}

void Engine::flush_writes(std::vector<ledger::RunStart> claims, Backlog::Flushed then) {
  if (backlog_.flushing()) {
    // Its end flushes again; claims are not tried now (pump() does not
    // make any meanwhile).
    if (then) {
      then(std::vector<Result<bool>>(claims.size(),
                                     std::unexpected(Error{"a write group is in flight"})));
    }
    return;
  }
  // Observers learn of records once they are committed (or kept, when the
  // ledger refuses them), never before.
  backlog_.flush(std::move(claims),
                 [this, acks = std::exchange(acks_, {}), then = std::move(then),
                  alive = std::weak_ptr<int>(alive_)](std::vector<Result<bool>> claimed) mutable {
                   if (alive.expired()) return;
                   for (auto& ack : acks) ack();
                   if (then) then(std::move(claimed));
                   if (!ledger_->threaded()) return;
                   // Fires that came ready while the group was in flight.
                   pump();
                   park_ahead();
                   arm_timer();
                   notify_idle_if_done();
                 });
}

void Engine::acknowledge(std::function<void()> ack) {
  if (!observers_.empty()) acks_.push_back(std::move(ack));
}

void Engine::checkpoint_if_idle() {
  if (recorded_since_checkpoint_ < kCheckpointEvery || !ready_.empty() || !backlog_.empty() ||
      backlog_.refusing()) {
    return;
  }
  if (!timeline_.empty() && timeline_.begin()->due - now() < kCheckpointGap) return;
  recorded_since_checkpoint_ = 0;
  if (auto done = store_.checkpoint(); !done) {
    // SQLite's automatic checkpoint remains; this one is only earlier.
    log::warn("could not checkpoint the ledger: " + done.error().message);
    return;
  }
  ++checkpoints_;
}

void Engine::notify_idle_if_done() {
  if (!shutting_down_ || !active_.empty() || !on_idle_) return;
  for (auto& timer : grace_timers_) timer->cancel();
  grace_timers_.clear();
  auto done = std::move(on_idle_);
  on_idle_ = nullptr;
  backlog_.give_up();  // waits for the writes, even on a threaded worker
  flush_writes();      // nothing left to write: tells the observers
  done();
}

void Engine::record_skipped(const Fire& fire, const std::string& reason) {
  const auto& cfg = *jobs_.find(fire.job)->second.config;
  log::info(fmt::format("skipped slot {}: {}", ledger::format_utc(fire.slot), reason), {fire.job});
  if (fire.attempt > 1) return;  // a retry that never ran leaves its slot's chain as it was
  ledger::SkipRecord skip{.run_id = next_id(),
                          .trace_id = fire.trace_id.empty() ? next_id() : fire.trace_id,
                          .job = fire.job,
                          .scheduled_for = fire.slot,
                          .trigger = fire.trigger,
                          .reason = reason,
                          .at = now(),
                          .definition_hash = cfg.definition_hash,
                          .host_pid = getpid()};
  backlog_.add(PendingWrite{fire.job, fire.slot, skip.at, skip});
  acknowledge([this, skip = std::move(skip)] {
    for (Observer* o : observers_) o->on_skipped(skip);
  });
}

void Engine::record_skipped_in_order(JobState& job, Fire fire, std::string reason) {
  if (job.queued == 0 && job.skips_waiting.empty()) return record_skipped(fire, reason);
  job.skips_waiting.emplace_back(std::move(fire), std::move(reason));
}

void Engine::record_waiting_skips(JobState& job) {
  auto waiting = std::move(job.skips_waiting);
  job.skips_waiting.clear();
  for (const auto& [fire, reason] : waiting) record_skipped(fire, reason);
}

Result<TimePoint> Engine::trigger(std::string_view name, std::string_view by,
                                  std::optional<std::string> event, ledger::Trigger kind) {
  if (shutting_down_) return fail("the host is shutting down");
  auto it = jobs_.find(name);
  if (it == jobs_.end() || it->second.retired) {
    return fail(fmt::format("no job named \"{}\"", name));
  }
  if (it->second.paused) {
    return fail(
        fmt::format("job \"{}\" is paused: resume it first (jobhost resume {})", name, name));
  }
  if (event && event->size() > kMaxEventBytes) {
    return fail(fmt::format("the payload is {} bytes; at most {} are taken", event->size(),
                            kMaxEventBytes));
  }
  const TimePoint slot = own_slot(it->second);
  if (!by.empty()) {
    write_event(it->first, "triggered", std::nullopt,
                nlohmann::json{{"by", by},
                               {"scheduled_for", ledger::format_utc(slot)},
                               {"trigger", ledger::to_string(kind)},
                               {"event_bytes",
                                event ? nlohmann::json(event->size()) : nlohmann::json(nullptr)}}
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  admit(Fire{slot, std::string(name), slot, 1, {}, kind, shared_event(event)});
  pump();
  flush_writes();  // written now (inline), or in the next group (a ledger worker)
  return slot;
}

Result<bool> Engine::pause(std::string_view name, std::string_view by) {
  auto it = jobs_.find(name);
  if (it == jobs_.end() || it->second.retired) {
    return fail(fmt::format("no job named \"{}\"", name));
  }
  JobState& job = it->second;
  auto changed = write_paused(job, true, by);
  if (!changed) return changed;
  job.paused = true;
  log::info(fmt::format("paused by {}: fires are recorded as skipped until resumed", by),
            {job.config->name});
  unpark_job(job, "the job was paused");
  skip_queued(job, kPausedReason);
  flush_writes();
  return changed;
}

Result<bool> Engine::resume(std::string_view name, std::string_view by) {
  auto it = jobs_.find(name);
  if (it == jobs_.end() || it->second.retired) {
    return fail(fmt::format("no job named \"{}\"", name));
  }
  auto changed = write_paused(it->second, false, by);
  if (!changed) return changed;
  it->second.paused = false;
  log::info(fmt::format("resumed by {}", by), {it->second.config->name});
  return changed;
}

Result<bool> Engine::write_paused(const JobState& job, bool paused, std::string_view by) {
  paused_here_at_ = std::chrono::steady_clock::now();
  // Inline (SQLite) the result is here when run() returns: a ledger that
  // refuses refuses the pause. On a worker the write goes behind the groups
  // in flight and the answer is this host's view; a refusal is logged.
  auto result = std::make_shared<std::optional<Result<bool>>>();
  const std::string name = job.config->name;
  ledger_->run([name, paused, by = std::string(by), at = now()](
                   ledger::Store& store) { return store.set_paused(name, paused, by, at); },
               [this, result, name, paused, threaded = ledger_->threaded(),
                alive = std::weak_ptr<int>(alive_)](Result<bool> written) {
                 if (!alive.expired()) paused_here_at_ = std::chrono::steady_clock::now();
                 if (!written && threaded) {
                   log::error(fmt::format("the {} is not in the ledger: {}",
                                          paused ? "pause" : "resume", written.error().message),
                              {name});
                 }
                 *result = std::move(written);
               });
  if (*result) return std::move(**result);
  return job.paused != paused;
}

bool Engine::paused(std::string_view name) const {
  auto it = jobs_.find(name);
  return it != jobs_.end() && it->second.paused;
}

bool Engine::busy(std::string_view name) const {
  auto it = jobs_.find(name);
  return it != jobs_.end() && (!it->second.active.empty() || it->second.queued > 0);
}

Result<void> Engine::cancel(std::string_view run_id, std::string_view by) {
  auto it = active_.find(run_id);
  if (it == active_.end()) {
    return fail(fmt::format("run {} is not in flight (finished, or never started here)", run_id));
  }
  if (!it->second.cancelled) {
    it->second.cancelled = true;
    const auto& run = it->second.start;
    log::info(fmt::format("cancelled by {}: stopping the run", by),
              {run.job, run.run_id, run.trace_id});
    write_event(
        run.job, "cancel", run.run_id,
        nlohmann::json{{"by", by}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  executor_.stop(run_id, exec::StopReason::cancel);
  flush_writes();
  return {};
}

std::vector<TimePoint> Engine::upcoming_slots(std::string_view name, int count) const {
  std::vector<TimePoint> out;
  auto it = jobs_.find(name);
  if (it == jobs_.end() || it->second.retired || !it->second.next_slot) return out;
  std::optional<TimePoint> slot = it->second.next_slot;
  while (slot && static_cast<int>(out.size()) < count) {
    out.push_back(*slot);
    slot = schedule::next_fire_after(it->second.spec, *slot);
  }
  return out;
}

ForecastInput Engine::forecast_input() const {
  ForecastInput in;
  in.from = in.to = now();
  in.limits.push_back({"max_concurrency", config_.host.max_concurrency});
  in.seed = seed_;
  // A job's fire parked ahead comes before its next planned slot.
  std::map<std::string_view, TimePoint> parked_slot;
  for (const auto& [run_id, parked] : parked_) {
    if (parked.fire.trigger == ledger::Trigger::schedule) {
      parked_slot.try_emplace(parked.fire.job, parked.fire.slot);
    }
  }
  std::map<std::string_view, std::size_t> index;
  for (const auto& cfg : config_.jobs) {
    const auto it = jobs_.find(cfg.name);
    if (it == jobs_.end()) continue;
    const JobState& job = it->second;
    ForecastJob f = forecast_job(cfg);
    f.spec = job.spec;
    f.paused = job.paused;
    std::optional<TimePoint> first = job.next_slot;
    if (auto p = parked_slot.find(cfg.name); p != parked_slot.end()) {
      first = std::min(first.value_or(p->second), p->second);
    }
    f.fires = f.fires && first.has_value();
    f.after = first ? *first - Duration(1) : in.from;
    index.emplace(cfg.name, in.jobs.size());
    in.jobs.push_back(std::move(f));
  }
  for (const auto& [run_id, run] : active_) {
    if (auto it = index.find(run.start.job); it != index.end()) {
      in.running.push_back({it->second, run.start.started_at});
    }
  }
  add_group_limits(config_, in);
  return in;
}

void Engine::skip_queued(JobState& job, const std::string& reason) {
  for (auto it = ready_.begin(); it != ready_.end();) {
    if (it->job == job.config->name && it->attempt == 1) {
      record_skipped(*it, reason);
      --job.queued;
      it = ready_.erase(it);
    } else {
      ++it;
    }
  }
  if (job.queued == 0) record_waiting_skips(job);
}

void Engine::write_event(const std::string& job, std::string kind,
                         std::optional<std::string> run_id, std::string detail) {
  TimePoint t = now();
  ledger::Event event{.at = t,
                      .kind = std::move(kind),
                      .job = job,
                      .run_id = std::move(run_id),
                      .detail = std::move(detail)};
  backlog_.add(PendingWrite{job, t, t, std::move(event)});
}

void Engine::shutdown(std::function<void()> on_idle) {
  if (shutting_down_) return;
  shutting_down_ = true;
  timer_->cancel();
  pruner_.stop();
  // Runs forked ahead never began: their claims are undone, and the next
  // start handles their slots like any missed fire.
  std::vector<std::string> parked;
  for (const auto& [run_id, run] : parked_) parked.push_back(run_id);
  for (const auto& run_id : parked) {
    unpark(run_id, "the host shut down before the run's instant", false);
  }
  for (const auto& fire : ready_) record_skipped(fire, "the host shut down before it started");
  ready_.clear();
  for (auto& [name, job] : jobs_) record_waiting_skips(job);
  on_idle_ = std::move(on_idle);
  if (active_.empty()) return notify_idle_if_done();
  log::info(fmt::format("shutting down: waiting for {} run(s) in flight", active_.size()));
  for (const auto& [run_id, run] : active_) {
    auto grace = jobs_.find(run.start.job)->second.config->settings->kill_grace;
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, grace);
    timer->async_wait([this, id = run_id](const boost::system::error_code& ec) {
      if (!ec) executor_.stop(id, exec::StopReason::shutdown);
    });
    grace_timers_.push_back(std::move(timer));
  }
}

void Engine::note_heartbeat(std::string_view run_id, std::optional<double> progress) {
  auto it = active_.find(run_id);
  if (it == active_.end()) return;
  auto steady = std::chrono::steady_clock::now();
  if (steady - it->second.last_heartbeat_write < std::chrono::seconds(1)) return;
  it->second.last_heartbeat_write = steady;
  backlog_.heartbeat(run_id, progress);
}

void Engine::stop_now() {
  executor_.stop_all(exec::StopReason::shutdown);
}

TimePoint Engine::new_anchor(const schedule::Every& every, TimePoint t) const {
  return new_every_anchor(every.period, t, !config_.host.store_url.empty());
}

std::map<std::string_view, std::size_t> Engine::groups_running() const {
  // From the runs in flight (at most max_concurrency), not the jobs: pump()
  // asks at each dispatch. No claim is in flight then (pump waits for the
  // write group).
  std::map<std::string_view, std::size_t> out;
  if (config_.groups.empty()) return out;
  for (const auto& [run_id, run] : active_) {
    const auto job = jobs_.find(run.start.job);
    if (job == jobs_.end()) continue;
    const std::string& group = job->second.config->settings->concurrency_group;
    if (!group.empty()) ++out[group];
  }
  return out;
}

nlohmann::json Engine::groups_json() const {
  nlohmann::json out = nlohmann::json::array();
  const auto running = groups_running();
  for (const auto& group : config_.groups) {
    const auto r = running.find(group.name);
    const auto w = group_waiting_.find(group.name);
    out.push_back({{"group", group.name},
                   {"max_concurrency", group.max_concurrency},
                   {"running", r == running.end() ? 0 : r->second},
                   {"waiting", w == group_waiting_.end() ? 0 : w->second}});
  }
  return out;
}

nlohmann::json Engine::snapshot() const {
  nlohmann::json out = {{"running", nlohmann::json::array()},
                        {"queued", ready_.size()},
                        {"parked", parked_.size()},
                        {"ledger_backlog", backlog_.json()},
                        {"ledger_checkpoints", checkpoints_},
                        {"claims_lost", claims_lost_},
                        {"groups", groups_json()}};
  for (const auto& [run_id, run] : active_) {
    out["running"].push_back({{"run_id", run_id},
                              {"job", run.start.job},
                              {"attempt", run.start.attempt},
                              {"scheduled_for", ledger::format_utc(run.start.scheduled_for)}});
  }
  return out;
}

}  // namespace jobhost::engine
