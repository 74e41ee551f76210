// The executor: runs each run of a job in its own forked child and reports
// how it ended. Lives on the daemon's one io_context thread. The children are
// forked by the fork server (exec/fork_server.h), a small process the
// executor starts once, so the daemon itself never forks per run; nothing
// here blocks the loop for longer than a round trip to that server
// (run_blocking is for the CLI and tests).
//
// Child: new process group, PR_SET_PDEATHSIG(SIGKILL), signals default, every
// inherited fd closed, stdin /dev/null, stdout+stderr to one pipe, the run's
// cgroup, rlimits, NO_NEW_PRIVS and privilege drop (exec/isolation.h), then
// the plugin's shadow copy is dlopen'ed and init/run/shutdown are called with
// the host function table. Log lines, heartbeats, metrics, the message and
// the result travel back on a control socket, framed (exec/control_record.h).
//
// Stopping (timeout, stall, replace, shutdown): cancelled() turns true in the
// run (a byte on the control socket, and SIGTERM, which the run's own process
// catches for that purpose: a blocking call returns EINTR), every other
// process of the group gets SIGTERM, and after kill_grace the group is
// SIGKILLed (and the cgroup killed). When the leader exits, whatever is left
// of its group is SIGKILLed before it is reaped, so nothing outlives the run.
// Signals go only to live runs: the group while its leader is unreaped (the
// fork server reaps only when asked, so the pid, hence the group id, cannot
// be reused), the leader via its pidfd. If the fork server dies (only SIGKILL
// can end it), its runs die with it by their death signal and are reported
// interrupted with their exit status unknown; the next run starts a new one.
//
// Contract with the rest of the daemon: nobody else reaps the fork server
// (no waitpid(-1), SIGCHLD not SIG_IGN) and the loop runs on one thread.
#pragma once

#include <spdlog/common.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/outcome.h"
#include "common/time.h"
#include "config/config.h"
#include "exec/fork_server.h"
#include "exec/isolation.h"
#include "exec/outcome_classify.h"

namespace jobhost::exec {

// One run to start. Owned by the executor once passed to start().
struct RunRequest {
  std::string job;
  std::string run_id;    // unique among active runs; a plain name (it names the cgroup)
  std::string trace_id;  // shared by every attempt of a fire
  uint32_t attempt = 1;
  TimePoint scheduled_for{};
  std::filesystem::path plugin_path;  // the shadow copy to dlopen
  std::map<std::string, std::string> params;
  std::map<std::string, std::string> secrets;  // never logged
  config::Limits limits;
  Duration timeout{0};               // wall clock; 0 = none
  Duration stall_timeout{0};         // since start or the last heartbeat; 0 = off
  Duration kill_grace{0};            // SIGTERM .. SIGKILL; 0 = SIGKILL at once
  std::optional<std::string> user;   // run as this user (host is root)
  std::optional<std::string> group;  // and group
};

// How a run ended. Delivered once per started run.
struct RunReport {
  std::string run_id;
  Outcome outcome = Outcome::failed;
  std::string message;           // for humans; never empty
  bool retryable = false;        // see Classification
  std::optional<int> exit_code;  // the leader exited with this code
  std::optional<int> signal;     // the leader died of this signal
  std::string signal_name;       // "SIGSEGV", or ""
  TimePoint started{};
  TimePoint finished{};                   // when the leader was reaped
  std::string output_tail;                // last limits.output_bytes of stdout+stderr and log lines
  uint64_t output_bytes = 0;              // bytes of output seen in total
  std::map<std::string, double> metrics;  // last value of each metric()
  std::optional<double> last_progress;    // last heartbeat's progress, if known
  std::optional<double> cpu_seconds;      // CPU time of the leader (user + system)
  uint64_t max_rss_bytes = 0;             // peak resident memory of the leader
  int pid = 0;
};

// Where a log line of a run came from.
enum class LogStream {
  plugin,  // the plugin's log()
  output,  // a line the run printed on stdout or stderr
  host,    // the executor, about the run (stopping it, dropped lines, ...)
};

// One log line about a run; the views are valid during the call only.
struct RunLogLine {
  std::string_view job;
  std::string_view run_id;
  std::string_view trace_id;
  LogStream stream;
  spdlog::level::level_enum level;
  std::string_view text;
};

struct ExecutorOptions {
  // Receives every log line of every run. Empty: jobhost::log::write.
  std::function<void(const RunLogLine&)> log_sink;
  // Called on each heartbeat (at most every 50 ms per run; the ledger should
  // coalesce further). progress is nullopt when the run did not give one.
  std::function<void(std::string_view run_id, std::optional<double> progress)> on_heartbeat;
  // From detect_isolation() at daemon start; mode none = process group + rlimits.
  IsolationCaps isolation;
  // After the leader is reaped, how long to wait for its pipes to close (a
  // process that left the group may still hold them) before giving up on them.
  Duration drain_timeout = std::chrono::seconds(2);
  // Log lines longer than this are cut (the tail keeps the whole output).
  std::size_t max_log_line = 4096;
  // Rate limit of logged lines per run, for output and log() separately;
  // lines over it are dropped from the log (not from the tail) and counted.
  double log_lines_per_second = 100;
  double log_burst = 500;
};

class Executor {
 public:
  // `io` must outlive the executor; handlers run on io's thread. Starts the
  // fork server (exec/fork_server.h): construct the executor early.
  Executor(boost::asio::io_context& io, ExecutorOptions options);
  // Kills (SIGKILL) and reaps every active run without calling on_done.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Forks the run's child and returns its pid. `on_done` is called exactly
  // once, later, from the io_context, after the child is reaped and its pipes
  // are drained. Errors (nothing started, on_done never called): a run id
  // already active or not a plain name, unknown user or group, cgroup not
  // creatable, pipe/fork/pidfd failure.
  Result<int> start(RunRequest request, std::function<void(RunReport)> on_done);

  // Asks the run to stop for `reason` (see the top of this file). No-op for an
  // unknown or already finished run, or one already stopping (the first
  // reason stays).
  void stop(std::string_view run_id, StopReason reason);
  // stop() for every active run.
  void stop_all(StopReason reason);

  // Runs started and not yet reported.
  std::size_t active() const { return runs_.size(); }

  // Run cgroups made so far; ended runs' cgroups are reused (CgroupPool).
  std::uint64_t cgroups_made() const { return cgroups_->made(); }
  // Removes the cgroups kept for reuse: call before remove_parent_cgroups.
  void remove_idle_cgroups() { cgroups_->clear(); }

  struct Run;  // internal state of one run

 private:
  void finish(const std::shared_ptr<Run>& run);

  boost::asio::io_context& io_;
  ExecutorOptions options_;
  // Forks run's child through the current fork server (see fork_server.h).
  Result<ForkServer::Spawned> spawn(Run& run, const Credentials& credentials, int control_fd,
                                    int output_fd);

  // Shared with the handlers that give an ended run's cgroup back.
  std::shared_ptr<CgroupPool> cgroups_;
  std::shared_ptr<ForkServer> forks_;  // the current one; replaced if it dies or retires
  std::set<std::string, std::less<>> no_preload_;  // plugins whose loading broke a server
  std::map<std::string, std::shared_ptr<Run>, std::less<>> runs_;
};

// Runs one request to completion on a private io_context, blocking the
// caller (for `jobhost run-once` and tests). Errors as Executor::start.
Result<RunReport> run_blocking(RunRequest request, ExecutorOptions options = {});

}  // namespace jobhost::exec
