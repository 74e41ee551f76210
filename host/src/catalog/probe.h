// Probing a plugin: load it in a short-lived child, read its descriptor, report
// back on a pipe. The calling process never runs plugin code, not even a static
// initialiser, so a plugin that crashes or hangs while loading only fails its probe.
#pragma once

#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "catalog/checks.h"
#include "common/time.h"

namespace jobhost::catalog {

// How long a probe child may take to load a plugin and answer.
inline constexpr Duration kDefaultProbeTimeout = std::chrono::seconds(5);

// Why a probe produced no descriptor.
struct ProbeFailure {
  std::string reason;      // what went wrong and what to do about it
  bool transient = false;  // timed out, or the host could not fork: worth trying again later
};

using ProbeResult = std::expected<Descriptor, ProbeFailure>;

// Checks the ELF header of `so`, then loads it in a child forked for this
// purpose (Boost.DLL, RTLD_NOW | RTLD_LOCAL), looks up jobhost_plugin_v1 as a
// function, calls it and copies the descriptor back over a pipe. Waits at most
// `timeout`, then kills the child's process group; always reaps the child.
// Reasons name `shown_name` instead of `so` when given (the catalog probes a
// shadow copy but names the user's file). Does not apply check_descriptor().
// Blocks the caller for up to `timeout`. Call it from a single-threaded process
// (the daemon is one): the child runs the C++ runtime and Boost after fork().
ProbeResult probe(const std::filesystem::path& so, Duration timeout = kDefaultProbeTimeout,
                  std::string_view shown_name = {});

// A probe child started by start_probe(), for callers that wait on it
// asynchronously. The caller owns both: it reads `output_fd` until
// probe_answered() or EOF, then kills the process group `pid` (SIGKILL) and
// reaps `pid` (waitpid on this pid only), kills it at the timeout, closes
// `output_fd`, and hands what it saw to interpret_probe_report().
struct ProbeChild {
  int pid = -1;
  int output_fd = -1;  // read end of the child's report pipe, O_CLOEXEC
};

// Checks the ELF header of `so` and forks the probe child (as probe() does).
// Errors: the file cannot be read or is no loadable ELF (final), or pipe/fork
// failed (transient).
std::expected<ProbeChild, ProbeFailure> start_probe(const std::filesystem::path& so);

// True once `output` holds the child's final answer (a descriptor or an error).
bool probe_answered(std::string_view output);

// What the parent saw of a probe child: what it wrote and how it ended.
struct ProbeReport {
  std::string output;              // the child's messages, one JSON object per line
  std::optional<int> wait_status;  // from waitpid(); nullopt when it was killed for the timeout
};

// Pure: turns a probe child's report into a descriptor or a reason (crashed
// with which signal and where, hung, could not be loaded and why, no entry
// symbol, ...). `probed_path` in loader messages is replaced by `shown_name`.
ProbeResult interpret_probe_report(const ProbeReport& report, Duration timeout,
                                   std::string_view probed_path, std::string_view shown_name);

}  // namespace jobhost::catalog
