// The engine: fires jobs on time, dispatches them under max_concurrency and
// each job's concurrency policy, starts each run through the executor,
// records it in the ledger, and schedules retries. Single-threaded: every
// method runs on the io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <span>
#include <string>
#include <variant>

#include "catalog/catalog.h"
#include "config/config.h"
#include "engine/backlog.h"
#include "engine/forecast.h"
#include "engine/observer.h"
#include "engine/run_records.h"
#include "engine/timer.h"
#include "exec/executor.h"
#include "ledger/ids.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "retention/retention.h"

namespace jobhost::engine {

// Most fires that may wait for a free run slot; more are recorded as skipped.
inline constexpr std::size_t kMaxReady = 10000;
// After runs are released, no run is parked (forked) for this long: the
// released runs have the CPU to themselves while they start.
inline constexpr Duration kParkPause = std::chrono::milliseconds(50);
// A scheduled fire found this late (the loop slept through a suspend or a
// forward clock jump) is a misfire, handled by the job's misfire policy.
inline constexpr Duration kLateTolerance = std::chrono::seconds(30);
// After this many recorded runs and skips, the engine checkpoints the
// ledger's write-ahead log itself once it is idle (no fire due or waiting
// within kCheckpointGap), so that SQLite's automatic checkpoint, an fsync
// of 10-40 ms, seldom falls on a run's claim (docs/ledger.md).
inline constexpr std::size_t kCheckpointEvery = 20;
inline constexpr Duration kCheckpointGap = std::chrono::milliseconds(200);

// The largest trigger payload (JSON, compact) a fire takes: it fits the
// control socket's requests, the HTTP API's bodies and the plugin's memory.
inline constexpr std::size_t kMaxEventBytes = 32 * 1024;
// ... and nested at most this deep: writing JSON out recurses, parsing it
// does not, so a deeper payload is refused where it is parsed.
inline constexpr int kMaxEventDepth = 64;

// The reason recorded for the fires of a paused job.
inline const std::string kPausedReason = "paused";

// What a reload reads of the ledger for one job it adds or changes.
struct ReloadRead {
  Result<std::optional<TimePoint>> last_fire = std::nullopt;
  bool paused = false;
};
using ReloadReads = std::map<std::string, ReloadRead, std::less<>>;

class Engine {
 public:
  using Clock = std::function<TimePoint()>;

  // `store` and `executor` must outlive the engine. `seed` drives jitter and
  // catch-up spread; the daemon passes the ledger's (Store::jitter_seed), so a
  // restart delays each slot the same way.
  // `clock` defaults to the system clock and `timer` to a WallTimer on `io`;
  // tests pass a fake clock and a manual timer to jump the clock at will.
  Engine(boost::asio::io_context& io, config::Config config, catalog::ScanResult plugins,
         ledger::Store& store, exec::Executor& executor, uint64_t seed, Clock clock = {},
         std::unique_ptr<Timer> timer = nullptr);
  // Writes what is still queued for the ledger.
  ~Engine();

  // Computes each job's next fire, reloads pending retries, fires @reboot
  // jobs, and arms the timer and retention (engine/retention.h).
  void start();

  // Stops firing. Fires waiting for a run slot are recorded as skipped. Runs
  // in flight get their kill_grace to finish on their own, then are stopped
  // (interrupted). `on_idle` is called once no run is left.
  void shutdown(std::function<void()> on_idle);
  // A second shutdown request: stop every run now.
  void stop_now();

  // Adds a watcher of runs and skips (engine/observer.h); it must outlive
  // the engine or be removed first. Observers are called in the order added.
  // The backlog's write groups go through `ledger` from now on, before
  // start(): a threaded worker over a store of its own, so that the loop
  // never waits on the database (PostgreSQL). It must outlive the engine.
  void write_through(ledger::StoreWorker& ledger) {
    ledger_ = &ledger;
    backlog_.write_through(ledger);
  }
  // Retention's batches go through `ledger` from now on, before start(): a
  // worker of their own, so that a batch waiting on a lock holds no claim.
  void prune_through(ledger::StoreWorker& ledger) { pruner_.write_through(ledger); }

  void add_observer(Observer& observer) { observers_.push_back(&observer); }
  void remove_observer(Observer& observer) { std::erase(observers_, &observer); }

  // Queues a manual fire of `job` at now (a slot of its own). Returns the
  // slot. Refused for an unknown or paused job. `by` (who asked: "uid 1000",
  // "http token 127.0.0.1:5000"), when given, is recorded as a `triggered` event.
  // `event`: the payload (JSON) its runs get (ABI 1.1 event()); `kind`: the
  // trigger they see (manual, webhook, file, chain).
  Result<TimePoint> trigger(std::string_view job, std::string_view by = {},
                            std::optional<std::string> event = std::nullopt,
                            ledger::Trigger kind = ledger::Trigger::manual);

  // Pauses the job: until resumed, its fires (schedule, catch-up, @reboot)
  // are recorded skipped "paused" (they still claim their slots), fires of
  // it waiting for a run slot too, and manual triggers are refused. Runs in
  // flight and retries already scheduled go on. Written to the ledger
  // (Store::set_paused, a `paused` event naming `by`), so it survives
  // restarts: at once inline (SQLite); through the ledger worker, behind
  // the write group in flight, on PostgreSQL (a refusal is then logged, the
  // pause holding in memory). Returns false if the job already was paused.
  // Error: unknown job, ledger unwritable inline (then nothing changed).
  Result<bool> pause(std::string_view job, std::string_view by);
  // Ends a pause (a `resumed` event naming `by`). False if it was not paused.
  Result<bool> resume(std::string_view job, std::string_view by);
  // Whether the job is paused (false for an unknown job).
  bool paused(std::string_view job) const;
  // Whether the job has a run in flight or a fire waiting to start: what a
  // new fire of it meets under its concurrency policy (false for an unknown job).
  bool busy(std::string_view job) const;

  // Stops a run in flight (executor stop with StopReason::cancel): it ends
  // `cancelled`, is not retried, and a `cancel` event names `by`. Error: no
  // such run in flight.
  Result<void> cancel(std::string_view run_id, std::string_view by);

  // Several hosts on one ledger (engine_cluster.cpp, docs/cluster.md).
  // Fencing, while this host's lease is lost or cannot be renewed: no fire
  // is claimed (they wait), runs in flight are stopped (interrupted, not
  // retried here: the host that takes them over retries them) and parked
  // runs undone. `why` is logged once. unfence() lets claims go on.
  void fence(std::string_view why);
  void unfence();
  bool fenced() const { return fenced_; }
  // What this host runs, for the skew between hosts (docs/cluster.md): the
  // digest of its jobs' definitions (ledger::definitions_digest), kept up
  // to date by reloads, and its accepted plugins' builds, name to sha256.
  const std::string& definitions_digest() const { return definitions_digest_; }
  std::map<std::string, std::string> plugin_builds() const;
  // Another host's runs, taken over by this one (Store::take_over_expired):
  // each interrupted run whose job retries gets its next attempt (per the
  // job's retry policy, claimed once across hosts; written to the ledger
  // through the ledger worker), and each freed slot is fired now.
  void adopt(const ledger::Takeover& takeover);
  // The jobs paused in the ledger, as read at `read_at` (steady clock): a
  // job paused or resumed on another host sharing it is paused or resumed
  // here. Pauses and resumes made here after `read_at` are not undone.
  void sync_paused(const std::vector<ledger::JobStats>& paused,
                   std::chrono::steady_clock::time_point read_at);
  // The ledger's pending retries join the timeline: another host may have
  // scheduled them and stopped since (the membership reads them each heartbeat).
  void add_retries(const std::vector<ledger::PendingRetry>& retries);
  // Until when (steady clock) this host's lease surely holds: no fire is
  // claimed after it until it is moved on (a paused host whose timers fire
  // before its next renewal must not claim what it may not own). Unset: no
  // lease (SQLite).
  void lease_until(std::chrono::steady_clock::time_point until);

  // Records a run's heartbeat in the ledger, at most once a second per run
  // (the executor already calls at most every 50 ms).
  void note_heartbeat(std::string_view run_id, std::optional<double> progress);

  // Runs in flight, queued fires and the ledger backlog (records the ledger
  // refused, kept in memory: count and oldest), for the control socket's "status".
  nlohmann::json snapshot() const;
  // Per [groups.NAME]: its max_concurrency, runs in flight, and fires the
  // last dispatch left waiting for it (status "groups", the metrics).
  nlohmann::json groups_json() const;

  // Hot reload (engine_reload.cpp; see docs/deploying.md).
  // The plugins the next runs load; runs in flight keep the build they started with.
  void replace_plugins(catalog::ScanResult plugins);
  // Applies a new config that passed validation: new jobs start, removed
  // jobs stop firing (their runs in flight finish, queued fires are recorded
  // as skipped, pending retries dropped), changed jobs get their new
  // settings and schedule from the next fire, unchanged jobs keep their
  // timers and interval anchors. [host] settings that need a restart keep
  // their running values (settings_needing_restart). `reads` are what
  // read_for_reload() gave for this very config. Returns what changed.
  config::JobDiff apply_config(config::Config loaded, const ReloadReads& reads);
  // Reads what applying `loaded` needs of the ledger (the last fire and
  // pause of each job it adds or changes) through the ledger worker, behind
  // the write group in flight, and hands it to `done` on the loop: the loop
  // never waits on the ledger for a reload. Inline over SQLite.
  void read_for_reload(const config::Config& loaded, std::function<void(ReloadReads)> done);
  // Both at once, for tests and tools that apply a config directly.
  config::JobDiff apply_config(config::Config loaded);
  // Per job, in config order: the build its next run will load, or why it is blocked.
  nlohmann::json next_builds() const;
  // Per job, in config order: the next fire the engine has planned, as it
  // will use it (`due`: the slot plus its jitter or catch-up spread delay, or
  // a retry's time; `slot`: the scheduled_for the ledger will claim;
  // `trigger`), or null for a job with nothing planned. For `jobhost list`.
  nlohmann::json next_fires() const;
  // Figures read at each metrics scrape (observe/metrics.h): cheap, no JSON.
  struct JobFigures {
    std::string_view job;  // valid until the engine's config changes
    std::size_t in_flight = 0;
    std::size_t queued = 0;              // fires of the job waiting for a run slot
    std::optional<TimePoint> next_fire;  // due of its first planned fire (next_fires' `due`)
    bool paused = false;
  };
  struct Figures {
    std::size_t in_flight = 0;
    std::size_t queued = 0;           // fires waiting for a run slot (at most kMaxReady)
    std::size_t pending_retries = 0;  // retries planned or waiting for a run slot
    std::size_t ledger_backlog = 0;   // records kept while the ledger refuses writes
    std::vector<JobFigures> jobs;     // config order
    struct Group {
      std::string_view name;  // valid until the engine's config changes
      int max_concurrency = 1;
      std::size_t running = 0;  // runs in flight
      std::size_t waiting = 0;  // fires the last dispatch left waiting for it
    };
    std::vector<Group> groups;  // [groups.NAME], config order
  };
  Figures figures() const;
  // The job's next `count` schedule slots from its next planned one (the
  // grid the engine uses, anchors included); empty for an unknown,
  // disabled or manual job.
  std::vector<TimePoint> upcoming_slots(std::string_view job, int count) const;
  // What a forecast from now needs of the engine (engine/forecast.h): the
  // window [now, now), the host's max_concurrency, the jitter seed, each
  // configured job on the engine's grid from its next planned slot (a fire
  // parked ahead included), its pause, and the runs in flight. The caller
  // sets `to` and each job's p95. Fires waiting for a run slot are left out.
  ForecastInput forecast_input() const;
  const config::Config& config() const { return config_; }
  const catalog::ScanResult& plugins() const { return plugins_; }

 private:
  struct JobState {
    // In config_.jobs (a reload's loaded jobs become config_.jobs by a move,
    // which keeps their addresses), or in kept_config once removed.
    const config::JobConfig* config;
    schedule::Spec spec;  // Every anchored
    std::optional<TimePoint> next_slot;
    // Run ids in flight, oldest first (a vector: 100,000 jobs each with a
    // std::set would cost 2.4 MB more, and a job has few runs at once).
    std::vector<std::string> active;
    int queued = 0;    // fires in ready_, and those of them whose claims are in flight
    int claiming = 0;  // fires whose claims are in flight (a threaded ledger worker)
    // Skips of fires that came while an older fire of the job was in ready_,
    // recorded once no fire of the job is left there: slots must be claimed
    // in order, or a crash could leave an older slot unclaimed behind a newer
    // one, and the next start would never see it as missed.
    std::vector<std::pair<Fire, std::string>> skips_waiting{};
    bool retired = false;    // removed by a reload: no fires, kept while runs finish
    bool paused = false;     // Store::set_paused; read at start and when added
    bool replacing = false;  // concurrency = replace: the claims in flight end as replaced
    int parked = 0;          // its runs in parked_ (at most one)
    std::unique_ptr<const config::JobConfig> kept_config{};  // see config
    // The slot of its last run unparked with its fire restored: until the
    // undoing of its claim is committed, the ledger's last fire may still
    // be that slot, which must not hide it (change_job).
    std::optional<TimePoint> unparked_slot{};
    // The slot of its last manual, webhook or chain fire: the next takes a
    // later one, so two in the same millisecond are two fires.
    TimePoint last_own_slot{};
  };
  // A run claimed and forked ahead of its instant, waiting for it
  // (docs/running.md, "Parking").
  struct ParkedRun {
    Fire fire;
    ledger::RunStart start;  // as claimed: started_at is the fire's due, parked
  };
  struct ActiveRun {
    ledger::RunStart start;  // as claimed
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point last_heartbeat_write{};
    bool cancelled = false;  // cancel() asked for its stop: never retried
  };

  TimePoint now() const { return clock_(); }
  void schedule_next(JobState& job, TimePoint after);
  // The anchor of an `every` grid that has no last fire yet, at `t`
  // (new_every_anchor: on a shared ledger every host computes it alike).
  TimePoint new_anchor(const schedule::Every& every, TimePoint t) const;
  // Runs or skips (per the job's misfire policy) the slots after last_fire up to t.
  void handle_misfires(JobState& job, TimePoint last_fire, TimePoint t, std::string_view why);
  void on_timer();
  void arm_timer();
  void admit(Fire fire);
  // A fire claimed in pump(), waiting for the commit of its claim.
  struct Launch {
    Fire fire;
    std::optional<Build> build;  // nullopt: a retry whose plugin is gone
  };
  // Claims the ready fires that may start in one write group, then starts them.
  void pump();
  // Adds the claim of `fire` to `claims` and `launches`, or records it
  // skipped when its plugin is missing.
  void prepare_claim(Fire fire, std::vector<ledger::RunStart>& claims,
                     std::vector<Launch>& launches);
  // Starts a run once its claim is committed; puts the fire back in ready_
  // when the claim was refused. True when the slot was already claimed.
  bool launch(Launch launch, ledger::RunStart start, const Result<bool>& claimed);
  void on_run_done(exec::RunReport report);

  // Parking. Claims (one write group) and parks the fires due within
  // park_lead that may be parked, while fewer than min(max_parked,
  // max_concurrency) runs are parked or in flight.
  void park_ahead();
  bool parkable(const Fire& fire, const JobState& job) const;
  // The job's next slot after `fire` is due before it (a jitter longer than
  // the period): parking `fire` would schedule its successor first.
  bool successor_due_first(const JobState& job, const Fire& fire) const;
  // At a parked run's instant: releases it (its mark removed in one
  // transaction for all released together, then its process started), or,
  // when its job's concurrency policy or max_concurrency says otherwise,
  // unparks it and hands its fire to admit(), which decides as for any fire.
  void release_due(TimePoint t);
  // The parked run is now a run in flight: released, or ended while parked.
  void activate(ParkedRun parked, Duration lateness);
  // Kills a parked run and queues the undoing of its claim; with `restore`,
  // its fire goes back to the timeline as its job's next one (the fire
  // scheduled after it leaves), as if it had never been parked.
  void unpark(const std::string& run_id, const std::string& why, bool restore);
  // unpark(restore) of every parked run of `job` (pause, reload).
  void unpark_job(const JobState& job, const std::string& why);
  void restore_fire(JobState& job, Fire fire);
  // concurrency = replace: the job's queued fires are skipped and its runs
  // in flight stopped, for a newer fire.
  void replace_older(JobState& job);
  // When the first fire beyond park_lead comes within it; nullopt: never,
  // parking is off, or the bound is reached.
  std::optional<TimePoint> next_park_at() const;
  std::size_t park_bound() const;
  // Writes every queued record (and `claims`) in one group, then tells the
  // observers of the records (acks_) and calls `then` with the claims'
  // results: at once with an inline ledger worker, once the group is
  // written with a threaded one (the engine then pumps the fires that came
  // ready meanwhile). Does nothing while a group is in flight: its end
  // flushes again.
  void flush_writes(std::vector<ledger::RunStart> claims = {}, Backlog::Flushed then = {});
  // Calls `ack` (which tells observers of a record) after the next flush.
  void acknowledge(std::function<void()> ack);
  // The first write queued in a loop turn posts one flush for its end.
  void post_end_of_turn();
  void record_skipped(const Fire& fire, const std::string& reason);
  // record_skipped now, or after the job's fires in ready_ are claimed.
  void record_skipped_in_order(JobState& job, Fire fire, std::string reason);
  void record_waiting_skips(JobState& job);
  // Records the job's queued first attempts as skipped `reason`.
  void skip_queued(JobState& job, const std::string& reason);
  void write_event(const std::string& job, std::string kind, std::optional<std::string> run_id,
                   std::string detail);
  // Runs in flight per [groups.NAME] (keys: the config's group names).
  std::map<std::string_view, std::size_t> groups_running() const;
  // A slot of its own at now for a fire that is not the schedule's.
  TimePoint own_slot(JobState& job) {
    job.last_own_slot = std::max(now(), job.last_own_slot + Duration(1));
    return job.last_own_slot;
  }
  // The final end of a fire of `cfg` (no retry follows): fires its
  // on_success, on_failure and on_done jobs, sharing the run's trace.
  void fire_chains(const config::JobConfig& cfg, const ledger::RunStart& run, Outcome outcome);
  void write_next_fire(const JobState& job) {
    backlog_.set_next_fire(job.config->name, job.config->definition_hash, job.next_slot);
  }
  void notify_idle_if_done();
  // Checkpoints the ledger when kCheckpointEvery records were written since
  // the last one and nothing is due within kCheckpointGap.
  void checkpoint_if_idle();
  void add_job(const config::JobConfig& job, const ReloadRead& read, TimePoint t);
  void change_job(JobState& job, const config::JobConfig& loaded, const ReloadRead& read,
                  TimePoint t);
  void retire_job(JobState& job);
  // Drops the job's pending retries of attempts above `max_attempts`, queued
  // or not, and their rows in the ledger (else a restart would run them),
  // behind the records already queued (the run end that scheduled one).
  void drop_retries(JobState& job, int max_attempts, std::string_view why);
  std::string next_id() { return ids_.next(now()); }
  void update_definitions_digest();
  // Store::set_paused through the ledger worker (see pause()): whether it
  // changed the job's state.
  Result<bool> write_paused(const JobState& job, bool paused, std::string_view by);

  boost::asio::io_context& io_;
  config::Config config_;
  catalog::ScanResult plugins_;
  ledger::Store& store_;
  ledger::StoreWorker inline_ledger_;              // over store_
  ledger::StoreWorker* ledger_ = &inline_ledger_;  // writes the backlog's groups
  exec::Executor& executor_;
  uint64_t seed_;
  Clock clock_;
  std::unique_ptr<Timer> timer_;
  ledger::IdGenerator ids_;
  std::mt19937_64 rng_;

  std::map<std::string, JobState, std::less<>> jobs_;
  std::set<Fire> timeline_;           // fires not yet due
  std::set<Fire, ReadyOrder> ready_;  // due, waiting for a run slot
  // Fires the last pump() left waiting because their group was full, by group.
  std::map<std::string, std::size_t, std::less<>> group_waiting_;
  std::map<std::string, ActiveRun, std::less<>> active_;
  std::map<std::string, ParkedRun, std::less<>> parked_;  // by run id
  TimePoint park_resume_at_{};                            // the last release + kParkPause
  // Every ledger write after a claim goes through it; slots are claimed only
  // when backlog_.may_claim(), fires wait in ready_ meanwhile.
  Backlog backlog_;
  std::size_t recorded_since_checkpoint_ = 0;
  std::uint64_t checkpoints_ = 0;  // done by checkpoint_if_idle (status: ledger_checkpoints)
  std::vector<Observer*> observers_;
  bool shutting_down_ = false;
  std::string definitions_digest_;                          // of config_'s jobs
  std::chrono::steady_clock::time_point paused_here_at_{};  // the last pause or resume here
  bool fenced_ = false;                                     // fence(): no claims
  std::optional<std::chrono::steady_clock::time_point> lease_until_;  // lease_until()
  bool lease_expired() const;
  // Fires whose claim found the slot or attempt claimed already: by another
  // host sharing the ledger, or before a restart (snapshot()).
  std::size_t claims_lost_ = 0;
  // The ledger's pending retries join the timeline (start, adopt).
  void load_pending_retries();
  std::function<void()> on_idle_;
  std::vector<std::function<void()>> acks_;  // observer calls waiting for their records' flush
  bool end_of_turn_posted_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted handlers check it
  std::vector<std::shared_ptr<boost::asio::steady_timer>> grace_timers_;  // during shutdown
  retention::Pruner pruner_;  // after store_ and clock_, which it uses
};

}  // namespace jobhost::engine
