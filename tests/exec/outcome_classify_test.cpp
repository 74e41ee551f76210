// classify(): one row per rule and per interesting combination of facts.
#include "exec/outcome_classify.h"

#include <jobhost/plugin.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <vector>

using namespace jobhost;
using namespace jobhost::exec;
using namespace std::chrono_literals;

namespace {

struct Row {
  const char* name;
  ExitFacts facts;
  Outcome outcome;
  bool retryable;
  std::vector<const char*> message_contains;
  std::vector<const char*> message_lacks = {};
};

ExitFacts exited(int code) {
  ExitFacts f;
  f.exit_code = code;
  f.timeout = 1s;
  f.stall_timeout = 2s;
  f.kill_grace = 5s;
  f.limits.memory_bytes = 64ull << 20;
  f.limits.cpu_time = 10s;
  f.limits.processes = 16;
  f.limits.file_size = 1ull << 20;
  return f;
}

ExitFacts killed(int sig) {
  ExitFacts f = exited(0);
  f.exit_code.reset();
  f.signal = sig;
  return f;
}

template <class F>
ExitFacts with(ExitFacts f, F change) {
  change(f);
  return f;
}

}  // namespace

TEST_CASE("classify: every rule, first match wins") {
  const std::vector<Row> rows = {
      // 1. our stop reason wins over everything the run did afterwards
      {"timeout, killed by our SIGTERM",
       with(killed(SIGTERM), [](ExitFacts& f) { f.stop_reason = StopReason::timeout; }),
       Outcome::timed_out,
       true,
       {"exceeded timeout of 1s"},
       {"grace"}},
      {"timeout, needed SIGKILL after the grace",
       with(killed(SIGKILL),
            [](ExitFacts& f) {
              f.stop_reason = StopReason::timeout;
              f.killed_after_grace = true;
            }),
       Outcome::timed_out,
       true,
       {"exceeded timeout of 1s", "killed after the 5s grace"}},
      {"timeout, returned OK on cancel: still timed out",
       with(exited(0),
            [](ExitFacts& f) {
              f.stop_reason = StopReason::timeout;
              f.result_code = JOBHOST_OK;
              f.message = "cleaned up";
            }),
       Outcome::timed_out,
       true,
       {"exceeded timeout of 1s", "last message: \"cleaned up\""}},
      {"timeout beats a limit the child reported",
       with(killed(SIGTERM),
            [](ExitFacts& f) {
              f.stop_reason = StopReason::timeout;
              f.child_limit = "memory";
            }),
       Outcome::timed_out,
       true,
       {"timeout"}},
      {"stall",
       with(killed(SIGTERM), [](ExitFacts& f) { f.stop_reason = StopReason::stall; }),
       Outcome::stalled,
       true,
       {"no heartbeat for 2s"}},
      {"replaced",
       with(killed(SIGTERM), [](ExitFacts& f) { f.stop_reason = StopReason::replace; }),
       Outcome::replaced,
       false,
       {"newer fire"}},
      {"shutdown",
       with(killed(SIGTERM), [](ExitFacts& f) { f.stop_reason = StopReason::shutdown; }),
       Outcome::interrupted,
       true,
       {"host shut down"}},
      {"cancelled by an operator",
       with(killed(SIGTERM), [](ExitFacts& f) { f.stop_reason = StopReason::cancel; }),
       Outcome::cancelled,
       false,
       {"cancelled by an operator"}},
      // 2. the exit status was lost (the fork server died); a stop reason still wins
      {"status unknown",
       with(ExitFacts{},
            [](ExitFacts& f) {
              f.status_unknown = "the fork server is gone";
              f.result_code = JOBHOST_OK;
            }),
       Outcome::interrupted,
       true,
       {"exit status unknown: the fork server is gone"}},
      {"status unknown after a timeout",
       with(ExitFacts{},
            [](ExitFacts& f) {
              f.status_unknown = "the fork server is gone";
              f.stop_reason = StopReason::timeout;
              f.timeout = 1s;
            }),
       Outcome::timed_out,
       true,
       {"timeout"}},
      // 3. the child could not start the plugin
      {"setup error",
       with(exited(126), [](ExitFacts& f) { f.setup_error = "dlopen: no such file"; }),
       Outcome::failed,
       false,
       {"could not start the plugin: dlopen: no such file"}},
      // 4. OK means succeeded, even after a limit was hit and handled
      {"ok",
       with(exited(0), [](ExitFacts& f) { f.result_code = JOBHOST_OK; }),
       Outcome::succeeded,
       false,
       {"succeeded"}},
      {"ok with a message",
       with(exited(0),
            [](ExitFacts& f) {
              f.result_code = JOBHOST_OK;
              f.message = "copied 12 files";
            }),
       Outcome::succeeded,
       false,
       {"copied 12 files"}},
      {"ok after recovering from an allocation failure",
       with(exited(0),
            [](ExitFacts& f) {
              f.result_code = JOBHOST_OK;
              f.child_limit = "memory";
            }),
       Outcome::succeeded,
       false,
       {}},
      // 5. limits
      {"memory reported by the child",
       with(exited(0),
            [](ExitFacts& f) {
              f.result_code = JOBHOST_FAIL;
              f.child_limit = "memory";
              f.message = "std::bad_alloc";
            }),
       Outcome::limit_exceeded,
       true,
       {"memory limit (64MiB)", "std::bad_alloc"}},
      {"memory from the cgroup (OOM kill)",
       with(killed(SIGKILL), [](ExitFacts& f) { f.cgroup_limit = "memory"; }),
       Outcome::limit_exceeded,
       true,
       {"memory limit (64MiB)"}},
      {"processes from the cgroup",
       with(exited(0),
            [](ExitFacts& f) {
              f.result_code = JOBHOST_FAIL;
              f.cgroup_limit = "processes";
            }),
       Outcome::limit_exceeded,
       true,
       {"process limit (16 processes)"}},
      {"SIGXCPU", killed(SIGXCPU), Outcome::limit_exceeded, true, {"cpu time limit (10s)"}},
      {"SIGXFSZ", killed(SIGXFSZ), Outcome::limit_exceeded, true, {"file size limit (1MiB)"}},
      {"SIGKILL at the hard CPU limit",
       with(killed(SIGKILL), [](ExitFacts& f) { f.cpu_seconds = 11.0; }),
       Outcome::limit_exceeded,
       true,
       {"cpu time limit"}},
      {"SIGKILL well under the CPU limit is not a limit",
       with(killed(SIGKILL), [](ExitFacts& f) { f.cpu_seconds = 0.5; }),
       Outcome::crashed,
       true,
       {"SIGKILL", "outside jobhost"}},
      {"SIGXCPU without a configured limit still names it",
       with(killed(SIGXCPU), [](ExitFacts& f) { f.limits.cpu_time = Duration{0}; }),
       Outcome::limit_exceeded,
       true,
       {"cpu time limit"}},
      // 6. result records
      {"retry",
       with(exited(0),
            [](ExitFacts& f) {
              f.result_code = JOBHOST_RETRY;
              f.message = "upstream 503";
            }),
       Outcome::failed,
       true,
       {"RETRY", "retryable", "upstream 503"},
       {"not retryable"}},
      {"fail",
       with(exited(0),
            [](ExitFacts& f) {
              f.result_code = JOBHOST_FAIL;
              f.message = "corrupt input";
            }),
       Outcome::failed,
       false,
       {"FAIL", "not retryable", "corrupt input"}},
      {"fail without a message",
       with(exited(0), [](ExitFacts& f) { f.result_code = JOBHOST_FAIL; }),
       Outcome::failed,
       false,
       {"returned FAIL (not retryable)"}},
      {"unknown result code",
       with(exited(0), [](ExitFacts& f) { f.result_code = 7; }),
       Outcome::failed,
       false,
       {"unknown result code 7"}},
      // 7. signals it raised
      {"SIGSEGV", killed(SIGSEGV), Outcome::crashed, true, {"crashed with SIGSEGV"}},
      {"SIGABRT with core",
       with(killed(SIGABRT), [](ExitFacts& f) { f.core_dumped = true; }),
       Outcome::crashed,
       true,
       {"SIGABRT", "core dumped"}},
      {"SIGBUS", killed(SIGBUS), Outcome::crashed, true, {"SIGBUS"}},
      {"SIGFPE", killed(SIGFPE), Outcome::crashed, true, {"SIGFPE"}},
      {"SIGILL", killed(SIGILL), Outcome::crashed, true, {"SIGILL"}},
      {"SIGKILL from elsewhere", killed(SIGKILL), Outcome::crashed, true, {"SIGKILL", "outside"}},
      // sandbox: the syscall filter's SIGSYS names the blocked call
      {"SIGSYS from the filter",
       with(killed(SIGSYS), [](ExitFacts& f) { f.blocked_syscall = "ptrace"; }),
       Outcome::crashed,
       true,
       {"killed by SIGSYS: blocked system call ptrace"}},
      {"SIGSYS without a report", killed(SIGSYS), Outcome::crashed, true, {"crashed with SIGSYS"}},
      {"a blocked call reported, then another signal",
       with(killed(SIGSEGV), [](ExitFacts& f) { f.blocked_syscall = "ptrace"; }),
       Outcome::crashed,
       true,
       {"crashed with SIGSEGV"}},
      {"crash keeps the last message",
       with(killed(SIGSEGV), [](ExitFacts& f) { f.message = "step 3"; }),
       Outcome::crashed,
       true,
       {"SIGSEGV", "last message: \"step 3\""}},
      {"OK reported, then killed",
       with(killed(SIGSEGV), [](ExitFacts& f) { f.result_code = 0; }),
       Outcome::crashed,
       true,
       {"SIGSEGV"}},
      // 8. exits without a result
      {"exit 3 without result",
       exited(3),
       Outcome::failed,
       true,
       {"exited with code 3 without reporting a result"}},
      {"exit 0 without result",
       exited(0),
       Outcome::failed,
       true,
       {"exited with code 0 without reporting a result"}},
  };
  for (const Row& row : rows) {
    INFO(row.name);
    const Classification c = classify(row.facts);
    INFO(c.message);
    CHECK(to_string(c.outcome) == to_string(row.outcome));
    CHECK(c.retryable == row.retryable);
    CHECK_FALSE(c.message.empty());
    for (const char* part : row.message_contains) CHECK(c.message.find(part) != std::string::npos);
    for (const char* part : row.message_lacks) CHECK(c.message.find(part) == std::string::npos);
  }
}

TEST_CASE("signal_name and format_size") {
  CHECK(signal_name(SIGSEGV) == "SIGSEGV");
  CHECK(signal_name(SIGABRT) == "SIGABRT");
  CHECK(signal_name(SIGKILL) == "SIGKILL");
  CHECK(signal_name(200) == "SIG200");
  CHECK(format_size(64ull << 20) == "64MiB");
  CHECK(format_size(1ull << 30) == "1GiB");
  CHECK(format_size(1536) == "1536B");
  CHECK(format_size(2048) == "2KiB");
}
