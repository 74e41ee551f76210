// Reports what the run's process was given, as metrics: ids, death signal,
// NO_NEW_PRIVS, open descriptors, blocked and ignored signals, SIGTERM in a
// process it forks, process group,
// a few rlimits, and whether stdin is /dev/null.
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "common.h"

namespace {

double open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (readdir(dir) != nullptr) ++n;
  closedir(dir);
  return n - 3;  // ".", "..", and the directory's own descriptor
}

double blocked_signals() {
  sigset_t mask;
  sigprocmask(SIG_BLOCK, nullptr, &mask);
  int n = 0;
  for (int s = 1; s < NSIG; ++s) n += sigismember(&mask, s) == 1;
  return n;
}

double non_default_dispositions() {
  int n = 0;
  for (int s = 1; s < NSIG; ++s) {
    struct sigaction a {};
    // SIGTERM asks the run to cancel; SIGSYS names a call the syscall filter blocked.
    if (s == SIGTERM || s == SIGSYS || sigaction(s, nullptr, &a) != 0) continue;
    n += a.sa_handler != SIG_DFL;
  }
  return n;
}

// 1 when a process the run forks has SIGTERM's default action back (the
// run's own process turns SIGTERM into a cancel request).
double sigterm_default_in_forked_child() {
  const pid_t pid = fork();
  if (pid == 0) {
    struct sigaction a {};
    sigaction(SIGTERM, nullptr, &a);
    _exit(a.sa_handler == SIG_DFL ? 0 : 1);
  }
  if (pid < 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

double limit(int resource) {
  rlimit r{};
  getrlimit(resource, &r);
  return r.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(r.rlim_cur);
}

class Inspect {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    int deathsig = 0;
    prctl(PR_GET_PDEATHSIG, &deathsig);
    struct sigaction term {};
    sigaction(SIGTERM, nullptr, &term);
    char stdin_path[PATH_MAX] = {};
    readlink("/proc/self/fd/0", stdin_path, sizeof stdin_path - 1);

    ctx.metric("uid", getuid());
    ctx.metric("euid", geteuid());
    ctx.metric("gid", getgid());
    ctx.metric("pdeathsig", deathsig);
    ctx.metric("no_new_privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    ctx.metric("open_fds", open_fds());
    ctx.metric("blocked_signals", blocked_signals());
    ctx.metric("non_default_dispositions", non_default_dispositions());
    ctx.metric("sigterm_caught", term.sa_handler != SIG_DFL && term.sa_handler != SIG_IGN);
    ctx.metric("sigterm_default_in_forked_child", sigterm_default_in_forked_child());
    ctx.metric("group_leader", getpgrp() == getpid());
    ctx.metric("rlimit_nofile", limit(RLIMIT_NOFILE));
    ctx.metric("rlimit_core", limit(RLIMIT_CORE));
    ctx.metric("stdin_is_dev_null", std::string(stdin_path) == "/dev/null");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Inspect, "inspect", "1.0.0", "test: reports what the run's process was given")
