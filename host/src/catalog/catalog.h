// The plugin catalog: which *.so files in the plugin directories may be loaded, what they
// are (name, version, ABI, sha256), and where their content-addressed shadow
// copies live. Every rejected file comes with a reason a user can act on.
// See docs/plugins.md for the rules and every rejection reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "catalog/probe.h"
#include "common/time.h"

namespace jobhost::catalog {

// An accepted plugin.
struct PluginInfo {
  std::string name;  // from the descriptor; what config `plugin = ...` names
  std::string version;
  std::string description;
  uint16_t abi_major = 0;
  uint16_t abi_minor = 0;
  std::string sha256;                 // of the file's content, lowercase hex
  std::filesystem::path path;         // the file in a plugin directory
  std::filesystem::path shadow_path;  // <shadow_dir>/<sha256>.so: what runs load
};

// A file (or a plugin directory itself) that will not be loaded, and why.
struct Rejection {
  std::filesystem::path path;
  std::string reason;  // what is wrong and what to do; does not repeat the path
};

// The outcome of one scan: accepted in scan order (directory by directory,
// each by file name), rejected sorted by path.
struct ScanResult {
  std::vector<PluginInfo> accepted;  // at most one per plugin name
  std::vector<Rejection> rejected;

  // The accepted plugin called `name`, or nullptr. Valid while this result lives.
  const PluginInfo* find(std::string_view name) const;
};

// Why `loser` is rejected when `winner` (a file) has its plugin name: names
// both files and the rule that chose.
std::string duplicate_reason(const PluginInfo& loser, const std::filesystem::path& winner);

// Scans the plugin directories ([host] plugin_dir). Keeps a cache of probe results keyed by sha256,
// so scanning unchanged files again forks no probe; keep one Catalog for the
// life of the daemon and call scan() (or probe_file()) again on a change.
// Not thread-safe; call from the thread that owns it (see probe() about forking).
class Catalog {
 public:
  // `plugin_dirs` in the order they are scanned (at least one); `shadow_dir`
  // (normally <state_dir>/plugins) is created on first use.
  Catalog(std::vector<std::filesystem::path> plugin_dirs, std::filesystem::path shadow_dir,
          Duration probe_timeout = kDefaultProbeTimeout);
  Catalog(std::filesystem::path plugin_dir, std::filesystem::path shadow_dir,
          Duration probe_timeout = kDefaultProbeTimeout);

  // Checks every *.so in each plugin directory (not recursive; names starting
  // with "." and files not ending in ".so" are ignored). A problem with a
  // plugin directory (missing, unsafe permissions) is one Rejection for that
  // directory and none of its files is accepted; one with shadow_dir, and
  // nothing is. Of several files with the same plugin name, the first is
  // accepted and the others rejected: the earlier directory's, then in one
  // directory the first by file name.
  ScanResult scan();

  // Checks one plugin directory as scan() does (it exists, is a directory,
  // owner and permissions are safe): its Rejection, or nullopt when it is fine.
  std::optional<Rejection> check_plugin_dir(const std::filesystem::path& dir) const;

  // Checks one file as scan() does (permissions, ELF header, probe, ABI) and
  // installs its shadow copy; does not check its directory or duplicate names.
  // Blocks for up to the probe timeout when the content is new.
  std::expected<PluginInfo, Rejection> probe_file(const std::filesystem::path& file);

  // probe_file() in two halves, so that a caller with an event loop can run
  // the probe child asynchronously (start_probe() in probe.h) in between.
  // A content that still needs its probe: probe `probed` (a private copy of
  // exactly the bytes hashed), then hand the result to finish_probe().
  struct PendingProbe {
    std::filesystem::path file;
    std::string sha256;
    std::filesystem::path probed;               // the intact shadow copy, or `temp`
    std::optional<std::filesystem::path> temp;  // a new copy: committed or removed by finish
  };
  using Prepared = std::variant<PluginInfo, Rejection, PendingProbe>;
  // Every check but the probe; a cached verdict answers at once.
  Prepared prepare_probe(const std::filesystem::path& file);
  // Applies the probe's result: checks the descriptor, caches the verdict,
  // installs the shadow copy.
  std::expected<PluginInfo, Rejection> finish_probe(const PendingProbe& pending,
                                                    const ProbeResult& result);

  Duration probe_timeout() const { return probe_timeout_; }

  const std::vector<std::filesystem::path>& plugin_dirs() const { return plugin_dirs_; }
  // The position of `dir` in plugin_dirs() (which one wins a duplicate name),
  // or plugin_dirs().size() when it is none of them.
  std::size_t dir_rank(const std::filesystem::path& dir) const;
  const std::filesystem::path& shadow_dir() const { return shadow_dir_; }
  // How many probe children this catalog has forked (the cache avoids re-probing).
  std::size_t probes_run() const { return probes_run_; }

 private:
  // What probing one content decided (the descriptor, or the rejection reason).
  using Verdict = std::expected<Descriptor, std::string>;

  std::vector<std::filesystem::path> plugin_dirs_;
  std::filesystem::path shadow_dir_;
  Duration probe_timeout_;
  std::map<std::string, Verdict> verdicts_;  // by sha256, for the life of the catalog
  std::size_t probes_run_ = 0;
};

}  // namespace jobhost::catalog
