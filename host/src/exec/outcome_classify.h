// How a run ended, decided from plain facts: a pure function, table-tested in
// tests/exec/outcome_classify_test.cpp. The executor gathers the facts (wait
// status, the child's result record, our own stop reason, limits reported by
// the child or the cgroup) and asks classify() for the outcome and message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/outcome.h"
#include "common/time.h"
#include "config/config.h"

namespace jobhost::exec {

// Why the host stopped a run itself.
enum class StopReason {
  timeout,   // the wall-clock timeout passed
  stall,     // no heartbeat within stall_timeout
  replace,   // a newer fire of the job replaces it (concurrency = "replace")
  shutdown,  // the host is shutting down
  cancel,    // an operator cancelled the run
};

std::string_view to_string(StopReason reason);

// Everything known about a finished run. Fields that do not apply stay empty.
struct ExitFacts {
  // How the run's process (the group leader) ended: exactly one is set.
  std::optional<int> exit_code;  // exited normally with this code
  std::optional<int> signal;     // was killed by this signal
  bool core_dumped = false;
  // Neither is known: why (the fork server died, and init reaped the run).
  std::optional<std::string> status_unknown;

  std::optional<StopReason> stop_reason;  // the host asked it to stop
  bool killed_after_grace = false;        // ... and had to SIGKILL it

  std::optional<int32_t> result_code;      // what `run` returned (JOBHOST_OK, ...), if reported
  std::string message;                     // the run's last set_message (or exception text)
  std::optional<std::string> setup_error;  // the child could not start the plugin
  std::optional<std::string> child_limit;  // limit the child saw ("memory": allocation failed)
  std::optional<std::string>
      cgroup_limit;                   // limit the run's cgroup recorded ("memory", "processes")
  std::optional<double> cpu_seconds;  // CPU time the leader used (user + system)
  // sandbox: the system call the syscall filter blocked, as the run reported it
  // ("ptrace"); named in the message when the run died of SIGSYS.
  std::optional<std::string> blocked_syscall;

  // The run's settings, for the messages.
  Duration timeout{0};
  Duration stall_timeout{0};
  Duration kill_grace{0};
  config::Limits limits;
};

// The verdict: the outcome, a message for humans, and whether the retry
// policy may try the fire again (issue 5): RETRY, timed_out, stalled, crashed,
// limit_exceeded, interrupted and an exit without a result are retryable;
// FAIL, a failed start (bad plugin, unknown user), replaced and cancelled are
// not.
struct Classification {
  Outcome outcome = Outcome::failed;
  std::string message;
  bool retryable = false;
};

// Rules, first match wins:
//  1. our stop reason: timed_out, stalled, replaced, interrupted, cancelled;
//  2. the child could not start the plugin: failed, not retryable;
//  3. the plugin returned OK: succeeded (even if it hit a limit and recovered);
//  4. a limit: reported by the child or the cgroup, SIGXCPU, SIGXFSZ, or SIGKILL
//     once the CPU limit is used up: limit_exceeded naming the limit;
//  5. a result record: RETRY (retryable) or FAIL (not) is failed;
//  6. killed by a signal: crashed, naming the signal (and, for SIGSYS, the
//     system call the syscall filter blocked);
//  7. exited without a result (any code, 0 too): failed.
Classification classify(const ExitFacts& facts);

// Rule 3's condition: the plugin returned OK and the process exited. Such a
// run is never explained by a limit, so its cgroup_limit need not be read.
bool returned_ok(const ExitFacts& facts);

// "SIGSEGV" for SIGSEGV, "SIG42" for a signal without a name.
std::string signal_name(int signal);

// "64MiB", "1GiB", "1500B": the size as config files write it.
std::string format_size(uint64_t bytes);

}  // namespace jobhost::exec
