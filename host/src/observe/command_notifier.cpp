// The command notifier: the alert as JSON on stdin and in JOBHOST_*
// variables, for an executable run as a host-side helper. posix_spawn
// (clone + exec, no copy of the daemon's memory) into a session and process
// group of its own, with every descriptor above 2 closed, an empty signal
// mask and default dispositions, a clean environment, then rlimits (prlimit,
// right after the exec), the timeout as SIGKILL of the whole group, and a
// pidfd on the loop so that it is always reaped and never waited for.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
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
#include "observe/notifier.h"

extern char** environ;

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
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> env = notice_environment(notice);
    std::vector<char*> argv, envp;
    for (const auto& a : config_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = -1;
    const int rc =
        ::posix_spawn(&pid, config_.command[0].c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    if (rc != 0) {
      ::close(in_pipe[1]);
      ::close(out_pipe[0]);
      return fmt::format("cannot start {}: {}", config_.command[0], std::strerror(rc));
    }
    child.pid = pid;
    // posix_spawn returns once the child has exec'd: the limits apply from
    // its first instructions on (a window of microseconds, see the docs).
    const auto limit = [pid](int resource, uint64_t value) {
      const rlimit l{value, value};
      ::prlimit(pid, static_cast<__rlimit_resource>(resource), &l, nullptr);
    };
    limit(RLIMIT_AS, kCommandMemoryBytes);
    limit(RLIMIT_NOFILE, kCommandOpenFiles);
    limit(RLIMIT_FSIZE, kCommandFileSize);
    limit(RLIMIT_CORE, 0);
    const auto cpu = std::chrono::ceil<std::chrono::seconds>(config_.timeout).count() + 1;
    limit(RLIMIT_CPU, static_cast<uint64_t>(cpu));

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
