// File triggers (docs/triggers.md): a job's `watch` (config::Watch) fires
// it, trigger `file`, once per debounced batch of changed files, the paths
// in its payload (batch.h). One inotify descriptor on the loop serves every
// watched directory of every job; a directory that does not exist yet is
// waited for on its nearest existing ancestor, and one removed is waited
// for again. At start, and whenever a watch is added, a catch-up lists the
// matching files changed since the job's last claimed file fire
// (Store::last_claimed), so that a batch that never reached the ledger is
// not lost to a restart. An engine observer: watches follow reloads, and a
// batch held while its job is busy (concurrency = forbid) or paused fires
// once the job may run again. Single-threaded, on the loop's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/engine.h"
#include "engine/observer.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "triggers/batch.h"

namespace jobhost::triggers {

// The catch-up lists files whose ctime is at most this much before the last
// claimed fire, too: file times come from a coarse clock, and an event can
// be read just after the fire it belongs before.
inline constexpr Duration kCatchupMargin = std::chrono::seconds(1);
// How often a held batch, or a watch that could not be added, is tried again.
inline constexpr Duration kRecheck = std::chrono::seconds(1);
inline constexpr Duration kRetryWatch = std::chrono::seconds(10);

class FileTriggers final : public engine::Observer {
 public:
  // `engine` and `store` must outlive it; it removes itself from the
  // engine's observers when destroyed. `store` is read on the loop unless
  // read_through() gives a worker.
  FileTriggers(boost::asio::io_context& io, engine::Engine& engine, ledger::Store& store);
  ~FileTriggers() override;
  FileTriggers(const FileTriggers&) = delete;
  FileTriggers& operator=(const FileTriggers&) = delete;

  // The catch-up's ledger reads go through `reads` (PostgreSQL), which must
  // outlive it.
  void read_through(ledger::StoreWorker& reads) { reads_ = &reads; }
  // Watches every enabled job of the engine's config that has a watch, each
  // with its catch-up. Without inotify, logs an error and watches nothing.
  void start();
  // Stops watching and firing. Batches not fired are left to the next
  // start's catch-up.
  void stop();

  void on_config_applied(const config::Config& config) override;
  // A run of a job ended or a fire was skipped: its held batch may fire.
  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport& report) override;
  void on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) override;
  void on_skipped(const ledger::SkipRecord& skip) override;

 private:
  // One path of a job's watch.
  struct Target {
    WatchPath path;
    int wd = -1;  // the watch on path.dir; -1 while it cannot be watched
    // While path.dir does not exist: the watch on its nearest existing
    // ancestor, for the directory's creation.
    int parent_wd = -1;
    bool fresh = true;          // not resolved yet: its files come from the catch-up
    std::string failed_reason{};  // why its watch could not be added (logged once)
  };
  struct Job {
    config::Watch watch;
    config::Concurrency concurrency = config::Concurrency::forbid;
    uint32_t mask = 0;  // the inotify events of watch.events
    std::vector<Target> targets;
    Batch batch;
    std::unique_ptr<boost::asio::steady_timer> timer;
    bool held = false;        // due, waiting for the job to be idle or resumed
    uint64_t generation = 0;  // of its watch: catch-ups of an older one are dropped
  };

  void apply(const config::Config& config);
  // Adds, moves and removes inotify watches so that each target watches its
  // directory, or its nearest existing ancestor while it has none. A target
  // whose directory is newly watched has the files already in it added.
  void resolve();
  void read_events();
  // Reads every event queued now; returns when none is left.
  void drain();
  void handle_events(const char* data, std::size_t size);
  void catch_up(const std::string& name);
  // Adds the matching files of the job's watched directories, those changed
  // at or after `since` when given.
  void scan(const std::string& name, Job& job, const Target& target,
            std::optional<TimePoint> since);
  void arm(const std::string& name, Job& job);
  void fire_if_due(const std::string& name);
  void recheck_soon(const std::string& job);

  boost::asio::io_context& io_;
  engine::Engine& engine_;
  ledger::StoreWorker inline_reads_;
  ledger::StoreWorker* reads_ = &inline_reads_;
  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer retry_;  // kRetryWatch, while a watch could not be added
  std::map<std::string, Job, std::less<>> jobs_;
  // The inotify watches: descriptor to directory and mask.
  struct Dir {
    std::filesystem::path path;
    uint32_t mask = 0;
  };
  std::map<int, Dir> dirs_;
  bool started_ = false;
  bool stopped_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted handlers check it
};

}  // namespace jobhost::triggers
