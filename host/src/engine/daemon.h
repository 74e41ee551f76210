// `jobhost run`: the daemon in the foreground, until SIGTERM or SIGINT.
#pragma once

#include "config/config.h"

namespace jobhost::engine {

// Returns the process exit code: 0 after a clean shutdown, 1 when the daemon
// could not start (the reason is logged).
int run_daemon(const config::Config& config);

// The ledger's path for a config.
std::filesystem::path ledger_path(const config::Config& config);

}  // namespace jobhost::engine
