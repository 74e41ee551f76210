// This host's membership among the hosts sharing a PostgreSQL ledger
// (docs/cluster.md). Every [store] heartbeat it renews its lease
// (Store::renew_lease) and takes over the hosts whose lease ran out
// (Store::take_over_expired, the engine adopting their runs). It fences the
// engine (Engine::fence) when its lease was taken over, then joins again as
// a new incarnation, and when it could not renew it for a whole lease (cut
// off from the database, or paused): by then another host may have taken
// its runs over. The renewals and takeovers go through a ledger worker on
// a thread of its own (ledger/store_worker.h): a database that stalls does
// not hold the loop, and the fence comes on time even then. Single-threaded,
// on the io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "config/config.h"
#include "engine/engine.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"

namespace jobhost::daemon {

class Membership {
 public:
  // `store` (the loop's), `worker` and the engine must outlive it.
  Membership(boost::asio::io_context& io, ledger::Store& store, ledger::StoreWorker& worker,
             const config::HostConfig& host);

  // The first lease, before the engine starts (on `store`, waited for).
  // Error: the ledger refused it,
  // or a newer incarnation of this id holds it (another daemon with the same
  // [host] id started after this one).
  Result<void> join();
  // From now on, every heartbeat: renew, take over, fence or unfence `engine`.
  void start(engine::Engine& engine);
  // A clean stop: no more heartbeats; the lease ends now (nothing is left
  // for another host to take over).
  void leave();
  // For status: id, incarnation, lease, fenced, the live hosts and the skew
  // between them (as of the last heartbeat).
  nlohmann::json json() const;
  // As of the last heartbeat (none before).
  const ledger::Skew& skew() const { return skew_; }
  int live_hosts() const { return live_hosts_; }

 private:
  // What one heartbeat brought back from the worker.
  struct Beat {
    Result<ledger::Lease> lease;
    Result<ledger::Takeover> takeover{};                  // when renewed
    Result<std::vector<ledger::PendingRetry>> retries{};  // when renewed
    Result<std::vector<ledger::HostRecord>> hosts{};      // when renewed
    Result<std::vector<ledger::JobStats>> paused{};       // when renewed
  };
  void tick();
  void arm();
  // Renews on the worker (and takes over, reads the pending retries); on_beat
  // gets the result.
  void beat();
  void on_beat(std::chrono::steady_clock::time_point asked, Beat beat);
  // The lease not renewed for a whole lease: fences the engine.
  void fence_if_lapsed(const std::string& why);
  // The record of this host as of now, its lease counted from now.
  void stamp();
  // The hosts as of this heartbeat: counts the live ones, logs a change of skew.
  void note_hosts(const std::vector<ledger::HostRecord>& hosts);

  boost::asio::steady_timer timer_;
  ledger::Store& store_;
  ledger::StoreWorker& worker_;
  engine::Engine* engine_ = nullptr;
  Duration heartbeat_;
  Duration lease_;
  ledger::HostRecord me_;
  std::chrono::steady_clock::time_point renewed_{};  // the last renewal that worked
  bool refusing_ = false;                            // the last renewal failed
  bool beating_ = false;                             // a renewal is on the worker
  ledger::Skew skew_;
  int live_hosts_ = 0;
  bool left_ = false;
};

}  // namespace jobhost::daemon
