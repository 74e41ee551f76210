// Notifiers: how an alert or a recovery reaches someone ([alerts.NAME] in
// the config). Each runs on the daemon's io_context and never blocks it.
//   command: an executable, isolated as a host-side helper (command_notifier.cpp).
//   webhook: an HTTP(S) POST with certificate checks and retries (webhook.cpp).
// docs/observability.md "Alerts" describes both.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "config/config.h"
#include "exec/isolation.h"

namespace jobhost::observe {

// How one delivery ended: ok, or the error (its last attempt's) in words.
struct Delivery {
  bool ok = false;
  std::string error;  // empty when ok
  int attempts = 0;
  // Ended by cancel_all (the daemon stopped, the notifier was replaced), not
  // by the receiver: the notice stays pending and is sent again at the next start.
  bool abandoned = false;
};
using Delivered = std::function<void(Delivery)>;

class Notifier {
 public:
  virtual ~Notifier() = default;
  // Starts delivering `notice` (the JSON document of docs/observability.md);
  // `done` is called exactly once, from the loop's thread, never from inside
  // send(). Deliveries run side by side.
  virtual void send(const nlohmann::json& notice, Delivered done) = 0;
  // Ends every delivery in flight now (commands killed and reaped, sockets
  // closed); their `done` is called with the error "abandoned: <why>".
  virtual void cancel_all(const std::string& why) = 0;
  // Deliveries in flight.
  virtual std::size_t in_flight() const = 0;
};

// A notifier for `config` (already validated by config::load_config).
// Error: a webhook's CA file cannot be loaded, or the TLS context cannot be made.
Result<std::unique_ptr<Notifier>> make_notifier(boost::asio::io_context& io,
                                                const config::NotifierConfig& config);

// The command notifier's environment for `notice`: PATH=/usr/bin:/bin,
// LANG=C.UTF-8 and JOBHOST_* variables (NUL bytes removed, values bounded).
std::vector<std::string> notice_environment(const nlohmann::json& notice);

// Limits of a command notifier's process.
inline constexpr uint64_t kCommandMemoryBytes = 1ull << 30;  // RLIMIT_AS
inline constexpr uint64_t kCommandOpenFiles = 256;           // RLIMIT_NOFILE
inline constexpr uint64_t kCommandFileSize = 64ull << 20;    // RLIMIT_FSIZE
// Who a command notifier without `user` runs as when the daemon is root.
inline constexpr std::string_view kCommandDefaultUser = "nobody";
inline constexpr std::string_view kCommandDefaultGroup = "nogroup";  // else nobody's group
// The ids a command notifier runs as (parent side, looked up at each start):
// its user/group; nobody/nogroup when the daemon is root and no user is
// named; change=false when the daemon is not root. Error: an unknown name.
Result<exec::Credentials> notifier_credentials(const config::NotifierConfig& config);
// Kept of a command's stdout+stderr for the error message.
inline constexpr std::size_t kCommandOutputTail = 1024;

// Webhook retry delays: 1 s, 2 s, 4 s, ... at most kWebhookMaxBackoff.
inline constexpr Duration kWebhookFirstBackoff = std::chrono::seconds(1);
inline constexpr Duration kWebhookMaxBackoff = std::chrono::seconds(60);
Duration webhook_backoff(int failed_attempts);

std::unique_ptr<Notifier> make_command_notifier(boost::asio::io_context& io,
                                                const config::NotifierConfig& config);
Result<std::unique_ptr<Notifier>> make_webhook_notifier(boost::asio::io_context& io,
                                                        const config::NotifierConfig& config);

}  // namespace jobhost::observe
