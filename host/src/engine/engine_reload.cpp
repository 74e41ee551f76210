// The Engine's side of hot reload: swapping plugins and applying a new job
// table without losing or doubling a fire. The pure diff is in reload.h.
#include <fmt/core.h>

#include "common/log.h"
#include "engine/engine.h"

namespace jobhost::engine {
namespace {

std::string blocked_reason(const std::string& plugin) {
  return fmt::format(
      "plugin \"{}\" is not available (missing or rejected: see `jobhost plugins`); fires of "
      "this job are recorded as skipped",
      plugin);
}

}  // namespace

void Engine::replace_plugins(catalog::ScanResult plugins) {
  plugins_ = std::move(plugins);
  // A run forked ahead with the old build goes: its fire is parked again
  // with the new one, or starts at its instant.
  std::vector<std::pair<std::string, std::string>> stale;  // run id, why
  for (const auto& [run_id, parked] : parked_) {
    const auto* plugin =
        plugins_.find(jobs_.find(parked.fire.job)->second.config->settings->plugin);
    if (plugin == nullptr) {
      stale.emplace_back(run_id, "its plugin is no longer available");
    } else if (plugin->sha256 != parked.start.plugin_sha256) {
      stale.emplace_back(run_id, fmt::format("a new build of its plugin ({} {}) was loaded",
                                             plugin->version, plugin->sha256.substr(0, 12)));
    }
  }
  if (stale.empty()) return;
  for (const auto& [run_id, why] : stale) unpark(run_id, why, true);
  flush_writes();
  park_ahead();
  arm_timer();
}

void Engine::read_for_reload(const config::Config& loaded, std::function<void(ReloadReads)> done) {
  config::JobDiff diff = config::diff_jobs(config_.jobs, loaded.jobs);
  std::vector<std::string> names = std::move(diff.added);
  names.insert(names.end(), diff.changed.begin(), diff.changed.end());
  ledger_->run(
      [names = std::move(names)](ledger::Store& store) {
        ReloadReads reads;
        for (const auto& name : names) {
          ReloadRead& read = reads[name];
          read.last_fire = store.last_fire(name);
          if (auto stats = store.job_stats(name)) read.paused = stats->paused_at.has_value();
        }
        return reads;
      },
      [done = std::move(done), alive = std::weak_ptr<int>(alive_)](ReloadReads reads) {
        if (!alive.expired()) done(std::move(reads));
      });
}

config::JobDiff Engine::apply_config(config::Config loaded) {
  ReloadReads reads;
  read_for_reload(loaded, [&reads](ReloadReads r) { reads = std::move(r); });
  ledger_->settle();
  return apply_config(std::move(loaded), reads);
}

config::JobDiff Engine::apply_config(config::Config loaded, const ReloadReads& reads) {
  config::JobDiff diff = config::diff_jobs(config_.jobs, loaded.jobs);
  if (shutting_down_) return diff;
  // Runs forked ahead for jobs that change or go are discarded, their
  // claims undone (change_job knows such a slot may still be the last fire read).
  for (const auto& name : diff.removed) {
    unpark_job(jobs_.find(name)->second, "the job was removed from the config");
  }
  for (const auto& name : diff.changed) {
    if (auto it = jobs_.find(name); it != jobs_.end()) {
      unpark_job(it->second, "a reload changed the job's definition");
    }
  }
  const TimePoint t = now();
  for (const auto& name : diff.removed) retire_job(jobs_.find(name)->second);
  std::set<std::string> changed(diff.changed.begin(), diff.changed.end());
  const auto read_of = [&reads](const std::string& name) {
    auto found = reads.find(name);
    return found != reads.end()
               ? found->second
               : ReloadRead{std::unexpected(Error{"it was not read before the reload"}), false};
  };
  for (const auto& job : loaded.jobs) {
    auto it = jobs_.find(job.name);
    if (it == jobs_.end() || it->second.retired) {
      add_job(job, read_of(job.name), t);
    } else if (changed.contains(job.name)) {
      change_job(it->second, job, read_of(job.name), t);
    } else {
      it->second.config = &job;  // same settings; only its place in the file may differ
    }
  }
  // Fires waiting for a run slot take their job's priority now.
  decltype(ready_) reordered;
  for (Fire fire : ready_) {
    JobState& job = jobs_.find(fire.job)->second;
    fire.priority = job.config->settings->priority;
    if (!reordered.insert(std::move(fire)).second) --job.queued;  // the same fire twice
  }
  ready_.swap(reordered);
  // Settings that need a restart keep their running values.
  loaded.host.state_dir = config_.host.state_dir;
  loaded.host.plugin_dirs = config_.host.plugin_dirs;
  loaded.host.log_format = config_.host.log_format;
  loaded.host.durability = config_.host.durability;
  loaded.http = config_.http;
  config_ = std::move(loaded);
  if (!config_.host.store_url.empty()) update_definitions_digest();
  pruner_.set_policy(retention::retention_policy(config_));
  flush_writes();  // observers hear of the skips above before the new config
  for (Observer* o : observers_) o->on_config_applied(config_);
  pump();
  park_ahead();
  flush_writes();
  arm_timer();
  return diff;
}

void Engine::add_job(const config::JobConfig& cfg, const ReloadRead& read, TimePoint t) {
  auto [it, inserted] =
      jobs_.try_emplace(cfg.name, JobState{&cfg, cfg.schedule, std::nullopt, {}, 0});
  JobState& job = it->second;
  if (!inserted) {  // a job removed earlier, maybe with runs still in flight
    job.config = &cfg;
    job.kept_config.reset();
    job.spec = cfg.schedule;
    job.retired = false;
  }
  job.paused = read.paused;
  const auto& last = read.last_fire;
  if (!last) {
    log::error("cannot read the last fire from the ledger: " + last.error().message, {cfg.name});
  }
  std::optional<TimePoint> last_fire = last ? *last : std::nullopt;
  if (auto* every = std::get_if<schedule::Every>(&job.spec)) {
    every->anchor = last_fire ? *last_fire : new_anchor(*every, t);
  }
  if (!cfg.settings->enabled) return;
  if (!plugins_.find(cfg.settings->plugin))
    log::error(blocked_reason(cfg.settings->plugin), {cfg.name});
  // No catch-up for a job that was not in the config: it starts from now,
  // and never before a slot the ledger already has (a job added back).
  schedule_next(job, last_fire ? std::max(t, *last_fire) : t);
}

void Engine::change_job(JobState& job, const config::JobConfig& loaded, const ReloadRead& read,
                        TimePoint t) {
  // The next on-time fire was computed with the old schedule: drop it. Its
  // slot was not claimed yet, so recomputing cannot lose or double a slot.
  std::optional<TimePoint> pending;
  for (auto it = timeline_.begin(); it != timeline_.end(); ++it) {
    if (it->job == loaded.name && it->trigger == ledger::Trigger::schedule && it->attempt == 1) {
      pending = it->slot;
      timeline_.erase(it);
      break;
    }
  }
  schedule::Spec spec = loaded.schedule;
  if (auto* every = std::get_if<schedule::Every>(&spec)) {
    const auto* before = std::get_if<schedule::Every>(&job.spec);
    if (before && before->period == every->period) {
      every->anchor = before->anchor;  // same interval: stay on the same grid
    } else {
      const auto& last = read.last_fire;
      every->anchor = last && *last ? **last : new_anchor(*every, t);
    }
  }
  job.config = &loaded;
  job.spec = std::move(spec);
  job.next_slot.reset();
  drop_retries(job, loaded.settings->retry.max_attempts,
               fmt::format("retry.max_attempts is now {}", loaded.settings->retry.max_attempts));
  if (!loaded.settings->enabled) return write_next_fire(job);
  if (!plugins_.find(loaded.settings->plugin))
    log::error(blocked_reason(loaded.settings->plugin), {loaded.name});
  // A slot already due but held back by jitter still fires if the new
  // schedule has it.
  TimePoint after = pending && *pending <= t ? *pending - Duration(1) : t;
  // Never before a slot the ledger already has (the clock may have gone back),
  // unless it is the claim of a parked run undone just now, which the ledger
  // may not have committed yet (it refuses writes): that slot is still to fire.
  if (const auto& last = read.last_fire; last && *last) {
    const bool undone = job.unparked_slot && *job.unparked_slot == **last;
    after = std::max(after, undone ? **last - Duration(1) : **last);
  }
  job.unparked_slot.reset();
  schedule_next(job, after);
}

void Engine::retire_job(JobState& job) {
  // Its config leaves config_ with this reload: keep a copy while runs finish.
  job.kept_config = std::make_unique<const config::JobConfig>(*job.config);
  job.config = job.kept_config.get();
  const std::string name = job.config->name;
  job.retired = true;
  job.next_slot.reset();
  drop_retries(job, 1, "the job was removed from the config");
  for (auto it = timeline_.begin(); it != timeline_.end();) {
    if (it->job != name) {
      ++it;
      continue;
    }
    it = timeline_.erase(it);
  }
  for (auto it = ready_.begin(); it != ready_.end();) {
    if (it->job != name) {
      ++it;
      continue;
    }
    record_skipped(*it, "the job was removed from the config before this fire started");
    --job.queued;
    it = ready_.erase(it);
  }
  record_waiting_skips(job);
  write_next_fire(job);
  if (!job.active.empty()) {
    log::info(
        fmt::format("removed from the config: {} run(s) in flight finish first", job.active.size()),
        {name});
  }
}

void Engine::drop_retries(JobState& job, int max_attempts, std::string_view why) {
  const std::string& name = job.config->name;
  auto drop = [&](auto& fires) {
    for (auto it = fires.begin(); it != fires.end();) {
      if (it->job != name || it->attempt <= max_attempts) {
        ++it;
        continue;
      }
      log::info(fmt::format("retry of slot {} (attempt {}) dropped: {}",
                            ledger::format_utc(it->slot), it->attempt, why),
                {name});
      backlog_.add(PendingWrite{name, it->slot, now(), DropRetry{std::string(why)}});
      if constexpr (std::is_same_v<std::decay_t<decltype(fires)>, decltype(ready_)>) --job.queued;
      it = fires.erase(it);
    }
  };
  drop(timeline_);
  drop(ready_);
  if (job.queued == 0) record_waiting_skips(job);
}

nlohmann::json Engine::next_builds() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& cfg : config_.jobs) {
    nlohmann::json entry = {
        {"job", cfg.name}, {"plugin", cfg.settings->plugin}, {"enabled", cfg.settings->enabled}};
    if (const auto* p = plugins_.find(cfg.settings->plugin)) {
      entry["next_build"] = {
          {"version", p->version}, {"sha256", p->sha256}, {"path", p->shadow_path.string()}};
    } else {
      entry["next_build"] = nullptr;
      entry["blocked"] =
          fmt::format("plugin \"{}\" is not available (missing or rejected: see `jobhost plugins`)",
                      cfg.settings->plugin);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

nlohmann::json Engine::next_fires() const {
  std::map<std::string_view, const Fire*> first;  // timeline_ is ordered by due
  // A job's parked fire comes before any of its fires in the timeline.
  for (const auto& [run_id, parked] : parked_) first.try_emplace(parked.fire.job, &parked.fire);
  for (const auto& fire : timeline_) first.try_emplace(fire.job, &fire);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& cfg : config_.jobs) {
    nlohmann::json entry = {{"job", cfg.name}, {"next_fire", nullptr}};
    if (auto it = first.find(cfg.name); it != first.end()) {
      entry["next_fire"] = {{"due", ledger::format_utc(it->second->due)},
                            {"slot", ledger::format_utc(it->second->slot)},
                            {"trigger", ledger::to_string(it->second->trigger)}};
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Engine::Figures Engine::figures() const {
  Figures out;
  out.in_flight = active_.size();
  out.queued = ready_.size();
  out.ledger_backlog = backlog_.size();
  std::map<std::string_view, TimePoint> first;  // timeline_ is ordered by due
  for (const auto& [run_id, parked] : parked_) first.try_emplace(parked.fire.job, parked.fire.due);
  for (const auto& fire : timeline_) {
    first.try_emplace(fire.job, fire.due);
    if (fire.trigger == ledger::Trigger::retry) ++out.pending_retries;
  }
  for (const auto& fire : ready_) {
    if (fire.trigger == ledger::Trigger::retry) ++out.pending_retries;
  }
  out.jobs.reserve(config_.jobs.size());
  for (const auto& cfg : config_.jobs) {
    JobFigures job{.job = cfg.name, .in_flight = 0, .queued = 0, .next_fire = std::nullopt};
    if (auto it = jobs_.find(cfg.name); it != jobs_.end()) {
      job.in_flight = it->second.active.size();
      job.queued = static_cast<std::size_t>(std::max(it->second.queued, 0));
      job.paused = it->second.paused;
    }
    if (auto it = first.find(cfg.name); it != first.end()) job.next_fire = it->second;
    out.jobs.push_back(job);
  }
  const auto running = groups_running();
  for (const auto& group : config_.groups) {
    Figures::Group g{group.name, group.max_concurrency};
    if (auto it = running.find(group.name); it != running.end()) g.running = it->second;
    if (auto it = group_waiting_.find(group.name); it != group_waiting_.end())
      g.waiting = it->second;
    out.groups.push_back(g);
  }
  return out;
}

}  // namespace jobhost::engine
