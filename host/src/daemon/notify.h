// The daemon's side of systemd's notify protocol (sd_notify(3)), for a
// Type=notify unit: READY=1 once it serves, RELOADING=1 then READY=1 around
// each reload cycle, STOPPING=1 at SIGTERM/SIGINT, STATUS= lines saying what
// it is doing, and WATCHDOG=1 from the event loop when WatchdogSec= is set.
//
// The documented socket protocol (one AF_UNIX datagram of "KEY=value" lines
// to $NOTIFY_SOCKET, an abstract name when it starts with '@'), not
// libsystemd: sd_notify() reads NOTIFY_SOCKET from the environment at every
// call, so it would have to stay there for everything the daemon forks (the
// plugin probes run plugin code with the daemon's environment); here it is
// read once and taken out. Without NOTIFY_SOCKET nothing is sent or logged; a
// failed send is logged once and never stops the daemon, and no send holds
// the loop for more than kStateWait. See docs/running.md
// "Running under systemd".
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace jobhost::daemon {

// What the service manager asked of this process.
struct NotifyTarget {
  std::string socket;  // $NOTIFY_SOCKET: an absolute path or "@name"; empty: not asked
  std::optional<std::chrono::microseconds> watchdog;  // $WATCHDOG_USEC, when meant for us
};

// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets them, as
// sd_notify's unset_environment does: nothing the daemon starts inherits
// them. Call before any other thread runs (unsetenv).
NotifyTarget take_notify_target();

// sd_watchdog_enabled(3)'s rules: `usec`, a positive whole number of
// microseconds, applies to process `pid` when `watchdog_pid` is null or is
// `pid`. Null or malformed values give nullopt.
std::optional<std::chrono::microseconds> watchdog_interval(const char* usec,
                                                           const char* watchdog_pid, pid_t pid);

// What STATUS= shows, read from the daemon when a status is sent.
struct ServiceFigures {
  std::size_t jobs = 0;     // enabled jobs
  std::size_t plugins = 0;  // plugins in service
  std::size_t runs_in_flight = 0;
  std::string ledger_refusing_since;  // the ledger refuses writes since (UTC text); "": it does not
  std::size_t ledger_kept = 0;        // records kept in memory until it takes them
  bool fenced = false;                // several hosts: this one holds no lease, claims nothing
};

enum class ServicePhase { ready, reloading, stopping };

// The STATUS= text (one line of valid UTF-8, at most kMaxStatus bytes), e.g.
// "12 jobs enabled, 3 plugins, 2 runs in flight; last reload 2026-12-07T10:00:03.000Z: applied"
// or "stopping: 2 runs in flight". `last_reload`: what reloaded() said, or "".
std::string status_line(ServicePhase phase, const ServiceFigures& figures,
                        std::string_view last_reload);
inline constexpr std::size_t kMaxStatus = 400;

class ServiceNotifier {
 public:
  using Figures = std::function<ServiceFigures()>;
  // How often STATUS= is brought up to date between events (runs in flight,
  // a ledger outage): sent only when the text changed.
  static constexpr std::chrono::seconds kStatusRefresh{5};

  // `figures` is called on io's thread, until the notifier is destroyed.
  ServiceNotifier(boost::asio::io_context& io, NotifyTarget target, Figures figures);
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  bool enabled() const { return !target_.socket.empty(); }
  const NotifyTarget& target() const { return target_; }

  // READY=1 and STATUS=; starts the watchdog pings (every half
  // WATCHDOG_USEC, from io's loop: a loop that hangs stops pinging) and the
  // STATUS refresh. Call from io's thread, when nothing can fail the start
  // any more; later calls do nothing.
  void ready();
  // A reload cycle started: RELOADING=1 with MONOTONIC_USEC= (systemd >= 253
  // checks it), STATUS=. Before ready(), only what READY=1 will say changes.
  void reloading();
  // ... and ended: READY=1, STATUS= with its result (`detail`: why it was
  // rejected; not shown when it was applied).
  void reloaded(bool ok, std::string_view detail);
  // SIGTERM/SIGINT: STOPPING=1, STATUS=stopping: N runs in flight. Pings
  // and the refresh go on until the notifier is destroyed.
  void stopping();

  // How long READY=1, RELOADING=1 and STOPPING=1 may wait for room in the
  // service manager's queue (net.unix.max_dgram_qlen datagrams) rather than
  // be lost; pings and STATUS refreshes never wait (the next one follows).
  static constexpr std::chrono::milliseconds kStateWait{1000};

  // Sends one message (lines of KEY=value), waiting up to `wait` for room
  // in the queue (zero: not at all). Nothing without a socket.
  void send(std::string_view message, std::chrono::milliseconds wait = {});

 private:
  // A state message: `prefix` (READY=1 ...) and STATUS=, waiting kStateWait.
  void send_state(std::string_view prefix);
  void ping();
  void refresh();
  void refresh_later();

  NotifyTarget target_;
  Figures figures_;
  boost::asio::steady_timer watchdog_timer_;
  boost::asio::steady_timer status_timer_;
  ServicePhase phase_ = ServicePhase::ready;
  std::string last_reload_;
  std::string last_status_;
  bool ready_sent_ = false;  // reloads before it only change what it says
  bool failing_ = false;     // the last send failed (logged once)
};

}  // namespace jobhost::daemon
