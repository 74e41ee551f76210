#include "observe/alerts.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <unordered_set>

#include "common/log.h"
#include "ledger/records.h"

namespace jobhost::observe {
namespace {

using nlohmann::json;

json time_or_null(const std::optional<TimePoint>& t) {
  return t ? json(ledger::format_utc(*t)) : json(nullptr);
}

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

std::string_view event_kind(bool recovered) {
  return recovered ? "alert_recovered" : "alert";
}

}  // namespace

Alerter::Alerter(boost::asio::io_context& io, ledger::Store& store, const config::Config& config,
                 Clock clock)
    : io_(io),
      store_(store),
      clock_(clock ? std::move(clock) : Clock(wall_now)),
      host_(hostname()),
      timer_(io),
      drain_timer_(io) {
  set_notifiers(config);
  set_jobs(config);
}

bool Alerter::has_alert_setting(const config::JobConfig& cfg) {
  return cfg.settings->alert_after > 0 || cfg.settings->expect_success_within.count() > 0 ||
         cfg.settings->alert_to;
}

Alerter::~Alerter() {
  timer_.cancel();
  drain_timer_.cancel();
  on_drained_ = {};
  // Queued ones never started: recorded as abandoned like those in flight.
  auto queued = std::exchange(queue_, {});
  for (const auto& out : queued) {
    auto it = notifiers_.find(out.notifier);
    delivered(out, it == notifiers_.end() ? "" : std::string(to_string(it->second.config.type)),
              Delivery{false, "abandoned: the daemon stopped", 0, true});
  }
  for (auto& [name, n] : notifiers_) n.notifier->cancel_all("the daemon stopped");
  auto retiring = std::exchange(retiring_, {});
  for (auto& n : retiring) n->cancel_all("the daemon stopped");
}

void Alerter::start() {
  started_ = true;
  if (!notifiers_.empty()) {
    std::string names;
    for (const auto& [name, n] : notifiers_) {
      names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", name, to_string(n.config.type));
    }
    log::info("alerts: notifiers " + names);
  }
  auto rows = store_.alert_states();
  if (!rows) {
    log::error("alerts: cannot read their state; starting from none: " + rows.error().message);
  } else {
    // A job of the config with state in the ledger and no setting now gets
    // an entry too: its state is shown, and cleared below if firing.
    std::unordered_set<std::string_view> configured;
    for (const auto& row : *rows) {
      if (jobs_.contains(row.job)) continue;
      if (configured.empty()) {
        for (const auto& cfg : config_->jobs) configured.insert(cfg.name);
      }
      if (configured.contains(row.job)) jobs_.try_emplace(row.job);
    }
    for (const auto& row : *rows) {
      auto it = jobs_.find(row.job);
      if (it == jobs_.end()) continue;
      Job& job = it->second;
      const bool failing = row.kind == "failing";
      if (!failing && row.kind != "silent") continue;
      KindState& s = failing ? job.state.failing : job.state.silent;
      s.firing = row.firing;
      s.since = row.since;
      s.notified_at = row.notified_at;
      s.failed_fires = row.failed_fires;
      s.window_start = row.window_start;
      (failing ? job.failing_pending : job.silent_pending) = row.pending;
      (failing ? job.failing_message : job.silent_message) = row.message;
    }
  }
  ask_windows();  // inline (SQLite), before the notices below: they show the window
  for (auto& [name, job] : jobs_) {
    // A kind turned off while the host was down is cleared as on a reload.
    for (AlertKind kind : {AlertKind::failing, AlertKind::silent}) {
      const bool on = kind == AlertKind::failing ? job.settings.alert_after > 0
                                                 : job.settings.expect_success_within.count() > 0;
      KindState& s = kind == AlertKind::failing ? job.state.failing : job.state.silent;
      if (!on && s.firing) {
        s.firing = false;
        s.since.reset();
        (kind == AlertKind::failing ? job.failing_pending : job.silent_pending) = false;
        record(name, "alert_cleared",
               {{"kind", to_string(kind)}, {"reason", "the setting is off in the config"}});
        save(name, job, kind);
      }
    }
    // Notices decided by a previous host and not delivered to every notifier.
    if (job.failing_pending) {
      dispatch(name, job, AlertKind::failing, !job.state.failing.firing, job.failing_message);
    }
    if (job.silent_pending) {
      dispatch(name, job, AlertKind::silent, !job.state.silent.firing, job.silent_message);
    }
  }
  check_silences();
  arm_timer();
}

void Alerter::apply_config(const config::Config& config) {
  set_notifiers(config);
  set_jobs(config);
  if (!started_) return;
  ask_windows();
  check_silences();
  arm_timer();
}

void Alerter::set_notifiers(const config::Config& config) {
  std::map<std::string, NamedNotifier, std::less<>> next;
  for (const auto& cfg : config.alerts) {
    auto old = notifiers_.find(cfg.name);
    if (old != notifiers_.end() && old->second.config.type == cfg.type &&
        old->second.config.command == cfg.command && old->second.config.url == cfg.url &&
        old->second.config.ca_file == cfg.ca_file && old->second.config.headers == cfg.headers &&
        old->second.config.timeout == cfg.timeout && old->second.config.retries == cfg.retries) {
      next.emplace(cfg.name, std::move(old->second));
      notifiers_.erase(old);
      continue;
    }
    auto made = make_notifier(io_, cfg);
    if (!made) {
      log::error("alerts: notifier " + cfg.name + " left out: " + made.error().message);
      continue;
    }
    next.emplace(cfg.name, NamedNotifier{cfg, std::move(*made)});
  }
  // Removed or changed notifiers finish what they are delivering.
  for (auto& [name, n] : notifiers_) {
    if (n.notifier->in_flight() > 0) retiring_.push_back(std::move(n.notifier));
  }
  notifiers_ = std::move(next);
  std::erase_if(retiring_, [](const auto& n) { return n->in_flight() == 0; });
}

void Alerter::set_jobs(const config::Config& config) {
  config_ = &config;
  std::map<std::string, Job, std::less<>> next;
  for (const auto& cfg : config.jobs) {
    auto old = jobs_.find(cfg.name);
    // Only the jobs with a setting, or with state kept from when they had one.
    if (old == jobs_.end() && !has_alert_setting(cfg)) continue;
    Job job = old != jobs_.end() ? std::move(old->second) : Job{};
    const AlertSettings before = job.settings;
    job.settings = {cfg.settings->alert_after, cfg.settings->expect_success_within};
    job.alert_to = cfg.settings->alert_to;
    if (started_) {
      if (before.alert_after > 0 && cfg.settings->alert_after == 0) {
        if (job.state.failing.firing) {
          record(cfg.name, "alert_cleared",
                 {{"kind", "failing"}, {"reason", "alert_after was turned off"}});
        }
        job.state.failing = KindState{};
        job.failing_pending = false;
        save(cfg.name, job, AlertKind::failing);
      }
      if (before.expect_success_within.count() > 0 &&
          cfg.settings->expect_success_within.count() == 0) {
        if (job.state.silent.firing) {
          record(cfg.name, "alert_cleared",
                 {{"kind", "silent"}, {"reason", "expect_success_within was turned off"}});
          job.state.silent.firing = false;
          job.state.silent.since.reset();
          job.silent_pending = false;
          save(cfg.name, job, AlertKind::silent);
        }
      }
    }
    next.emplace(cfg.name, std::move(job));
  }
  jobs_ = std::move(next);
}

// A job with expect_success_within needs the instant its window counts
// from: its last success in the ledger, else its oldest run, else when it
// was asked (first seen in the config). Persisted, so that a restart does
// not move it. Read through writes_, which is a worker of its own on
// PostgreSQL: until the answer, the job has no window, which
// check_silence leaves alone; a success meanwhile starts it, and then the
// answer is not needed any more.
void Alerter::ask_windows() {
  std::vector<std::string> jobs;
  for (const auto& [name, job] : jobs_) {
    if (needs_window(job)) jobs.push_back(name);
  }
  if (jobs.empty()) return;
  using Bounds = std::vector<Result<ledger::Store::SuccessBounds>>;
  writes_->run(
      [jobs](ledger::Store& store) {
        Bounds bounds;
        bounds.reserve(jobs.size());
        for (const auto& name : jobs) bounds.push_back(store.success_bounds(name));
        return bounds;
      },
      [this, alive = std::weak_ptr<int>(alive_), jobs, asked = now()](const Bounds& bounds) {
        if (alive.expired()) return;
        for (std::size_t i = 0; i < jobs.size(); ++i) {
          auto it = jobs_.find(jobs[i]);
          // Gone from the config, turned off, or started by a success meanwhile.
          if (it == jobs_.end() || !needs_window(it->second)) continue;
          const auto& b = bounds[i];
          if (!b) log::warn("alerts: " + b.error().message, {jobs[i]});
          TimePoint start = asked;
          if (b && b->last_success) {
            start = *b->last_success;
          } else if (b && b->first_run) {
            start = *b->first_run;
          }
          it->second.state.silent.window_start = start;
          save(jobs[i], it->second, AlertKind::silent);
        }
        // A window that passed already alerts at the timer's next turn.
        arm_timer();
      });
}

void Alerter::on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                              const exec::RunReport&) {
  if (end.retry_at) return;  // not the fire's last attempt
  on_fire_end(run.job, end.outcome, end.message, run.run_id);
}

void Alerter::on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) {
  if (end.retry_at) return;
  on_fire_end(run.job, end.outcome, end.message, run.run_id);
}

void Alerter::on_fire_end(const std::string& name, Outcome outcome, const std::string& message,
                          const std::string& run_id) {
  auto it = jobs_.find(name);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  job.last_run_id = run_id;
  const JobAlertState before = job.state;
  auto notices = observe::on_fire_end(name, job.state, job.settings, outcome, message, now());
  bool failing_saved = false, silent_saved = false;
  for (const auto& notice : notices) {
    notify(name, job, notice);
    (notice.kind == AlertKind::failing ? failing_saved : silent_saved) = true;
  }
  // Counters that changed without a notice are kept too.
  if (!failing_saved && job.settings.alert_after > 0 &&
      before.failing.failed_fires != job.state.failing.failed_fires) {
    save(name, job, AlertKind::failing);
  }
  if (!silent_saved && job.settings.expect_success_within.count() > 0 &&
      before.silent.window_start != job.state.silent.window_start) {
    save(name, job, AlertKind::silent);
  }
}

void Alerter::check_silences() {
  const TimePoint t = now();
  for (auto& [name, job] : jobs_) {
    if (auto notice = check_silence(name, job.state, job.settings, t)) notify(name, job, *notice);
  }
}

void Alerter::arm_timer() {
  std::optional<TimePoint> soonest;
  for (const auto& [name, job] : jobs_) {
    auto deadline = silence_deadline(job.state, job.settings);
    if (deadline && (!soonest || *deadline < *soonest)) soonest = deadline;
  }
  timer_.cancel();
  if (!soonest) return;
  Duration wait = std::clamp(*soonest - now(), Duration(0), kSilenceCheckEvery);
  timer_.expires_after(wait);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    check_silences();
    arm_timer();
  });
}

void Alerter::notify(const std::string& name, Job& job, const Notice& notice) {
  const bool failing = notice.kind == AlertKind::failing;
  (failing ? job.failing_pending : job.silent_pending) = true;
  (failing ? job.failing_message : job.silent_message) = notice.message;
  if (notice.recovered) {
    log::info("alert recovered: " + notice.message, {name});
  } else {
    log::warn("alert: " + notice.message, {name});
  }
  save(name, job, notice.kind);
  dispatch(name, job, notice.kind, notice.recovered, notice.message);
}

void Alerter::dispatch(const std::string& name, Job& job, AlertKind kind, bool recovered,
                       const std::string& message) {
  // Replaced notifiers whose last delivery ended (never from inside their callbacks).
  std::erase_if(retiring_, [](const auto& n) { return n->in_flight() == 0; });
  const bool failing = kind == AlertKind::failing;
  const uint64_t seq = ++(failing ? job.failing_seq : job.silent_seq);
  const KindState& s = failing ? job.state.failing : job.state.silent;
  json payload = {
      {"event", recovered ? "recovered" : "alert"},
      {"kind", to_string(kind)},
      {"job", name},
      {"message", message},
      {"since", time_or_null(recovered ? std::nullopt : s.since)},
      {"at", ledger::format_utc(now())},
      {"host", host_},
      {"run_id", job.last_run_id.empty() ? json(nullptr) : json(job.last_run_id)},
  };
  if (failing) {
    payload["alert_after"] = job.settings.alert_after;
    payload["consecutive_failed_fires"] = s.failed_fires;
  } else {
    payload["expect_success_within"] = config::format_duration(job.settings.expect_success_within);
    payload["window_start"] = time_or_null(s.window_start);
  }
  std::vector<std::string> targets;
  if (job.alert_to) {
    targets = *job.alert_to;
  } else {
    for (const auto& [n, notifier] : notifiers_) targets.push_back(n);
  }
  std::erase_if(targets, [&](const std::string& n) { return !notifiers_.contains(n); });
  const NoticeKey key{name, kind, seq};
  if (targets.empty()) {
    record(name, event_kind(recovered),
           {{"kind", to_string(kind)},
            {"notifier", nullptr},
            {"result", "no notifier"},
            {"message", message}});
    remaining_[key] = 0;
    notice_done(key);
    return;
  }
  remaining_[key] = static_cast<int>(targets.size());
  for (const auto& target : targets) {
    json p = payload;
    p["notifier"] = target;
    if (queue_.size() >= kMaxQueuedDeliveries) {
      Outgoing dropped{name, kind, recovered, seq, target, std::move(p)};
      delivered(dropped, std::string(to_string(notifiers_.at(target).config.type)),
                Delivery{false, "dropped: too many notices waiting", 0});
      continue;
    }
    queue_.push_back(Outgoing{name, kind, recovered, seq, target, std::move(p)});
  }
  pump();
}

void Alerter::pump() {
  while (in_flight_ < kMaxDeliveriesInFlight && !queue_.empty()) {
    Outgoing out = std::move(queue_.front());
    queue_.pop_front();
    auto it = notifiers_.find(out.notifier);
    if (it == notifiers_.end()) {
      delivered(out, "", Delivery{false, "the notifier was removed from the config", 0});
      continue;
    }
    ++in_flight_;
    const std::string type(to_string(it->second.config.type));
    it->second.notifier->send(out.payload, [this, out, type](Delivery result) {
      --in_flight_;
      delivered(out, type, result);
      pump();
      check_drained();
    });
  }
}

void Alerter::delivered(const Outgoing& out, const std::string& type, const Delivery& result) {
  json detail = {{"kind", to_string(out.kind)},
                 {"notifier", out.notifier},
                 {"type", type},
                 {"result", result.ok ? "ok" : "failed"},
                 {"attempts", result.attempts},
                 {"message", out.payload.value("message", "")}};
  if (!result.ok) detail["error"] = result.error;
  if (result.ok) {
    log::info(fmt::format("alert notice delivered by {}", out.notifier), {out.job});
  } else {
    log::warn(fmt::format("alert notice not delivered by {}: {}", out.notifier, result.error),
              {out.job});
  }
  record(out.job, event_kind(out.recovered), std::move(detail));
  if (result.abandoned) return;  // still pending: sent again at the next start
  const NoticeKey key{out.job, out.kind, out.seq};
  auto it = remaining_.find(key);
  if (it != remaining_.end() && --it->second <= 0) notice_done(key);
}

// Every notifier has answered for this notice (ok or not): it is no longer
// pending, unless a newer notice of the same kind took its place.
void Alerter::notice_done(const NoticeKey& key) {
  remaining_.erase(key);
  auto it = jobs_.find(key.job);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  const bool failing = key.kind == AlertKind::failing;
  if ((failing ? job.failing_seq : job.silent_seq) != key.seq) return;
  bool& pending = failing ? job.failing_pending : job.silent_pending;
  if (!pending) return;
  pending = false;
  save(key.job, job, key.kind);
}

void Alerter::save(const std::string& name, const Job& job, AlertKind kind,
                   std::optional<ledger::Event> event) {
  const bool failing = kind == AlertKind::failing;
  const KindState& s = failing ? job.state.failing : job.state.silent;
  ledger::AlertRecord row{name,
                          std::string(to_string(kind)),
                          s.firing,
                          s.since,
                          s.notified_at,
                          s.failed_fires,
                          s.window_start,
                          failing ? job.failing_pending : job.silent_pending,
                          failing ? job.failing_message : job.silent_message};
  writes_->run([row = std::move(row), at = now(), event = std::move(event)](
                   ledger::Store& store) { return store.save_alert_state(row, at, event); },
               [name](const Result<void>& saved) {
                 if (!saved) {
                   log::warn("alerts: state kept in memory only: " + saved.error().message, {name});
                 }
               });
}

void Alerter::record(const std::string& job, std::string_view kind, json detail) {
  ledger::Event event{
      0,   now(),        std::string(kind),
      job, std::nullopt, detail.dump(-1, ' ', false, json::error_handler_t::replace)};
  writes_->run([event = std::move(event)](ledger::Store& store) { return store.add_event(event); },
               [job](const Result<void>& added) {
                 if (!added)
                   log::warn("alerts: event not recorded: " + added.error().message, {job});
               });
}

void Alerter::drain(Duration timeout, std::function<void()> done) {
  on_drained_ = std::move(done);
  if (in_flight_ == 0 && queue_.empty()) return check_drained();
  drain_timer_.expires_after(timeout);
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !on_drained_) return;
    auto queued = std::exchange(queue_, {});
    for (const auto& out : queued) {
      auto it = notifiers_.find(out.notifier);
      delivered(out, it == notifiers_.end() ? "" : std::string(to_string(it->second.config.type)),
                Delivery{false, "abandoned: the daemon stopped", 0, true});
    }
    for (auto& [name, n] : notifiers_) n.notifier->cancel_all("the daemon stopped");
    for (auto& n : retiring_) n->cancel_all("the daemon stopped");  // callbacks leave it alone
    check_drained();
  });
}

void Alerter::check_drained() {
  if (!on_drained_ || in_flight_ > 0 || !queue_.empty()) return;
  drain_timer_.cancel();
  auto done = std::exchange(on_drained_, {});
  boost::asio::post(io_, std::move(done));
}

json Alerter::state(std::string_view name) const {
  if (auto it = jobs_.find(name); it != jobs_.end()) return state_json(it->second);
  // A job of the config with no alert setting: no state kept, nothing to show but that.
  if (config_ && config_->find_job(name)) return state_json(Job{});
  return nullptr;
}

json Alerter::state_json(const Job& job) const {
  const KindState& f = job.state.failing;
  const KindState& s = job.state.silent;
  json notifiers = json::array();
  if (job.alert_to) {
    for (const auto& n : *job.alert_to) notifiers.push_back(n);
  } else {
    for (const auto& [n, notifier] : notifiers_) notifiers.push_back(n);
  }
  const auto deadline = silence_deadline(job.state, job.settings);
  return {
      {"notifiers", notifiers},
      {"failing",
       {{"enabled", job.settings.alert_after > 0},
        {"alert_after", job.settings.alert_after},
        {"firing", f.firing},
        {"since", time_or_null(f.since)},
        {"notified_at", time_or_null(f.notified_at)},
        {"consecutive_failed_fires", f.failed_fires},
        {"pending", job.failing_pending}}},
      {"silent",
       {{"enabled", job.settings.expect_success_within.count() > 0},
        {"expect_success_within",
         job.settings.expect_success_within.count() > 0
             ? json(config::format_duration(job.settings.expect_success_within))
             : json(nullptr)},
        {"firing", s.firing},
        {"since", time_or_null(s.since)},
        {"notified_at", time_or_null(s.notified_at)},
        {"window_start", time_or_null(s.window_start)},
        {"deadline", time_or_null(deadline)},
        {"pending", job.silent_pending}}},
  };
}

}  // namespace jobhost::observe
