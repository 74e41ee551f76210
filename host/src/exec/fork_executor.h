// The fork-server executor: runs each run of a job in its own forked child and reports
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

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "exec/executor.h"
#include "exec/fork_server.h"

namespace jobhost::exec {

class ForkExecutor final : public Executor {
 public:
  // `io` must outlive the executor; handlers run on io's thread. Starts the
  // fork server (exec/fork_server.h): construct the executor early.
  ForkExecutor(boost::asio::io_context& io, ExecutorOptions options);
  // Kills (SIGKILL) and reaps every active run without calling on_done.
  ~ForkExecutor() override;
  ForkExecutor(const ForkExecutor&) = delete;
  ForkExecutor& operator=(const ForkExecutor&) = delete;

  // Forks the run's child and returns its pid. `on_done` is called exactly
  // once, later, from the io_context, after the child is reaped and its pipes
  // are drained. Errors (nothing started, on_done never called): a run id
  // already active or not a plain name, unknown user or group, cgroup not
  // creatable, pipe/fork/pidfd failure.
  Result<int> start(RunRequest request, std::function<void(RunReport)> on_done) override;

  // start(), with the run's process parked before the plugin's init until
  // release() (executor.h).
  Result<int> park(RunRequest request, std::function<void(RunReport)> on_done,
                   TimePoint instant) override;
  void release(std::span<const std::string> run_ids) override;
  void discard(std::string_view run_id) override;

  // Asks the run to stop for `reason` (see the top of this file). No-op for an
  // unknown or already finished run, or one already stopping (the first
  // reason stays).
  void stop(std::string_view run_id, StopReason reason) override;
  // stop() for every active run.
  void stop_all(StopReason reason) override;

  // Runs started or parked and not yet reported.
  std::size_t active() const override { return runs_.size(); }

  // Run cgroups made so far; ended runs' cgroups are reused (CgroupPool).
  std::uint64_t cgroups_made() const { return cgroups_->made(); }
  // Fork servers started to replace one that died or retired (metrics).
  std::uint64_t fork_server_restarts() const { return server_restarts_; }
  // Removes the cgroups kept for reuse: call before remove_parent_cgroups.
  void remove_idle_cgroups() { cgroups_->clear(); }

  struct Run;  // internal state of one run

 private:
  // The runs parked for one instant: the read end of a pipe each of their
  // processes polls, the write end whose closing releases them all.
  struct Gate {
    int read_fd = -1;
    int write_fd = -1;
    std::set<std::string, std::less<>> waiting;  // run ids parked behind it
  };
  // start() and park(): request.parked says which; `gate` for a parked run
  // (nullptr: released by its control socket's byte).
  Result<int> launch(RunRequest request, std::function<void(RunReport)> on_done, Gate* gate);
  // The run no longer waits behind its gate (released, discarded, ended):
  // the gate opens (its pipe closes) once nobody waits behind it.
  void leave_gate(Run& run);
  void finish(const std::shared_ptr<Run>& run);
  // True when a run other than `except`, not reaped yet, has `uid` to sweep.
  bool uid_in_use(uid_t uid, const Run* except) const;

  boost::asio::io_context& io_;
  ExecutorOptions options_;
  // Forks run's child through the current fork server (see fork_server.h).
  Result<ForkServer::Spawned> spawn(Run& run, const Credentials& credentials, int control_fd,
                                    int output_fd, int gate_fd);

  // Shared with the handlers that give an ended run's cgroup back.
  std::shared_ptr<CgroupPool> cgroups_;
  std::shared_ptr<ForkServer> forks_;  // the current one; replaced if it dies or retires
  std::uint64_t server_restarts_ = 0;
  std::set<std::string, std::less<>> no_preload_;  // plugins whose loading broke a server
  std::map<std::string, std::shared_ptr<Run>, std::less<>> runs_;
  std::map<TimePoint, Gate> gates_;
};

// Runs one request to completion on a private io_context, blocking the
// caller (for `jobhost run-once` and tests). Errors as Executor::start.
Result<RunReport> run_blocking(RunRequest request, ExecutorOptions options = {});

}  // namespace jobhost::exec
