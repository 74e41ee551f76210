// The child side of a run: what happens between fork() and _exit() in the
// run's process. Internal to the executor; see executor.h for the contract.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace jobhost::exec {

struct RunRequest;
struct Credentials;

// Everything the child needs, prepared by the parent before fork so the child
// only reads it.
struct ChildPlan {
  const RunRequest* request = nullptr;
  int control_fd = -1;  // child end of the control socket
  int output_fd = -1;   // write end of the stdout+stderr pipe
  pid_t parent_pid = 0;
  const std::vector<std::string>* cgroup_procs = nullptr;  // cgroup.procs files to join
  const Credentials* credentials = nullptr;
};

// Exit codes of the child when it cannot report a result itself.
inline constexpr int kChildExitSetupFailed = 126;  // a setup_error record was sent
inline constexpr int kChildExitOrphaned = 125;     // the parent died before we started

// Sets the child up (process group, death signal, SIGTERM handler, signal
// mask, descriptors, cgroup, rlimits, privileges), loads the plugin, calls
// init/run/shutdown, sends the result and _exits. Never returns. Expects
// every signal blocked and every disposition default, as a child of the fork
// server has them.
[[noreturn]] void run_child(const ChildPlan& plan) noexcept;

}  // namespace jobhost::exec
