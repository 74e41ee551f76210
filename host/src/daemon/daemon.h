// The daemon box: `jobhost run` wiring (the one io_context thread, the fork
// server executor, the engine, hot reload, the control socket, signals, the
// pid lock), and the client side of the control socket that the CLI uses.
//
// Contract: one daemon per state directory (an flock on <state_dir>/jobhost.pid);
// everything the daemon does happens on one thread; the CLI asks a running
// daemon for what only it knows (its next fires, its runs in flight, a
// trigger, a reload) through control_request: one JSON line each way on
// <state_dir>/jobhost.sock. See docs/architecture.md.
#pragma once

#include <expected>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/time.h"
#include "config/config.h"

namespace jobhost::daemon {

// Returns the process exit code: 0 after a clean shutdown, 1 when the daemon
// could not start (the reason is logged).
int run_daemon(config::Config config);

// The pid of the daemon holding state_dir's lock, or 0 when none does.
int running_daemon_pid(const std::filesystem::path& state_dir);

struct ControlError {
  enum class Kind {
    no_daemon,  // nothing listens on the socket (the CLI exits 3)
    no_answer,  // the daemon took the request but did not answer in time (exit 4)
    failed,     // anything else: a bad reply, a closed connection, a path too long
  };
  Kind kind = Kind::failed;
  std::string message;
};

// Sends `request` to the daemon on state_dir and waits up to `timeout` in all
// for its one-line JSON reply.
std::expected<nlohmann::json, ControlError> control_request(const std::filesystem::path& state_dir,
                                                            const nlohmann::json& request,
                                                            Duration timeout);

}  // namespace jobhost::daemon
