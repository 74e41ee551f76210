#include "exec/child_runtime.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <jobhost/plugin.h>
#include <poll.h>
#include <pthread.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>
#include <string>

#include "exec/control_record.h"
#include "exec/environment.h"
#include "exec/executor.h"
#include "exec/isolation.h"
#include "exec/run_user.h"
#include "exec/sandbox.h"

namespace jobhost::exec {
namespace {

// Fixed descriptor numbers in the child: 0 /dev/null, 1+2 output, 3 control,
// 4 the status pipe of a namespace's init, 5 a parked run's gate.
constexpr int kControlFd = 3;
constexpr int kStatusFd = 4;
constexpr int kGateFd = 5;
constexpr int64_t kHeartbeatEveryNs = 50'000'000;  // at most 20 heartbeat records a second

volatile sig_atomic_t g_term_requested = 0;
std::atomic<bool> g_cancel_seen{false};
std::atomic<bool> g_memory_reported{false};
std::atomic<bool> g_message_set{false};
std::atomic<int64_t> g_last_heartbeat_ns{0};
// The request of this process's run. The ABI's jobhost_run handle is opaque
// and only handed back to us; the functions below do not need it (a plugin
// passing NULL or a stale handle still gets the right answers).
const RunRequest* g_request = nullptr;
// Plugins may call the host from several threads; one record is one writev.
pthread_mutex_t g_write_mutex = PTHREAD_MUTEX_INITIALIZER;

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Writes the iovecs completely (a blocking socket may still write partially
// when interrupted). Gives up silently when the host is gone.
void write_all(iovec* iov, int count) {
  while (count > 0) {
    const ssize_t n = writev(kControlFd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    auto left = static_cast<size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
}

// Sends one record without allocating (it may run from the new_handler).
// `prefix` is the fixed-size number (double or int32) of the type, if any.
void send_record(RecordType type, uint8_t arg, const void* prefix, size_t prefix_len,
                 const char* text) {
  if (text == nullptr) text = "";
  size_t text_len = strnlen(text, kMaxPayload);
  if (text_len > kMaxPayload - prefix_len) text_len = kMaxPayload - prefix_len;
  RecordHeader header{static_cast<uint32_t>(prefix_len + text_len), static_cast<uint8_t>(type), arg,
                      0};
  iovec iov[3] = {{&header, sizeof header},
                  {const_cast<void*>(prefix), prefix_len},
                  {const_cast<char*>(text), text_len}};
  pthread_mutex_lock(&g_write_mutex);
  write_all(iov, 3);
  pthread_mutex_unlock(&g_write_mutex);
}

void send_text(RecordType type, uint8_t arg, const char* text) {
  send_record(type, arg, nullptr, 0, text);
}

void send_code(RecordType type, int32_t code, const char* text) {
  send_record(type, 0, &code, sizeof code, text);
}

[[noreturn]] void fail_setup(int err, const char* what) {
  send_code(RecordType::setup_error, err, what);
  _exit(kChildExitSetupFailed);
}

// --- the host function table -------------------------------------------------

const char* lookup(const std::map<std::string, std::string>& map, const char* key) {
  if (key == nullptr) key = "";
  const auto it = map.find(key);
  return it == map.end() ? nullptr : it->second.c_str();
}

void api_log(jobhost_run*, int32_t level, const char* message) {
  if (level < JOBHOST_LOG_DEBUG || level > JOBHOST_LOG_ERROR) level = JOBHOST_LOG_INFO;
  send_text(RecordType::log, static_cast<uint8_t>(level), message);
}

const char* api_param(jobhost_run*, const char* key) {
  return lookup(g_request->params, key);
}

const char* api_secret(jobhost_run*, const char* name) {
  return lookup(g_request->secrets, name);
}

void api_heartbeat(jobhost_run*, double progress) {
  const int64_t now = monotonic_ns();
  int64_t last = g_last_heartbeat_ns.load(std::memory_order_relaxed);
  if (last != 0 && now - last < kHeartbeatEveryNs) return;
  if (!g_last_heartbeat_ns.compare_exchange_strong(last, now)) return;  // another thread sent it
  if (!(progress >= 0)) progress = -1;  // NaN and negatives: unknown
  if (progress > 1) progress = 1;
  send_record(RecordType::heartbeat, 0, &progress, sizeof progress, nullptr);
}

int32_t api_cancelled(jobhost_run*) {
  if (g_term_requested || g_cancel_seen.load(std::memory_order_relaxed)) return 1;
  // A byte from the host, or the host gone (hang-up), both mean stop.
  pollfd p{kControlFd, POLLIN, 0};
  if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    g_cancel_seen = true;
    return 1;
  }
  return 0;
}

void api_metric(jobhost_run*, const char* name, double value) {
  send_record(RecordType::metric, 0, &value, sizeof value, name);
}

void api_set_message(jobhost_run*, const char* message) {
  g_message_set = true;
  send_text(RecordType::message, 0, message);
}

const char* api_run_id(jobhost_run*) {
  return g_request->run_id.c_str();
}

uint32_t api_attempt(jobhost_run*) {
  return g_request->attempt;
}

int64_t api_scheduled_for(jobhost_run*) {
  return g_request->scheduled_for.time_since_epoch().count();
}

const char* api_trigger_kind(jobhost_run*) {
  return g_request->trigger_kind.c_str();
}

const char* api_event(jobhost_run*) {
  return g_request->event ? g_request->event->c_str() : nullptr;
}

const jobhost_host_api kHostApi = {sizeof(jobhost_host_api),
                                   api_log,
                                   api_param,
                                   api_secret,
                                   api_heartbeat,
                                   api_cancelled,
                                   api_metric,
                                   api_set_message,
                                   api_run_id,
                                   api_attempt,
                                   api_scheduled_for,
                                   api_trigger_kind,
                                   api_event};

// --- process setup -----------------------------------------------------------

// A parked run: blocks until its gate has data (the host writes one byte,
// which no run reads, so that every run parked for the instant wakes at
// once) or the host's release byte comes on the control socket. Anything
// else ends the process before any of the plugin's code ran: a signal,
// another byte, the host gone (its end of the control socket, or the gate's
// write end, closed by its death: a hang-up without data is no release).
void wait_for_release(bool gated) {
  pollfd fds[2] = {{kControlFd, POLLIN, 0}, {kGateFd, POLLIN, 0}};
  for (;;) {
    const int n = poll(fds, gated ? 2 : 1, -1);
    if (n < 0 && errno == EINTR && g_term_requested == 0) continue;
    if (n <= 0) _exit(kChildExitNotReleased);
    char byte = 0;
    if (fds[0].revents != 0) {
      // A byte of its own: the release (its gate holds others), or a stop.
      if (read(kControlFd, &byte, 1) == 1 && byte == kReleaseByte) break;
      _exit(kChildExitNotReleased);
    }
    if (gated && (fds[1].revents & POLLIN) != 0) {
      // A release byte of its own may be on its way too: not a cancel.
      pollfd control{kControlFd, POLLIN, 0};
      if (poll(&control, 1, 0) > 0 && (read(kControlFd, &byte, 1) != 1 || byte != kReleaseByte)) {
        _exit(kChildExitNotReleased);
      }
      break;
    }
    if (gated && fds[1].revents != 0) _exit(kChildExitNotReleased);  // hang-up: host gone
  }
  if (gated) close(kGateFd);
}

void on_sigterm(int) {
  g_term_requested = 1;
}

// Processes the plugin forks get SIGTERM's default action back, so stopping
// the group terminates them; only the run's own process turns it into cancelled().
void reset_sigterm_in_forked_child() {
  signal(SIGTERM, SIG_DFL);
}

void on_out_of_memory() {
  if (!g_memory_reported.exchange(true)) send_text(RecordType::limit, 0, "memory");
  throw std::bad_alloc();
}

// Every other disposition is already the default: the fork server reset
// them once, and its children inherit that.
void catch_sigterm() {
  struct sigaction term {};
  term.sa_handler = on_sigterm;  // no SA_RESTART: a blocking call returns EINTR
  sigemptyset(&term.sa_mask);
  sigaction(SIGTERM, &term, nullptr);
}

// Moves `fd` to a number above kControlFd so the dup2s below cannot clobber it.
int lift(int fd) {
  if (fd > kControlFd) return fd;
  const int lifted = fcntl(fd, F_DUPFD, kControlFd + 1);
  if (lifted < 0) _exit(kChildExitSetupFailed);
  return lifted;
}

// 0 = /dev/null, 1 and 2 = the output pipe, 3 = control, 4 = the status
// pipe of a namespace's init (if any); everything else closed.
void setup_descriptors(const ChildPlan& plan) {
  const int control = lift(plan.control_fd);
  const int output = lift(plan.output_fd);
  const int status = plan.status_fd >= 0 ? lift(plan.status_fd) : -1;
  const int gate = plan.gate_fd >= 0 ? lift(plan.gate_fd) : -1;
  if (dup2(control, kControlFd) < 0) _exit(kChildExitSetupFailed);
  fcntl(kControlFd, F_SETFD, FD_CLOEXEC);  // programs the job execs do not inherit it
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) fail_setup(errno, "open(/dev/null)");
  if (dup2(null, STDIN_FILENO) < 0) fail_setup(errno, "dup2(stdin)");
  if (dup2(output, STDOUT_FILENO) < 0 || dup2(output, STDERR_FILENO) < 0) {
    fail_setup(errno, "dup2(stdout, stderr)");
  }
  int first_closed = kControlFd + 1;
  if (status >= 0) {
    if (status != kStatusFd && dup2(status, kStatusFd) < 0) fail_setup(errno, "dup2(status)");
    fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);
    first_closed = kStatusFd + 1;
  }
  if (gate >= 0) {
    if (status < 0) close(kStatusFd);
    if (gate != kGateFd && dup2(gate, kGateFd) < 0) fail_setup(errno, "dup2(gate)");
    fcntl(kGateFd, F_SETFD, FD_CLOEXEC);
    first_closed = kGateFd + 1;
  }
  if (close_range(first_closed, ~0U, 0) != 0) fail_setup(errno, "close_range");
}

// True when the process behind `pidfd` is known to have exited (without a
// descriptor, PDEATHSIG alone has to do).
bool exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return pidfd >= 0 && poll(&p, 1, 0) != 0;
}

pid_t g_run_pid = 0;  // in a namespace's init: the run's process

void forward_signal(int sig) {
  const int saved = errno;
  kill(g_run_pid, sig);
  errno = saved;
}

// Host not root: this process was cloned into namespaces of its own, where
// it is init (pid 1). It sets them up and forks the run's process (pid 2),
// which returns from here; it stays behind as init, which no signal of the
// run's can kill: it forwards the stopping signals to the run, reaps
// whatever is left to it, and when the run's process has ended writes its
// wait status on kStatusFd for the fork server (init cannot die of most
// signals itself) and exits, which kills the rest of the pid namespace.
void become_namespace_init(const ChildPlan& plan) {
  if (auto e = enter_namespaces_in_child(*plan.namespaces)) fail_setup(e->err, e->what);
  const pid_t run = _Fork();  // signals are still blocked
  if (run < 0) fail_setup(errno, "fork (the run's process in its pid namespace)");
  if (run == 0) {
    close(kStatusFd);
    return;
  }
  g_run_pid = run;
  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  forward.sa_flags = SA_RESTART;
  sigfillset(&forward.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) {
    sigaction(sig, &forward, nullptr);
  }
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, kControlFd}) close(fd);
  prctl(PR_SET_NAME, "jobhost-init");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int status = 0;
  for (;;) {
    int reaped = 0;
    const pid_t pid = waitpid(-1, &reaped, 0);
    if (pid == run) {
      status = reaped;
      break;
    }
    if (pid < 0 && errno != EINTR) _exit(kChildExitSetupFailed);  // cannot happen: run is ours
  }
  [[maybe_unused]] const ssize_t n = write(kStatusFd, &status, sizeof status);
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

// Copies the plugin's descriptor into a zeroed struct of ours (ABI rule 2)
// and checks it; fails the setup with the reason otherwise.
jobhost_plugin load_plugin(const char* path, jobhost_entry_fn entry) {
  if (entry == nullptr) {
    void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      fail_setup(0, why ? why : "dlopen failed");
    }
    entry = reinterpret_cast<jobhost_entry_fn>(dlsym(handle, JOBHOST_ENTRY_SYMBOL));
  }
  if (entry == nullptr) fail_setup(0, "the plugin does not export " JOBHOST_ENTRY_SYMBOL);
  const jobhost_plugin* theirs = entry();
  if (theirs == nullptr) fail_setup(0, JOBHOST_ENTRY_SYMBOL "() returned NULL");
  jobhost_plugin ours{};
  std::memcpy(&ours, theirs, std::min<size_t>(sizeof ours, theirs->struct_size));
  if (ours.abi_major != JOBHOST_ABI_MAJOR)
    fail_setup(0, "the plugin's ABI major differs from the host's");
  if (ours.abi_minor > JOBHOST_ABI_MINOR)
    fail_setup(0, "the plugin's ABI minor is newer than the host's");
  if (ours.run == nullptr) fail_setup(0, "the plugin's descriptor has no run function");
  return ours;
}

}  // namespace

void prepare_fork_server() noexcept {
  pthread_atfork(nullptr, nullptr, reset_sigterm_in_forked_child);
  // Bytes the host had buffered in stdio but not written yet were copied by
  // fork; they are the host's, not the runs' output.
  __fpurge(stdout);
  __fpurge(stderr);
}

// True in a run's process (see __lsan_is_turned_off below).
bool g_in_run = false;

void run_child(const ChildPlan& plan) noexcept {
  g_in_run = true;
  // Signals are blocked (by the parent, around fork) until they are reset.
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent died before PDEATHSIG? In a pid namespace, getppid() is 0.
  if (plan.namespaces != nullptr ? exited(plan.server_pidfd) : getppid() != plan.parent_pid) {
    _exit(kChildExitOrphaned);
  }
  catch_sigterm();
  setup_descriptors(plan);
  pid_t parent = plan.parent_pid;
  if (plan.namespaces != nullptr) {
    become_namespace_init(plan);  // returns in the run's process, a child of init
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    parent = 1;
    if (getppid() != parent) _exit(kChildExitOrphaned);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  if (const int err = join_cgroups_in_child(*plan.cgroup_procs); err != 0) {
    fail_setup(err, "joining the run's cgroup");
  }
  const RunRequest& request = *plan.request;
  g_request = &request;
  // A run with cgroups has its memory limited there (memory.max or
  // memory.limit_in_bytes: every cgroup mode has the memory controller), so
  // RLIMIT_AS is left off; and its processes counted there (pids.max), so
  // RLIMIT_NPROC is left off too: it counts every process of the uid, i.e.
  // all runs of a dynamic user's job at once, and would fail a fork before
  // pids.max does.
  const bool in_cgroup = !plan.cgroup_procs->empty();
  config::Limits rlimits = request.limits;
  if (in_cgroup) rlimits.processes = 0;
  if (auto e = apply_rlimits_in_child(rlimits, in_cgroup)) fail_setup(e->err, e->what);
  if (plan.sandbox != nullptr) {
    if (auto e = enter_sandbox_in_child(*plan.sandbox)) fail_setup(e->err, e->what);
  }
  // After the sandbox's mounts: a read_only sandbox bind-mounts the state
  // directory writable onto itself, and the working directory must be that mount.
  if (auto e = enter_state_directory_in_child(request.state_directory.c_str())) {
    fail_setup(e->err, e->what);
  }
  apply_environment_in_child(plan.envp);
  if (auto e = drop_privileges_in_child(*plan.credentials)) fail_setup(e->err, e->what);
  // Changing uid/gid clears the parent-death signal: set it again, and check
  // once more that the host did not die meanwhile.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(kChildExitOrphaned);

  char name[16];
  std::snprintf(name, sizeof name, "jh:%s", request.job.c_str());
  prctl(PR_SET_NAME, name);

  std::set_new_handler(on_out_of_memory);
  // Last before the plugin: the syscall filter (sandbox).
  if (plan.sandbox != nullptr) {
    if (auto e = load_syscall_filter_in_child(*plan.sandbox, kControlFd))
      fail_setup(e->err, e->what);
  }
  // Forked ahead of its instant: everything is in place; the plugin's own
  // code (its entry point, and its constructors when it is not preloaded by
  // the fork server) runs once the host releases the run.
  if (request.parked) wait_for_release(plan.gate_fd >= 0);
  const jobhost_plugin plugin = load_plugin(request.plugin_path.c_str(), plan.entry);

  // Any non-null address will do as the opaque handle; the API ignores it.
  auto* run = reinterpret_cast<jobhost_run*>(const_cast<RunRequest*>(&request));
  int32_t result = JOBHOST_OK;
  if (plugin.init != nullptr) {
    const int32_t rc = plugin.init(&kHostApi, run);
    if (rc != 0) {
      if (!g_message_set) {
        char text[64];
        std::snprintf(text, sizeof text, "init failed (returned %d)", static_cast<int>(rc));
        send_text(RecordType::message, 0, text);
      }
      result = rc == JOBHOST_RETRY ? JOBHOST_RETRY : JOBHOST_FAIL;
    }
  }
  if (result == JOBHOST_OK) {
    result = plugin.run(&kHostApi, run);
    if (plugin.shutdown != nullptr) plugin.shutdown();
  }
  std::fflush(nullptr);  // what the job printed with stdio, before _exit skips it
  send_code(RecordType::result, result, nullptr);
  _exit(0);
}

}  // namespace jobhost::exec

// Asked by LeakSanitizer (builds with -DJOBHOST_SANITIZE=ON) before its check
// at exit: none in a run's process. A plugin that calls exit() would have
// LeakSanitizer stop the world with ptrace, which the run's syscall filter
// denies (the run would hang until its timeout), and what a plugin leaks is
// not the host's to report. The daemon and the tests are still checked.
extern "C" int __lsan_is_turned_off() {
  return jobhost::exec::g_in_run ? 1 : 0;
}
