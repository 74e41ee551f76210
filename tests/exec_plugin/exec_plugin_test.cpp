// The exec plugin (plugins/exec) through the real binary: `jobhost run-once`
// and `jobhost run` on a temp dir with build/plugins/exec.so, jobs written
// with command = [...] as users write them. Exit codes to outcomes, the
// command's output in the run's recorded output, stdin, cwd, env, shell,
// exec failures, retries, timeouts, and no process of a run surviving it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost::testing;
using json = nlohmann::json;

namespace {

struct Ran {
  CommandResult cli;        // jobhost run-once
  json run;                 // its history --json entry
  std::string output_tail;  // its recorded output
};

// `jobhost run-once JOB` of `config`, and what the ledger recorded of it.
Ran run_once(const fs::path& config, const std::string& job) {
  Ran ran;
  ran.cli = run_jobhost({"run-once", "--config", config.string(), job});
  INFO("run-once " << job << ": " << ran.cli.out << ran.cli.err);
  const std::string run_id = ran.cli.out.substr(0, ran.cli.out.find(' '));
  for (const json& run : history(config, job)) {
    if (run["run_id"] == run_id) ran.run = run;
  }
  REQUIRE(ran.run.is_object());
  auto record = open_ledger(config)->get_run(run_id);
  REQUIRE(record);
  REQUIRE(*record);
  ran.output_tail = (*record)->output_tail;
  return ran;
}

std::string message_of(const json& run) {
  return run["message"].is_string() ? run["message"].get<std::string>() : "";
}

// Pids of live processes whose command line is exactly `argv`.
std::vector<pid_t> processes_running(const std::vector<std::string>& argv) {
  std::string wanted;
  for (const auto& a : argv) wanted += a + '\0';
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const pid_t pid = std::stoi(name);
    if (text.str() == wanted && process_alive(pid)) found.push_back(pid);
  }
  return found;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("exec: exit codes become outcomes; the output is the run's output", "[exec-plugin]") {
  TempDir dir;
  install_plugins(dir.path(), {"exec.so"});
  const auto config = write_config(dir.path(), R"(
[defaults]
retry = { max_attempts = 1 }

[jobs.ok]
schedule = "@manual"
command = ["/bin/sh", "-c", "echo out-$((40 + 2)); echo err-to-stderr >&2"]

[jobs.three]
schedule = "@manual"
command = ["/bin/sh", "-c", "echo about to fail; exit 3"]

[jobs.tempfail]
schedule = "@manual"
command = ["/bin/sh", "-c", "exit 75"]

[jobs.signalled]
schedule = "@manual"
command = ["/bin/sh", "-c", "kill -USR1 $$"]

[jobs.missing]
schedule = "@manual"
command = ["no-such-program-jh", "--flag"]

[jobs.not_executable]
schedule = "@manual"
command = ["/etc"]

[jobs.bad_cwd]
schedule = "@manual"
command = ["/bin/true"]
cwd = "/nonexistent-jh"

[jobs.denied]
schedule = "@manual"
command = ["unshare", "--user", "true"]
)");
  REQUIRE(run_jobhost({"validate", "--config", config.string()}).exit_code == 0);

  auto ok = run_once(config, "ok");
  CHECK(ok.cli.exit_code == 0);
  CHECK(ok.run["outcome"] == "succeeded");
  CHECK(message_of(ok.run) == "exited with status 0");
  CHECK(ok.run["plugin"] == "exec");
  CHECK(ok.run["metrics"]["exit_status"] == 0);
  CHECK_THAT(ok.output_tail, Catch::Contains("out-42\n"));
  CHECK_THAT(ok.output_tail, Catch::Contains("err-to-stderr\n"));
  CHECK_THAT(ok.cli.err, Catch::Contains("out-42"));  // the run's log

  auto three = run_once(config, "three");
  CHECK(three.cli.exit_code == 1);
  CHECK(three.run["outcome"] == "failed");
  CHECK(message_of(three.run) == "returned FAIL (not retryable): exited with status 3");
  CHECK(three.run["metrics"]["exit_status"] == 3);
  CHECK_THAT(three.output_tail, Catch::Contains("about to fail"));

  auto tempfail = run_once(config, "tempfail");
  CHECK(tempfail.run["outcome"] == "failed");  // RETRY is a failed attempt, retried by policy
  CHECK(message_of(tempfail.run) ==
        "returned RETRY (retryable): exited with status 75 (EX_TEMPFAIL)");
  CHECK(tempfail.run["metrics"]["exit_status"] == 75);

  auto signalled = run_once(config, "signalled");
  CHECK(signalled.run["outcome"] == "failed");
  CHECK(message_of(signalled.run) == "returned FAIL (not retryable): killed by signal SIGUSR1");
  CHECK(signalled.run["metrics"]["exit_status"] == 128 + SIGUSR1);

  auto missing = run_once(config, "missing");
  CHECK(missing.run["outcome"] == "failed");
  CHECK_THAT(message_of(missing.run),
             Catch::StartsWith("returned FAIL (not retryable): cannot execute "
                               "\"no-such-program-jh\": No such file or directory "
                               "(not found in PATH=/usr/local/sbin:"));
  CHECK(missing.run["metrics"].empty());

  auto not_executable = run_once(config, "not_executable");
  CHECK(not_executable.run["outcome"] == "failed");
  CHECK(message_of(not_executable.run) ==
        "returned FAIL (not retryable): cannot execute \"/etc\": Permission denied");

  // fork and execve pass the default syscall filter (every case above ran
  // under it); what it denies kills the program, not the plugin.
  auto denied = run_once(config, "denied");
  CHECK(denied.run["outcome"] == "failed");
  CHECK(message_of(denied.run) ==
        "returned FAIL (not retryable): killed by signal SIGSYS (a system call the job's "
        "syscall_filter denies; see docs/isolation.md)");

  auto bad_cwd = run_once(config, "bad_cwd");
  CHECK(bad_cwd.run["outcome"] == "failed");
  CHECK(message_of(bad_cwd.run) ==
        "returned FAIL (not retryable): cannot change to cwd \"/nonexistent-jh\": No such file or "
        "directory");
}

TEST_CASE("exec: stdin, cwd, env, PATH lookup, heartbeats and shell = true", "[exec-plugin]") {
  TempDir dir;
  install_plugins(dir.path(), {"exec.so"});
  const fs::path work = run_writable_dir(dir.path());
  const std::string big(60000, 'x');
  const auto config =
      write_config(dir.path(), fmt::format(R"(
[jobs.cat]
schedule = "@manual"
command = ["cat"]
stdin = "first line\nsecond line\n"

[jobs.count]
schedule = "@manual"
command = ["wc", "-c"]
stdin = "{big}"

[jobs.deaf]
schedule = "@manual"
command = ["/bin/true"]
stdin = "{big}"

[jobs.where]
schedule = "@manual"
command = ["/bin/sh", "-c", "pwd; echo level=$BACKUP_LEVEL; echo job=$JOBHOST_JOB; read line || echo no-stdin"]
cwd = "{work}"
env = {{ BACKUP_LEVEL = "full" }}

[jobs.home]
schedule = "@manual"
command = ["pwd"]

[jobs.patient]
schedule = "@manual"
command = ["sleep", "2"]
stall_timeout = "500ms"

[jobs.report]
schedule = "@manual"
command = "echo piped | tr a-z A-Z > report.txt && cat report.txt && echo \"$0 $HOME\""
shell = true
cwd = "{work}"
)",
                                           fmt::arg("big", big), fmt::arg("work", work.string())));
  REQUIRE(run_jobhost({"validate", "--config", config.string()}).exit_code == 0);

  auto cat = run_once(config, "cat");
  CHECK(cat.run["outcome"] == "succeeded");
  CHECK(cat.output_tail == "first line\nsecond line\n");

  // More than one write of a pipe may take at once, read in full.
  auto count = run_once(config, "count");
  CHECK(count.run["outcome"] == "succeeded");
  CHECK(count.output_tail == "60000\n");
  // A command that never reads its stdin: no SIGPIPE for the run.
  auto deaf = run_once(config, "deaf");
  CHECK(deaf.run["outcome"] == "succeeded");

  auto where = run_once(config, "where");
  CHECK(where.run["outcome"] == "succeeded");
  CHECK(where.output_tail == fmt::format("{}\nlevel=full\njob=where\nno-stdin\n", work.string()));

  // Without cwd, the run's working directory: the job's state directory.
  auto home = run_once(config, "home");
  CHECK(home.output_tail == (dir.path() / "var" / "jobs" / "home").string() + "\n");

  // The plugin heartbeats while the command runs: a slow command is not a
  // stalled run.
  auto patient = run_once(config, "patient");
  CHECK(patient.run["outcome"] == "succeeded");

  auto report = run_once(config, "report");
  CHECK(report.run["outcome"] == "succeeded");
  CHECK(report.output_tail ==
        fmt::format("PIPED\nsh {}\n", (dir.path() / "var" / "jobs" / "report").string()));
  CHECK(read_file(work / "report.txt") == "PIPED\n");
}

namespace {

// A shell command line that starts a daemon as daemons start: a double fork
// (the subshell forks it and exits, so it is nobody's child in the run) and
// setsid (no process group of the run), stdio closed, so it holds nothing of
// the run's. The daemon writes its pid to daemon.pid in the working
// directory, then becomes `sleep SECONDS`; the line returns only once it has.
std::string daemonizing_line(const std::string& seconds) {
  return fmt::format(
      R"sh((setsid sh -c 'echo $$ > daemon.pid.new; mv daemon.pid.new daemon.pid; exec sleep {0}' )sh"
      R"sh(</dev/null >/dev/null 2>&1 &); )sh"
      R"sh(while [ ! -s daemon.pid ]; do sleep 0.01; done; pid=$(cat daemon.pid); )sh"
      R"sh(while [ "$(tr '\0' ' ' < /proc/$pid/cmdline)" != "sleep {0} " ]; do sleep 0.01; done; )sh"
      R"sh(echo daemon $pid started)sh",
      seconds);
}

// `line` as a TOML string: a literal one (no escapes; single quotes allowed).
std::string toml_string(const std::string& line) {
  return "'''" + line + "'''";
}

}  // namespace

TEST_CASE("exec: a command that forks a daemon is killed at the end of its run", "[exec-plugin]") {
  TempDir dir;
  install_plugins(dir.path(), {"exec.so"});
  // A number no other process has on its command line.
  const std::string seconds = std::to_string(900000 + ::getpid() % 90000);
  const auto config = write_config(dir.path(), R"(
[jobs.daemonize]
schedule = "@manual"
shell = true
command = )" + toml_string(daemonizing_line(seconds)) +
                                                   "\n");
  auto ran = run_once(config, "daemonize");
  CHECK(ran.run["outcome"] == "succeeded");
  CHECK_THAT(ran.output_tail, Catch::Contains("started"));
  // The daemon was running, in a session of its own, when its run ended ...
  const pid_t daemon =
      std::stoi(read_file(dir.path() / "var" / "jobs" / "daemonize" / "daemon.pid"));
  REQUIRE(daemon > 0);
  CHECK_THAT(ran.output_tail, Catch::Contains(fmt::format("daemon {} started", daemon)));
  // ... and is gone with the run: nothing runs `sleep SECONDS` any more.
  CHECK(wait_for([&] { return !process_alive(daemon); }, 10s));
  CHECK(processes_running({"sleep", seconds}).empty());
}

TEST_CASE(
    "exec: a daemon forked by a run of `jobhost run` dies with the run; "
    "exit 75 is retried by the retry policy; timeouts stop the command",
    "[exec-plugin]") {
  const std::string seconds = std::to_string(800000 + ::getpid() % 90000);
  TestHost host({"exec.so"}, fmt::format(R"(
[jobs.daemonize]
schedule = "@manual"
shell = true
command = {line}

[jobs.tempfail]
schedule = "@manual"
command = ["/bin/sh", "-c", "echo attempt; exit 75"]
retry = {{ max_attempts = 3, initial_delay = "100ms", jitter = "none" }}

[jobs.slow]
schedule = "@manual"
command = ["sleep", "{s}"]
timeout = "1s"
kill_grace = "30s"
retry = {{ max_attempts = 1 }}

[jobs.slow_own_session]
schedule = "@manual"
command = ["setsid", "sleep", "{s}"]
timeout = "1s"
kill_grace = "30s"
retry = {{ max_attempts = 1 }}
)",
                                         fmt::arg("s", seconds),
                                         fmt::arg("line", toml_string(daemonizing_line(seconds)))));
  const fs::path& config = host.config();

  REQUIRE(trigger(config, "daemonize").exit_code == 0);
  auto daemonized = wait_outcome(config, "daemonize", "succeeded");
  REQUIRE(daemonized);
  const pid_t daemon = std::stoi(read_file(host.dir() / "var/jobs/daemonize/daemon.pid"));
  REQUIRE(daemon > 0);
  CHECK(wait_for([&] { return !process_alive(daemon); }, 10s));

  // 75 asks for a retry: three attempts, each failed with the same message.
  REQUIRE(trigger(config, "tempfail").exit_code == 0);
  std::vector<json> attempts;
  REQUIRE(wait_for(
      [&] {
        attempts = finished(history(config, "tempfail"), "tempfail");
        return attempts.size() >= 3;
      },
      20s));
  std::this_thread::sleep_for(1s);  // no fourth attempt comes
  attempts = finished(history(config, "tempfail"), "tempfail");
  REQUIRE(attempts.size() == 3);
  for (const json& attempt : attempts) {
    CHECK(attempt["outcome"] == "failed");
    CHECK(message_of(attempt) == "returned RETRY (retryable): exited with status 75 (EX_TEMPFAIL)");
    CHECK(attempt["trace_id"] == attempts[0]["trace_id"]);
  }

  // The timeout's SIGTERM reaches the command (in the run's process group),
  // and one in a session of its own (from the plugin): both end at once,
  // not after the 30 s grace.
  for (const char* job : {"slow", "slow_own_session"}) {
    INFO(job);
    REQUIRE(trigger(config, job).exit_code == 0);
    auto slow = wait_outcome(config, job, "timed_out", 25s);
    REQUIRE(slow);
    CHECK(message_of(*slow) ==
          "exceeded timeout of 1s; last message: \"killed by signal SIGTERM\"");
  }
  CHECK(processes_running({"sleep", seconds}).empty());
  host.stop();
}

namespace {

bool executable_by(uid_t uid, const char* path) {
  const pid_t child = ::fork();
  if (child == 0) {
    _exit(::setgid(uid) == 0 && ::setuid(uid) == 0 && ::access(path, X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  return child > 0 && ::waitpid(child, &status, 0) == child && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

}  // namespace

// A host that is not root holds each run in a pid namespace of its own
// (docs/security.md "Host not root"): the daemon dies with the namespace.
TEST_CASE("exec: a daemon forked by a run of a host that is not root dies with the run",
          "[exec-plugin][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("the test switches the host to nobody: it needs root");
  constexpr uid_t kNobody = 65534;
  if (!executable_by(kNobody, JOBHOST_BIN)) {
    JOBHOST_SKIP("user nobody cannot execute " JOBHOST_BIN " (a directory above it is private)");
  }
  const std::string seconds = std::to_string(600000 + ::getpid() % 90000);
  TestHost host({"exec.so"},
                "[jobs.daemonize]\nschedule = \"@manual\"\nshell = true\ncommand = " +
                    toml_string(daemonizing_line(seconds)) + "\n",
                "", kNobody);
  const std::string log = host.log();
  if (log.find("runs keep the host's uid with no namespaces") != std::string::npos) {
    JOBHOST_SKIP("this kernel refuses unprivileged user namespaces (see the daemon's log)");
  }
  INFO(log);
  REQUIRE(log.find("each run in user, pid and mount namespaces of its own") != std::string::npos);
  REQUIRE(trigger(host.config(), "daemonize").exit_code == 0);
  auto ran = wait_outcome(host.config(), "daemonize", "succeeded");
  REQUIRE(ran);
  // Its pid is one of its namespace: look for it by its command line.
  CHECK(wait_for([&] { return processes_running({"sleep", seconds}).empty(); }, 10s));
  host.stop();
}
