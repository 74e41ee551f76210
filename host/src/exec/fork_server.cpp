#include "exec/fork_server.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string_view>

#include "common/pidfd.h"
#include "exec/child_runtime.h"
#include "exec/environment.h"
#include "exec/executor.h"
#include "exec/fork_plan.h"
#include "exec/isolation.h"
#include "exec/sandbox.h"

namespace jobhost::exec {
namespace {

constexpr char kSpawn = 'S';
constexpr char kReap = 'R';
// Largest request: a run's params and secrets travel in it. SOCK_SEQPACKET
// messages must fit the socket's send buffer (net.core.wmem_default).
constexpr std::size_t kMaxRequest = 160 * 1024;
constexpr int kReplyTimeoutMs = 10'000;

struct SpawnReply {
  int32_t pid = 0;
  int32_t err = 0;     // errno of the failed step, 0 when spawned
  int32_t retire = 0;  // the server must not fork again: start another
  char what[120] = {};
};

struct ReapReply {
  int32_t err = 0;
  siginfo_t info{};
  rusage usage{};
};

// Descriptors received with one message (close-on-exec).
struct ReceivedFds {
  int fd[4];
  int count = 0;
  void close_all() {
    for (int i = 0; i < count; ++i) ::close(fd[i]);
    count = 0;
  }
};

// Most descriptors one message carries (a parked run's spawn: control,
// output and gate); receive_message keeps up to 4.
constexpr std::size_t kMaxSentFds = 3;

// One message with up to kMaxSentFds descriptors attached.
ssize_t send_message(int sock, const void* data, std::size_t size, std::span<const int> fds) {
  if (fds.size() > kMaxSentFds) {
    errno = EINVAL;
    return -1;
  }
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxSentFds * sizeof(int))];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

// Receives one message into `buffer`; descriptors that came with it go to
// `fds`. Returns its size, 0 at EOF, -1 on error. Allocates nothing.
ssize_t receive_message(int sock, std::span<char> buffer, ReceivedFds& fds) {
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n >= 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (fds.count < 4) {
        fds.fd[fds.count++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  if (n >= 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

// --- the plan of a run, as it crosses the socket ----------------------------

// The plan is a flat binary record: numbers in host byte order, strings as a
// 32-bit length and the bytes, decoded by the server straight into the
// request (a JSON document would allocate a node per field).
class Writer {
 public:
  explicit Writer(char op) { out_.push_back(op); }
  template <class T>
  void number(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void text(std::string_view s) {
    number(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void map(const std::map<std::string, std::string>& m) {
    number(static_cast<uint32_t>(m.size()));
    for (const auto& [k, v] : m) {
      text(k);
      text(v);
    }
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <class T>
  bool number(T& v) {
    if (in_.size() < sizeof v) return false;
    std::memcpy(&v, in_.data(), sizeof v);
    in_.remove_prefix(sizeof v);
    return true;
  }
  bool text(std::string& s) {
    uint32_t n = 0;
    if (!number(n) || in_.size() < n) return false;
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool view(std::string_view& s) {
    uint32_t n = 0;
    if (!number(n) || in_.size() < n) return false;
    s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool map(std::map<std::string, std::string>& m) {
    uint32_t n = 0;
    if (!number(n)) return false;
    for (uint32_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!text(k) || !text(v)) return false;
      m.emplace(std::move(k), std::move(v));
    }
    return true;
  }
  // The count of a list whose entries take at least `entry_bytes` each:
  // false when the bytes left cannot hold that many, so that a corrupt count
  // never sizes a vector (4 billion groups would be 16 GiB).
  bool count(uint32_t& n, std::size_t entry_bytes) {
    return number(n) && n <= in_.size() / entry_bytes;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace

std::string encode_plan(const RunRequest& r, const std::vector<std::string>& procs,
                        const Credentials& c, bool preload) {
  Writer w(kSpawn);
  w.number(static_cast<uint8_t>(preload));  // read by the server
  w.text(r.plugin_path.native());           // read by the server
  w.text(r.job);
  w.text(r.run_id);
  w.text(r.trace_id);
  w.number(r.attempt);
  w.number(r.scheduled_for.time_since_epoch().count());
  w.map(r.params);
  w.map(r.secrets);
  const config::Limits& l = r.limits;
  w.number(l.memory_bytes);
  w.number(l.cpu_time.count());
  w.number(l.open_files);
  w.number(l.processes);
  w.number(l.file_size);
  w.number(l.output_bytes);
  w.number(static_cast<uint32_t>(procs.size()));
  for (const auto& p : procs) w.text(p);
  w.number(c.uid);
  w.number(c.gid);
  w.number(static_cast<uint32_t>(c.groups.size()));
  for (gid_t g : c.groups) w.number(g);
  w.number(static_cast<uint8_t>(c.change));
  // sandbox: the options; the writable paths are the state directory (if
  // any) and read_write_paths.
  const config::Sandbox& s = r.sandbox;
  w.number(static_cast<uint8_t>(s.network));
  w.number(static_cast<uint8_t>(s.private_tmp));
  w.number(static_cast<uint8_t>(s.read_only));
  w.number(static_cast<uint8_t>(s.syscall_filter));
  const bool with_state = !r.state_directory.empty();
  w.number(static_cast<uint32_t>(s.read_write_paths.size() + (with_state ? 1 : 0)));
  if (with_state) w.text(r.state_directory.native());
  for (const auto& path : s.read_write_paths) w.text(path);
  // Environment (issue 13): the run's whole environment, computed here.
  const std::vector<std::string> env = run_environment(r);
  w.number(static_cast<uint32_t>(env.size()));
  for (const auto& entry : env) w.text(entry);
  // --- dynamic users: the job's state directory (the run's working directory)
  w.text(r.state_directory.native());
  w.number(static_cast<uint8_t>(r.parked));
  // ABI 1.1: the trigger and its payload.
  w.text(r.trigger_kind);
  w.number(static_cast<uint8_t>(r.event.has_value()));
  if (r.event) w.text(*r.event);
  return w.take();
}

bool decode_plan(std::string_view text, Plan& p, bool& preload) {
  Reader in(text);
  RunRequest& r = p.request;
  config::Limits& l = r.limits;
  std::string path;
  Duration::rep scheduled = 0, cpu = 0;
  uint32_t count = 0;
  uint8_t wanted = 0;
  if (!in.number(wanted) || !in.text(path) || !in.text(r.job) || !in.text(r.run_id) ||
      !in.text(r.trace_id) || !in.number(r.attempt) || !in.number(scheduled) || !in.map(r.params) ||
      !in.map(r.secrets) || !in.number(l.memory_bytes) || !in.number(cpu) ||
      !in.number(l.open_files) || !in.number(l.processes) || !in.number(l.file_size) ||
      !in.number(l.output_bytes) || !in.count(count, sizeof(uint32_t))) {
    return false;
  }
  r.scheduled_for = TimePoint(Duration(scheduled));
  r.plugin_path = std::move(path);
  l.cpu_time = Duration(cpu);
  p.cgroup_procs.resize(count);
  for (auto& procs : p.cgroup_procs) {
    if (!in.text(procs)) return false;
  }
  Credentials& c = p.credentials;
  uint8_t change = 0;
  if (!in.number(c.uid) || !in.number(c.gid) || !in.count(count, sizeof(gid_t))) return false;
  c.groups.resize(count);
  for (gid_t& g : c.groups) {
    if (!in.number(g)) return false;
  }
  if (!in.number(change)) return false;
  c.change = change != 0;
  // sandbox
  config::Sandbox& s = r.sandbox;
  uint8_t network = 0, private_tmp = 0, read_only = 0, filter = 0;
  if (!in.number(network) || !in.number(private_tmp) || !in.number(read_only) ||
      !in.number(filter) || !in.count(count, sizeof(uint32_t)) || network > 1 || filter > 1) {
    return false;
  }
  s.network = static_cast<config::Network>(network);
  s.private_tmp = private_tmp != 0;
  s.read_only = read_only != 0;
  s.syscall_filter = static_cast<config::SyscallFilter>(filter);
  s.read_write_paths.resize(count);
  for (auto& path : s.read_write_paths) {
    if (!in.text(path) || path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) {
      return false;
    }
  }
  // Environment (issue 13): "NAME=value" entries, none with a NUL.
  if (!in.count(count, sizeof(uint32_t))) return false;
  p.environment.resize(count);
  for (auto& entry : p.environment) {
    if (!in.text(entry) || entry.find('\0') != std::string::npos ||
        entry.find('=') == std::string::npos) {
      return false;
    }
  }
  p.envp.reserve(count + 1);
  for (auto& entry : p.environment) p.envp.push_back(entry.data());
  p.envp.push_back(nullptr);
  // --- dynamic users
  std::string state_directory;
  if (!in.text(state_directory)) return false;
  r.state_directory = std::move(state_directory);
  uint8_t parked = 0;
  if (!in.number(parked) || parked > 1) return false;
  r.parked = parked != 0;
  uint8_t with_event = 0;
  if (!in.text(r.trigger_kind) || r.trigger_kind.find('\0') != std::string::npos ||
      !in.number(with_event) || with_event > 1) {
    return false;
  }
  if (with_event != 0) {
    r.event.emplace();
    // Handed to the plugin as a C string: no NUL inside.
    if (!in.text(*r.event) || r.event->find('\0') != std::string::npos) return false;
  }
  if (!in.done()) return false;
  preload = wanted != 0;
  return true;
}

namespace {

// --- the server ---------------------------------------------------------------
//
// The server does before the fork what would otherwise cost every child its
// first-touch faults: it decodes the plan and keeps each plugin loaded, so
// the child only reads them. What the server writes is small (the decoded
// plan, freed after the fork) and faults at most once per page per fork;
// a child's writes to pages it shares with the server each cost a
// copy-on-write fault while the run sets up.

void reply(int sock, const void* data, std::size_t size, int fd = -1) {
  send_message(sock, data, size, fd >= 0 ? std::span<const int>(&fd, 1) : std::span<const int>());
}

// Host not root, where the kernel allows: the state directory the runs'
// namespaces hide (fork_server_main's third argument); empty: plain forks.
std::string g_hidden_state_dir;
// Per run cloned into namespaces: the read end of the pipe on which its
// first process (the namespace's init) writes the run's wait status.
std::map<pid_t, int> g_status_pipes;
// A descriptor of the server itself: the runs cloned into a pid namespace
// (where getppid() is 0) poll it to tell whether the server is still alive.
int g_server_pidfd = -1;

[[noreturn]] void become_run(const Plan& plan, const ReceivedFds& fds, pid_t server,
                             jobhost_entry_fn entry, const NamespacePlan* namespaces,
                             int status_fd) noexcept {
  run_child(ChildPlan{&plan.request, fds.fd[0], fds.fd[1], server, &plan.cgroup_procs,
                      &plan.credentials, entry, &plan.sandbox, plan.envp.data(), namespaces,
                      status_fd, g_server_pidfd, fds.count > 2 ? fds.fd[2] : -1});
}

// Removes `pid`'s status pipe from g_status_pipes: its read end (the caller
// closes it), or -1 when it has none.
int take_status_pipe(pid_t pid) {
  const auto it = g_status_pipes.find(pid);
  if (it == g_status_pipes.end()) return -1;
  const int fd = it->second;
  g_status_pipes.erase(it);
  return fd;
}

// The wait status the namespace's init sent for `pid`, put in `info` as
// waitid would for the run's own process; nothing when there is none (the
// init was killed, or the run was not cloned into namespaces).
void apply_relayed_status(pid_t pid, siginfo_t& info) {
  const int fd = take_status_pipe(pid);
  if (fd < 0) return;
  int status = 0;
  const ssize_t n = ::read(fd, &status, sizeof status);
  ::close(fd);
  if (n != sizeof status) return;
  if (WIFEXITED(status)) {
    info.si_code = CLD_EXITED;
    info.si_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.si_code = WCOREDUMP(status) ? CLD_DUMPED : CLD_KILLED;
    info.si_status = WTERMSIG(status);
  }
}

// Reads /proc/self/<name> into `buf` (NUL-terminated); false if it cannot.
// Allocates nothing: it runs in the fork server between forks.
template <std::size_t N>
bool read_proc_self(const char* name, char (&buf)[N]) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/%s", name);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, N - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

// Threads of this process, from /proc/self/stat (field 20).
int thread_count() {
  char stat[1024];
  if (!read_proc_self("stat", stat)) return -1;
  const char* p = std::strrchr(stat, ')');
  for (int field = 2; p != nullptr && field < 20; ++field) p = std::strchr(p + 1, ' ');
  return p != nullptr ? std::atoi(p + 1) : -1;
}

// Bytes of address space this process has mapped (/proc/self/statm).
long mapped_bytes() {
  char statm[128];
  if (!read_proc_self("statm", statm)) return -1;
  return std::atol(statm) * ::sysconf(_SC_PAGESIZE);
}

// Plugins the server has loaded, so that its children find them mapped and
// skip dlopen's work (about 1 ms a run here). The probe already loaded each in
// a throwaway child, so their initialisers are known to return. Bounded:
// what they map counts against every run's RLIMIT_AS, whichever job it is.
constexpr long kMaxPreloadedBytes = 64l << 20;
// Path -> its entry point (nullptr when it could not be loaded: the run
// then loads it itself and reports why).
std::map<std::string, jobhost_entry_fn, std::less<>> g_preloaded;
long g_mapped_at_start = 0;  // set when the server starts

// Loads `path` unless it is loaded or the budget is spent, and sets `entry`
// to its entry point when it is loaded, so that the run skips dlopen too
// (nullptr: the run loads the plugin itself). Returns why this server must
// not fork any more, or nullptr: loading left it with a thread (an
// initialiser started one), or mapped more than the budget.
const char* preload(std::string_view path, jobhost_entry_fn& entry) {
  entry = nullptr;
  try {
    if (auto it = g_preloaded.find(path); it != g_preloaded.end()) {
      entry = it->second;
      return nullptr;
    }
    if (mapped_bytes() - g_mapped_at_start >= kMaxPreloadedBytes) return nullptr;
    auto it = g_preloaded.emplace(std::string(path), nullptr).first;
    // A failure is the run's to report: it loads the plugin itself.
    if (void* handle = ::dlopen(it->first.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      it->second = reinterpret_cast<jobhost_entry_fn>(::dlsym(handle, JOBHOST_ENTRY_SYMBOL));
    }
    entry = it->second;
  } catch (...) {
    return nullptr;  // out of memory: the run loads it itself
  }
  if (thread_count() != 1) return "loading the plugin started a thread in the fork server";
  if (mapped_bytes() - g_mapped_at_start > kMaxPreloadedBytes) {
    return "loading the plugin mapped more than the fork server's 64 MiB for preloaded plugins";
  }
  return nullptr;
}

void serve_spawn(int sock, std::string_view text, const ReceivedFds& fds) {
  SpawnReply out;
  auto refuse = [&](int err, const char* what) {
    out.err = err;
    std::snprintf(out.what, sizeof out.what, "%s", what);
    reply(sock, &out, sizeof out);
  };
  // The control socket and output pipe; a parked run may add its gate.
  if (fds.count != 2 && fds.count != 3) {
    return refuse(EINVAL, "spawn request without its two descriptors");
  }
  Plan plan;
  // A run's secrets must not reach the runs forked after it: wiped from the
  // request and the decoded plan once this run is forked (or refused).
  struct WipeSecrets {
    Plan& plan;
    std::string_view text;
    bool decoded = false;
    ~WipeSecrets() {
      if (decoded && plan.request.secrets.empty()) return;
      for (auto& [name, value] : plan.request.secrets) explicit_bzero(value.data(), value.size());
      explicit_bzero(const_cast<char*>(text.data()), text.size());
    }
  } wipe{plan, text};
  bool preload_it = false;
  try {
    if (!decode_plan(text, plan, preload_it) || (fds.count == 3 && !plan.request.parked)) {
      return refuse(EINVAL, "malformed spawn request");
    }
    wipe.decoded = true;
  } catch (...) {
    return refuse(ENOMEM, "decoding the spawn request");
  }
  try {
    plan.sandbox =
        prepare_sandbox(plan.request.sandbox, plan.credentials, plan.request.limits.memory_bytes);
  } catch (...) {
    return refuse(ENOMEM, "preparing the run's sandbox");
  }
  jobhost_entry_fn entry = nullptr;
  if (const char* why = preload_it ? preload(plan.request.plugin_path.native(), entry) : nullptr) {
    out.retire = 1;
    return refuse(EDEADLK, why);
  }
  const pid_t server = ::getpid();
  pid_t pid = -1;
  if (g_hidden_state_dir.empty()) {
    // The server has one thread, so _Fork will do: it skips the at-fork
    // handlers (they are for the runs' own forks) and the malloc and stdio
    // locking, each a write to pages that live runs share.
    pid = ::_Fork();
    if (pid == 0) become_run(plan, fds, server, entry, nullptr, -1);
    if (pid < 0) return refuse(errno, "fork");
  } else {
    NamespacePlan namespaces;
    int status[2];
    try {
      namespaces = prepare_namespaces(g_hidden_state_dir, plan.request.state_directory.native());
    } catch (...) {
      return refuse(ENOMEM, "preparing the run's namespaces");
    }
    if (::pipe2(status, O_CLOEXEC) != 0) return refuse(errno, "pipe2");
    pid = clone_run_namespaces();
    if (pid == 0) become_run(plan, fds, server, entry, &namespaces, status[1]);
    const int err = errno;
    ::close(status[1]);
    if (pid < 0) {
      ::close(status[0]);
      return refuse(err, "clone into new user, pid and mount namespaces");
    }
    g_status_pipes[pid] = status[0];
  }
  ::setpgid(pid, pid);  // the child does it too; whoever is first, kill(-pid) works from here
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    const int err = errno;
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (const int fd = take_status_pipe(pid); fd >= 0) ::close(fd);
    return refuse(err, "pidfd_open (jobhost needs Linux 5.3 or later)");
  }
  out.pid = pid;
  reply(sock, &out, sizeof out, pidfd);
  ::close(pidfd);
}

void serve_reap(int sock, std::string_view text) {
  ReapReply out;
  int32_t pid = 0;
  if (text.size() != sizeof pid) {
    out.err = EINVAL;
  } else {
    std::memcpy(&pid, text.data(), sizeof pid);
    // The raw system call also returns the child's rusage.
    if (syscall(SYS_waitid, P_PID, pid, &out.info, WEXITED, &out.usage) != 0) {
      out.err = errno;
    } else {
      apply_relayed_status(pid, out.info);
    }
  }
  reply(sock, &out, sizeof out);
}

[[noreturn]] void serve(int sock, pid_t daemon) noexcept {
  // Signals stay blocked (start() spawned it so); runs unblock theirs after
  // setting them up.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != daemon) _exit(0);
  // Not dumpable: a run of the host's own uid (host not root) cannot ptrace
  // the server or read its memory; each run makes itself dumpable again.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  // Keep 0-2 (runs replace them) and the socket; nothing else of the daemon's.
  if (sock > 3) ::close_range(3, sock - 1, 0);
  ::close_range(sock + 1, ~0U, 0);
  ::prctl(PR_SET_NAME, "jobhost-forks");
  if (!g_hidden_state_dir.empty()) g_server_pidfd = pidfd_open(::getpid());
  prepare_fork_server();
  g_mapped_at_start = mapped_bytes();

  // Mapped once, outside the heap; a request writes only the pages it fills.
  static char buffer[kMaxRequest + 1];
  for (;;) {
    ReceivedFds fds;
    const ssize_t n = receive_message(sock, buffer, fds);
    if (n <= 0) _exit(0);  // the daemon is gone (or the socket broke)
    const std::string_view text(buffer + 1, static_cast<std::size_t>(n) - 1);
    if (buffer[0] == kSpawn) {
      serve_spawn(sock, text, fds);
    } else if (buffer[0] == kReap) {
      serve_reap(sock, text);
    }
    fds.close_all();
  }
}

}  // namespace

namespace {

// The descriptor number of the socket in the exec'd server.
constexpr int kServerSocketFd = 3;

// Empty when `path` may be executed as the fork server: a regular,
// executable file owned by root or by us, that nobody else may write to.
std::string check_executable(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fmt::format("{}: {}", path.string(), std::strerror(errno));
  if (!S_ISREG(st.st_mode) || (st.st_mode & S_IXUSR) == 0) {
    return fmt::format("{}: not an executable file", path.string());
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return fmt::format("{}: owned by uid {}, neither root nor the host's user", path.string(),
                       st.st_uid);
  }
  if ((st.st_mode & 022) != 0) {
    return fmt::format("{}: writable by group or others (mode {:04o})", path.string(),
                       st.st_mode & 07777);
  }
  return {};
}

// The environment the server is executed with: nothing of the daemon's. In a
// sanitizer build, the sanitizers' options, so tests keep their settings.
std::vector<std::string> server_environment() {
  std::vector<std::string> env;
#if defined(__SANITIZE_ADDRESS__)
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) env.push_back(fmt::format("{}={}", name, value));
  }
#endif
  return env;
}

}  // namespace

Result<std::filesystem::path> fork_server_executable() {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(self.parent_path() / kForkServerName);
    candidates.push_back(
        (self.parent_path() / ".." / "libexec" / "jobhost" / kForkServerName).lexically_normal());
  }
#ifdef JOBHOST_FORK_SERVER_INSTALLED
  candidates.emplace_back(JOBHOST_FORK_SERVER_INSTALLED);
#endif
#ifdef JOBHOST_FORK_SERVER_BUILT
  candidates.emplace_back(JOBHOST_FORK_SERVER_BUILT);
#endif
  std::string tried;
  for (const fs::path& candidate : candidates) {
    if (!fs::exists(candidate, ec)) {
      tried += fmt::format("{}{} (missing)", tried.empty() ? "" : ", ", candidate.string());
      continue;
    }
    const std::string why = check_executable(candidate);
    if (why.empty()) return candidate;
    tried += fmt::format("{}{}", tried.empty() ? "" : ", ", why);
  }
  return fail(
      fmt::format("cannot find the fork server executable {} (install it next to the "
                  "jobhost binary); tried: {}",
                  kForkServerName, tried));
}

Result<std::unique_ptr<ForkServer>> ForkServer::start(const std::filesystem::path& hide) {
  auto executable = fork_server_executable();
  if (!executable) return std::unexpected(executable.error());
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return fail(fmt::format("cannot start the fork server: socketpair: {}", std::strerror(errno)));
  }
  // dup2 onto itself would leave close-on-exec set: move it off fd 3 first.
  if (sv[1] == kServerSocketFd) {
    const int moved = ::fcntl(sv[1], F_DUPFD_CLOEXEC, kServerSocketFd + 1);
    ::close(sv[1]);
    sv[1] = moved;
    if (moved < 0) {
      ::close(sv[0]);
      return fail(fmt::format("cannot start the fork server: fcntl: {}", std::strerror(errno)));
    }
  }
  const std::string path = executable->string();
  const std::string fd_arg = std::to_string(kServerSocketFd);
  const std::string pid_arg = std::to_string(::getpid());
  std::vector<std::string> env = server_environment();
  std::vector<char*> envp;
  for (auto& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const std::string hide_arg = hide.string();
  char* argv[] = {const_cast<char*>(kForkServerName), const_cast<char*>(fd_arg.c_str()),
                  const_cast<char*>(pid_arg.c_str()),
                  hide.empty() ? nullptr : const_cast<char*>(hide_arg.c_str()), nullptr};

  // posix_spawn (vfork and exec) rather than fork: the daemon's pages are
  // never copied, and the server starts from a clean image: none of the
  // daemon's memory (secrets it read, other runs' state) or environment.
  // Its own process group, every signal blocked, every disposition default.
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], kServerSocketFd);
  posix_spawnattr_init(&attr);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (err != 0) {
    ::close(sv[0]);
    return fail(fmt::format("cannot start the fork server: {}: {}", path, std::strerror(err)));
  }
  return std::unique_ptr<ForkServer>(new ForkServer(pid, sv[0]));
}

int fork_server_main(int argc, char** argv) noexcept {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "%s: internal to jobhost (its fork server); not meant to be run by hand\n",
                 argc > 0 ? argv[0] : kForkServerName);
    return 2;
  }
  const int sock = std::atoi(argv[1]);
  const pid_t daemon = static_cast<pid_t>(std::atol(argv[2]));
  if (sock < 3 || daemon <= 0 || ::fcntl(sock, F_GETFD) < 0) return 2;
  if (argc == 4) {
    try {
      g_hidden_state_dir = argv[3];
    } catch (...) {
      return 2;
    }
    if (g_hidden_state_dir.empty() || g_hidden_state_dir[0] != '/') return 2;
  }
  serve(sock, daemon);
}

ForkServer::~ForkServer() {
  if (sock_ >= 0) ::close(sock_);
  ::waitpid(pid_, nullptr, 0);  // it exits at EOF; or abandon() killed it
}

void ForkServer::abandon() {
  if (sock_ < 0) return;
  ::close(sock_);
  sock_ = -1;
  ::kill(pid_, SIGKILL);  // unreaped until our destructor: the pid is still ours
}

Result<std::vector<char>> ForkServer::call(const std::string& request, std::span<const int> fds,
                                           int* received_fd) {
  if (sock_ < 0) return fail("the fork server is gone");
  if (request.size() > kMaxRequest) {
    return fail(
        fmt::format("the request is {} bytes, over the fork server's {} (params and "
                    "secrets of one run must stay under that)",
                    request.size(), kMaxRequest));
  }
  if (send_message(sock_, request.data(), request.size(), fds) < 0) {
    const std::string why = fmt::format("the fork server is gone: {}", std::strerror(errno));
    abandon();
    return fail(why);
  }
  pollfd p{sock_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, kReplyTimeoutMs);
  } while (ready < 0 && errno == EINTR);
  std::vector<char> buffer(sizeof(ReapReply) + sizeof(SpawnReply));
  ReceivedFds got;
  const ssize_t n = ready > 0 ? receive_message(sock_, buffer, got) : -1;
  if (n <= 0) {
    got.close_all();
    const std::string why = ready == 0 ? "the fork server did not answer within 10 s"
                                       : "the fork server is gone (it exited or was killed)";
    abandon();
    return fail(why);
  }
  buffer.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < got.count; ++i) {
    if (i == 0 && received_fd != nullptr) {
      *received_fd = got.fd[i];
    } else {
      ::close(got.fd[i]);
    }
  }
  return buffer;
}

Result<ForkServer::Spawned> ForkServer::spawn(const RunRequest& request,
                                              const std::vector<std::string>& cgroup_procs,
                                              const Credentials& credentials, int control_fd,
                                              int output_fd, bool preload, int gate_fd) {
  std::string text = encode_plan(request, cgroup_procs, credentials, preload);
  int pidfd = -1;
  const int fds[] = {control_fd, output_fd, gate_fd};
  auto answer = call(text, std::span<const int>(fds, gate_fd >= 0 ? 3 : 2), &pidfd);
  explicit_bzero(text.data(), text.size());  // the run's secrets were in it
  if (!answer) return std::unexpected(answer.error());
  SpawnReply r;
  if (answer->size() != sizeof r) {
    if (pidfd >= 0) ::close(pidfd);
    return fail("the fork server sent a malformed reply");
  }
  std::memcpy(&r, answer->data(), sizeof r);
  if (r.retire != 0) {
    retired_ = true;
    return fail(r.what);
  }
  if (r.err != 0 || pidfd < 0) {
    if (pidfd >= 0) ::close(pidfd);
    return fail(fmt::format("{}: {}", r.what, std::strerror(r.err != 0 ? r.err : EPROTO)));
  }
  return Spawned{r.pid, pidfd};
}

Result<ForkServer::Reaped> ForkServer::reap(pid_t pid) {
  std::string text(1 + sizeof(int32_t), kReap);
  const int32_t p = pid;
  std::memcpy(text.data() + 1, &p, sizeof p);
  auto answer = call(text, {}, nullptr);
  if (!answer) return std::unexpected(answer.error());
  ReapReply r;
  if (answer->size() != sizeof r) return fail("the fork server sent a malformed reply");
  std::memcpy(&r, answer->data(), sizeof r);
  if (r.err != 0) return fail(fmt::format("waitid({}): {}", pid, std::strerror(r.err)));
  return Reaped{r.info, r.usage};
}

}  // namespace jobhost::exec
