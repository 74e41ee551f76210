// Hostile plugins (tests/plugins/runtime/hostile.cpp) against a real daemon
// running as root, with jobs that name no user: they run as dynamic users,
// and nothing they try harms the host or other jobs (docs/security.md).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
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

  // A long run of another job is in flight through all of it.
  REQUIRE(trigger(config, "long").exit_code == 0);
  REQUIRE(wait_for([&] { return history(config, "long").size() == 1; }, 10s));

  std::map<std::string, std::map<std::string, double>> m;
  for (const char* name : {"killer", "files", "victim", "thief", "escape"}) {
    INFO(name);
    m[name] = run_job(config, name);
    check_unprivileged(m[name]);
  }

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
