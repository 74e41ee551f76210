// The executor seam: what a run is given (RunRequest), how it ended
// (RunReport), and the small interface the engine starts and stops runs
// through. Every run is its own process; the engine never learns how. The
// implementation that forks runs from the fork server is exec/fork_executor.h.
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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/outcome.h"
#include "common/time.h"
#include "config/config.h"
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
  // The job's private state directory (<state_dir>/jobs/<job>/): the run's
  // working directory, HOME and JOBHOST_STATE_DIRECTORY. Empty: none.
  std::filesystem::path state_directory;
  // The job's `env = { KEY = "value" }`, added to the run's documented environment.
  std::map<std::string, std::string> env;
  // sandbox: network, private_tmp, read_only (+ read_write_paths), syscall_filter.
  config::Sandbox sandbox;
  // Environment and secrets (issue 13; exec/environment.h, exec/secrets.h):
  // the job's time zone (IANA name) for TZ; empty: TZ unset.
  std::string time_zone;
  // The [secrets.NAME] the job may read: start() reads each from its source
  // into `secrets` (a secret that cannot be read fails start(), naming it),
  // and the values are redacted from the run's output tail, log lines and
  // message as [secret:NAME].
  std::vector<config::SecretConfig> secret_sources;
  // --- dynamic users ---
  // The job's dynamic uid (config::JobConfig::dynamic_uid): used when the
  // host is root and `user` is unset (exec/run_user.h).
  std::optional<uint32_t> dynamic_uid;
  // Set by Executor::park: the run's process waits for release() before
  // the plugin's init.
  bool parked = false;
  // ABI 1.1: what made the run ("schedule", "webhook", ...) and the
  // trigger's payload (JSON), as the plugin's trigger_kind() and event() give them.
  std::string trigger_kind = "schedule";
  std::optional<std::string> event;
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
  TimePoint finished{};       // when the leader was reaped
  std::string output_tail;    // last limits.output_bytes of stdout+stderr and log lines
  uint64_t output_bytes = 0;  // bytes of output seen in total
  // Last value of each metric(); at most 256 names of 1-128 bytes, finite values.
  std::map<std::string, double> metrics;
  std::optional<double> last_progress;  // last heartbeat's progress, if known
  // CPU seconds (user + system) of the run's whole process tree where its
  // cgroup counts them, else of the leader and the children it waited for;
  // peak memory: the larger of the cgroup's peak and the leader's peak RSS
  // (0 = unknown). docs/running.md has what each covers in each mode.
  std::optional<double> cpu_seconds;
  uint64_t max_rss_bytes = 0;
  int pid = 0;
  // What the plugin's init or run returned (JOBHOST_OK, JOBHOST_RETRY, ...),
  // if it reported it: tells a RETRY from other retryable failures.
  std::optional<int32_t> result_code;
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

// What the engine needs of an executor: start a run, stop one, stop all
// (at shutdown), and how many are active. The fork-server implementation is
// ForkExecutor (exec/fork_executor.h); engine tests use a fake.
class Executor {
 public:
  virtual ~Executor() = default;

  // Starts the run and returns its pid. `on_done` is called exactly once,
  // later, from the io_context, after the run ended and its output is
  // drained; never from inside start(). Errors (nothing started, on_done
  // never called): a run id already active or not a plain name, unknown user
  // or group, cgroup not creatable, pipe/fork/pidfd failure.
  virtual Result<int> start(RunRequest request, std::function<void(RunReport)> on_done) = 0;

  // Parks a run ahead of its instant: as start(), but its process, once set
  // up (cgroup, limits, identity, sandbox, environment), waits before any of
  // the plugin's code (entry point, init; constructors unless the fork
  // server preloaded it) until release(). Its timeout and stall
  // timeout count from the release. `on_done` as for start(): once the
  // run ended, after its release, or before it if the process died parked
  // (a setup failure, a kill); never for a discarded run.
  // Runs parked for the same `instant` share a gate: when every one of them
  // is released or gone, one syscall wakes them all together.
  virtual Result<int> park(RunRequest request, std::function<void(RunReport)> on_done,
                           TimePoint instant) = 0;
  // Starts parked runs: the plugin's code begins. Ids of runs not parked
  // are ignored. Release every run due at an instant in one call (discard
  // the others first): their gate then opens at once; a run whose gate
  // still holds others is released by a byte of its own.
  virtual void release(std::span<const std::string> run_ids) = 0;
  // Ends a parked run without running any of the plugin's code: its
  // process is killed and reaped, its cgroup given back; on_done is never
  // called. No-op for a run that is not parked.
  virtual void discard(std::string_view run_id) = 0;

  // Asks the run to stop for `reason`: cancelled() turns true in the run,
  // SIGTERM, then SIGKILL after its kill_grace. No-op for an unknown or
  // already finished run, or one already stopping (the first reason stays).
  virtual void stop(std::string_view run_id, StopReason reason) = 0;
  // stop() for every active run.
  virtual void stop_all(StopReason reason) = 0;

  // Runs started or parked and not yet reported.
  virtual std::size_t active() const = 0;
};

}  // namespace jobhost::exec
