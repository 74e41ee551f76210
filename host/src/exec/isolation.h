// Run isolation: what the kernel offers for containing a run (cgroup v2, cgroup
// v1, or nothing but rlimits), a per-run cgroup, and the child-side steps that
// apply rlimits and drop privileges. See docs/isolation.md for the three modes.
//
// Fork discipline: everything named *_in_child runs in the forked child before
// the plugin is loaded and is async-signal-safe (no allocation, no locks), so it
// stays correct if the daemon ever becomes multi-threaded. Order in the child:
// RunCgroup::join_in_child, apply_rlimits_in_child, drop_privileges_in_child
// (limits and cgroup membership need the privileges that the last step drops).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "config/config.h"

namespace jobhost::exec {

// v2: one cgroup v2 per run with memory and pids limits (killed with cgroup.kill).
// v1: one cgroup per run in the v1 memory and pids hierarchies.
// none: rlimits and the process group only.
enum class CgroupMode { v2, v1, none };

std::string_view to_string(CgroupMode mode);

// What detect_isolation() found. Plain data; copy freely. Every path is the
// jobhost parent cgroup under which run cgroups are made (empty when unused).
struct IsolationCaps {
  CgroupMode mode = CgroupMode::none;
  // One line for the log, naming the mode, the paths, and why a better mode
  // is not in force (with what to change).
  std::string description;
  // v2: the parent with memory+pids (and cpu when available) enabled for its
  // children. v1: a controller-less v2 parent used only for cgroup.kill
  // (empty when the host has no writable v2 tree with cgroup.kill).
  std::filesystem::path v2_parent;
  std::filesystem::path memory_parent;  // v1 only
  std::filesystem::path pids_parent;    // v1 only
  bool v2_kill = false;                 // cgroup.kill exists under v2_parent
  // Host not root, where the kernel allows unprivileged user namespaces:
  // the state directory, which every run's namespaces hide from it
  // (exec/sandbox.h, use_run_namespaces). Empty: runs are plain forks.
  std::filesystem::path hidden_state_dir;
};

// Inputs of detection; the defaults describe the running process.
struct DetectOptions {
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  // Name of the jobhost parent cgroup. Daemons that share a machine must use
  // different names (see parent_cgroup_name) or cleanup_stale of one would
  // kill the runs of the other.
  std::string parent_name = "jobhost";
  // Text of /proc/self/cgroup ("0::/a/b", "4:memory:/x"); read when unset. The
  // parent is made inside the process's own cgroup when that directory exists
  // under cgroup_root (a delegated subtree), else at the hierarchy's top.
  std::optional<std::string> self_cgroup;
};

// Finds the best mode (v2, then v1, then none) and creates the jobhost parent
// cgroup(s) it needs (idempotent), enabling controllers in v2. Never fails: a
// mode that cannot be set up is skipped, and the description says why.
// Call once at daemon start and log caps.description.
IsolationCaps detect_isolation(const std::filesystem::path& cgroup_root = "/sys/fs/cgroup");
IsolationCaps detect_isolation(const DetectOptions& options);

// "jobhost-" + 12 hex digits of a hash of state_dir: a parent name unique per
// daemon (one daemon per state directory is enforced by its lock file).
std::string parent_cgroup_name(const std::filesystem::path& state_dir);

// What cleanup_stale() did.
struct StaleCleanup {
  std::size_t removed = 0;            // run cgroups killed and removed
  std::vector<std::string> problems;  // one line per cgroup that could not be removed
};

// At daemon start, while holding the state-dir lock: kills every process in,
// and removes, each run cgroup left under the parent(s) by a host that died.
StaleCleanup cleanup_stale(const IsolationCaps& caps);

// Removes the (empty) jobhost parent cgroups at shutdown; false when one is
// still busy or cannot be removed. Never touches anything above the parents.
bool remove_parent_cgroups(const IsolationCaps& caps) noexcept;

// The uid/gid a run switches to. change=false: the run keeps the host's ids.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, primary included
  bool change = false;
};

// Parent side. Resolves the job's `user` (name or numeric uid) and `group`
// (name or gid): the group defaults to the user's primary group, the
// supplementary groups are the user's. Errors name the unknown user or group.
// Names are checked even when the host is not root; change=false then (the run
// stays as the host's user; the caller should say so in its log) and also when
// neither is named.
Result<Credentials> resolve_credentials(const std::optional<std::string>& user,
                                        const std::optional<std::string>& group);

// One run's cgroup(s). Movable, not copyable; a no-op object in mode none.
// Destroying one that was not removed calls remove(), but only in the process
// that created it (a forked child unwinding never kills its own cgroup).
class RunCgroup {
 public:
  // Parent, before fork: makes <parent>/<run_id> in every hierarchy of the
  // mode and writes the limits: memory (memory.max / memory.limit_in_bytes,
  // swap capped to the same), pids.max from limits.processes (0 = no limit).
  // CPU seconds stay with RLIMIT_CPU (cpu.max is a bandwidth, not a total).
  // Fails when run_id is not a plain name or a cgroup cannot be made/written.
  static Result<RunCgroup> create(const IsolationCaps& caps, std::string_view run_id,
                                  const config::Limits& limits);

  RunCgroup() = default;
  RunCgroup(RunCgroup&& other) noexcept;
  RunCgroup& operator=(RunCgroup&& other) noexcept;
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;
  ~RunCgroup();

  // Child, after fork, before dropping privileges: moves the calling process
  // into every cgroup of the run. Returns 0 or the errno of the failed write.
  int join_in_child() const noexcept;
  // The cgroup.procs files join_in_child writes, for a child forked elsewhere
  // (the fork server), which uses join_cgroups_in_child.
  const std::vector<std::string>& procs_files() const noexcept { return procs_; }

  // Parent: SIGKILLs every process in the run's cgroups (cgroup.kill where
  // available, else reading cgroup.procs until empty, bounded). Does not reap.
  void kill_all() noexcept;

  // "memory" when the run was OOM-killed by its cgroup, "processes" when a
  // fork failed at pids.max; nullopt otherwise (and always in mode none). Use
  // it to explain a failed run: a run may hit a limit, recover and succeed.
  // Counts only what happened since this run got the cgroup (see CgroupPool).
  std::optional<std::string> limit_hit() const;

  // CPU time used by every process of the run so far (cpu.stat usage_usec of
  // the run's v2 cgroup, also present in v1 mode with cgroup.kill); nullopt
  // without a v2 cgroup. Lets the host bound a run's total CPU, which
  // RLIMIT_CPU (per process) cannot.
  std::optional<std::chrono::microseconds> cpu_usage() const;

  // Peak memory charged to the run's cgroup since this run got it, in
  // bytes: v1 memory.max_usage_in_bytes (reset when a cgroup is reused),
  // v2 memory.peak of a cgroup made for this run (a reused v2 cgroup cannot
  // reset it for every reader: nullopt then). Includes the page cache the
  // run caused. nullopt in mode none or when unreadable.
  std::optional<std::uint64_t> memory_peak() const;

  // Parent, after the run is reaped: kill_all, then rmdir every cgroup,
  // retrying for up to ~200 ms while processes are still exiting. What is
  // still busy afterwards stays for a later remove() or cleanup_stale().
  void remove() noexcept;

  // True when no cgroup directory of this run is left (always in mode none).
  bool removed() const noexcept { return dirs_.empty(); }
  // The run's cgroup directories (memory, pids, kill-only v2 / the v2 one).
  const std::vector<std::string>& dirs() const noexcept { return dirs_; }

 private:
  friend class CgroupPool;

  // The counters limit_hit() and cpu_usage() read, as they stand now.
  struct Counters {
    std::uint64_t oom = 0;       // v2 memory.events oom
    std::uint64_t oom_kill = 0;  // v2 memory.events / v1 memory.oom_control oom_kill
    std::uint64_t pids_max = 0;  // pids.events max
    std::uint64_t cpu_usec = 0;  // v2 cpu.stat usage_usec (set by recycle only)
  };
  Counters read_counters() const;  // all but cpu_usec
  // After a run: true when nothing of it is left in the cgroups and they
  // hold little memory the kernel cannot reclaim (memory.stat anon/rss +
  // shmem); then the current counters become the next run's baseline. False
  // when the cgroup should be removed instead.
  bool recycle() noexcept;

  CgroupMode mode_ = CgroupMode::none;
  pid_t owner_ = 0;                 // the process that created it
  std::vector<std::string> dirs_;   // cgroup directories, created by us
  std::vector<std::string> procs_;  // <dir>/cgroup.procs, precomputed for the child
  std::string kill_file_;           // <v2 dir>/cgroup.kill, or empty
  std::string memory_dir_;          // where memory events are read, or empty
  std::string pids_dir_;            // where pids.events is read, or empty
  std::string v2_dir_;              // the run's v2 cgroup (cpu.stat), or empty
  std::uint64_t memory_limit_ = 0;  // the limits create() wrote (CgroupPool's key)
  std::uint64_t processes_limit_ = 0;
  Counters base_;        // the counters when this run got the cgroup
  bool reused_ = false;  // recycle()d at least once: v2 memory.peak is not this run's
};

// Run cgroups kept for the next runs. Making and removing a cgroup costs
// more than the syscalls: the kernel releases and frees each controller's
// state in deferred work (a dozen work items a run here) that competes with
// the runs for the CPU. So a cgroup left empty by a run is kept, with its
// counters as the next run's baseline, and given to a run with the same
// limits. Parent side only; one per Executor.
class CgroupPool {
 public:
  // At most this many idle cgroups are kept; the oldest goes first.
  static constexpr std::size_t kMaxIdle = 16;

  explicit CgroupPool(IsolationCaps caps);
  ~CgroupPool();  // removes the idle cgroups (in the process that made them)
  CgroupPool(const CgroupPool&) = delete;
  CgroupPool& operator=(const CgroupPool&) = delete;

  // An idle cgroup whose limits are `limits`, or a new one named `run_id`
  // (RunCgroup::create). A reused cgroup keeps the name of the run that made it.
  Result<RunCgroup> acquire(std::string_view run_id, const config::Limits& limits);
  // After the run is reaped: keeps the cgroup when RunCgroup::recycle says it
  // can be reused, else removes it (RunCgroup::remove).
  void release(RunCgroup cgroup) noexcept;
  // Removes every idle cgroup (before the parents are removed at shutdown).
  void clear() noexcept;

  std::size_t idle() const noexcept { return idle_.size(); }
  std::uint64_t made() const noexcept { return made_; }  // cgroups created so far

 private:
  IsolationCaps caps_;
  pid_t owner_;
  std::vector<RunCgroup> idle_;  // oldest first
  std::uint64_t made_ = 0;
};

// Child side: writes "0" (the calling process) to each cgroup.procs file.
// Returns 0 or the errno of the failed write.
int join_cgroups_in_child(const std::vector<std::string>& procs_files) noexcept;

// Why a child-side step failed: the errno and the call ("setrlimit(RLIMIT_AS)").
struct ChildSetupError {
  int err;
  const char* what;
};

// Child side, after fork: RLIMIT_AS = memory, unless `memory_in_cgroup` (the
// run's cgroup limits its memory: address space is not memory, and Go, the JVM
// and AddressSanitizer reserve far more of it than they use) or the host is
// built with AddressSanitizer; the inherited limit stays then. RLIMIT_CPU =
// cpu_time rounded up to seconds (SIGXCPU then, SIGKILL one second later),
// RLIMIT_NOFILE, RLIMIT_NPROC (not enforced for root: see docs/isolation.md),
// RLIMIT_FSIZE, RLIMIT_CORE = 0. A 0 value means unlimited, except for
// open_files where 0 keeps the inherited limit. A limit above the current hard
// limit that cannot be raised is clamped to it.
std::optional<ChildSetupError> apply_rlimits_in_child(const config::Limits& limits,
                                                      bool memory_in_cgroup = false) noexcept;

// Child side: setgroups, setgid, setuid (in that order) when creds.change;
// for a non-root uid also every capability: the bounding set (before
// setuid), then the effective, permitted, inheritable and ambient sets.
// Without creds.change, a process that is not root but holds capabilities
// (a run in a user namespace of its own) drops them all the same way.
// Then PR_SET_DUMPABLE (the run's /proc/self stays its own) and
// PR_SET_NO_NEW_PRIVS always. Verifies the drop: the ids are the asked ones
// and, for a non-root uid, no capability is left and setuid(0) fails.
std::optional<ChildSetupError> drop_privileges_in_child(const Credentials& creds) noexcept;

}  // namespace jobhost::exec
