#include "support/harness.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "schedule/schedule.h"

namespace jobhost::testing {
namespace {

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// In a forked child: becomes `as_user` (uid and gid, no supplementary
// groups) when given, then execs `args`. Exit 126: the switch failed; 127:
// the exec did.
[[noreturn]] void exec_as(std::vector<std::string>& args, std::optional<uid_t> as_user) {
  if (as_user && (setgroups(0, nullptr) != 0 || setgid(*as_user) != 0 || setuid(*as_user) != 0)) {
    _exit(126);
  }
  auto argv = argv_of(args);
  execv(argv[0], argv.data());
  _exit(127);
}

}  // namespace

CommandResult run_jobhost(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                          std::optional<uid_t> as_user) {
  std::vector<std::string> full = {JOBHOST_BIN};
  full.insert(full.end(), args.begin(), args.end());
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    exec_as(full, as_user);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (open_fds > 0) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) && open_fds == 0 ? WEXITSTATUS(status) : -1;
  return result;
}

fs::path install_plugins(const fs::path& dir, const std::vector<std::string>& files) {
  fs::path plugins = dir / "plugins";
  fs::create_directories(plugins);
  fs::permissions(plugins, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  for (const auto& name : files) {
    fs::path from = fs::path(JOBHOST_PLUGIN_DIR) / name;
    if (!fs::exists(from)) from = fs::path(JOBHOST_TEST_PLUGIN_DIR) / name;
    fs::copy_file(from, plugins / name, fs::copy_options::overwrite_existing);
    fs::permissions(plugins / name, fs::perms::owner_all | fs::perms::group_read |
                                        fs::perms::group_exec | fs::perms::others_read |
                                        fs::perms::others_exec);
  }
  return plugins;
}

fs::path write_config(const fs::path& dir, const std::string& jobs_toml,
                      const std::string& host_extra) {
  fs::path file = dir / "jobhost.toml";
  // HTTP is off unless the jobs text has an [http] table of its own.
  const bool own_http =
      jobs_toml.starts_with("[http]") || jobs_toml.find("\n[http]") != std::string::npos;
  std::ofstream(file) << "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"var\"\n"
                      << host_extra << (own_http ? "\n" : "\n[http]\nlisten = \"\"\n\n")
                      << jobs_toml;
  return file;
}

Daemon::Daemon(const fs::path& config, std::optional<uid_t> as_user)
    : config_(config), log_(config.parent_path() / "daemon.log") {
  std::vector<std::string> args = {JOBHOST_BIN, "run", "--config", config.string()};
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    dup2(fd, 1);
    exec_as(args, as_user);
  }
}

Daemon::~Daemon() {
  if (reaped_ || pid_ <= 0) return;
  // A clean stop first: a daemon killed here would leave its cgroups behind
  // (they are named after its temp state dir, so no later daemon reuses them).
  kill(pid_, SIGTERM);
  if (!wait_exit(10s)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Daemon::alive() const {
  return !reaped_ && kill(pid_, 0) == 0 && process_alive(pid_);
}

void Daemon::signal(int signo) const {
  if (!reaped_) kill(pid_, signo);
}

std::optional<int> Daemon::wait_exit(std::chrono::milliseconds timeout) {
  if (reaped_) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return std::nullopt;
    }
    std::this_thread::sleep_for(20ms);
  }
  return std::nullopt;
}

std::string Daemon::log() const {
  return read_file(log_);
}

bool Daemon::wait_ready(std::chrono::milliseconds timeout) const {
  // A socket file may be left by a daemon that was killed: ready means this
  // daemon answers a ping with its own pid.
  fs::path socket = config_.parent_path() / "var" / "jobhost.sock";
  return wait_for(
      [&] {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
        std::string reply;
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
          std::string ping = "{\"op\":\"ping\"}\n";
          if (send(fd, ping.data(), ping.size(), MSG_NOSIGNAL) > 0) {
            char buf[256];
            ssize_t n;
            while (reply.find('\n') == std::string::npos &&
                   (n = recv(fd, buf, sizeof buf, 0)) > 0) {
              reply.append(buf, static_cast<std::size_t>(n));
            }
          }
        }
        close(fd);
        return reply.find("\"pid\":" + std::to_string(pid_)) != std::string::npos;
      },
      timeout);
}

fs::path run_writable_dir(const fs::path& parent) {
  const fs::path dir = parent / "drop";
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all);
  return dir;
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

nlohmann::json history(const fs::path& config, const std::string& job, int limit) {
  std::vector<std::string> args = {"history", "--config", config.string(),
                                   "--json",  "--limit",  std::to_string(limit)};
  if (!job.empty()) args.push_back(job);
  auto result = run_jobhost(args);
  if (result.exit_code != 0) return nlohmann::json::array();
  return nlohmann::json::parse(result.out);
}

std::vector<nlohmann::json> finished(const nlohmann::json& runs, const std::string& job) {
  std::vector<nlohmann::json> out;
  for (const auto& run : runs) {
    if (run.value("job", "") == job && run["outcome"].is_string()) out.push_back(run);
  }
  return out;
}

bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() &&
         line[close_paren + 2] != 'Z';
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(line.substr(close_paren + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(std::stoi(name));
  }
  return out;
}

std::string every_second_once(const nlohmann::json& runs) {
  std::map<TimePoint, std::vector<std::string>> by_slot;  // slot -> run ids
  for (const auto& run : runs) {
    const std::string text = run.value("scheduled_for", "");
    auto slot = schedule::parse_rfc3339(text);
    if (!slot) return "unreadable scheduled_for \"" + text + "\"";
    by_slot[*slot].push_back(run.value("run_id", "?"));
  }
  if (by_slot.empty()) return "no runs";
  const TimePoint* previous = nullptr;
  for (const auto& [slot, ids] : by_slot) {
    const std::string at = std::to_string(slot.time_since_epoch().count()) + " ms";
    if (ids.size() != 1) return "slot " + at + " recorded " + std::to_string(ids.size()) + " times";
    if (previous && slot - *previous != std::chrono::seconds(1)) {
      return "gap: " + std::to_string(previous->time_since_epoch().count()) + " ms to " + at;
    }
    previous = &slot;
  }
  return "";
}

nlohmann::json cluster_status(const fs::path& config) {
  auto result = run_jobhost({"cluster", "status", "--config", config.string(), "--json"});
  if (result.exit_code != 0) {
    throw std::runtime_error("jobhost cluster status failed: " + result.err);
  }
  return nlohmann::json::parse(result.out);
}

nlohmann::json cluster_host(const nlohmann::json& status, const std::string& id) {
  for (const auto& h : status["hosts"]) {
    if (h["id"] == id) return h;
  }
  return nullptr;
}

CommandResult trigger(const fs::path& config, const std::string& job) {
  return run_jobhost({"trigger", "--config", config.string(), job});
}

std::optional<nlohmann::json> wait_outcome(const fs::path& config, const std::string& job,
                                           const std::string& outcome,
                                           std::chrono::milliseconds timeout) {
  std::optional<nlohmann::json> found;
  wait_for(
      [&] {
        for (const auto& run : finished(history(config, job), job)) {
          if (run["outcome"] == outcome) found = run;
        }
        return found.has_value();
      },
      timeout);
  return found;
}

std::unique_ptr<ledger::Store> open_ledger(const fs::path& config, ledger::Access access) {
  const fs::path db = config.parent_path() / "var" / "jobhost.db";
  auto store = ledger::open_sqlite_store(db, config::Durability::normal, access);
  if (!store)
    throw std::runtime_error("cannot open the ledger " + db.string() + ": " +
                             store.error().message);
  return std::move(*store);
}

}  // namespace jobhost::testing
