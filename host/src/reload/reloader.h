// Hot reload, the shell: turns watcher events, SIGHUP and `jobhost reload`
// into reload cycles. A cycle probes each changed plugin file (one at a
// time, asynchronously: the loop never waits for a probe), swaps the
// plugins the next runs use, then validates and applies the config, logs
// and records in the ledger what changed or was rejected, and removes
// shadow copies nothing can use any more. The watched include directories
// follow each config read. One cycle at a time; requests that arrive
// meanwhile are merged into the next. See docs/deploying.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "engine/engine.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "reload/reload.h"
#include "reload/watcher.h"

namespace jobhost::reload {

// Shadow copies unused for this long are removed (see shadow_files_to_remove):
// a copy's mtime is set to now while it is in use and when it leaves service.
inline constexpr auto kShadowMaxAge = std::chrono::hours(1);
// Builds of the last this many runs of each job are kept (replay, forensics).
inline constexpr int kShadowKeepRunsPerJob = 5;

class Reloader {
 public:
  // What one reload cycle did, for `jobhost reload`.
  struct Summary {
    bool ok = true;                  // nothing was rejected
    std::vector<std::string> lines;  // what changed or was rejected, one fact a line
  };
  using Done = std::function<void(const Summary&)>;

  // `catalog`, `engine` and `store` must outlive the reloader. `initial` is
  // the scan the engine started with.
  Reloader(boost::asio::io_context& io, std::filesystem::path config_file,
           catalog::Catalog& catalog, const catalog::ScanResult& initial, engine::Engine& engine,
           ledger::Store& store, WatcherOptions options = {});

  // Ledger reads and writes go through `ledger` from now on, before start()
  // (on PostgreSQL, a worker: the loop never waits on the ledger).
  void write_through(ledger::StoreWorker& ledger) { ledger_ = &ledger; }

  // Starts watching, removes unused shadow copies, and does so again every hour.
  void start();
  // Stops watching; cycles in progress end without applying anything.
  void stop();
  // Reloads every plugin file and the config (SIGHUP, `jobhost reload`);
  // `done` is called once that cycle has been applied or rejected.
  void reload_all(const std::string& why, Done done = {});
  // The plugins in service and the rejected files, as `jobhost plugins --json`.
  nlohmann::json plugins_json() const;

  // Told of every reload result as it is recorded (metrics): `kind` is
  // "plugin" (one per plugin build put in or out of service, or file
  // rejected) or "config"; `result` is "applied" or "rejected".
  using ResultHook = std::function<void(std::string_view kind, std::string_view result)>;
  void on_result(ResultHook hook) { on_result_ = std::move(hook); }
  // Told when a cycle starts and when it ends (applied or rejected; what its
  // `done` callbacks get), whatever asked for it: systemd's RELOADING=1 and
  // READY=1 (daemon/notify.h). A cycle that stop() cut short does not end.
  void on_cycle(std::function<void()> started, Done ended) {
    cycle_started_ = std::move(started);
    cycle_ended_ = std::move(ended);
  }

 private:
  void request(ChangeSet changes, Done done);
  void start_cycle();
  void probe_next();
  void on_accepted(const std::string& file, const catalog::PluginInfo& info);
  void on_rejected(const std::string& file, const catalog::Rejection& rejection);
  void on_removed(const std::string& file);
  void apply_plugins();
  void reload_config();
  void apply_config(config::Config loaded, const engine::ReloadReads& reads);
  void end_cycle();
  // Removes the shadow copies unused for kShadowMaxAge (asking the ledger
  // which builds its runs used first, when some would go).
  void collect_shadows();
  // ... once the ledger answered with the builds its runs used.
  void remove_shadows(std::set<std::string> keep);
  std::vector<ShadowFile> list_shadows() const;
  void arm_gc_timer();
  void record(const std::string& kind, const nlohmann::json& detail);

  boost::asio::io_context& io_;
  std::filesystem::path config_file_;
  catalog::Catalog& catalog_;
  engine::Engine& engine_;
  ledger::StoreWorker inline_ledger_;
  ledger::StoreWorker* ledger_ = &inline_ledger_;  // see write_through
  Watcher watcher_;
  boost::asio::steady_timer gc_timer_;
  std::map<std::string, PluginFile> files_;  // by the file's path
  catalog::ScanResult served_;

  bool stopped_ = false;
  bool busy_ = false;
  // The last config read was rejected: validate it again once the plugins
  // change (it may name a plugin that was not in service yet).
  bool config_rejected_ = false;
  ChangeSet pending_;
  std::vector<Done> pending_done_;
  // The cycle in progress.
  ChangeSet cycle_;
  std::vector<Done> cycle_done_;
  std::deque<std::string> to_probe_;
  Summary summary_;
  ResultHook on_result_;
  std::function<void()> cycle_started_;
  Done cycle_ended_;

  void tell(std::string_view kind, std::string_view result) {
    if (on_result_) on_result_(kind, result);
  }
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // the ledger's answers check it
};

}  // namespace jobhost::reload
