// Hot reload, the pure part: what changed between two plugin sets and two
// job tables, which plugin build is in service per file, what a config
// change cannot apply live, and which shadow copies may go. No I/O, no
// clock: the Reloader (reloader.h) wires these to inotify, probes and the
// engine. See docs/deploying.md.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "config/config.h"

namespace jobhost::reload {

// JSON of an accepted plugin, as `jobhost plugins --json` prints it.
nlohmann::json plugin_json(const catalog::PluginInfo& p);

// One plugin name whose build in service changes; nullopt = none.
struct PluginChange {
  std::string name;
  std::optional<catalog::PluginInfo> before;
  std::optional<catalog::PluginInfo> after;
};
// By plugin name, sorted; a plugin whose sha256 did not change is not listed.
std::vector<PluginChange> diff_plugins(const catalog::ScanResult& before,
                                       const catalog::ScanResult& after);
// "hello 1.0.0 (sha256 1a2b3c4d5e6f) -> 2.0.0 (sha256 ...)", "hello added ...",
// "hello removed (was ...)".
std::string describe(const PluginChange& change);

// What the daemon knows about one file of the plugin directories (keyed by
// its path).
struct PluginFile {
  std::filesystem::path path;                     // the file in a plugin directory
  std::optional<catalog::PluginInfo> in_service;  // the last build of this file that was accepted
  std::optional<std::string> rejection;           // why its current content is refused, if it is
  std::size_t dir_rank = 0;                       // its directory's place in [host] plugin_dir
};
// The plugins runs use: each file's build in service, of several files with
// the same plugin name the first by dir_rank, then by key (as Catalog::scan: a
// key is the file's path, or its name, in one directory), the others
// and every current rejection listed as rejected (with "(build in service:
// VERSION)" when an older build of that file stays in service).
catalog::ScanResult served_plugins(const std::map<std::string, PluginFile>& files);

// [host] / [http] settings that differ between the running config and a new
// one and only take effect after a restart ("state_dir", "plugin_dir",
// "log_format", "durability", "http.listen"); max_concurrency and timezone
// apply live.
std::vector<std::string> settings_needing_restart(const config::Config& running,
                                                  const config::Config& loaded);

// A file in the shadow directory.
struct ShadowFile {
  std::string name;  // "<sha256>.so", or ".incoming-XXXXXX" (a copy in progress)
  std::chrono::system_clock::time_point modified;
};
// Shadow copies older than `max_age` whose sha256 is not in `keep`, and
// temporary copies older than `max_age` (left by a crash mid-copy). Names of
// other files are never returned.
std::vector<std::string> shadow_files_to_remove(const std::vector<ShadowFile>& files,
                                                const std::set<std::string>& keep,
                                                std::chrono::system_clock::time_point now,
                                                std::chrono::system_clock::duration max_age);

}  // namespace jobhost::reload
