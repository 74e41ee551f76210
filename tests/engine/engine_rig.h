// An engine on a fake clock and a manual timer, over a SQLite ledger in a
// temporary directory, with either the real fork-server executor (the noop
// test plugin, real forks) or a FakeExecutor whose runs end when the test
// says so. The rig of clock_jump_test and dispatch_test.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "config/config.h"
#include "engine/engine.h"
#include "engine/timer.h"
#include "exec/fork_executor.h"
#include "ledger/sqlite_store.h"
#include "ledger/store_worker.h"
#include "support/harness.h"

namespace jobhost::testing {

// A Timer that fires only when the test says so.
class ManualTimer final : public engine::Timer {
 public:
  void wait_until(TimePoint at, Handler handler) override {
    at_ = at;
    handler_ = std::move(handler);
  }
  void cancel() override { handler_ = nullptr; }

  // Calls the pending handler if it is due at `now` (or at once when the
  // clock was set, as TFD_TIMER_CANCEL_ON_SET does). True if it was called.
  bool fire_if_due(TimePoint now, bool clock_changed = false) {
    if (!handler_ || (!clock_changed && at_ > now)) return false;
    auto handler = std::move(handler_);
    handler_ = nullptr;
    handler(clock_changed);
    return true;
  }
  // When the pending handler is due; nullopt when none is armed.
  std::optional<TimePoint> armed_at() const { return handler_ ? std::optional(at_) : std::nullopt; }

 private:
  TimePoint at_{};
  Timer::Handler handler_;
};

// An executor without processes: start() records the request and the fake
// clock's time; a run ends when the test calls finish(), or, if
// `obey_stop`, right after a stop (as a run that obeys SIGTERM at once).
// Reports are delivered from the io_context, never from inside a call.
class FakeExecutor final : public exec::Executor {
 public:
  struct Started {
    exec::RunRequest request;
    TimePoint at;
  };
  struct Stopped {
    std::string run_id;
    exec::StopReason reason;
  };

  FakeExecutor(boost::asio::io_context& io, std::function<TimePoint()> clock)
      : io_(io), clock_(std::move(clock)) {}

  Result<int> start(exec::RunRequest request,
                    std::function<void(exec::RunReport)> on_done) override {
    if (running_.contains(request.run_id)) return fail("run id already active");
    if (on_start) on_start(request);
    started.push_back({request, clock_()});
    running_.emplace(request.run_id, Run{std::move(on_done), false});
    peak = std::max(peak, running_.size());
    return next_pid_++;
  }
  // A parked run is kept aside until released (then it is `started`, at
  // the fake clock's time) or discarded.
  Result<int> park(exec::RunRequest request, std::function<void(exec::RunReport)> on_done,
                   TimePoint instant) override {
    if (running_.contains(request.run_id) || parked_.contains(request.run_id)) {
      return fail("run id already active");
    }
    if (refuse_park) return fail("refused by the test");
    request.parked = true;
    CHECK(instant > clock_());  // ahead of its instant
    parked.push_back(request.run_id);
    const int pid = next_pid_++;
    std::string run_id = request.run_id;
    parked_.emplace(std::move(run_id), Parked{std::move(request), std::move(on_done)});
    return pid;
  }
  void release(std::span<const std::string> run_ids) override {
    for (const auto& run_id : run_ids) {
      auto it = parked_.find(run_id);
      if (it == parked_.end()) continue;
      Parked p = std::move(it->second);
      parked_.erase(it);
      p.request.parked = false;
      if (on_start) on_start(p.request);
      started.push_back({p.request, clock_()});
      running_.emplace(p.request.run_id, Run{std::move(p.on_done), false});
      peak = std::max(peak, running_.size());
    }
  }
  void discard(std::string_view run_id) override {
    if (parked_.erase(std::string(run_id)) > 0) discarded.emplace_back(run_id);
  }
  // Ends a parked run's process before its release (its setup failed).
  void die_parked(const std::string& run_id, Outcome outcome = Outcome::failed) {
    auto it = parked_.find(run_id);
    REQUIRE(it != parked_.end());
    running_.emplace(run_id, Run{std::move(it->second.on_done), false});
    parked_.erase(it);
    finish(run_id, outcome);
  }
  std::vector<std::string> parked_ids() const {
    std::vector<std::string> ids;
    for (const auto& [id, p] : parked_) ids.push_back(id);
    return ids;
  }

  void stop(std::string_view run_id, exec::StopReason reason) override {
    auto it = running_.find(std::string(run_id));
    if (it == running_.end() || it->second.stopping) return;
    it->second.stopping = true;
    stopped.push_back({std::string(run_id), reason});
    if (obey_stop) {
      finish(std::string(run_id),
             reason == exec::StopReason::cancel ? Outcome::cancelled : Outcome::interrupted);
    }
  }
  void stop_all(exec::StopReason reason) override {
    std::vector<std::string> ids;
    for (const auto& [id, run] : running_) ids.push_back(id);
    for (const auto& id : ids) stop(id, reason);
  }
  std::size_t active() const override { return running_.size() + parked_.size(); }
  bool running(const std::string& run_id) const { return running_.contains(run_id); }

  // Ends the run: its report reaches the engine from the io_context.
  void finish(const std::string& run_id, Outcome outcome = Outcome::succeeded) {
    auto it = running_.find(run_id);
    REQUIRE(it != running_.end());
    auto on_done = std::move(it->second.on_done);
    running_.erase(it);
    exec::RunReport report;
    report.run_id = run_id;
    report.outcome = outcome;
    report.message = "fake";
    if (decorate) decorate(report);
    boost::asio::post(io_, [on_done = std::move(on_done), report] { on_done(report); });
  }
  std::vector<std::string> running_ids() const {
    std::vector<std::string> ids;
    for (const auto& [id, run] : running_) ids.push_back(id);
    return ids;
  }

  std::vector<Started> started;
  std::vector<Stopped> stopped;
  // Fills in more of each report (resources, metrics) before it is sent.
  std::function<void(exec::RunReport&)> decorate;
  // Called with each request as the engine starts it (the run's process
  // would be forked there).
  std::function<void(const exec::RunRequest&)> on_start;
  std::size_t peak = 0;                // most runs active at once
  bool obey_stop = true;               // a stopped run ends (interrupted) at once
  std::vector<std::string> parked;     // run ids, in the order parked
  std::vector<std::string> discarded;  // run ids, in the order discarded
  bool refuse_park = false;            // park() fails (a fork that failed)

 private:
  struct Parked {
    exec::RunRequest request;
    std::function<void(exec::RunReport)> on_done;
  };
  std::map<std::string, Parked> parked_;
  struct Run {
    std::function<void(exec::RunReport)> on_done;
    bool stopping;
  };
  boost::asio::io_context& io_;
  std::function<TimePoint()> clock_;
  std::map<std::string, Run> running_;
  int next_pid_ = 1000;
};

inline TimePoint at_utc(int hour, int minute, int second, int ms = 0) {
  using namespace std::chrono;
  return TimePoint(sys_days(year(2030) / January / 7) + hours(hour) + minutes(minute) +
                   seconds(second) + milliseconds(ms));
}

// One engine on a fake clock, over a ledger in a temporary directory.
class Rig {
 public:
  enum class Runs { forked, fake };

  // `host_extra`: lines for the [host] section.
  explicit Rig(const std::string& job_toml, Runs runs = Runs::forked,
               const std::string& host_extra = "")
      : runs_(runs) {
    install_plugins(dir_.path(), {"noop.so"});
    // Parking is off unless the test sets park_lead: the other tests count
    // claims and timer wakes as they are without it (parking_test has it on).
    const std::string host = host_extra.find("park_lead") == std::string::npos
                                 ? host_extra + "\npark_lead = \"0s\"\n"
                                 : host_extra;
    auto loaded = config::load_config(write_config(dir_.path(), job_toml, host));
    REQUIRE(loaded);
    config_ = *loaded;
    fs::create_directories(config_.host.state_dir);
    catalog::Catalog catalog(config_.host.plugin_dirs, config_.host.state_dir / "plugins");
    plugins_ = catalog.scan();
    REQUIRE(plugins_.find("noop") != nullptr);
    auto store =
        ledger::open_sqlite_store(config_.host.state_dir / "jobhost.db", config_.host.durability);
    REQUIRE(store);
    store_ = std::move(*store);
    if (runs == Runs::fake) {
      auto fake = std::make_unique<FakeExecutor>(io_, [this] { return now_; });
      fake_ = fake.get();
      executor_ = std::move(fake);
    } else {
      executor_ = std::make_unique<exec::ForkExecutor>(io_, exec::ExecutorOptions{});
    }
  }

  // Starts an engine with the fake clock at `t` (again: a restart on the
  // same ledger; the previous engine must have been shut down).
  void start(TimePoint t) {
    now_ = t;
    auto timer = std::make_unique<ManualTimer>();
    timer_ = timer.get();
    engine_ = std::make_unique<engine::Engine>(
        io_, config_, plugins_, *store_, *executor_, 42, [this] { return now_; }, std::move(timer));
    if (held_) engine_->write_through(*held_);
    for (engine::Observer* o : observers) engine_->add_observer(*o);
    engine_->start();
    settle();
  }

  // From the next start(): the engine's write groups go through a threaded
  // ledger worker (as on PostgreSQL) over a connection of its own, whose
  // results come back only when the test calls release_writes(): a group
  // stays in flight, as over a slow database, while the clock moves on.
  void hold_writes() {
    auto store =
        ledger::open_sqlite_store(config_.host.state_dir / "jobhost.db", config_.host.durability);
    REQUIRE(store);
    held_store_ = std::move(*store);
    held_ = std::make_unique<ledger::StoreWorker>(*held_store_, [](auto) {});
  }
  // Waits for the groups given to the held worker, hands their results
  // back, and runs what follows (until no group is in flight).
  void release_writes() {
    for (int i = 0; i < 100; ++i) {
      held_->settle();
      settle();
      if (!engine_->snapshot()["ledger_backlog"]["writing"].get<bool>()) return;
    }
    FAIL("write groups kept coming");
  }

  // The engine goes without a shutdown, as with a host killed: nothing more
  // is written (the next start() must call close_orphaned_runs first, as
  // the daemon does).
  void crash() { engine_.reset(); }

  // Moves the clock forward in steps of `step` up to `t`, waking the engine
  // whenever its timer is due, as the real clock would.
  void run_until(TimePoint t, Duration step = std::chrono::seconds(1)) {
    while (now_ < t) {
      now_ = std::min(t, now_ + step);
      wake();
    }
  }

  // Moves the clock to the instant the engine's timer is armed for (if it is
  // before `limit`) and wakes it there: fires start exactly when due.
  bool step_to_next_due(TimePoint limit) {
    auto at = timer_->armed_at();
    if (!at || *at > limit) return false;
    now_ = std::max(now_, *at);
    wake();
    return true;
  }

  // Sets the clock to `t` at once, as an administrator or NTP step would.
  void set_clock(TimePoint t) {
    now_ = t;
    timer_->fire_if_due(now_, /*clock_changed=*/true);
    settle();
    wake();
  }

  // Runs what the io_context has ready (run reports, posted work).
  void settle() {
    if (runs_ == Runs::fake) {
      for (;;) {
        io_.restart();
        if (io_.poll() == 0) return;
      }
    }
    // Until no run is in flight or waiting (the forks finish in milliseconds;
    // the bound only stops a broken test from hanging).
    for (int i = 0; i < 2000; ++i) {
      auto snapshot = engine_->snapshot();
      if (snapshot["running"].empty() && snapshot["queued"] == 0) {
        // The last run's end is written at the end of its loop turn (a
        // posted handler): run it, or the ledger may still show the run open.
        io_.restart();
        io_.poll();
        return;
      }
      io_.run_for(std::chrono::milliseconds(5));
    }
    FAIL("runs did not finish");
  }

  // Every record of the job, oldest slot first.
  std::vector<ledger::RunRecord> runs(const std::string& job) {
    auto history = store_->history(job, 100000);
    REQUIRE(history);
    std::vector<ledger::RunRecord> out(history->rbegin(), history->rend());
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.scheduled_for < b.scheduled_for;
    });
    return out;
  }

  // Watchers added to each engine start() makes, before it starts.
  std::vector<engine::Observer*> observers;

  TimePoint now() const { return now_; }
  void set_now(TimePoint t) { now_ = t; }
  nlohmann::json snapshot() const { return engine_->snapshot(); }
  engine::Engine& engine() { return *engine_; }
  ledger::Store& store() { return *store_; }
  // The config the next start() uses (tests may change it first).
  config::Config& config() { return config_; }
  const fs::path& dir() const { return dir_.path(); }
  FakeExecutor& fake() {
    REQUIRE(fake_ != nullptr);
    return *fake_;
  }
  boost::asio::io_context& io() { return io_; }

 private:
  void wake() {
    while (timer_->fire_if_due(now_)) settle();
  }

  Runs runs_;
  TempDir dir_;
  config::Config config_;
  catalog::ScanResult plugins_;
  std::unique_ptr<ledger::Store> store_;
  boost::asio::io_context io_;
  std::unique_ptr<exec::Executor> executor_;
  FakeExecutor* fake_ = nullptr;
  std::unique_ptr<ledger::Store> held_store_;
  std::unique_ptr<ledger::StoreWorker> held_;  // hold_writes()
  std::unique_ptr<engine::Engine> engine_;
  ManualTimer* timer_ = nullptr;
  TimePoint now_{};
};

}  // namespace jobhost::testing
