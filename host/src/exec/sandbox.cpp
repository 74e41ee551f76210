#include "exec/sandbox.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "exec/control_record.h"

namespace jobhost::exec {
namespace {

constexpr const char* kTmpDirs[] = {"/tmp", "/var/tmp"};
constexpr int kSysSeccomp = 1;  // si_code of a SIGSYS from SECCOMP_RET_TRAP (SYS_SECCOMP)

// The control descriptor the SIGSYS handler reports on (set before the
// filter is loaded, read only by the handler).
int g_sigsys_fd = -1;

// A blocked call: tell the host its number, then die of SIGSYS. The call
// itself was not made (SECCOMP_RET_TRAP). A plugin that installs its own
// handler only keeps itself alive without the call.
void on_sigsys(int, siginfo_t* info, void*) {
  const int saved = errno;
  if (info != nullptr && info->si_code == kSysSeccomp && g_sigsys_fd >= 0) {
    struct {
      RecordHeader header;
      int32_t number;
      uint32_t arch;
    } record{{8, static_cast<uint8_t>(RecordType::blocked_syscall), 0, 0},
             info->si_syscall,
             info->si_arch};
    static_assert(sizeof record == kRecordHeaderSize + 8);
    // One small write on a stream socket: not interleaved with other records.
    [[maybe_unused]] const ssize_t n = ::write(g_sigsys_fd, &record, sizeof record);
  }
  ::signal(SIGSYS, SIG_DFL);
  ::raise(SIGSYS);  // pending while the handler blocks it ...
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  ::sigprocmask(SIG_UNBLOCK, &sys, nullptr);  // ... delivered here: the process dies
  errno = saved;
  _exit(128 + SIGSYS);
}

// mount_setattr(2) (Linux 5.12); called directly so older libcs build too.
int set_mount_attr(const char* path, unsigned int flags, uint64_t set, uint64_t clear) {
  mount_attr attr{};
  attr.attr_set = set;
  attr.attr_clr = clear;
  return static_cast<int>(::syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr));
}

std::optional<ChildSetupError> bring_loopback_up() {
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return ChildSetupError{errno, "socket() to bring up lo (network = \"none\")"};
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  std::optional<ChildSetupError> failed;
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    failed = ChildSetupError{errno, "ioctl(SIOCGIFFLAGS, lo) (network = \"none\")"};
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
      failed = ChildSetupError{errno, "ioctl(SIOCSIFFLAGS, lo up) (network = \"none\")"};
    }
  }
  ::close(s);
  return failed;
}

bool is_directory(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<ChildSetupError> set_up_mounts(const SandboxPlan& plan) {
  // Nothing mounted here reaches the host, and the host's later mounts still
  // show up here (slave, as systemd does).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    return ChildSetupError{errno, "mount(\"/\", MS_REC | MS_SLAVE) in the run's mount namespace"};
  }
  if (plan.private_tmp) {
    for (const char* dir : kTmpDirs) {
      if (!is_directory(dir)) continue;  // no /var/tmp on this host: nothing to hide
      if (::mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, plan.tmpfs_options.c_str()) != 0) {
        return ChildSetupError{errno, dir == kTmpDirs[0]
                                          ? "mounting a tmpfs on /tmp (private_tmp)"
                                          : "mounting a tmpfs on /var/tmp (private_tmp)"};
      }
    }
  }
  if (!plan.read_only) return std::nullopt;
  if (set_mount_attr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0) != 0) {
    return ChildSetupError{
        errno, errno == ENOSYS ? "mount_setattr(\"/\", read-only) (read_only needs Linux "
                                 "5.12 or later)"
                               : "mount_setattr(\"/\", AT_RECURSIVE, read-only) (read_only)"};
  }
  if (plan.private_tmp) {
    for (const char* dir : kTmpDirs) {
      if (!is_directory(dir)) continue;
      if (set_mount_attr(dir, 0, 0, MOUNT_ATTR_RDONLY) != 0) {
        return ChildSetupError{errno, "making the private /tmp writable again (read_only)"};
      }
    }
  }
  // Each writable path: a bind mount of itself (read-only like its source),
  // then made writable; mounts below it stay read-only.
  for (const WritablePath& w : plan.writable) {
    const char* path = w.path.c_str();
    if (::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
        set_mount_attr(path, 0, 0, MOUNT_ATTR_RDONLY) != 0) {
      return ChildSetupError{errno, w.what.c_str()};
    }
  }
  return std::nullopt;
}

// Writes `text` to `path` (a /proc/self map file) in one write.
std::optional<ChildSetupError> write_proc_file(const char* path, const std::string& text,
                                               const char* what) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ChildSetupError{errno, what};
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return ChildSetupError{n < 0 ? err : EIO, what};
  return std::nullopt;
}

// Binds the directory open as `fd` onto `target` (a directory made in the
// tmpfs), through /proc/self/fd (the old /proc, still mounted).
int bind_from_fd(int fd, const char* target) {
  char source[32];
  std::snprintf(source, sizeof source, "/proc/self/fd/%d", fd);
  return ::mount(source, target, nullptr, MS_BIND | MS_REC, nullptr);
}

const std::vector<sock_filter>* g_filter = nullptr;  // built once per fork server
std::string* g_filter_error = nullptr;

}  // namespace

const std::vector<const char*>& denied_syscalls() {
  static const std::vector<const char*> names = {
      // Kernel modules, kexec, reboot.
      "init_module", "finit_module", "delete_module", "create_module", "query_module",
      "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot",
      // Mounts and the root directory (the sandbox set them up already).
      "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
      "fspick", "move_mount", "open_tree", "mount_setattr",
      // New namespaces (clone with CLONE_NEW* flags is denied separately).
      "unshare", "setns",
      // Swap, accounting, the clock, host names, kernel log, I/O ports.
      "swapon", "swapoff", "acct", "settimeofday", "stime", "clock_settime", "clock_adjtime",
      "adjtimex", "sethostname", "setdomainname", "syslog", "iopl", "ioperm", "vhangup",
      // Kernel attack surface jobs do not use.
      "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "lookup_dcookie", "uselib",
      "nfsservctl", "_sysctl",
      // Other processes' memory and descriptors.
      "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
      // The kernel keyring.
      "add_key", "request_key", "keyctl"};
  return names;
}

Result<std::vector<sock_filter>> build_default_filter() {
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ALLOW),
                                                       seccomp_release);
  if (!ctx) return fail("seccomp_init failed");
  auto check = [](int rc, std::string_view what) -> Result<void> {
    if (rc == 0) return {};
    return fail(fmt::format("{}: {}", what, std::strerror(-rc)));
  };
  // Calls of an ABI the filter does not know kill the whole run.
  if (auto r = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
                     "seccomp_attr_set(BADARCH)");
      !r) {
    return std::unexpected(r.error());
  }
  // A binary tree of system call numbers rather than a list: the kernel runs
  // the filter for every call number when it is loaded (to cache the ones
  // always allowed), which cost each run about 400 us with the list and
  // about 100 us with the tree (bench_dispatch --filter, docs/isolation.md).
  if (auto r = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2),
                     "seccomp_attr_set(OPTIMIZE)");
      !r) {
    return std::unexpected(r.error());
  }
  // The child sets no_new_privs itself and loads the exported program.
  if (auto r = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set(NNP)");
      !r) {
    return std::unexpected(r.error());
  }
  if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
    // A 64-bit job may run 32-bit programs: the same rules for their ABIs.
    for (uint32_t arch : {SCMP_ARCH_X86, SCMP_ARCH_X32}) {
      const int rc = seccomp_arch_add(ctx.get(), arch);
      if (rc != 0 && rc != -EEXIST) {
        return fail(fmt::format("seccomp_arch_add: {}", std::strerror(-rc)));
      }
    }
  }
  for (const char* name : denied_syscalls()) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp
    const int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_TRAP, nr, 0);
    if (rc != 0 && rc != -EDOM) {
      return fail(fmt::format("seccomp_rule_add({}): {}", name, std::strerror(-rc)));
    }
  }
  // clone's first argument is its flags on these ABIs; clone3's are in
  // memory the filter cannot read, so it is refused and libc uses clone.
  for (uint64_t flag : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                        CLONE_NEWNET, CLONE_NEWCGROUP}) {
    const int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_TRAP, SCMP_SYS(clone), 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc != 0) return fail(fmt::format("seccomp_rule_add(clone): {}", std::strerror(-rc)));
  }
  if (const int nr = seccomp_syscall_resolve_name("clone3"); nr != __NR_SCMP_ERROR) {
    const int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    if (rc != 0 && rc != -EDOM) {
      return fail(fmt::format("seccomp_rule_add(clone3): {}", std::strerror(-rc)));
    }
  }

  const int fd = ::memfd_create("jobhost-seccomp", MFD_CLOEXEC);
  if (fd < 0) return fail(fmt::format("memfd_create: {}", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (auto r = check(seccomp_export_bpf(ctx.get(), fd), "seccomp_export_bpf"); !r) {
    return std::unexpected(r.error());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size % sizeof(sock_filter) != 0) {
    return fail("seccomp_export_bpf wrote no whole program");
  }
  std::vector<sock_filter> program(static_cast<std::size_t>(st.st_size) / sizeof(sock_filter));
  if (::pread(fd, program.data(), static_cast<std::size_t>(st.st_size), 0) != st.st_size) {
    return fail(fmt::format("reading the exported filter: {}", std::strerror(errno)));
  }
  return program;
}

SandboxPlan prepare_sandbox(const config::Sandbox& sandbox, const Credentials& credentials,
                            uint64_t tmp_size) {
  SandboxPlan plan;
  plan.new_network = sandbox.network == config::Network::none;
  plan.private_tmp = sandbox.private_tmp;
  plan.read_only = sandbox.read_only;
  plan.new_mounts = plan.private_tmp || plan.read_only;
  if (plan.private_tmp) {
    const uid_t uid = credentials.change ? credentials.uid : ::getuid();
    const gid_t gid = credentials.change ? credentials.gid : ::getgid();
    plan.tmpfs_options = fmt::format("mode=1777,uid={},gid={}", uid, gid);
    // Bounded even where no cgroup charges tmpfs pages to the run.
    if (tmp_size > 0) plan.tmpfs_options += fmt::format(",size={}", tmp_size);
  }
  if (plan.read_only) {
    for (const std::string& path : sandbox.read_write_paths) {
      plan.writable.push_back(
          {path, fmt::format("bind-mounting {} writable (read_only: the state directory and "
                             "read_write_paths must exist)",
                             path)});
    }
  }
  if (sandbox.syscall_filter == config::SyscallFilter::standard) {
    if (g_filter == nullptr && g_filter_error == nullptr) {
      if (auto built = build_default_filter()) {
        g_filter = new std::vector<sock_filter>(std::move(*built));
      } else {
        g_filter_error = new std::string("building the syscall filter: " + built.error().message);
      }
    }
    plan.filter = g_filter;
    plan.filter_error = g_filter_error ? g_filter_error->c_str() : nullptr;
  }
  return plan;
}

std::optional<ChildSetupError> enter_sandbox_in_child(const SandboxPlan& plan) noexcept {
  const int flags = (plan.new_network ? CLONE_NEWNET : 0) | (plan.new_mounts ? CLONE_NEWNS : 0);
  if (flags == 0) return std::nullopt;
  if (::unshare(flags) != 0) {
    const char* what =
        !plan.new_mounts
            ? "unshare(CLONE_NEWNET) for network = \"none\" (the host must be root, or "
              "allowed user namespaces)"
        : !plan.new_network
            ? "unshare(CLONE_NEWNS) for private_tmp/read_only (the host must be root, or "
              "allowed user namespaces)"
            : "unshare(CLONE_NEWNET | CLONE_NEWNS) for the sandbox options (the host must be "
              "root, or allowed user namespaces)";
    return ChildSetupError{errno, what};
  }
  if (plan.new_network) {
    if (auto e = bring_loopback_up()) return e;
  }
  if (plan.new_mounts) {
    if (auto e = set_up_mounts(plan)) return e;
  }
  return std::nullopt;
}

std::optional<ChildSetupError> load_syscall_filter_in_child(const SandboxPlan& plan,
                                                            int control_fd) noexcept {
  if (plan.filter_error != nullptr) return ChildSetupError{0, plan.filter_error};
  if (plan.filter == nullptr) return std::nullopt;
  g_sigsys_fd = control_fd;
  struct sigaction sys {};
  sys.sa_sigaction = on_sigsys;
  sys.sa_flags = SA_SIGINFO;
  sigemptyset(&sys.sa_mask);
  if (::sigaction(SIGSYS, &sys, nullptr) != 0) return ChildSetupError{errno, "sigaction(SIGSYS)"};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ChildSetupError{errno, "prctl(PR_SET_NO_NEW_PRIVS)"};
  }
  sock_fprog program{static_cast<unsigned short>(plan.filter->size()),
                     const_cast<sock_filter*>(plan.filter->data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) {
    return ChildSetupError{errno, "loading the syscall filter (seccomp)"};
  }
  return std::nullopt;
}

NamespacePlan prepare_namespaces(const std::string& state_dir, const std::string& state_directory) {
  NamespacePlan plan;
  plan.uid_map = fmt::format("{0} {0} 1", ::getuid());
  plan.gid_map = fmt::format("{0} {0} 1", ::getgid());
  plan.hidden_dir = state_dir;
  plan.plugins_dir = state_dir + "/plugins";
  // The run's own directory is bound back only where it is expected to be.
  const std::string jobs = state_dir + "/jobs";
  if (state_directory.starts_with(jobs + "/") &&
      state_directory.find('/', jobs.size() + 1) == std::string::npos) {
    plan.jobs_dir = jobs;
    plan.job_dir = state_directory;
  }
  return plan;
}

std::optional<ChildSetupError> enter_namespaces_in_child(const NamespacePlan& plan) noexcept {
  // The map files of a process that is not dumpable belong to the host's
  // root: writable by us only while dumpable. Nothing else is in the
  // namespaces yet; the run's first process makes itself dumpable again.
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  std::optional<ChildSetupError> e =
      write_proc_file("/proc/self/setgroups", "deny", "writing /proc/self/setgroups");
  if (!e) e = write_proc_file("/proc/self/uid_map", plan.uid_map, "writing /proc/self/uid_map");
  if (!e) e = write_proc_file("/proc/self/gid_map", plan.gid_map, "writing /proc/self/gid_map");
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (e) return e;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    return ChildSetupError{errno, "mount(\"/\", MS_REC | MS_SLAVE) in the run's mount namespace"};
  }
  // What is bound back is opened before the tmpfs hides it.
  const char* hidden = plan.hidden_dir.c_str();
  const int job =
      plan.job_dir.empty() ? -1 : ::open(plan.job_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const int plugins = ::open(plan.plugins_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  std::optional<ChildSetupError> failed;
  if (::mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0711,size=64k,nr_inodes=64") != 0) {
    failed = ChildSetupError{errno, "mounting a tmpfs on the state directory (to hide it)"};
  } else if (job >= 0 && ((::mkdir(plan.jobs_dir.c_str(), 0711) != 0 && errno != EEXIST) ||
                          ::mkdir(plan.job_dir.c_str(), 0700) != 0 ||
                          bind_from_fd(job, plan.job_dir.c_str()) != 0)) {
    failed = ChildSetupError{errno, "binding the job's state directory back"};
  } else if (plugins >= 0 &&
             (::mkdir(plan.plugins_dir.c_str(), 0755) != 0 ||
              bind_from_fd(plugins, plan.plugins_dir.c_str()) != 0 ||
              set_mount_attr(plan.plugins_dir.c_str(), AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0) != 0)) {
    failed = ChildSetupError{errno, "binding the plugins' shadow copies back (read-only)"};
  } else if (set_mount_attr(hidden, 0, MOUNT_ATTR_RDONLY, 0) != 0) {
    failed = ChildSetupError{errno, "making the tmpfs on the state directory read-only"};
  } else if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    failed = ChildSetupError{errno, "mounting the /proc of the run's pid namespace"};
  }
  if (job >= 0) ::close(job);
  if (plugins >= 0) ::close(plugins);
  return failed;
}

Result<void> probe_run_namespaces(const std::filesystem::path& state_dir) {
  if (::geteuid() == 0) return fail("the host is root (runs get dynamic users instead)");
  // A throwaway child does what a run's init does, in namespaces of its own
  // (what it mounts is gone with it), and writes the step that failed.
  const NamespacePlan plan = prepare_namespaces(state_dir.string(), "");
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return fail(fmt::format("pipe2: {}", std::strerror(errno)));
  const pid_t pid = clone_run_namespaces();
  if (pid == 0) {
    const auto e = enter_namespaces_in_child(plan);
    if (e) {
      char text[200];
      std::snprintf(text, sizeof text, "%s: %s", e->what, std::strerror(e->err));
      [[maybe_unused]] const ssize_t w = ::write(report[1], text, std::strlen(text));
    }
    _exit(e ? 1 : 0);
  }
  const int clone_err = errno;
  ::close(report[1]);
  char text[200] = {};
  if (pid > 0) {
    [[maybe_unused]] const ssize_t n = ::read(report[0], text, sizeof text - 1);
  }
  ::close(report[0]);
  if (pid < 0) {
    return fail(fmt::format("an unprivileged user namespace cannot be made here: clone: {}",
                            std::strerror(clone_err)));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fail(fmt::format("a run's namespaces cannot be set up here: {}",
                            text[0] != '\0' ? text : "the probe was killed"));
  }
  return {};
}

void use_run_namespaces(IsolationCaps& caps, const std::filesystem::path& state_dir) {
  if (::geteuid() == 0) return;  // dynamic users (docs/security.md)
  if (auto probed = probe_run_namespaces(state_dir); !probed) {
    caps.description += fmt::format(
        "; runs keep the host's uid with no namespaces of their own, so they can signal the "
        "host and write its state directory ({}; allow unprivileged user namespaces, or run "
        "the host as root)",
        probed.error().message);
    return;
  }
  caps.hidden_state_dir = state_dir;
  caps.description +=
      "; each run in user, pid and mount namespaces of its own (the host is not root): it sees "
      "only its own processes and, of the state directory, its own directory and the plugins";
}

pid_t clone_run_namespaces() noexcept {
  // The raw system call forks like fork(2) (stack 0: the child continues on
  // a copy of ours), into new user, pid, mount and IPC namespaces; glibc's
  // clone() wants a function and a stack. Like _Fork, no at-fork handlers.
  return static_cast<pid_t>(
      ::syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | SIGCHLD,
                nullptr, nullptr, nullptr, nullptr));
}

std::string syscall_name(int32_t number, uint32_t arch) {
  if (number >= 0 && arch != 0) {
    if (char* name = seccomp_syscall_resolve_num_arch(arch, number)) {
      std::string out(name);
      std::free(name);
      return out;
    }
  }
  return fmt::format("system call {}", number);
}

}  // namespace jobhost::exec
