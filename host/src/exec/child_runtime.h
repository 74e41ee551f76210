// The child side of a run: what happens between fork() and _exit() in the
// run's process. Internal to the executor; see executor.h for the contract.
#pragma once

#include <jobhost/plugin.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace jobhost::exec {

struct RunRequest;
struct Credentials;
struct SandboxPlan;
struct NamespacePlan;

// Everything the child needs, prepared by the parent before fork so the child
// only reads it.
struct ChildPlan {
  const RunRequest* request = nullptr;
  int control_fd = -1;  // child end of the control socket
  int output_fd = -1;   // write end of the stdout+stderr pipe
  pid_t parent_pid = 0;
  const std::vector<std::string>* cgroup_procs = nullptr;  // cgroup.procs files to join
  const Credentials* credentials = nullptr;
  // The plugin's entry point when it is already loaded (preloaded by the fork
  // server); nullptr: the child dlopens request->plugin_path.
  jobhost_entry_fn entry = nullptr;
  // sandbox: namespaces, mounts and the syscall filter (exec/sandbox.h); nullptr: none.
  const SandboxPlan* sandbox = nullptr;
  // Environment (issue 13): the run's NULL-terminated "NAME=value" array,
  // built by the fork server (exec/environment.h); nullptr = empty.
  char* const* envp = nullptr;
  // Host not root: the namespaces the fork server cloned this process into
  // (exec/sandbox.h); nullptr: a plain fork. This process then becomes the
  // namespace's init: it sets the namespaces up, forks the run's process,
  // forwards SIGTERM to it, and writes its wait status on `status_fd` for
  // the server before exiting. `server_pidfd`: the server, which getppid()
  // cannot name from inside a pid namespace.
  const NamespacePlan* namespaces = nullptr;
  int status_fd = -1;
  int server_pidfd = -1;
  // A parked run's gate (the read end of a pipe shared by the runs parked
  // for one instant): a byte written to it releases them all at once (its
  // write end closing without one, as at the daemon's death, releases
  // nobody). -1: released by kReleaseByte on the control socket only.
  int gate_fd = -1;
};

// Exit codes of the child when it cannot report a result itself.
inline constexpr int kChildExitSetupFailed = 126;  // a setup_error record was sent
inline constexpr int kChildExitOrphaned = 125;     // the parent died before we started
inline constexpr int kChildExitNotReleased = 124;  // parked, then discarded or orphaned

// The byte on the control socket that starts a parked run (any other byte,
// or the socket's end, ends it without running the plugin).
inline constexpr char kReleaseByte = 'r';

// Once in the fork server, before its first fork: registers the at-fork
// handler the runs' own forks need and drops the stdio bytes the server
// inherited from the daemon, so that no run has to (each page a run writes
// costs it a copy-on-write fault).
void prepare_fork_server() noexcept;

// Sets the child up (process group, death signal, SIGTERM handler, signal
// mask, descriptors, cgroup, rlimits, sandbox namespaces and mounts,
// privileges, then the syscall filter), loads the plugin, calls
// init/run/shutdown, sends the result and _exits. Never returns. Expects
// every signal blocked and every disposition default, and
// prepare_fork_server() done, as a child of the fork server has them.
[[noreturn]] void run_child(const ChildPlan& plan) noexcept;

}  // namespace jobhost::exec
