// A run's sandbox options (config::Sandbox; docs/isolation.md "Sandbox
// options"): a network namespace with loopback only, a private /tmp, a
// read-only file system, and a seccomp filter that denies what jobs never
// need. The fork server prepares a SandboxPlan before each fork (paths,
// mount options, the filter compiled to BPF once per server); the child only
// makes system calls with it.
//
// Child order (exec/child_runtime.cpp): ... rlimits, enter_sandbox_in_child,
// environment, privilege drop, ..., load_syscall_filter_in_child (last,
// just before the plugin). Both are async-signal-safe: no allocation.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "config/config.h"
#include "exec/isolation.h"

namespace jobhost::exec {

// A path the run may write under read_only, with the text a failure names.
struct WritablePath {
  std::string path;
  std::string what;  // "bind-mounting /srv/x writable (read_write_paths)"
};

// What the child does, prepared by the fork server. Read-only after fork.
struct SandboxPlan {
  bool new_network = false;            // unshare(CLONE_NEWNET), loopback up
  bool new_mounts = false;             // unshare(CLONE_NEWNS), propagation to the host cut
  bool private_tmp = false;            // tmpfs on /tmp and /var/tmp
  bool read_only = false;              // every mount read-only, but `writable` and the private /tmp
  std::string tmpfs_options;           // "mode=1777,uid=N,gid=N[,size=N]"
  std::vector<WritablePath> writable;  // the state directory, then read_write_paths
  // The compiled filter (syscall_filter = "default"); empty: no filter.
  const std::vector<sock_filter>* filter = nullptr;
  // Set when the filter could not be built: the child fails its setup with it.
  const char* filter_error = nullptr;
};

// Fork server, before fork: the plan for `sandbox` (its read_write_paths as
// the server received them: the job's state directory first, if any) and
// the run's credentials (the private /tmp belongs to the uid/gid the run
// switches to, else to the server's). A private /tmp holds at most
// `tmp_size` bytes (the run's memory limit; 0: the kernel's default, half of
// RAM). Never fails: a filter that cannot be built is reported by the child.
SandboxPlan prepare_sandbox(const config::Sandbox& sandbox, const Credentials& credentials,
                            uint64_t tmp_size);

// Host not root (docs/security.md "Host not root"): each run in a user
// namespace of its own (the host's uid and gid mapped to themselves, so the
// run keeps them), a pid namespace of its own (it sees and signals only its
// own processes, and they all die with it) and a mount namespace in which the
// state directory is an empty read-only tmpfs but for the run's own state
// directory and the plugins' shadow copies (read-only), and /proc is that of
// its pid namespace. Prepared by the fork server before the clone; read-only
// after it. Strings are empty when unused.
struct NamespacePlan {
  std::string uid_map;      // "U U 1"
  std::string gid_map;      // "G G 1"
  std::string hidden_dir;   // <state_dir>: the tmpfs goes here
  std::string jobs_dir;     // <state_dir>/jobs (made in the tmpfs)
  std::string job_dir;      // <state_dir>/jobs/<job>: bound back (the run's state directory)
  std::string plugins_dir;  // <state_dir>/plugins: bound back read-only
};

// Fork server, before the clone: the plan for a run with `state_directory`
// (<state_dir>/jobs/<job>, or empty) under `state_dir`.
NamespacePlan prepare_namespaces(const std::string& state_dir, const std::string& state_directory);

// Child side, first, in the namespaces the fork server cloned it into (only
// then): writes the uid and gid maps, makes the mounts private, hides the
// state directory as the plan says, and mounts /proc. Async-signal-safe.
std::optional<ChildSetupError> enter_namespaces_in_child(const NamespacePlan& plan) noexcept;

// The clone of a run into those namespaces (the fork server's fork when the
// host is not root): 0 in the child, its pid in the parent, -1 and errno.
// The caller must be single-threaded (a user namespace demands it).
pid_t clone_run_namespaces() noexcept;

// At daemon start: when the host is not root and probe_run_namespaces()
// passes, sets caps.hidden_state_dir to `state_dir` (every run then gets
// namespaces of its own); says in caps.description which it is and why.
void use_run_namespaces(IsolationCaps& caps, const std::filesystem::path& state_dir);

// Fine when this process may clone a run into the namespaces above: it is
// not root, and a throwaway child cloned with them could write its maps,
// hide `state_dir` and mount a /proc (the kernel allows unprivileged user
// namespaces). Error: why not (the step and its errno), for the log.
Result<void> probe_run_namespaces(const std::filesystem::path& state_dir);

// The system calls syscall_filter = "default" denies (a blocked call kills
// the run with SIGSYS), by name. clone with a CLONE_NEW* flag is denied too,
// and clone3 fails with ENOSYS (its flags cannot be inspected) so that libc
// falls back to clone.
const std::vector<const char*>& denied_syscalls();

// Compiles the default filter to BPF for the native architecture (and its
// 32-bit ABIs on x86-64). Error: libseccomp's reason.
Result<std::vector<sock_filter>> build_default_filter();

// Child side, after rlimits and before the privilege drop (it needs root):
// the new namespaces and mounts of the plan. Nothing to do: nullopt.
std::optional<ChildSetupError> enter_sandbox_in_child(const SandboxPlan& plan) noexcept;

// Child side, last before the plugin: installs the SIGSYS handler that tells
// the host which call was blocked (a blocked_syscall record on `control_fd`)
// and then dies of SIGSYS, sets no_new_privs, and loads the filter.
std::optional<ChildSetupError> load_syscall_filter_in_child(const SandboxPlan& plan,
                                                            int control_fd) noexcept;

// Host side: the name of system call `number` of audit architecture `arch`
// (the blocked_syscall record's payload, from an untrusted child), or
// "system call N" when unknown.
std::string syscall_name(int32_t number, uint32_t arch);

}  // namespace jobhost::exec
