// Helpers for integration tests that drive the real `jobhost` binary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ledger/sqlite_store.h"
#include "support/temp_dir.h"

namespace jobhost::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string out;
  std::string err;
};

// Runs build/bin/jobhost with `args`, waits at most `timeout`; as user
// `as_user` (uid and gid, no supplementary groups) when given (root only).
CommandResult run_jobhost(const std::vector<std::string>& args,
                          std::chrono::milliseconds timeout = 60s,
                          std::optional<uid_t> as_user = std::nullopt);

// Copies plugins (file names in build/plugins or build/test-plugins, e.g.
// "hello.so", "sleeper.so") into dir/plugins with safe permissions.
fs::path install_plugins(const fs::path& dir, const std::vector<std::string>& files);

// Writes dir/jobhost.toml: a [host] section using dir/plugins and dir/var,
// [http] off (unless `jobs_toml` has an [http] table of its own, e.g.
// listen = "127.0.0.1:0"; see wait_http_port), then `jobs_toml` verbatim.
// Returns its path.
fs::path write_config(const fs::path& dir, const std::string& jobs_toml,
                      const std::string& host_extra = "");

// parent/"drop", made with mode 0777: where plugins leave files for a test.
// Jobs without a `user` run as dynamic users when the tests run as root, and
// cannot write anywhere else in a test's directory.
fs::path run_writable_dir(const fs::path& parent);

// `jobhost run` in the background, its stderr in dir/daemon.log; as user
// `as_user` (uid and gid, no supplementary groups) when given (root only).
class Daemon {
 public:
  explicit Daemon(const fs::path& config, std::optional<uid_t> as_user = std::nullopt);
  ~Daemon();  // SIGKILLs and reaps it if still running
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  bool alive() const;
  void signal(int signo) const;
  // Waits for the daemon to exit; its exit code, or nullopt on timeout / signal death.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string log() const;
  // Waits until the control socket answers.
  bool wait_ready(std::chrono::milliseconds timeout = 20s) const;

 private:
  fs::path config_;
  fs::path log_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// The daemon fixture: a temp dir of its own with `plugins` copied in (see
// install_plugins) and `jobs_toml` + `host_extra` written as its config (see
// write_config); start() runs `jobhost run` on it and REQUIREs that it
// answers; stop() sends SIGTERM and REQUIREs exit code `expected`, printing
// the daemon's log when it differs. start() after stop() restarts it on the
// same state dir. The destructor stops a daemon still running (a failed
// REQUIRE) without checking. With `as_user` (tests run as root), the
// directory is that user's and the daemon runs as that user: a host that is
// not root.
class TestHost {
 public:
  TestHost(const std::vector<std::string>& plugins, const std::string& jobs_toml,
           const std::string& host_extra = "", std::optional<uid_t> as_user = std::nullopt);
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  const fs::path& dir() const { return dir_.path(); }
  const fs::path& config() const { return config_; }
  Daemon& daemon() { return *daemon_; }
  std::string log() const;  // the daemon's log, of every start so far

  void start();
  void stop(int expected = 0, std::chrono::milliseconds timeout = 30s);

 private:
  TempDir dir_;
  fs::path config_;
  std::optional<uid_t> as_user_;
  std::optional<Daemon> daemon_;
};

// Polls `done` every 50 ms until it is true or `timeout` passes.
bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// `jobhost history --json` (of one job, or all when empty), newest first.
nlohmann::json history(const fs::path& config, const std::string& job = "", int limit = 1000);

// Finished runs of `job` in `runs` (a history array).
std::vector<nlohmann::json> finished(const nlohmann::json& runs, const std::string& job);

// The audit of a job on a one-second schedule: every second from the first
// scheduled_for in `runs` (a history array of that job) to the last must be
// recorded exactly once, run or skipped. Empty when it is; else what is
// wrong, naming the slots.
std::string every_second_once(const nlohmann::json& runs);

// `jobhost cluster status --json` of `config`: {"store", "hosts": [...]};
// throws std::runtime_error when the command fails.
nlohmann::json cluster_status(const fs::path& config);
// The entry of host `id` in `status` (cluster_status), or null.
nlohmann::json cluster_host(const nlohmann::json& status, const std::string& id);

// `jobhost trigger <job>` against the daemon of `config`.
CommandResult trigger(const fs::path& config, const std::string& job);

// A finished run of `job` with `outcome`, waiting up to `timeout` for one.
std::optional<nlohmann::json> wait_outcome(const fs::path& config, const std::string& job,
                                           const std::string& outcome,
                                           std::chrono::milliseconds timeout = 20s);

// The ledger of `config` (its dir/var/jobhost.db), opened directly; throws
// when it cannot be opened.
std::unique_ptr<ledger::Store> open_ledger(const fs::path& config,
                                           ledger::Access access = ledger::Access::read_only);

// True if a process with this pid exists (and is not a zombie).
bool process_alive(pid_t pid);

// Pids of the live processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent);

}  // namespace jobhost::testing
