#include "engine/engine.h"

#include <fmt/core.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/misfire.h"
#include "engine/retry.h"
#include "engine/wall_timer.h"
#include "exec/outcome_classify.h"

namespace jobhost::engine {
namespace {

TimePoint system_now() {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

std::string format_ms(Duration d) {
  if (d < std::chrono::seconds(10)) return fmt::format("{}ms", d.count());
  return fmt::format("{:.1f}s", static_cast<double>(d.count()) / 1000.0);
}

}  // namespace

Engine::Engine(boost::asio::io_context& io, config::Config config, catalog::ScanResult plugins,
               ledger::Store& store, exec::Executor& executor, uint64_t seed, Clock clock,
               std::unique_ptr<Timer> timer)
    : io_(io),
      config_(std::move(config)),
      plugins_(std::move(plugins)),
      store_(store),
      executor_(executor),
      seed_(seed),
      clock_(clock ? std::move(clock) : Clock(system_now)),
      timer_(timer ? std::move(timer) : std::make_unique<WallTimer>(io)),
      rng_(seed),
      pruner_(io, store, retention::retention_policy(config_), clock_) {
  for (const auto& job : config_.jobs) {
    jobs_.emplace(job.name, JobState{job, job.schedule, std::nullopt, {}, 0});
  }
}

void Engine::start() {
  TimePoint t = now();
  for (auto& [name, job] : jobs_) {
    auto last = store_.last_fire(name);
    if (!last)
      log::error("cannot read the last fire from the ledger: " + last.error().message, {name});
    std::optional<TimePoint> last_fire = last ? *last : std::nullopt;
    if (auto* every = std::get_if<schedule::Every>(&job.spec)) {
      // Continue the grid the job was on; a new job is anchored now.
      every->anchor = last_fire ? *last_fire : std::chrono::floor<std::chrono::seconds>(t);
    }
    if (!job.config.enabled) continue;
    if (!plugins_.find(job.config.plugin)) {
      log::error(fmt::format("plugin \"{}\" is not available (missing or rejected: see `jobhost "
                             "plugins`); fires of this job are recorded as skipped",
                             job.config.plugin),
                 {name});
    }
    if (!last_fire) {
      // Never fired: if the previous host had scheduled a fire of this very
      // definition that is now past (an `at` during the downtime), it was missed.
      if (auto stats = store_.job_stats(name);
          stats && stats->next_fire && *stats->next_fire <= t &&
          stats->definition_hash == job.config.definition_hash) {
        handle_misfires(job, *stats->next_fire - Duration(1), t, "the host was not running");
      }
    } else {
      handle_misfires(job, *last_fire, t, "the host was not running");
    }
    // Never re-fire a slot: start after the last one the ledger has, even if
    // the clock now reads earlier.
    schedule_next(job, last_fire ? std::max(t, *last_fire) : t);
    if (job.config.on_reboot) {
      admit(Fire{t, name, t, 1, {}, ledger::Trigger::reboot});
    }
  }
  if (auto retries = store_.pending_retries()) {
    for (const auto& r : *retries) {
      if (!jobs_.contains(r.job)) continue;
      timeline_.insert(Fire{r.due_at, r.job, r.scheduled_for, r.next_attempt, r.trace_id,
                            ledger::Trigger::retry});
    }
  } else {
    log::error("cannot read pending retries from the ledger: " + retries.error().message);
  }
  pruner_.start();
  on_timer();
}

void Engine::handle_misfires(JobState& job, TimePoint last_fire, TimePoint t,
                             std::string_view why) {
  const auto& cfg = job.config;
  auto plan = plan_misfires(job.spec, last_fire, t, cfg.misfire, cfg.misfire_limit,
                            CatchupSpread{cfg.catchup_spread, catchup_phase(cfg.name, seed_)});
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
      record_skipped(fire, fmt::format("missed: {} (misfire = {})", why, to_string(cfg.misfire)));
    }
  }
  std::string summary =
      fmt::format("{}{} missed fire(s) since {} ({}): {} to run over the next {}, the rest skipped",
                  plan.truncated ? "at least " : "", plan.total_missed,
                  ledger::format_utc(plan.first_missed.value_or(last_fire)), why, runs,
                  config::format_duration(cfg.catchup_spread));
  log::warn(summary, {cfg.name});
  if (plan.unlisted() > 0) {
    ledger::Event event{.at = t,
                        .kind = "skipped",
                        .job = cfg.name,
                        .run_id = std::nullopt,
                        .detail = fmt::format("{} older missed slot(s) not recorded one by one: {}",
                                              plan.unlisted(), summary)};
    write_or_keep(PendingWrite{cfg.name, t, t, std::move(event)});
  }
}

void Engine::schedule_next(JobState& job, TimePoint after) {
  job.next_slot = schedule::next_fire_after(job.spec, after);
  if (!job.next_slot) return;
  Duration delay = schedule::jitter_for(job.config.name, *job.next_slot, job.config.jitter, seed_);
  timeline_.insert(Fire{
      *job.next_slot + delay, job.config.name, *job.next_slot, 1, {}, ledger::Trigger::schedule});
  write_next_fire(job);
}

void Engine::on_timer() {
  if (shutting_down_) return;
  flush_backlog();
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
  arm_timer();
}

void Engine::arm_timer() {
  if (shutting_down_) return;
  TimePoint at = timeline_.empty() ? TimePoint::max() : timeline_.begin()->due;
  // While the ledger refuses writes, kept records and waiting claims are
  // retried once it has rested.
  if (ledger_down_since_ &&
      (!backlog_.empty() || !next_fire_unwritten_.empty() || !ready_.empty())) {
    at = std::min(at, ledger_resting() ? resting_until_ : now() + kLedgerRetry);
  }
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
  if (fire.attempt == 1 && (!job.active.empty() || job.queued > 0)) {
    switch (job.config.concurrency) {
      case config::Concurrency::forbid: {
        std::string reason =
            job.active.empty()
                ? "the previous fire is still waiting to start (concurrency = forbid)"
                : fmt::format("run {} is still running (concurrency = forbid)",
                              *job.active.begin());
        record_skipped_in_order(job, std::move(fire), std::move(reason));
        return;
      }
      case config::Concurrency::replace:
        for (auto it = ready_.begin(); it != ready_.end();) {
          if (it->job == fire.job) {
            record_skipped(*it, "replaced by a newer fire before it started");
            --job.queued;
            it = ready_.erase(it);
          } else {
            ++it;
          }
        }
        record_waiting_skips(job);
        for (const auto& run_id : job.active) executor_.stop(run_id, exec::StopReason::replace);
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
  ++job.queued;
  ready_.insert(std::move(fire));
}

void Engine::pump() {
  while (!shutting_down_ && !ready_.empty() && may_claim() &&
         active_.size() < static_cast<std::size_t>(config_.host.max_concurrency)) {
    Fire fire = *ready_.begin();
    ready_.erase(ready_.begin());
    JobState& job = jobs_.find(fire.job)->second;
    --job.queued;
    start_run(std::move(fire));
    if (job.queued == 0) record_waiting_skips(job);
  }
}

void Engine::start_run(Fire fire) {
  JobState& job = jobs_.find(fire.job)->second;
  const config::JobConfig& cfg = job.config;
  const catalog::PluginInfo* plugin = plugins_.find(cfg.plugin);
  if (fire.trace_id.empty()) fire.trace_id = next_id();
  std::string run_id = next_id();
  log::Fields fields{cfg.name, run_id, fire.trace_id};

  if (!plugin && fire.attempt == 1) {
    record_skipped(fire, fmt::format("blocked: plugin \"{}\" is not available (missing or "
                                     "rejected: see `jobhost plugins`)",
                                     cfg.plugin));
    return;
  }
  ledger::RunStart start{.run_id = run_id,
                         .job = cfg.name,
                         .scheduled_for = fire.slot,
                         .attempt = fire.attempt,
                         .trace_id = fire.trace_id,
                         .trigger = fire.trigger,
                         .started_at = now(),
                         .plugin = plugin ? std::optional(plugin->name) : std::nullopt,
                         .plugin_version = plugin ? std::optional(plugin->version) : std::nullopt,
                         .plugin_sha256 = plugin ? std::optional(plugin->sha256) : std::nullopt,
                         .definition_hash = cfg.definition_hash,
                         .replay_of = std::nullopt,
                         .host_pid = getpid()};
  auto claimed = store_.claim_and_start(start);
  if (!claimed) {
    // Nothing was written: the fire waits in ready_, in its place, until
    // the ledger accepts its claim (a run never starts unrecorded).
    note_refused(claimed.error());
    ++job.queued;
    ready_.insert(std::move(fire));
    return;
  }
  note_written();
  if (!*claimed) {
    log::warn(fmt::format("slot {} attempt {} was already claimed; not running it again",
                          ledger::format_utc(fire.slot), fire.attempt),
              fields);
    return;
  }

  auto finish_unstarted = [&](std::string message) {
    log::error(message, fields);
    ledger::RunEnd end{.run_id = run_id,
                       .finished_at = now(),
                       .outcome = Outcome::failed,
                       .duration = Duration{0},
                       .message = std::move(message)};
    write_or_keep(PendingWrite{cfg.name, fire.slot, end.finished_at, std::move(end)});
  };
  if (!plugin) {
    finish_unstarted(fmt::format("plugin \"{}\" is no longer available", cfg.plugin));
    return;
  }
  exec::RunRequest request{.job = cfg.name,
                           .run_id = run_id,
                           .trace_id = fire.trace_id,
                           .attempt = static_cast<uint32_t>(fire.attempt),
                           .scheduled_for = fire.slot,
                           .plugin_path = plugin->shadow_path,
                           .params = cfg.params,
                           .secrets = {},
                           .limits = cfg.limits,
                           .timeout = cfg.timeout,
                           .stall_timeout = cfg.stall_timeout,
                           .kill_grace = cfg.kill_grace,
                           .user = cfg.user,
                           .group = cfg.group};
  auto pid =
      executor_.start(std::move(request), [this](exec::RunReport report) { on_run_done(report); });
  if (!pid) {
    finish_unstarted("could not start the run: " + pid.error().message);
    return;
  }
  log::info(
      fmt::format("started: slot {} attempt {} pid {} plugin {} {}", ledger::format_utc(fire.slot),
                  fire.attempt, *pid, plugin->name, plugin->version),
      fields);
  job.active.insert(run_id);
  active_.emplace(run_id, ActiveRun{cfg.name, fire.slot, fire.attempt, fire.trace_id,
                                    std::chrono::steady_clock::now()});
}

void Engine::on_run_done(const exec::RunReport& report) {
  auto it = active_.find(report.run_id);
  if (it == active_.end()) return;
  ActiveRun run = std::move(it->second);
  active_.erase(it);
  auto job_it = jobs_.find(run.job);
  log::Fields fields{run.job, report.run_id, run.trace_id};
  ledger::RunEnd end{
      .run_id = report.run_id,
      .finished_at = now(),
      .outcome = report.outcome,
      .exit_code = report.exit_code,
      .signal = report.signal_name.empty() ? std::nullopt : std::optional(report.signal_name),
      .duration =
          std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - run.started),
      .message = report.message,
      .output_tail = report.output_tail};
  if (job_it != jobs_.end()) {
    job_it->second.active.erase(report.run_id);
    const config::RetryPolicy& policy = job_it->second.config.retry;
    // A run the shutdown stopped is not retried; one that failed on its own
    // meanwhile keeps its retry, written to the ledger for the next start.
    const bool stopped_by_shutdown = shutting_down_ && report.outcome == Outcome::interrupted;
    if (report.retryable && run.attempt < policy.max_attempts && !stopped_by_shutdown &&
        !job_it->second.retired) {
      end.retry_at = now() + retry_delay(policy, run.attempt, rng_);
    }
  }
  std::string summary = fmt::format("finished: {} in {}: {}", to_string(report.outcome),
                                    format_ms(*end.duration), report.message);
  if (end.retry_at) {
    summary +=
        fmt::format(" (attempt {} of {} at {})", run.attempt + 1,
                    job_it->second.config.retry.max_attempts, ledger::format_utc(*end.retry_at));
  }
  if (report.outcome == Outcome::succeeded) {
    log::info(summary, fields);
  } else {
    log::warn(summary, fields);
  }
  write_or_keep(PendingWrite{run.job, run.slot, end.finished_at, end});
  if (end.retry_at && !shutting_down_) {
    timeline_.insert(Fire{*end.retry_at, run.job, run.slot, run.attempt + 1, run.trace_id,
                          ledger::Trigger::retry});
  }
  pump();
  arm_timer();
  checkpoint_if_idle();
  notify_idle_if_done();
}

void Engine::checkpoint_if_idle() {
  if (recorded_since_checkpoint_ < kCheckpointEvery || !ready_.empty() || !backlog_.empty() ||
      ledger_down_since_) {
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
  give_up_backlog();
  auto done = std::move(on_idle_);
  on_idle_ = nullptr;
  done();
}

void Engine::record_skipped(const Fire& fire, const std::string& reason) {
  const auto& cfg = jobs_.find(fire.job)->second.config;
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
  write_or_keep(PendingWrite{fire.job, fire.slot, skip.at, std::move(skip)});
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

void Engine::write_or_keep(PendingWrite w) {
  if (backlog_.empty() && !ledger_resting()) {
    auto written = write(w);
    if (written) return note_written();
    note_refused(written.error());
  }
  // One line per record (not per retry): what an operator needs to recover it.
  log::warn("kept in memory until the ledger accepts it: " + describe(w),
            {w.job, record_run_id(w)});
  ++kept_in_outage_;
  backlog_.push_back(std::move(w));
}

Result<bool> Engine::write(const PendingWrite& w) {
  Result<bool> written = true;
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) {
    written = store_.finish_run(*end);
  } else if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) {
    written = store_.record_skipped(*skip);
  } else if (auto added = store_.add_event(std::get<ledger::Event>(w.record)); !added) {
    written = std::unexpected(added.error());
  }
  if (written && *written && !std::holds_alternative<ledger::Event>(w.record)) {
    pruner_.note_recorded(w.job);
    ++recorded_since_checkpoint_;
  }
  return written;
}

void Engine::write_next_fire(const JobState& job) {
  const auto& cfg = job.config;
  if (!ledger_resting()) {
    auto written = store_.upsert_job(cfg.name, cfg.definition_hash, job.next_slot, now());
    if (written) {
      next_fire_unwritten_.erase(cfg.name);
      return note_written();
    }
    note_refused(written.error());
  }
  // Only status and an `at` job that never fired read it: written again
  // with the backlog, not kept as a record.
  next_fire_unwritten_.insert(cfg.name);
}

bool Engine::ledger_resting() const {
  TimePoint t = now();
  // A clock set back must not stretch the rest.
  return t < resting_until_ && resting_until_ - t <= kLedgerRetry;
}

void Engine::note_refused(const Error& error) {
  resting_until_ = now() + kLedgerRetry;
  if (!ledger_down_since_) {
    ledger_down_since_ = now();
    kept_in_outage_ = 0;
    log::error(error.message +
               "; until the ledger accepts writes again, no run starts (fires wait), finished "
               "runs and skipped slots are kept in memory and retried every second (`jobhost "
               "status` shows the backlog)");
  }
  arm_timer();
}

void Engine::note_written() {
  if (!ledger_down_since_ || !backlog_.empty() || !next_fire_unwritten_.empty()) return;
  log::info(
      fmt::format("the ledger accepts writes again after {}: {} record(s) kept in memory "
                  "were written",
                  format_ms(now() - *ledger_down_since_), kept_in_outage_));
  ledger_down_since_.reset();
}

void Engine::flush_backlog() {
  if (ledger_resting()) return;
  while (!backlog_.empty()) {
    auto written = write(backlog_.front());
    if (!written) return note_refused(written.error());
    backlog_.pop_front();
  }
  for (const auto& name : std::exchange(next_fire_unwritten_, {})) {
    if (auto it = jobs_.find(name); it != jobs_.end()) write_next_fire(it->second);
  }
  note_written();
}

void Engine::give_up_backlog() {
  resting_until_ = {};  // one last try, however recent the last refusal
  flush_backlog();
  if (backlog_.empty()) return;
  log::error(fmt::format(
      "the ledger still refuses writes: {} record(s) kept in memory are lost with this exit, each "
      "logged below; at the next start, runs left open are closed as interrupted and scheduled "
      "slots not recorded are handled as missed",
      backlog_.size()));
  for (const auto& w : backlog_) {
    log::error("not recorded in the ledger: " + describe(w), {w.job, record_run_id(w)});
  }
  backlog_.clear();
}

nlohmann::json Engine::backlog_json() const {
  nlohmann::json out = {{"records", backlog_.size()},
                        {"refusing_since", nullptr},
                        {"oldest_kept_since", nullptr},
                        {"oldest_age_ms", nullptr}};
  if (ledger_down_since_) out["refusing_since"] = ledger::format_utc(*ledger_down_since_);
  if (!backlog_.empty()) {
    TimePoint oldest = backlog_.front().kept_since;
    out["oldest_kept_since"] = ledger::format_utc(oldest);
    out["oldest_age_ms"] = std::max<int64_t>(0, (now() - oldest).count());
  }
  return out;
}

std::string Engine::describe(const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) {
    std::string text =
        fmt::format("end of run {} (slot {}): {} at {}", end->run_id, ledger::format_utc(w.slot),
                    to_string(end->outcome), ledger::format_utc(end->finished_at));
    if (end->exit_code) text += fmt::format(", exit code {}", *end->exit_code);
    if (end->retry_at) text += fmt::format(", retry at {}", ledger::format_utc(*end->retry_at));
    return text + ": " + end->message;
  }
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) {
    return fmt::format("skipped slot {} (run {}, trigger {}) at {}: {}",
                       ledger::format_utc(skip->scheduled_for), skip->run_id,
                       to_string(skip->trigger), ledger::format_utc(skip->at), skip->reason);
  }
  const auto& event = std::get<ledger::Event>(w.record);
  return fmt::format("{} event at {}: {}", event.kind, ledger::format_utc(event.at), event.detail);
}

std::string_view Engine::record_run_id(const PendingWrite& w) {
  if (const auto* end = std::get_if<ledger::RunEnd>(&w.record)) return end->run_id;
  if (const auto* skip = std::get_if<ledger::SkipRecord>(&w.record)) return skip->run_id;
  return {};
}

Result<TimePoint> Engine::trigger(std::string_view name) {
  if (shutting_down_) return fail("the host is shutting down");
  auto it = jobs_.find(name);
  if (it == jobs_.end() || it->second.retired) {
    return fail(fmt::format("no job named \"{}\"", name));
  }
  TimePoint slot = now();
  admit(Fire{slot, std::string(name), slot, 1, {}, ledger::Trigger::manual});
  pump();
  return slot;
}

void Engine::shutdown(std::function<void()> on_idle) {
  if (shutting_down_) return;
  shutting_down_ = true;
  timer_->cancel();
  pruner_.stop();
  for (const auto& fire : ready_) record_skipped(fire, "the host shut down before it started");
  ready_.clear();
  for (auto& [name, job] : jobs_) record_waiting_skips(job);
  on_idle_ = std::move(on_idle);
  if (active_.empty()) return notify_idle_if_done();
  log::info(fmt::format("shutting down: waiting for {} run(s) in flight", active_.size()));
  for (const auto& [run_id, run] : active_) {
    auto grace = jobs_.find(run.job)->second.config.kill_grace;
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
  // Not kept when refused: the next heartbeat supersedes it.
  if (ledger_resting()) return;
  if (auto r = store_.heartbeat(run_id, now(), progress); !r) {
    note_refused(r.error());
  } else {
    note_written();
  }
}

void Engine::stop_now() {
  executor_.stop_all(exec::StopReason::shutdown);
}

nlohmann::json Engine::snapshot() const {
  nlohmann::json out = {{"running", nlohmann::json::array()},
                        {"queued", ready_.size()},
                        {"ledger_backlog", backlog_json()},
                        {"ledger_checkpoints", checkpoints_}};
  for (const auto& [run_id, run] : active_) {
    out["running"].push_back({{"run_id", run_id},
                              {"job", run.job},
                              {"attempt", run.attempt},
                              {"scheduled_for", ledger::format_utc(run.slot)}});
  }
  return out;
}

}  // namespace jobhost::engine
