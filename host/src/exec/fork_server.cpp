#include "exec/fork_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "exec/child_runtime.h"
#include "exec/executor.h"
#include "exec/isolation.h"

namespace jobhost::exec {
namespace {

using nlohmann::json;

constexpr char kSpawn = 'S';
constexpr char kReap = 'R';
// Largest request: a run's params and secrets travel in it. SOCK_SEQPACKET
// messages must fit the socket's send buffer (net.core.wmem_default).
constexpr std::size_t kMaxRequest = 160 * 1024;
constexpr int kReplyTimeoutMs = 10'000;

struct SpawnReply {
  int32_t pid = 0;
  int32_t err = 0;  // errno of the failed step, 0 when spawned
  char what[120] = {};
};

struct ReapReply {
  int32_t err = 0;
  siginfo_t info{};
  rusage usage{};
};

// glibc 2.36's <sys/pidfd.h> lacks extern "C": raw system call.
int pidfd_open(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// One message with up to two descriptors attached.
ssize_t send_message(int sock, const void* data, std::size_t size, const std::vector<int>& fds) {
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
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

// Receives one message into `buffer`; descriptors that came with it are
// appended to `fds` (close-on-exec). Returns its size, 0 at EOF, -1 on error.
ssize_t receive_message(int sock, std::vector<char>& buffer, std::vector<int>& fds) {
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
      fds.push_back(fd);
    }
  }
  if (n >= 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

// --- the plan of a run, as it crosses the socket ----------------------------

struct Plan {
  RunRequest request;
  std::vector<std::string> cgroup_procs;
  Credentials credentials;
};

json encode(const RunRequest& r, const std::vector<std::string>& procs, const Credentials& c) {
  const config::Limits& l = r.limits;
  return {{"job", r.job},
          {"run_id", r.run_id},
          {"trace_id", r.trace_id},
          {"attempt", r.attempt},
          {"scheduled_for", r.scheduled_for.time_since_epoch().count()},
          {"plugin_path", r.plugin_path.string()},
          {"params", r.params},
          {"secrets", r.secrets},
          {"limits",
           {{"memory", l.memory_bytes},
            {"cpu_ms", l.cpu_time.count()},
            {"open_files", l.open_files},
            {"processes", l.processes},
            {"file_size", l.file_size},
            {"output", l.output_bytes}}},
          {"cgroup_procs", procs},
          {"uid", c.uid},
          {"gid", c.gid},
          {"groups", c.groups},
          {"change_ids", c.change}};
}

// Throws json::exception on a malformed plan (the server answers EINVAL).
Plan decode(std::string_view text) {
  const json j = json::parse(text);
  Plan p;
  RunRequest& r = p.request;
  r.job = j.at("job").get<std::string>();
  r.run_id = j.at("run_id").get<std::string>();
  r.trace_id = j.at("trace_id").get<std::string>();
  r.attempt = j.at("attempt").get<uint32_t>();
  r.scheduled_for = TimePoint(Duration(j.at("scheduled_for").get<int64_t>()));
  r.plugin_path = j.at("plugin_path").get<std::string>();
  r.params = j.at("params").get<std::map<std::string, std::string>>();
  r.secrets = j.at("secrets").get<std::map<std::string, std::string>>();
  const json& l = j.at("limits");
  r.limits.memory_bytes = l.at("memory").get<uint64_t>();
  r.limits.cpu_time = Duration(l.at("cpu_ms").get<int64_t>());
  r.limits.open_files = l.at("open_files").get<uint64_t>();
  r.limits.processes = l.at("processes").get<uint64_t>();
  r.limits.file_size = l.at("file_size").get<uint64_t>();
  r.limits.output_bytes = l.at("output").get<uint64_t>();
  p.cgroup_procs = j.at("cgroup_procs").get<std::vector<std::string>>();
  p.credentials.uid = j.at("uid").get<uid_t>();
  p.credentials.gid = j.at("gid").get<gid_t>();
  p.credentials.groups = j.at("groups").get<std::vector<gid_t>>();
  p.credentials.change = j.at("change_ids").get<bool>();
  return p;
}

// --- the server --------------------------------------------------------------

void reply(int sock, const void* data, std::size_t size, int fd = -1) {
  send_message(sock, data, size, fd >= 0 ? std::vector<int>{fd} : std::vector<int>{});
}

void serve_spawn(int sock, std::string_view text, const std::vector<int>& fds) {
  SpawnReply out;
  auto refuse = [&](int err, const char* what) {
    out.err = err;
    std::snprintf(out.what, sizeof out.what, "%s", what);
    reply(sock, &out, sizeof out);
  };
  if (fds.size() != 2) return refuse(EINVAL, "spawn request without its two descriptors");
  Plan plan;
  try {
    plan = decode(text);
  } catch (const std::exception&) {
    return refuse(EINVAL, "malformed spawn request");
  }
  const ChildPlan child{&plan.request,      fds[0],           fds[1], ::getpid(),
                        &plan.cgroup_procs, &plan.credentials};
  const pid_t pid = ::fork();
  if (pid == 0) run_child(child);
  if (pid < 0) return refuse(errno, "fork");
  ::setpgid(pid, pid);  // the child does it too; whoever is first, kill(-pid) works from here
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    const int err = errno;
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
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
    if (syscall(SYS_waitid, P_PID, pid, &out.info, WEXITED, &out.usage) != 0) out.err = errno;
  }
  reply(sock, &out, sizeof out);
}

[[noreturn]] void serve(int sock, pid_t daemon) noexcept {
  // Signals stay blocked (start() blocked them around fork); runs unblock
  // theirs after setting them up.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != daemon) _exit(0);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  // Keep 0-2 (runs replace them) and the socket; nothing else of the daemon's.
  if (sock > 3) {
    ::close_range(3, sock - 1, 0);
  }
  ::close_range(sock + 1, ~0U, 0);
  ::prctl(PR_SET_NAME, "jobhost-forks");

  try {
    std::vector<char> buffer(kMaxRequest + 1);
    for (;;) {
      std::vector<int> fds;
      const ssize_t n = receive_message(sock, buffer, fds);
      if (n <= 0) _exit(0);  // the daemon is gone (or the socket broke)
      const std::string_view text(buffer.data() + 1, static_cast<std::size_t>(n) - 1);
      if (buffer[0] == kSpawn) {
        serve_spawn(sock, text, fds);
      } else if (buffer[0] == kReap) {
        serve_reap(sock, text);
      }
      for (int fd : fds) ::close(fd);
    }
  } catch (...) {
    _exit(1);  // out of memory; the daemon sees EOF and starts another
  }
}

}  // namespace

Result<std::unique_ptr<ForkServer>> ForkServer::start() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return fail(fmt::format("cannot start the fork server: socketpair: {}", std::strerror(errno)));
  }
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);
  const pid_t daemon = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    serve(sv[1], daemon);
  }
  const int err = errno;
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    return fail(fmt::format("cannot start the fork server: fork: {}", std::strerror(err)));
  }
  return std::unique_ptr<ForkServer>(new ForkServer(pid, sv[0]));
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

Result<std::vector<char>> ForkServer::call(const std::string& request, const std::vector<int>& fds,
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
  std::vector<int> got;
  const ssize_t n = ready > 0 ? receive_message(sock_, buffer, got) : -1;
  if (n <= 0) {
    for (int fd : got) ::close(fd);
    const std::string why = ready == 0 ? "the fork server did not answer within 10 s"
                                       : "the fork server is gone (it exited or was killed)";
    abandon();
    return fail(why);
  }
  buffer.resize(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (i == 0 && received_fd != nullptr) {
      *received_fd = got[i];
    } else {
      ::close(got[i]);
    }
  }
  return buffer;
}

Result<ForkServer::Spawned> ForkServer::spawn(const RunRequest& request,
                                              const std::vector<std::string>& cgroup_procs,
                                              const Credentials& credentials, int control_fd,
                                              int output_fd) {
  const std::string text = kSpawn + encode(request, cgroup_procs, credentials).dump();
  int pidfd = -1;
  auto answer = call(text, {control_fd, output_fd}, &pidfd);
  if (!answer) return std::unexpected(answer.error());
  SpawnReply r;
  if (answer->size() != sizeof r) {
    if (pidfd >= 0) ::close(pidfd);
    return fail("the fork server sent a malformed reply");
  }
  std::memcpy(&r, answer->data(), sizeof r);
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
