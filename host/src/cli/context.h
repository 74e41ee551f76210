// What most subcommands share: finding and loading the config, scanning plugins.
#pragma once

#include <expected>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "ledger/open_store.h"

namespace jobhost::cli {

// --config, else $JOBHOST_CONFIG, else ./jobhost.toml when it exists, else
// the installed config (<sysconfdir>/jobhost/jobhost.toml) when it exists,
// else ./jobhost.toml (whose absence the loader then reports).
std::filesystem::path resolve_config_path(const std::string& flag);

// Loads the config; on failure prints every error to stderr, one per line.
std::optional<config::Config> load_or_report(const std::filesystem::path& file);

// Reads only [host] and the job names (config::load_host_section), for the
// commands that need no more than the state directory; on failure prints
// every error to stderr, one per line.
std::optional<config::HostSection> load_host_or_report(const std::filesystem::path& file);

// Scans the config's plugin directories (probing new files in a child).
catalog::ScanResult scan_plugins(const config::Config& config);

// Where the shadow copies of plugins are: <state_dir>/plugins.
std::filesystem::path shadow_dir(const config::Config& config);

// The zone a job's times are shown in: its cron zone, else its own or the
// host's timezone, else UTC.
const date::time_zone* display_zone(const config::Config& config, const config::JobConfig& job);

// Opens the ledger in host.state_dir; on failure prints the error to stderr.
std::unique_ptr<ledger::Store> open_ledger_or_report(const config::HostConfig& host,
                                                     ledger::Access access);

// The JSON document in `path` ("-": stdin), within engine::kMaxEventBytes
// and kMaxEventDepth: a trigger's payload (`trigger --payload`,
// `run-plugin --event`). The error says what is wrong with it.
std::expected<nlohmann::json, std::string> read_payload(const std::string& path);

// Prints a failed control request to stderr; the exit code it maps to (3, 4 or 1).
int report_control_error(const daemon::ControlError& error);

}  // namespace jobhost::cli
