// The fork server: a small process, started by the daemon from its own
// executable (jobhost-forkserver, by posix_spawn: a clean image with an empty
// environment, so no run inherits the daemon's memory, secrets or
// environment), that forks the runs' children on the daemon's behalf.
//
// Why: after a fork, every page the forking process writes takes a
// copy-on-write fault, and the daemon writes many (the ledger, the loop, each
// run's buffers): forking from the daemon made a no-op run cost twice a bare
// fork (bench/dispatch). The server writes little between forks (the next
// run's decoded plan), and the daemon never forks again.
//
// The daemon keeps the contract of executor.h: it holds a pidfd for each run
// (the server passes it over the socket), watches it for the exit, signals
// the leader through it and the group with kill(-pid) while the leader is
// unreaped, and asks the server to reap only after that. The server reaps
// nothing it was not asked to, so a run's pid (and group id) cannot be reused
// before the daemon is done with it.
//
// The server: own process group (a Ctrl-C to the daemon's terminal does not
// reach it), PR_SET_PDEATHSIG(SIGKILL) (it dies with the daemon, and its runs
// with it, by their own death signal), every signal blocked (only SIGKILL
// ends it) and every disposition default (which runs inherit), no descriptor
// but its socket. It exits when the daemon closes the socket.
//
// Protocol (SOCK_SEQPACKET, one request and one reply at a time): spawn
// carries the run's plan (a flat binary record) and the child ends of its control socket and
// output pipe; the reply carries the pid and a pidfd. reap carries a pid; the
// reply its siginfo and rusage.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

namespace jobhost::exec {

struct RunRequest;
struct Credentials;

// The server's executable's file name.
inline constexpr char kForkServerName[] = "jobhost-forkserver";

// Where the server's executable is: the first of <dir of this program>/
// jobhost-forkserver, <dir>/../libexec/jobhost/jobhost-forkserver, the
// installed libexec path and the build tree's bin/ (both compiled in) that is
// a regular executable file owned by root or the host's user and not
// writable by group or others. Error: none is, each named with why.
Result<std::filesystem::path> fork_server_executable();

// main() of jobhost-forkserver: argv[1] is the socket's descriptor, argv[2]
// the daemon's pid, argv[3] (optional) the state directory to hide (start()). Serves until the
// daemon closes the socket.
int fork_server_main(int argc, char** argv) noexcept;

class ForkServer {
 public:
  // Starts the server: posix_spawn of fork_server_executable() with an empty
  // environment (a sanitizer build passes its *SAN_OPTIONS), the socket as
  // descriptor 3. Error: no executable found, or it could not be started.
  // With `hide` (the state directory; host not root and
  // probe_run_namespaces() fine), every run is cloned into namespaces of its
  // own that hide it (exec/sandbox.h NamespacePlan), and its first process
  // is the namespace's init, which relays the run's wait status to reap().
  static Result<std::unique_ptr<ForkServer>> start(const std::filesystem::path& hide = {});

  // Closes the socket (the server exits) and reaps the server.
  ~ForkServer();
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  struct Spawned {
    pid_t pid = 0;
    int pidfd = -1;  // owned by the caller
  };
  // Forks a run's child in the server. The child runs exec::run_child with
  // the request, joining `cgroup_procs` and switching to `credentials`.
  // `control_fd` and `output_fd` are the child's ends; the caller still owns
  // (and closes) its copies. With `preload`, the server first loads the
  // plugin itself (once per path, while what preloaded plugins map stays
  // under 64 MiB), so children skip that work; if that left the server with
  // a thread or over the 64 MiB, nothing is forked, the error says so and
  // retired() turns true.
  // A parked request may pass `gate_fd`, the read end of the pipe whose
  // closing releases it (child_runtime.h ChildPlan::gate_fd).
  Result<Spawned> spawn(const RunRequest& request, const std::vector<std::string>& cgroup_procs,
                        const Credentials& credentials, int control_fd, int output_fd, bool preload,
                        int gate_fd = -1);

  struct Reaped {
    siginfo_t info{};
    rusage usage{};
  };
  // Reaps `pid` (a child spawned here that has exited or is about to).
  Result<Reaped> reap(pid_t pid);

  // False once the server is known to be gone (a reply never came, the socket
  // broke); every call then fails and the executor starts a new server.
  bool alive() const { return sock_ >= 0; }
  // True once the server asked not to be sent more runs: it can still reap
  // the ones it has, then it should be let go.
  bool retired() const { return retired_; }
  pid_t pid() const { return pid_; }

 private:
  ForkServer(pid_t pid, int sock) : pid_(pid), sock_(sock) {}
  // Sends one request (with `fds`, if any) and waits for its reply.
  Result<std::vector<char>> call(const std::string& request, std::span<const int> fds,
                                 int* received_fd);
  // Marks the server gone and kills it (it is reaped by the destructor).
  void abandon();

  pid_t pid_;
  int sock_;
  bool retired_ = false;
};

}  // namespace jobhost::exec
