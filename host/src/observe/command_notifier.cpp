// The command notifier: the alert as JSON on stdin and in JOBHOST_*
// variables, for an executable run isolated like a run. fork (the daemon is
// single-threaded) then, in the child: a session and process group of its
// own, stdin and stdout+stderr on pipes and every other descriptor closed,
// default dispositions and an empty signal mask, rlimits, the privilege drop
// (its `user`/`group`; nobody/nogroup when the daemon is root and none is
// named), exec with a clean environment. The timeout is SIGKILL of the whole
// group, and a pidfd on the loop makes sure it is always reaped and never
// waited for.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <set>

#include "common/pidfd.h"
#include "exec/isolation.h"
#include "observe/notifier.h"

namespace jobhost::observe {
namespace {

namespace asio = boost::asio;

// Environment values are bounded: a plugin's message can be long.
constexpr std::size_t kMaxEnvValue = 4096;

std::string env_value(const nlohmann::json& v) {
  std::string text;
  if (v.is_string()) {
    text = v.get<std::string>();
  } else if (v.is_null()) {
    text = "";
  } else {
    text = v.dump();
  }
  std::erase(text, '\0');
  if (text.size() > kMaxEnvValue) text.resize(kMaxEnvValue);
  return text;
}

// The tail of a command's output, on one line, for an error message.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// What failed in the child before its exec, sent to the parent on a pipe.
struct ChildFailure {
  int err;
  char what[64];
};

[[noreturn]] void fail_in_child(int status_fd, int err, const char* what) noexcept {
  ChildFailure failure{err, {}};
  std::strncpy(failure.what, what, sizeof failure.what - 1);
  [[maybe_unused]] const ssize_t n = ::write(status_fd, &failure, sizeof failure);
  ::_exit(127);
}

// The child side, after fork: async-signal-safe calls only. Its own session
// and process group; stdin, stdout+stderr on the pipes and nothing else open;
// default signal dispositions and an empty mask; limits; the privilege drop
// (setgroups, setgid, setuid, no_new_privs); exec.
[[noreturn]] void run_child(int in_fd, int out_fd, int status_fd, const exec::Credentials& creds,
                            rlim_t cpu_seconds, char* const* argv, char* const* envp) noexcept {
  if (::setsid() < 0) fail_in_child(status_fd, errno, "setsid");
  if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) {
    fail_in_child(status_fd, errno, "dup2");
  }
  // Keep the status pipe (close-on-exec) as 3: every other descriptor goes.
  if (status_fd != 3) {
    if (::dup3(status_fd, 3, O_CLOEXEC) < 0) fail_in_child(status_fd, errno, "dup3");
    status_fd = 3;
  }
  if (::close_range(4, ~0u, 0) != 0) fail_in_child(status_fd, errno, "close_range");
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // EINVAL for some: fine
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const std::pair<int, rlim_t> limits[] = {{RLIMIT_AS, kCommandMemoryBytes},
                                           {RLIMIT_NOFILE, kCommandOpenFiles},
                                           {RLIMIT_FSIZE, kCommandFileSize},
                                           {RLIMIT_CORE, 0},
                                           {RLIMIT_CPU, cpu_seconds}};
  for (const auto& [resource, value] : limits) {
    rlimit l{value, value};
    rlimit current{};
    if (::getrlimit(static_cast<__rlimit_resource>(resource), &current) == 0 &&
        current.rlim_max != RLIM_INFINITY && current.rlim_max < value && ::geteuid() != 0) {
      l = {current.rlim_max, current.rlim_max};  // cannot be raised: clamped
    }
    if (::setrlimit(static_cast<__rlimit_resource>(resource), &l) != 0) {
      fail_in_child(status_fd, errno, "setrlimit");
    }
  }
  if (auto error = exec::drop_privileges_in_child(creds)) {
    fail_in_child(status_fd, error->err, error->what);
  }
  ::execve(argv[0], argv, envp);
  fail_in_child(status_fd, errno, "execve");
}

class CommandNotifier final : public Notifier {
 public:
  CommandNotifier(asio::io_context& io, const config::NotifierConfig& config)
      : io_(io), config_(config) {}
  ~CommandNotifier() override { cancel_all("the notifier was removed"); }

  void send(const nlohmann::json& notice, Delivered done) override {
    auto child = std::make_shared<Child>(io_);
    child->done = std::move(done);
    child->input = notice.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (auto error = spawn(*child, notice); !error.empty()) {
      asio::post(io_, [child, error] { child->done(Delivery{false, error, 1}); });
      return;
    }
    children_.insert(child);
    watch(child);
  }

  void cancel_all(const std::string& why) override {
    auto children = std::exchange(children_, {});
    for (const auto& child : children) {
      ::kill(-child->pid, SIGKILL);
      int status = 0;
      while (::waitpid(child->pid, &status, 0) < 0 && errno == EINTR) {
      }
      child->reaped = true;
      close(*child);
      auto done = std::exchange(child->done, {});
      if (done) done(Delivery{false, "abandoned: " + why, 1, true});
    }
  }

  std::size_t in_flight() const override { return children_.size(); }

 private:
  struct Child {
    explicit Child(asio::io_context& io) : pidfd(io), in(io), out(io), timer(io) {}
    asio::posix::stream_descriptor pidfd;
    asio::posix::stream_descriptor in;   // the command's stdin
    asio::posix::stream_descriptor out;  // its stdout + stderr
    asio::steady_timer timer;
    pid_t pid = -1;
    std::string input;
    std::string tail;
    std::array<char, 4096> buffer{};
    bool timed_out = false;
    bool reaped = false;
    Delivered done;
  };

  // Starts the process; "" or why it could not start.
  std::string spawn(Child& child, const nlohmann::json& notice) {
    int in_pipe[2], out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) return fmt::format("pipe: {}", std::strerror(errno));
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(in_pipe[0]);
      ::close(in_pipe[1]);
      return fmt::format("pipe: {}", std::strerror(err));
    }
    // Who it runs as, looked up here (the child may only make async-signal-safe calls).
    auto creds = notifier_credentials(config_);
    if (!creds) {
      for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
      return creds.error().message;
    }
    int status_pipe[2];  // the child's setup error, or EOF at its exec
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
      const int err = errno;
      for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
      return fmt::format("pipe: {}", std::strerror(err));
    }

    std::vector<std::string> env = notice_environment(notice);
    std::vector<char*> argv, envp;
    for (const auto& a : config_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const auto cpu = std::chrono::ceil<std::chrono::seconds>(config_.timeout).count() + 1;

    // fork, not posix_spawn: the privilege drop must happen between the two.
    // The daemon is single-threaded, so the child may run this setup.
    const pid_t pid = ::fork();
    if (pid == 0) {
      run_child(in_pipe[0], out_pipe[1], status_pipe[1], *creds, static_cast<rlim_t>(cpu),
                argv.data(), envp.data());
    }
    const int fork_err = errno;
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(status_pipe[1]);
    if (pid < 0) {
      ::close(status_pipe[0]);
      ::close(in_pipe[1]);
      ::close(out_pipe[0]);
      return fmt::format("cannot start {}: fork: {}", config_.command[0], std::strerror(fork_err));
    }
    // Like posix_spawn: wait for the exec (EOF) or the failed step (a record).
    ChildFailure failure{};
    ssize_t got;
    while ((got = ::read(status_pipe[0], &failure, sizeof failure)) < 0 && errno == EINTR) {
    }
    ::close(status_pipe[0]);
    if (got == static_cast<ssize_t>(sizeof failure)) {
      int ignored = 0;
      while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
      }
      ::close(in_pipe[1]);
      ::close(out_pipe[0]);
      return fmt::format("cannot start {}: {}: {}", config_.command[0], failure.what,
                         std::strerror(failure.err));
    }
    child.pid = pid;

    child.in.assign(in_pipe[1]);
    child.out.assign(out_pipe[0]);
    const int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
      const int err = errno;
      ::kill(-pid, SIGKILL);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      child.reaped = true;
      close(child);
      return fmt::format("pidfd_open: {}", std::strerror(err));
    }
    child.pidfd.assign(pidfd);
    return {};
  }

  void watch(const std::shared_ptr<Child>& child) {
    asio::async_write(child->in, asio::buffer(child->input),
                      [child](const boost::system::error_code&, std::size_t) {
                        boost::system::error_code ignored;
                        child->in.close(ignored);  // EOF for the command (EPIPE if it did not read)
                      });
    read_output(child);
    child->timer.expires_after(config_.timeout);
    child->timer.async_wait([child](const boost::system::error_code& ec) {
      if (ec || child->reaped) return;
      child->timed_out = true;
      ::kill(-child->pid, SIGKILL);  // not reaped yet: the group is still ours
    });
    child->pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, child](const boost::system::error_code& ec) {
                              if (ec || child->reaped) return;
                              finish(child);
                            });
  }

  void read_output(const std::shared_ptr<Child>& child) {
    child->out.async_read_some(asio::buffer(child->buffer),
                               [this, child](const boost::system::error_code& ec, std::size_t n) {
                                 if (ec) return;
                                 keep_tail(*child, std::string_view(child->buffer.data(), n));
                                 read_output(child);
                               });
  }

  static void keep_tail(Child& child, std::string_view bytes) {
    child.tail.append(bytes);
    if (child.tail.size() > kCommandOutputTail) {
      child.tail.erase(0, child.tail.size() - kCommandOutputTail);
    }
  }

  void finish(const std::shared_ptr<Child>& child) {
    // The leader exited: what it left running in its group goes too, then
    // the leader is reaped (it is a zombie now: waitpid does not block).
    ::kill(-child->pid, SIGKILL);
    int status = 0;
    while (::waitpid(child->pid, &status, 0) < 0 && errno == EINTR) {
    }
    child->reaped = true;
    // What is left in the pipe, without waiting.
    const int fd = child->out.native_handle();
    if (fd >= 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      char buffer[4096];
      for (int i = 0; i < 16; ++i) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        keep_tail(*child, std::string_view(buffer, static_cast<std::size_t>(n)));
      }
    }
    close(*child);
    children_.erase(child);
    Delivery delivery{false, "", 1};
    if (child->timed_out) {
      delivery.error =
          fmt::format("timed out after {}: killed", config::format_duration(config_.timeout));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      delivery.ok = true;
    } else if (WIFEXITED(status)) {
      delivery.error = fmt::format("exited with status {}", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
      delivery.error =
          fmt::format("killed by signal {} ({})", WTERMSIG(status),
                      ::sigabbrev_np(WTERMSIG(status)) ? ::sigabbrev_np(WTERMSIG(status)) : "?");
    } else {
      delivery.error = "ended in an unknown way";
    }
    if (!delivery.ok) {
      const std::string out = one_line(child->tail);
      if (!out.empty()) delivery.error += ": " + out;
    }
    auto done = std::exchange(child->done, {});
    if (done) done(std::move(delivery));
  }

  static void close(Child& child) {
    boost::system::error_code ignored;
    child.timer.cancel();
    child.pidfd.close(ignored);
    child.in.close(ignored);
    child.out.close(ignored);
  }

  asio::io_context& io_;
  config::NotifierConfig config_;
  std::set<std::shared_ptr<Child>> children_;
};

}  // namespace

std::vector<std::string> notice_environment(const nlohmann::json& notice) {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  static constexpr std::pair<const char*, const char*> kNames[] = {
      {"JOBHOST_ALERT_EVENT", "event"},
      {"JOBHOST_ALERT_KIND", "kind"},
      {"JOBHOST_JOB", "job"},
      {"JOBHOST_ALERT_MESSAGE", "message"},
      {"JOBHOST_ALERT_SINCE", "since"},
      {"JOBHOST_ALERT_AT", "at"},
      {"JOBHOST_HOST", "host"},
      {"JOBHOST_RUN_ID", "run_id"},
      {"JOBHOST_ALERT_NOTIFIER", "notifier"},
  };
  for (const auto& [name, key] : kNames) {
    auto it = notice.find(key);
    env.push_back(fmt::format("{}={}", name, it == notice.end() ? "" : env_value(*it)));
  }
  return env;
}

Result<exec::Credentials> notifier_credentials(const config::NotifierConfig& config) {
  std::optional<std::string> user = config.user;
  std::optional<std::string> group = config.group;
  if (!user && ::geteuid() == 0) {
    user = std::string(kCommandDefaultUser);
    // nogroup where it exists (Debian), else nobody's primary group.
    if (!group && exec::resolve_credentials(std::nullopt, std::string(kCommandDefaultGroup))) {
      group = std::string(kCommandDefaultGroup);
    }
  }
  auto creds = exec::resolve_credentials(user, group);
  if (!creds) {
    return fail(fmt::format("[alerts.{}]: {}", config.name, creds.error().message));
  }
  return creds;
}

std::unique_ptr<Notifier> make_command_notifier(asio::io_context& io,
                                                const config::NotifierConfig& config) {
  return std::make_unique<CommandNotifier>(io, config);
}

Result<std::unique_ptr<Notifier>> make_notifier(asio::io_context& io,
                                                const config::NotifierConfig& config) {
  if (config.type == config::NotifierConfig::Type::command) {
    return make_command_notifier(io, config);
  }
  return make_webhook_notifier(io, config);
}

}  // namespace jobhost::observe
