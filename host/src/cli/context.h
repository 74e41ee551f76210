// What most subcommands share: finding and loading the config, scanning plugins.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "config/config.h"

namespace jobhost::cli {

// --config, else $JOBHOST_CONFIG, else ./jobhost.toml.
std::filesystem::path resolve_config_path(const std::string& flag);

// Loads the config; on failure prints every error to stderr, one per line.
std::optional<config::Config> load_or_report(const std::filesystem::path& file);

// Scans the config's plugin_dir (probing new files in a child).
catalog::ScanResult scan_plugins(const config::Config& config);

}  // namespace jobhost::cli
