// The exec plugin: runs a program as a job, so that existing scripts become
// jobs without a line of C (docs/plugins.md "The exec plugin").
//
// The config loader hands it the job keys command, shell, cwd and stdin as
// params of the same names (host/src/config/load.cpp, read_exec): command is
// a JSON array of strings (the argv; argv[0] without '/' is looked up in the
// run's PATH) or, with shell = "true", a line for /bin/sh -c. Params are
// untrusted text all the same: what cannot be used fails the run, saying why.
//
// The command is forked from the run's process and stays in its process
// group and cgroup (not a group of its own: in isolation mode none the group
// is all the host kills), so the host's SIGTERM and SIGKILL of a stopped
// run, and its kill of whatever is left when the run ends, reach the command
// as they reach the run's own process. It inherits the run's
// environment, rlimits, user, sandbox and syscall filter, and its stdout and
// stderr: its output is the run's output. Exit 0 succeeds, 75 (EX_TEMPFAIL)
// asks for a retry, anything else fails.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jobhost/plugin.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr int kTempFail = 75;  // EX_TEMPFAIL (sysexits.h): retry
// How long the wait sleeps at most between looks at cancelled() and
// heartbeats; the command's exit wakes it at once (pidfd).
constexpr int kPollMs = 250;

// What run() does, read from the params; `error` set when they are unusable.
struct Command {
  std::string program;            // what is executed: argv[0], or /bin/sh
  std::vector<std::string> argv;  // as the program sees it
  bool search_path = false;       // argv[0] without '/': looked up in PATH
  std::string name;               // how messages name the command
  std::optional<std::string> cwd;
  std::optional<std::string> input;  // written to the command's stdin
  std::string error;
};

Command read_command(const jobhost::Context& ctx) {
  Command c;
  const auto command = ctx.param("command");
  if (!command) {
    c.error = "no command: set command = [\"/path/to/program\", \"arg\"] in the job";
    return c;
  }
  const auto shell = ctx.param("shell");
  if (shell && *shell != "true" && *shell != "false") {
    c.error = "the shell param is \"" + *shell + "\", not \"true\" or \"false\"";
    return c;
  }
  if (shell == "true") {
    if (command->empty()) {
      c.error = "the command is empty";
      return c;
    }
    c.program = "/bin/sh";
    c.argv = {"sh", "-c", *command};
    c.name = c.program;
  } else {
    // No exceptions: a parse error gives a discarded value.
    const auto argv = nlohmann::json::parse(*command, nullptr, false);
    if (argv.is_discarded() || !argv.is_array() || argv.empty() ||
        !std::all_of(argv.begin(), argv.end(), [](const auto& a) { return a.is_string(); })) {
      c.error =
          "the command param is not a JSON array of strings naming a program, like "
          "[\"/usr/local/bin/backup\", \"--full\"] (set command = [...] in the job, not in params)";
      return c;
    }
    for (const auto& a : argv) {
      c.argv.push_back(a.get<std::string>());
      if (c.argv.back().find('\0') != std::string::npos) {
        c.error = "an argument of the command contains a NUL byte";
        return c;
      }
    }
    c.program = c.argv[0];
    if (c.program.empty()) {
      c.error = "the command's program (its first element) is empty";
      return c;
    }
    c.search_path = c.program.find('/') == std::string::npos;
    c.name = c.program;
  }
  if (auto cwd = ctx.param("cwd")) {
    if (cwd->empty()) {
      c.error = "the cwd param is empty";
      return c;
    }
    c.cwd = std::move(*cwd);
  }
  c.input = ctx.param("stdin");
  return c;
}

// What the command's child reports on its CLOEXEC pipe when it cannot exec.
struct ChildFailure {
  enum Step : int32_t { stdin_fd, cwd, exec } step;
  int32_t err;
};

// Everything the child needs, built before fork: it only makes system calls.
struct ChildPlan {
  const char* program;
  char* const* argv;
  bool search_path;
  const char* cwd;  // nullptr: the run's working directory
  int input_fd;     // -1: keep the run's stdin (/dev/null)
  int report_fd;
  pid_t parent;
};

[[noreturn]] void fail_in_child(const ChildPlan& plan, ChildFailure::Step step, int err) {
  const ChildFailure failure{step, err};
  [[maybe_unused]] const ssize_t n = ::write(plan.report_fd, &failure, sizeof failure);
  _exit(127);
}

[[noreturn]] void exec_in_child(const ChildPlan& plan) {
  // If the run's process dies (SIGKILL from the host), the command dies with
  // it, even where no cgroup collects what is left of a run.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != plan.parent) _exit(127);
  if (plan.input_fd >= 0 && ::dup2(plan.input_fd, STDIN_FILENO) < 0) {
    fail_in_child(plan, ChildFailure::stdin_fd, errno);
  }
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) {
    fail_in_child(plan, ChildFailure::cwd, errno);
  }
  if (plan.search_path) {
    ::execvp(plan.program, plan.argv);
  } else {
    ::execv(plan.program, plan.argv);
  }
  fail_in_child(plan, ChildFailure::exec, errno);
}

std::string signal_name(int sig) {
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
  return "signal " + std::to_string(sig);
}

class Exec {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    Command c = read_command(ctx);
    if (!c.error.empty()) return fail(ctx, c.error);

    std::vector<char*> argv;
    for (std::string& a : c.argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) return fail(ctx, errno_message("pipe"));
    int input[2] = {-1, -1};
    if (c.input && ::pipe2(input, O_CLOEXEC) != 0) {
      const std::string why = errno_message("pipe");
      ::close(report[0]);
      ::close(report[1]);
      return fail(ctx, why);
    }
    const ChildPlan plan{
        c.program.c_str(), argv.data(), c.search_path, c.cwd ? c.cwd->c_str() : nullptr,
        input[0],          report[1],   ::getpid()};
    const pid_t pid = ::fork();
    if (pid == 0) exec_in_child(plan);
    const int fork_errno = errno;
    ::close(report[1]);
    if (input[0] >= 0) ::close(input[0]);
    if (pid < 0) {
      ::close(report[0]);
      if (input[1] >= 0) ::close(input[1]);
      errno = fork_errno;
      return fail(ctx, errno_message("cannot fork to run the command"));
    }
    // A command that does not read its stdin closes the pipe: EPIPE, not a
    // signal that would end this process (the command was forked before).
    ::signal(SIGPIPE, SIG_IGN);

    ChildFailure failure{};
    const bool exec_failed = read_full(report[0], &failure, sizeof failure);
    ::close(report[0]);
    if (exec_failed) {
      if (input[1] >= 0) ::close(input[1]);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return fail(ctx, describe(c, failure));
    }

    const auto waited = wait_for(ctx, pid, input[1], c.input ? *c.input : std::string());
    if (!waited) return fail(ctx, errno_message("lost the command: waitpid"));
    const int status = *waited;
    if (WIFEXITED(status)) {
      const int code = WEXITSTATUS(status);
      ctx.metric("exit_status", code);
      const std::string message = "exited with status " + std::to_string(code);
      if (code == 0) {
        ctx.set_message(message);
        return jobhost::Result::ok;
      }
      if (code == kTempFail) {
        ctx.set_message(message + " (EX_TEMPFAIL)");
        return jobhost::Result::retry;
      }
      return fail(ctx, message);
    }
    const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    ctx.metric("exit_status", 128 + sig);  // as a shell's $? says it
    std::string message = "killed by signal " + signal_name(sig);
    if (sig == SIGSYS) {
      message += " (a system call the job's syscall_filter denies; see docs/isolation.md)";
    }
    return fail(ctx, message);
  }

 private:
  static jobhost::Result fail(const jobhost::Context& ctx, const std::string& message) {
    ctx.set_message(message);
    return jobhost::Result::fail;
  }

  static std::string errno_message(const std::string& what) {
    return what + ": " + std::strerror(errno);
  }

  // True when all `size` bytes came; false at end of file first (the exec
  // succeeded and closed the pipe).
  static bool read_full(int fd, void* data, size_t size) {
    size_t got = 0;
    while (got < size) {
      const ssize_t n = ::read(fd, static_cast<char*>(data) + got, size - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      got += static_cast<size_t>(n);
    }
    return true;
  }

  static std::string describe(const Command& c, const ChildFailure& failure) {
    const std::string why = std::strerror(failure.err);
    switch (failure.step) {
      case ChildFailure::stdin_fd:
        return "cannot give the command its stdin: " + why;
      case ChildFailure::cwd:
        return "cannot change to cwd \"" + *c.cwd + "\": " + why;
      case ChildFailure::exec:
        break;
    }
    std::string message = "cannot execute \"" + c.name + "\": " + why;
    if (failure.err == ENOENT && c.search_path) {
      const char* path = ::getenv("PATH");
      message += std::string(" (not found in PATH=") + (path ? path : "") +
                 "; give its full path, or set PATH in the job's env)";
    }
    return message;
  }

  // Waits for the command to end, writing `input` to `input_fd` (closed
  // when done, or when the command stops reading), heartbeating, and
  // passing a cancel on to a command that left the run's process group.
  // Returns its wait status; nullopt (errno set) when it cannot be had.
  static std::optional<int> wait_for(const jobhost::Context& ctx, pid_t pid, int input_fd,
                                     const std::string& input) {
    size_t written = 0;
    if (input_fd >= 0) {
      ::fcntl(input_fd, F_SETFL, ::fcntl(input_fd, F_GETFL) | O_NONBLOCK);
      if (input.empty()) {
        ::close(input_fd);
        input_fd = -1;
      }
    }
    // Without a pidfd (a kernel before 5.3), the wait polls with backoff.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    int sleep_ms = 1;
    pid_t signalled_group = 0;
    std::optional<int> status;
    for (;;) {
      int wait_status = 0;
      const pid_t done = ::waitpid(pid, &wait_status, WNOHANG);
      if (done == pid) {
        status = wait_status;
        break;
      }
      if (done < 0 && errno != EINTR) break;
      if (ctx.cancelled()) pass_cancel(pid, signalled_group);
      ctx.heartbeat();
      pollfd fds[2];
      nfds_t n = 0;
      if (pidfd >= 0) fds[n++] = {pidfd, POLLIN, 0};
      if (input_fd >= 0) fds[n++] = {input_fd, POLLOUT, 0};
      const int timeout = pidfd >= 0 ? kPollMs : sleep_ms;
      sleep_ms = std::min(sleep_ms * 2, 100);
      if (::poll(fds, n, timeout) <= 0 || input_fd < 0) continue;
      const pollfd& out = fds[n - 1];
      if (out.revents == 0) continue;
      const ssize_t w = ::write(input_fd, input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      // Done, or the command will not read the rest (EPIPE: it closed its stdin).
      if (written == input.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(input_fd);
        input_fd = -1;
      }
    }
    const int wait_errno = errno;
    if (input_fd >= 0) ::close(input_fd);
    if (pidfd >= 0) ::close(pidfd);
    errno = wait_errno;
    return status;
  }

  // The host's SIGTERM to the run's process group reached the command if it
  // is still in it; one that moved to a group of its own (setsid) gets it
  // from here, once per group (it may move after the cancel). SIGKILL after
  // kill_grace is the host's (the whole run, cgroup included).
  static void pass_cancel(pid_t pid, pid_t& signalled_group) {
    const pid_t group = ::getpgid(pid);
    if (group <= 0 || group == ::getpgrp() || group == signalled_group) return;
    ::kill(-group, SIGTERM);
    signalled_group = group;
  }
};

}  // namespace

JOBHOST_PLUGIN(Exec, "exec", "1.0.0", "Runs a program (command = [...]) as the job")
