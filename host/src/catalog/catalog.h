// The plugin catalog: which *.so files in plugin_dir may be loaded, what they
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
  std::filesystem::path path;         // the file in plugin_dir
  std::filesystem::path shadow_path;  // <shadow_dir>/<sha256>.so: what runs load
};

// A file (or plugin_dir itself) that will not be loaded, and why.
struct Rejection {
  std::filesystem::path path;
  std::string reason;  // what is wrong and what to do; does not repeat the path
};

// The outcome of one scan, each list sorted by file name.
struct ScanResult {
  std::vector<PluginInfo> accepted;  // at most one per plugin name
  std::vector<Rejection> rejected;

  // The accepted plugin called `name`, or nullptr. Valid while this result lives.
  const PluginInfo* find(std::string_view name) const;
};

// Scans one plugin directory. Keeps a cache of probe results keyed by sha256,
// so scanning unchanged files again forks no probe; keep one Catalog for the
// life of the daemon and call scan() (or probe_file()) again on a change.
// Not thread-safe; call from the thread that owns it (see probe() about forking).
class Catalog {
 public:
  // `shadow_dir` (normally <state_dir>/plugins) is created on first use.
  Catalog(std::filesystem::path plugin_dir, std::filesystem::path shadow_dir,
          Duration probe_timeout = kDefaultProbeTimeout);

  // Checks every *.so in plugin_dir (not recursive; names starting with "."
  // and files not ending in ".so" are ignored). A problem with plugin_dir or
  // shadow_dir themselves (missing, unsafe permissions) is one Rejection for
  // that directory and nothing is accepted. Of several files with the same
  // plugin name, the first by file name is accepted and the others rejected.
  ScanResult scan();

  // Checks plugin_dir itself as scan() does (it exists, is a directory, owner
  // and permissions are safe): its Rejection, or nullopt when it is fine.
  std::optional<Rejection> check_plugin_dir() const;

  // Checks one file as scan() does (permissions, ELF header, probe, ABI) and
  // installs its shadow copy; does not check plugin_dir or duplicate names.
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

  const std::filesystem::path& plugin_dir() const { return plugin_dir_; }
  const std::filesystem::path& shadow_dir() const { return shadow_dir_; }
  // How many probe children this catalog has forked (the cache avoids re-probing).
  std::size_t probes_run() const { return probes_run_; }

 private:
  // What probing one content decided (the descriptor, or the rejection reason).
  using Verdict = std::expected<Descriptor, std::string>;

  std::filesystem::path plugin_dir_;
  std::filesystem::path shadow_dir_;
  Duration probe_timeout_;
  std::map<std::string, Verdict> verdicts_;  // by sha256, for the life of the catalog
  std::size_t probes_run_ = 0;
};

}  // namespace jobhost::catalog
