// A hostile plugin: tries to harm the host and other jobs, and reports as
// metrics what each attempt got: the errno it failed with, 0 when it
// succeeded (harm done). Paths are relative to the run's working directory,
// its job's state directory <state_dir>/jobs/<job>. Param `mode`:
//   kill      SIGKILL to its parent (the fork server) and to the daemon (pid
//             from ../../jobhost.pid), PTRACE_ATTACH and /proc/<pid>/mem of both;
//             SIGKILL to every process it may signal (kill(-1)) and to param
//             `bystander` (a pid of the host's user) if given
//   files     open the ledger for writing and reading, create a file in
//             state_dir, open its own shadow copy for writing,
//             connect to the control socket
//   read      read param `path` (another job's file), list ../ (the jobs:
//             list_jobs, and jobs_listed = how many it saw)
//   keep      write param `text` to ./kept, report whether it was there
//   escape    setsid + double fork: a grandchild in a session of its own
//             lingers; its pid is reported as metric escapee_pid
//   sleep     sleep param `seconds`
// Every mode also reports pid (getpid()), uid, gid, euid, the effective and bounding
// capability sets (cap_eff, cap_bnd; 0 = none), the supplementary groups
// (groups) and whether the working directory is <state_dir>/jobs/<param job>
// (cwd_is_job).
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "common.h"

namespace {

double result_of(int rc) {
  return rc == 0 ? 0 : errno;
}

double try_open(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

// A hex field of /proc/self/status (CapEff, CapBnd) as a number.
double status_hex(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::stoull(line.substr(field.size() + 1), nullptr, 16);
  }
  return -1;
}

int daemon_pid() {
  std::ifstream in("../../jobhost.pid");
  int pid = 0;
  in >> pid;
  return pid;
}

void report_identity(jobhost::Context& ctx) {
  ctx.metric("pid", getpid());
  ctx.metric("uid", getuid());
  ctx.metric("euid", geteuid());
  ctx.metric("gid", getgid());
  ctx.metric("groups", getgroups(0, nullptr));
  ctx.metric("cap_eff", status_hex("CapEff"));
  ctx.metric("cap_bnd", status_hex("CapBnd"));
  char cwd[4096] = {};
  const std::string job = ctx.param("job").value_or("?");
  ctx.metric("cwd_is_job",
             getcwd(cwd, sizeof cwd) != nullptr && std::string(cwd).ends_with("/var/jobs/" + job));
}

void attack_processes(jobhost::Context& ctx) {
  const pid_t parent = getppid();
  const int host = daemon_pid();
  ctx.metric("daemon_pid", host);
  ctx.metric("kill_parent", result_of(kill(parent, SIGKILL)));
  ctx.metric("kill_daemon", host > 0 ? result_of(kill(host, SIGKILL)) : -1);
  ctx.metric("ptrace_parent", result_of(static_cast<int>(ptrace(PTRACE_ATTACH, parent, 0, 0))));
  ctx.metric("ptrace_daemon",
             host > 0 ? result_of(static_cast<int>(ptrace(PTRACE_ATTACH, host, 0, 0))) : -1);
  ctx.metric("mem_parent", try_open("/proc/" + std::to_string(parent) + "/mem", O_RDONLY));
  ctx.metric("mem_daemon",
             host > 0 ? try_open("/proc/" + std::to_string(host) + "/mem", O_RDONLY) : -1);
  if (const auto bystander = ctx.param("bystander")) {
    ctx.metric("kill_bystander", result_of(kill(std::stoi(*bystander), SIGKILL)));
  }
  ctx.metric("kill_all", result_of(kill(-1, SIGKILL)));
}

void attack_files(jobhost::Context& ctx) {
  ctx.metric("ledger_write", try_open("../../jobhost.db", O_WRONLY | O_APPEND));
  ctx.metric("ledger_read", try_open("../../jobhost.db", O_RDONLY));
  ctx.metric("wal_write", try_open("../../jobhost.db-wal", O_WRONLY | O_APPEND));
  ctx.metric("state_dir_create", try_open("../../evil", O_WRONLY | O_CREAT | O_EXCL));
  ctx.metric("jobs_create", try_open("../evil", O_WRONLY | O_CREAT | O_EXCL));
  // The shadow copy the run was loaded from (<state_dir>/plugins/...).
  Dl_info self{};
  const bool found = dladdr(reinterpret_cast<void*>(&try_open), &self) != 0 && self.dli_fname;
  ctx.metric("shadow_in_state_dir",
             found && std::string(self.dli_fname).find("/var/plugins/") != std::string::npos);
  ctx.metric("shadow_write", found ? try_open(self.dli_fname, O_WRONLY | O_APPEND) : -1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "../../jobhost.sock");
  ctx.metric("socket_connect",
             result_of(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr)));
  close(fd);
}

void attack_neighbours(jobhost::Context& ctx) {
  ctx.metric("read_other", try_open(ctx.param("path").value_or(""), O_RDONLY));
  DIR* jobs = opendir("..");
  ctx.metric("list_jobs", jobs == nullptr ? errno : 0);
  int listed = 0;
  while (const dirent* entry = jobs != nullptr ? readdir(jobs) : nullptr) {
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) ++listed;
  }
  if (jobs != nullptr) closedir(jobs);
  ctx.metric("jobs_listed", listed);
}

void keep(jobhost::Context& ctx) {
  std::ifstream in("kept");
  std::stringstream before;
  before << in.rdbuf();
  ctx.metric("kept_found", !before.str().empty());
  std::ofstream out("kept", std::ios::trunc);
  out << ctx.param("text").value_or("x");
  out.close();
  ctx.metric("kept_written", out.good());
}

// Returns the grandchild's pid: it left the run's session and lingers.
pid_t escape() {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t child = fork();
  if (child == 0) {
    setsid();
    if (fork() == 0) {
      const pid_t me = getpid();
      (void)!write(fds[1], &me, sizeof me);
      close(fds[1]);
      for (;;) pause();
    }
    _exit(0);
  }
  close(fds[1]);
  pid_t escapee = -1;
  if (read(fds[0], &escapee, sizeof escapee) != sizeof escapee) escapee = -1;
  close(fds[0]);
  waitpid(child, nullptr, 0);
  return escapee;
}

class Hostile {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    report_identity(ctx);
    const std::string mode = ctx.param("mode").value_or("");
    if (mode == "kill") {
      attack_processes(ctx);
    } else if (mode == "files") {
      attack_files(ctx);
    } else if (mode == "read") {
      attack_neighbours(ctx);
    } else if (mode == "keep") {
      keep(ctx);
    } else if (mode == "escape") {
      ctx.metric("escapee_pid", escape());
    } else if (mode == "sleep") {
      test_plugin::nap(&ctx, test_plugin::param_number(ctx, "seconds", 3));
    } else {
      ctx.set_message("unknown mode");
      return jobhost::Result::fail;
    }
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Hostile, "hostile", "1.0.0", "test: tries to harm the host and other jobs")
