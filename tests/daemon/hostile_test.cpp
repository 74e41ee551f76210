// Hostile plugins (tests/plugins/runtime/hostile.cpp) against a real daemon
// running as root, with jobs that name no user: they run as dynamic users,
// and nothing they try harms the host or other jobs (docs/security.md).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost::testing;

namespace {

constexpr double kFirst = 61184, kLast = 65519;  // the default [host] dynamic_users

// Without the syscall filter (on by default), which would kill the run at its
// first ptrace: what is tested here is that the dynamic user and the dropped
// capabilities alone leave the host out of reach (sandbox_test covers the filter).
std::string job(const std::string& name, const std::string& mode, const std::string& extra = "") {
  return "[jobs." + name + "]\nplugin = \"hostile\"\nschedule = \"@manual\"\ntimeout = \"30s\"\n" +
         "syscall_filter = \"none\"\n" + "params = { mode = \"" + mode + "\", job = \"" + name +
         "\"" + extra + " }\n";
}

// The metrics of the newest succeeded run of `name` (triggered now).
std::map<std::string, double> run_job(const fs::path& config, const std::string& name) {
  const auto before = finished(history(config, name), name).size();
  const auto triggered = trigger(config, name);
  INFO(name << ": " << triggered.err);
  REQUIRE(triggered.exit_code == 0);
  std::optional<nlohmann::json> run;
  REQUIRE(wait_for(
      [&] {
        const auto runs = finished(history(config, name), name);
        if (runs.size() > before) run = runs.front();
        return run.has_value();
      },
      20s));
  INFO(run->dump());
  REQUIRE((*run)["outcome"] == "succeeded");
  return (*run)["metrics"].get<std::map<std::string, double>>();
}

// Starts a run of "long" (in flight through all that follows), then runs
// each attack job and returns its metrics, each checked by `check` first.
std::map<std::string, std::map<std::string, double>> run_attacks(
    const fs::path& config, const std::function<void(std::map<std::string, double>&)>& check) {
  REQUIRE(trigger(config, "long").exit_code == 0);
  REQUIRE(wait_for([&] { return history(config, "long").size() == 1; }, 10s));
  std::map<std::string, std::map<std::string, double>> m;
  for (const char* name : {"killer", "files", "victim", "thief", "escape"}) {
    INFO(name);
    m[name] = run_job(config, name);
    check(m[name]);
  }
  return m;
}

// True when `uid` may execute `path` (every directory above it searchable).
bool executable_by(uid_t uid, const char* path) {
  const pid_t child = ::fork();
  if (child == 0) {
    _exit(::setgid(uid) == 0 && ::setuid(uid) == 0 && ::access(path, X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  return child > 0 && ::waitpid(child, &status, 0) == child && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

// Processes named `comm` (a run's process names itself "jh:<job>").
int processes_named(const std::string& comm) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "comm");
    std::string name;
    if (std::getline(in, name) && name == comm) ++count;
  }
  return count;
}

// Checks that the run was a dynamic user with nothing left of root.
void check_unprivileged(std::map<std::string, double>& m) {
  CHECK(m["uid"] != 0);
  CHECK(m["uid"] >= kFirst);
  CHECK(m["uid"] <= kLast);
  CHECK(m["euid"] == m["uid"]);
  CHECK(m["gid"] == m["uid"]);
  CHECK(m["groups"] == 1);
  CHECK(m["cap_eff"] == 0);
  CHECK(m["cap_bnd"] == 0);
  CHECK(m["cwd_is_job"] == 1);
}

}  // namespace

TEST_CASE("hostile plugins as dynamic users cannot harm the host or other jobs",
          "[daemon][security][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("dynamic users need the host to be root");
  const std::string jobs = job("long", "sleep", ", seconds = \"4\"") + job("killer", "kill") +
                           job("files", "files") + job("victim", "keep", ", text = \"mine\"") +
                           job("thief", "read", ", path = \"../victim/kept\"") +
                           job("escape", "escape");
  TestHost host({"hostile.so"}, jobs);
  const fs::path& config = host.config();
  const fs::path state_dir = host.dir() / "var";
  const pid_t daemon = host.daemon().pid();

  auto m = run_attacks(config, check_unprivileged);

  // Each job has a uid of its own.
  std::set<double> uids;
  for (auto& [name, metrics] : m) uids.insert(metrics["uid"]);
  CHECK(uids.size() == m.size());

  // (a) signals, ptrace and /proc/<pid>/mem of the fork server and the daemon.
  auto& k = m["killer"];
  CHECK(k["daemon_pid"] == daemon);
  CHECK(k["kill_parent"] == EPERM);
  CHECK(k["kill_daemon"] == EPERM);
  CHECK(k["ptrace_parent"] == EPERM);
  CHECK(k["ptrace_daemon"] == EPERM);
  CHECK(k["mem_parent"] == EACCES);
  CHECK(k["mem_daemon"] == EACCES);

  // (b) the ledger, the state dir, the shadow copies, the control socket.
  auto& f = m["files"];
  CHECK(f["ledger_write"] == EACCES);
  CHECK(f["ledger_read"] == EACCES);
  CHECK(f["state_dir_create"] == EACCES);
  CHECK(f["jobs_create"] == EACCES);
  CHECK(f["shadow_in_state_dir"] == 1);
  CHECK(f["shadow_write"] == EACCES);
  CHECK(f["socket_connect"] == EACCES);
  CHECK_FALSE(fs::exists(state_dir / "evil"));

  // (c) another job's state directory; the jobs cannot be listed.
  auto& t = m["thief"];
  CHECK(t["read_other"] == EACCES);
  CHECK(t["list_jobs"] == EACCES);
  // The victim's own directory: 0700, its uid's, kept across runs.
  struct stat st {};
  REQUIRE(::stat((state_dir / "jobs" / "victim").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(st.st_uid == m["victim"]["uid"]);
  CHECK(m["victim"]["kept_found"] == 0);
  CHECK(m["victim"]["kept_written"] == 1);
  CHECK(run_job(config, "victim")["kept_found"] == 1);

  // (d) the escapee was killed when its run ended.
  const auto escapee = static_cast<pid_t>(m["escape"]["escapee_pid"]);
  REQUIRE(escapee > 0);
  CHECK(wait_for([&] { return !process_alive(escapee); }, 5s));

  // The host's files have their modes.
  REQUIRE(::stat(state_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0711);
  REQUIRE(::stat((state_dir / "jobhost.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat((state_dir / "jobs").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0711);

  // The daemon carries on, and the long run finished normally.
  CHECK(host.daemon().alive());
  auto long_run = wait_outcome(config, "long", "succeeded", 20s);
  REQUIRE(long_run);
  CHECK((*long_run)["metrics"]["uid"].get<double>() != 0);
  CHECK(trigger(config, "victim").exit_code == 0);
  host.stop();
}

// The host as a user that is not root (nobody), on a kernel that allows
// unprivileged user namespaces: each run is in user, pid and mount
// namespaces of its own (docs/security.md "Host not root"). It keeps the
// host's uid, yet cannot signal the daemon or another process of that uid,
// sees neither the ledger nor the socket nor other jobs' directories, and
// its escapees die with it.
TEST_CASE("hostile plugins of a host that is not root are held by namespaces",
          "[daemon][security][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("the test switches the host to nobody: it needs root");
  constexpr uid_t kNobody = 65534;
  if (!executable_by(kNobody, JOBHOST_BIN)) {
    JOBHOST_SKIP("user nobody cannot execute " JOBHOST_BIN " (a directory above it is private)");
  }
  // A process of the host's user that no run may reach.
  const pid_t bystander = ::fork();
  if (bystander == 0) {
    if (::setgid(kNobody) == 0 && ::setuid(kNobody) == 0) {
      ::execl("/bin/sleep", "sleep", "120", static_cast<char*>(nullptr));
    }
    _exit(127);
  }
  REQUIRE(bystander > 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{bystander};

  const std::string jobs =
      job("long", "sleep", ", seconds = \"4\"") +
      job("killer", "kill", ", bystander = \"" + std::to_string(bystander) + "\"") +
      job("files", "files") + job("victim", "keep", ", text = \"mine\"") +
      job("thief", "read", ", path = \"../victim/kept\"") + job("escape", "escape") +
      // The run's init relays how the run's process ended, and forwards SIGTERM.
      "[jobs.aborts]\nplugin = \"abort\"\nschedule = \"@manual\"\n"
      "[jobs.stopped]\nplugin = \"cancel_aware\"\nschedule = \"@manual\"\ntimeout = \"1s\"\n"
      "[jobs.stubborn]\nplugin = \"ignores_term\"\nschedule = \"@manual\"\ntimeout = \"1s\"\n"
      "kill_grace = \"1s\"\n";
  TestHost host({"hostile.so", "abort.so", "cancel_aware.so", "ignores_term.so"}, jobs, "",
                kNobody);
  const fs::path& config = host.config();
  const std::string log = host.log();
  if (log.find("runs keep the host's uid with no namespaces") != std::string::npos) {
    JOBHOST_SKIP("this kernel refuses unprivileged user namespaces (see the daemon's log)");
  }
  INFO(log);
  REQUIRE(log.find("each run in user, pid and mount namespaces of its own") != std::string::npos);

  auto m = run_attacks(config, [&](std::map<std::string, double>& r) {
    CHECK(r["pid"] == 2);  // its namespace's init is 1
    CHECK(r["uid"] == kNobody);
    CHECK(r["euid"] == kNobody);
    CHECK(r["cap_eff"] == 0);
    CHECK(r["cap_bnd"] == 0);
    CHECK(r["cwd_is_job"] == 1);
  });

  // (a) nothing outside its pid namespace can be named, let alone signalled.
  auto& k = m["killer"];
  CHECK(k["daemon_pid"] == 0);  // the pid file is hidden
  CHECK(k["kill_bystander"] == ESRCH);
  CHECK(k["kill_all"] == ESRCH);       // no process at all (as root host, EPERM ones count: 0)
  CHECK(k["ptrace_parent"] == EPERM);  // init, not dumpable
  CHECK(k["mem_parent"] == EACCES);
  CHECK(process_alive(bystander));

  // (b) the state directory is an empty read-only tmpfs but for the job's
  // own directory and the shadow copies (read-only).
  auto& f = m["files"];
  CHECK(f["ledger_write"] == ENOENT);
  CHECK(f["ledger_read"] == ENOENT);
  CHECK(f["wal_write"] == ENOENT);
  CHECK(f["state_dir_create"] == EROFS);
  CHECK(f["jobs_create"] == EROFS);
  CHECK(f["shadow_in_state_dir"] == 1);
  CHECK(f["shadow_write"] != 0);
  CHECK(f["socket_connect"] == ENOENT);
  CHECK_FALSE(fs::exists(host.dir() / "var" / "evil"));

  // (c) other jobs' directories are not there; its own is kept across runs.
  auto& t = m["thief"];
  CHECK(t["read_other"] == ENOENT);
  CHECK(t["list_jobs"] == 0);
  CHECK(t["jobs_listed"] == 1);  // itself
  CHECK(m["victim"]["kept_found"] == 0);
  CHECK(m["victim"]["kept_written"] == 1);
  CHECK(run_job(config, "victim")["kept_found"] == 1);

  // (d) the escapee died with its run's pid namespace.
  CHECK(m["escape"]["escapee_pid"] > 2);
  CHECK(wait_for([&] { return processes_named("jh:escape") == 0; }, 5s));

  // (e) outcomes: the signal that ended the run's process, not its init's exit.
  for (const char* name : {"aborts", "stopped", "stubborn"})
    REQUIRE(trigger(config, name).exit_code == 0);
  const auto aborted = wait_outcome(config, "aborts", "crashed");
  REQUIRE(aborted);
  CHECK((*aborted)["signal"] == "SIGABRT");
  const auto stopped = wait_outcome(config, "stopped", "timed_out");
  REQUIRE(stopped);
  CHECK((*stopped)["signal"].is_null());  // it saw the cancel and returned
  const auto stubborn = wait_outcome(config, "stubborn", "timed_out");
  REQUIRE(stubborn);
  CHECK((*stubborn)["signal"] == "SIGKILL");

  CHECK(host.daemon().alive());
  auto long_run = wait_outcome(config, "long", "succeeded", 20s);
  REQUIRE(long_run);
  CHECK((*long_run)["metrics"]["uid"].get<double>() == kNobody);
  host.stop();

  // `jobhost run-once` puts its run in the same namespaces.
  const auto once = run_jobhost({"run-once", "--config", config.string(), "files"}, 60s, kNobody);
  INFO(once.out << once.err);
  REQUIRE(once.exit_code == 0);
  const auto runs = finished(history(config, "files"), "files");
  REQUIRE(runs.size() == 2);
  CHECK(runs.front()["metrics"]["pid"] == 2);
  CHECK(runs.front()["metrics"]["ledger_write"] == ENOENT);
}
