// Integration tests: the real `jobhost run` daemon on a temp directory.
#include <SQLiteCpp/SQLiteCpp.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "ledger/sqlite_store.h"
#include "schedule/schedule.h"
#include "support/harness.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

// The newest finished run of `job`, waiting up to `timeout` for one.
std::optional<json> wait_finished(const fs::path& config, const std::string& job,
                                  std::chrono::milliseconds timeout = 30s) {
  std::optional<json> run;
  wait_for(
      [&] {
        auto runs = finished(history(config, job), job);
        if (!runs.empty()) run = runs.front();
        return run.has_value();
      },
      timeout);
  return run;
}

pid_t read_pid(const fs::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

// Trigger-only jobs, one per way a run can go wrong.
std::string misbehaving_jobs(const fs::path& grandchild_file) {
  return R"(
[defaults]
retry = { max_attempts = 1 }
timeout = "20s"
kill_grace = "1s"

[jobs.sleepy]
plugin = "sleeper"
schedule = "@manual"
timeout = "1s"
params = { seconds = 30, ignore_cancel = 1, grandchild = 1, grandchild_ignores_term = 1, grandchild_pid_file = ")" +
         grandchild_file.string() + R"(" }

[jobs.segv]
plugin = "segv"
schedule = "@manual"

[jobs.abort]
plugin = "abort"
schedule = "@manual"

[jobs.throws]
plugin = "throws"
schedule = "@manual"

[jobs.memhog]
plugin = "memhog"
schedule = "@manual"
limits = { memory = "64MiB" }

[jobs.forkbomb]
plugin = "forkbomb"
schedule = "@manual"
timeout = "5s"
limits = { processes = 16 }
params = { pid_file = ")" +
         (grandchild_file.parent_path() / "forkbomb.pids").string() + R"(" }

[jobs.flood]
plugin = "flood"
schedule = "@manual"
timeout = "60s"
limits = { output = "64KiB" }

[jobs.stubborn]
plugin = "ignores_term"
schedule = "@manual"
timeout = "1s"
kill_grace = "1s"
params = { seconds = 30 }

[jobs.hello]
plugin = "hello"
schedule = "@manual"
)";
}

// The output tail the ledger kept for a run.
std::string output_tail(const fs::path& config, const std::string& run_id) {
  auto store = open_ledger(config);
  auto run = store->get_run(run_id);
  REQUIRE(run);
  REQUIRE(*run);
  return (**run).output_tail;
}

}  // namespace

TEST_CASE("a job on a 1-second schedule runs and is recorded", "[daemon]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
params = { greeting = "tick" }
)");
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  std::vector<json> runs;
  REQUIRE(wait_for(
      [&] {
        runs = finished(history(config, "tick"), "tick");
        return runs.size() >= 2;
      },
      20s));
  for (const auto& run : runs) {
    CHECK(run["outcome"] == "succeeded");
    CHECK(run["plugin"] == "hello");
    CHECK(run["plugin_version"] == "1.0.0");
    CHECK(run["plugin_sha256"].get<std::string>().size() == 64);
    CHECK(run["attempt"] == 1);
    CHECK(run["message"] == "said tick");
    CHECK(run["scheduled_for"].get<std::string>().ends_with(".000Z"));
  }
  // Distinct slots, one second apart at least.
  CHECK(runs[0]["scheduled_for"] != runs[1]["scheduled_for"]);
  CHECK(daemon.log().find("job=tick") != std::string::npos);

  // status reads the ledger: the figures match what ran.
  auto status = run_jobhost({"status", "--config", config.string(), "--json"});
  REQUIRE(status.exit_code == 0);
  auto st = json::parse(status.out);
  CHECK(st["daemon"]["running"] == true);
  CHECK(st["daemon"]["pid"] == daemon.pid());
  REQUIRE(st["jobs"].size() == 1);
  CHECK(st["jobs"][0]["job"] == "tick");
  CHECK(st["jobs"][0]["last_outcome"] == "succeeded");
  CHECK(st["jobs"][0]["consecutive_failures"] == 0);
  CHECK(st["jobs"][0]["success_rate"] == 1.0);
  CHECK(st["jobs"][0]["next_fire"].is_string());

  // A second daemon on the same state dir refuses to start, naming the first.
  Daemon second(config);
  CHECK(second.wait_exit(20s) == 1);
  CHECK_THAT(second.log(), Catch::Contains("already running"));
  CHECK(daemon.alive());

  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("misbehaving jobs end with the right outcome and the host survives", "[daemon]") {
  TempDir dir;
  install_plugins(dir.path(), {"sleeper.so", "segv.so", "abort.so", "throws.so", "memhog.so",
                               "forkbomb.so", "flood.so", "ignores_term.so", "hello.so"});
  fs::path grandchild_file = run_writable_dir(dir.path()) / "grandchild.pid";
  auto config =
      write_config(dir.path(), misbehaving_jobs(grandchild_file), "max_concurrency = 8\n");
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  for (const char* job :
       {"sleepy", "segv", "abort", "throws", "memhog", "forkbomb", "flood", "stubborn"}) {
    auto result = trigger(config, job);
    INFO(job << ": " << result.err);
    REQUIRE(result.exit_code == 0);
  }

  SECTION("outcomes") {
    auto sleepy = wait_finished(config, "sleepy");
    REQUIRE(sleepy);
    CHECK((*sleepy)["outcome"] == "timed_out");
    pid_t grandchild = read_pid(grandchild_file);
    REQUIRE(grandchild > 0);
    CHECK(wait_for([&] { return !process_alive(grandchild); }, 5s));

    auto segv = wait_finished(config, "segv");
    REQUIRE(segv);
    CHECK((*segv)["outcome"] == "crashed");
    CHECK((*segv)["signal"] == "SIGSEGV");

    auto abort_run = wait_finished(config, "abort");
    REQUIRE(abort_run);
    CHECK((*abort_run)["outcome"] == "crashed");
    CHECK((*abort_run)["signal"] == "SIGABRT");

    auto throws = wait_finished(config, "throws");
    REQUIRE(throws);
    CHECK((*throws)["outcome"] == "failed");
    CHECK((*throws)["message"].get<std::string>().find("quota exceeded on /data") !=
          std::string::npos);

    auto memhog = wait_finished(config, "memhog");
    REQUIRE(memhog);
    CHECK((*memhog)["outcome"] == "limit_exceeded");
    CHECK((*memhog)["message"].get<std::string>().find("memory") != std::string::npos);

    auto forkbomb = wait_finished(config, "forkbomb");
    REQUIRE(forkbomb);
    if (daemon.log().find("isolation: cgroup") != std::string::npos) {
      // A pids cgroup makes fork fail at the limit.
      CHECK((*forkbomb)["outcome"] == "limit_exceeded");
      CHECK_THAT((*forkbomb)["message"].get<std::string>(), Catch::Contains("process limit"));
    } else {
      // Root ignores RLIMIT_NPROC: the timeout and the group kill contain it.
      CHECK((*forkbomb)["outcome"] == "timed_out");
    }
    std::ifstream pids(dir.path() / "drop" / "forkbomb.pids");
    int forked = 0;
    for (pid_t pid; pids >> pid; ++forked) {
      CHECK(wait_for([&] { return !process_alive(pid); }, 5s));
    }
    CHECK(forked > 0);

    auto flood = wait_finished(config, "flood", 60s);
    REQUIRE(flood);
    CHECK((*flood)["outcome"] == "succeeded");
    std::string tail = output_tail(config, (*flood)["run_id"]);
    CHECK(tail.size() <= 64 * 1024);
    CHECK(tail.size() >= 32 * 1024);

    auto stubborn = wait_finished(config, "stubborn");
    REQUIRE(stubborn);
    CHECK((*stubborn)["outcome"] == "timed_out");
    // timeout 1s + kill_grace 1s: killed after the grace, not before it.
    CHECK((*stubborn)["duration_ms"].get<int64_t>() >= 1900);

    // The host is still up and answering.
    CHECK(daemon.alive());
    CHECK(trigger(config, "hello").exit_code == 0);
    auto hello = wait_finished(config, "hello");
    REQUIRE(hello);
    CHECK((*hello)["outcome"] == "succeeded");
  }
}

TEST_CASE("the daemon logs the config's warnings when it starts", "[daemon]") {
  TestHost host({"hello.so"}, R"(
[jobs.yearly]
plugin = "hello"
schedule = "0 0 1 */15 *"
timezone = "UTC"
)");
  CHECK_THAT(host.log(), Catch::Contains("warning: schedule in [jobs.yearly]: cron expression "
                                         "\"0 0 1 */15 *\": month field: step 15"));
  host.stop();
}

TEST_CASE("concurrency = forbid records the overlapping fire as skipped", "[daemon]") {
  TestHost host({"sleeper.so"}, R"(
[jobs.slow]
plugin = "sleeper"
schedule = "* * * * * *"
concurrency = "forbid"
timeout = "10s"
params = { seconds = 3 }
)");
  const fs::path& config = host.config();
  auto skipped = wait_outcome(config, "slow", "skipped");
  REQUIRE(skipped);
  CHECK((*skipped)["message"].get<std::string>().find("still running (concurrency = forbid)") !=
        std::string::npos);
  host.stop();
}

TEST_CASE("concurrency = replace stops the running run for the newer fire", "[daemon]") {
  TestHost host({"sleeper.so"}, R"(
[jobs.latest]
plugin = "sleeper"
schedule = "*/2 * * * * *"
concurrency = "replace"
kill_grace = "1s"
params = { seconds = 30 }
)");
  const fs::path& config = host.config();
  auto replaced = wait_outcome(config, "latest", "replaced");
  REQUIRE(replaced);
  CHECK((*replaced)["duration_ms"].get<int64_t>() < 5000);
  host.stop();
}

TEST_CASE("SIGTERM stops the daemon and records the killed run as interrupted", "[daemon]") {
  TestHost host({"sleeper.so"}, R"(
[jobs.long]
plugin = "sleeper"
schedule = "@manual"
kill_grace = "1s"
params = { seconds = 60, ignore_cancel = 1 }
)");
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "long").exit_code == 0);
  REQUIRE(wait_for([&] { return !history(config, "long").empty(); }, 10s));
  host.stop();
  auto runs = finished(history(config, "long"), "long");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0]["outcome"] == "interrupted");
  // No daemon left: trigger says so with exit code 3.
  CHECK(trigger(config, "long").exit_code == 3);
}

TEST_CASE("after kill -9 and a restart the open run is interrupted and no child survives",
          "[daemon]") {
  TempDir dir;
  install_plugins(dir.path(), {"sleeper.so"});
  fs::path grandchild_file = run_writable_dir(dir.path()) / "grandchild.pid";
  auto config = write_config(dir.path(), R"(
[jobs.long]
plugin = "sleeper"
schedule = "@manual"
params = { seconds = 60, grandchild = 1, grandchild_ignores_term = 1, grandchild_pid_file = ")" +
                                             grandchild_file.string() + R"(" }
)");
  std::vector<pid_t> old_children;
  pid_t grandchild = 0;
  {
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    REQUIRE(trigger(config, "long").exit_code == 0);
    REQUIRE(wait_for([&] { return fs::exists(grandchild_file) && read_pid(grandchild_file) > 0; },
                     10s));
    grandchild = read_pid(grandchild_file);
    // The fork server, and the run it forked.
    for (pid_t server : children_of(daemon.pid())) {
      old_children.push_back(server);
      for (pid_t run : children_of(server)) old_children.push_back(run);
    }
    REQUIRE(old_children.size() >= 2);
    daemon.signal(SIGKILL);
    daemon.wait_exit(10s);
  }
  // The fork server dies with the daemon, and the run with the server (PDEATHSIG).
  for (pid_t child : old_children) CHECK(wait_for([&] { return !process_alive(child); }, 5s));

  Daemon restarted(config);
  REQUIRE(restarted.wait_ready());
  auto runs = finished(history(config, "long"), "long");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0]["outcome"] == "interrupted");
  // The grandchild (same cgroup / process group, not our child) is gone too.
  CHECK(wait_for([&] { return !process_alive(grandchild); }, 5s));
  restarted.signal(SIGTERM);
  CHECK(restarted.wait_exit(20s) == 0);
}

TEST_CASE("a host killed while a run is parked: the run never began, its slot is a missed fire",
          "[daemon][parking]") {
  TempDir dir;
  install_plugins(dir.path(), {"sleeper.so"});
  // Every 10 s, forked ahead 9 s before: most of the time a run is parked.
  // Each run that gets to the plugin's code writes `marker`.
  const fs::path marker = dir.path() / "ran";
  auto config = write_config(dir.path(),
                             R"(
[jobs.tick]
plugin = "sleeper"
schedule = "*/10 * * * * *"
misfire = "skip"
params = { seconds = 0, grandchild = 1, grandchild_pid_file = ")" +
                                 marker.string() + R"(" }
)",
                             "park_lead = \"9s\"\n");
  const fs::path db = dir.path() / "var" / "jobhost.db";
  // The parked run's id and slot, read as the ledger has them.
  struct Parked {
    std::string run_id;
    int64_t slot_ms = 0;
  };
  auto parked = [&]() -> std::optional<Parked> {
    SQLite::Database ledger(db.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(ledger,
                        "SELECT p.run_id, r.scheduled_for FROM parked_runs p "
                        "JOIN runs r USING (run_id)");
    if (!q.executeStep()) return std::nullopt;
    return Parked{q.getColumn(0).getString(), q.getColumn(1).getInt64()};
  };
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  std::optional<Parked> killed;
  std::vector<pid_t> old_children;
  {
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    // Kill it while a run is parked with at least 2 s to go before its instant.
    REQUIRE(wait_for(
        [&] {
          auto p = parked();
          if (!p || p->slot_ms - now_ms() < 2000) return false;
          for (pid_t server : children_of(daemon.pid())) {
            old_children.push_back(server);
            for (pid_t run : children_of(server)) old_children.push_back(run);
          }
          fs::remove(marker);  // earlier runs wrote it
          daemon.signal(SIGKILL);
          killed = p;
          return true;
        },
        30s));
    daemon.wait_exit(10s);
  }
  // The daemon's death closed the parked run's gate: that released nothing.
  std::this_thread::sleep_for(1s);
  CHECK_FALSE(fs::exists(marker));
  REQUIRE(old_children.size() >= 2);  // the fork server and the parked run
  for (pid_t child : old_children) CHECK(wait_for([&] { return !process_alive(child); }, 5s));
  // Its instant passes with no host.
  REQUIRE(wait_for([&] { return now_ms() > killed->slot_ms + 500; }, 15s));

  Daemon restarted(config);
  REQUIRE(restarted.wait_ready());
  auto store = open_ledger(config);
  const jobhost::TimePoint slot{std::chrono::milliseconds(killed->slot_ms)};
  auto rows = store->slot_runs("tick", slot).value();
  REQUIRE(rows.size() == 1);  // one record of the slot: the miss
  CHECK(rows[0].run_id != killed->run_id);
  CHECK(rows[0].outcome == jobhost::Outcome::skipped);
  CHECK_THAT(rows[0].message, Catch::Contains("missed"));
  CHECK(store->get_run(killed->run_id).value() == std::nullopt);
  auto events = store->events("tick", 100).value();
  CHECK(std::any_of(events.begin(), events.end(), [&](const auto& e) {
    return e.kind == "unclaimed" && e.detail.find(killed->run_id) != std::string::npos;
  }));
  restarted.signal(SIGTERM);
  CHECK(restarted.wait_exit(20s) == 0);
}

TEST_CASE("a run in flight shows its last heartbeat and progress in status", "[daemon]") {
  TestHost host({"heartbeating.so"}, R"(
[jobs.progress]
plugin = "heartbeating"
schedule = "@manual"
stall_timeout = "2s"
params = { seconds = 6 }
)");
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "progress").exit_code == 0);
  json in_flight;
  REQUIRE(wait_for(
      [&] {
        auto r = run_jobhost({"status", "--config", config.string(), "--json"});
        if (r.exit_code != 0) return false;
        auto st = json::parse(r.out);
        if (st["running"].empty()) return false;
        in_flight = st["running"][0];
        return in_flight["progress"].is_number() && in_flight["last_heartbeat"].is_string();
      },
      10s));
  CHECK(in_flight["job"] == "progress");
  CHECK(in_flight["outcome"].is_null());
  CHECK(in_flight["progress"].get<double>() > 0.0);
  CHECK(in_flight["progress"].get<double>() <= 1.0);
  // A slow job that heartbeats is not stalled.
  auto done = wait_finished(config, "progress", 20s);
  REQUIRE(done);
  CHECK((*done)["outcome"] == "succeeded");
}

TEST_CASE("after downtime, run_once runs the latest missed slot and skips the rest", "[daemon]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
misfire = "run_once"
catchup_spread = "1s"
)");
  {
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    REQUIRE(wait_for([&] { return finished(history(config, "tick"), "tick").size() >= 2; }, 20s));
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
  std::this_thread::sleep_for(4s);  // the downtime: about four slots are missed
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  REQUIRE(wait_for(
      [&] {
        for (const auto& run : finished(history(config, "tick"), "tick")) {
          if (run["trigger"] == "catchup" && run["outcome"] == "succeeded") return true;
        }
        return false;
      },
      20s));
  // Let a couple of on-time fires follow, then stop and audit every slot.
  std::this_thread::sleep_for(2s);
  daemon.signal(SIGTERM);
  REQUIRE(daemon.wait_exit(20s) == 0);

  auto runs = history(config, "tick");
  int catchup_runs = 0, missed = 0;
  for (const auto& run : runs) {
    if (run["trigger"] == "catchup" && run["outcome"] == "succeeded") ++catchup_runs;
    if (run["outcome"] == "skipped") {
      // Missed while down; or, on a slow host, the on-time fire that came due
      // together with the catch-up and was skipped under concurrency = forbid.
      std::string message = run["message"];
      INFO(message);
      bool is_missed = message.find("missed") != std::string::npos;
      CHECK((is_missed || message.find("(concurrency = forbid)") != std::string::npos));
      if (is_missed) ++missed;
    }
  }
  CHECK(catchup_runs == 1);
  CHECK(missed >= 2);
  // No slot twice, and no gap: every second from the first slot to the last
  // is either run or recorded as skipped.
  CHECK(every_second_once(runs) == "");
}

TEST_CASE("a job returning RETRY is retried per its policy, attempts share the trace id",
          "[daemon]") {
  TestHost host({"retry.so", "fail.so"}, R"(
[jobs.flaky]
plugin = "retry"
schedule = "@manual"
retry = { max_attempts = 3, initial_delay = "200ms", multiplier = 2.0, jitter = "none" }

[jobs.broken]
plugin = "fail"
schedule = "@manual"
retry = { max_attempts = 3, initial_delay = "200ms" }
)");
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(trigger(config, "broken").exit_code == 0);
  std::vector<json> attempts;
  REQUIRE(wait_for(
      [&] {
        attempts = finished(history(config, "flaky"), "flaky");
        return attempts.size() >= 3;
      },
      20s));
  std::this_thread::sleep_for(1s);  // no fourth attempt comes
  attempts = finished(history(config, "flaky"), "flaky");
  REQUIRE(attempts.size() == 3);
  std::reverse(attempts.begin(), attempts.end());  // oldest first
  for (int i = 0; i < 3; ++i) {
    CHECK(attempts[i]["attempt"] == i + 1);
    CHECK(attempts[i]["outcome"] == "failed");
    CHECK(attempts[i]["trace_id"] == attempts[0]["trace_id"]);
    CHECK(attempts[i]["scheduled_for"] == attempts[0]["scheduled_for"]);
  }
  CHECK(attempts[0]["trigger"] == "manual");
  CHECK(attempts[1]["trigger"] == "retry");
  // JOBHOST_FAIL is permanent: one attempt only.
  auto broken = finished(history(config, "broken"), "broken");
  REQUIRE(broken.size() == 1);
  CHECK(broken[0]["outcome"] == "failed");
  host.stop();
}

TEST_CASE("an `at` one-shot that passed while the host was down runs once on restart", "[daemon]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) + 4s;
  auto config = write_config(dir.path(),
                             "[jobs.once]\nplugin = \"hello\"\nat = \"" +
                                 jobhost::schedule::format_rfc3339(
                                     std::chrono::time_point_cast<jobhost::Duration>(at), nullptr) +
                                 "\"\n");
  {
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
  std::this_thread::sleep_until(at + 1s);
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  auto run = wait_finished(config, "once", 20s);
  REQUIRE(run);
  CHECK((*run)["outcome"] == "succeeded");
  CHECK((*run)["trigger"] == "catchup");
  std::this_thread::sleep_for(1s);
  CHECK(finished(history(config, "once"), "once").size() == 1);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("keep_last bounds a job's runs while it fires, and no pruned slot fires again",
          "[daemon]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
keep_last = 3
)");
  std::map<std::string, std::set<std::string>> runs_of_slot;  // every run seen, by slot
  std::vector<std::string> seen_in_order;
  std::size_t most_at_once = 0;
  auto observe = [&] {
    auto runs = history(config, "tick");
    most_at_once = std::max(most_at_once, runs.size());
    for (const auto& run : runs) {
      const std::string id = run["run_id"];
      if (runs_of_slot[run["scheduled_for"]].insert(id).second) seen_in_order.push_back(id);
    }
    return runs;
  };
  auto last_slot = [&] {
    return runs_of_slot.empty() ? std::string() : runs_of_slot.rbegin()->first;
  };

  {
    Daemon daemon(config);
    REQUIRE(daemon.wait_ready());
    REQUIRE(wait_for(
        [&] {
          observe();
          return seen_in_order.size() >= 8;
        },
        30s));
    // keep_last, one more before the prune that follows it, one in flight.
    CHECK(most_at_once <= 3 + 1 + 1);
    daemon.signal(SIGTERM);
    REQUIRE(daemon.wait_exit(20s) == 0);
  }
  observe();
  const std::string before_restart = last_slot();
  const std::size_t seen_before = seen_in_order.size();

  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  REQUIRE(wait_for(
      [&] {
        observe();
        return seen_in_order.size() >= seen_before + 3;
      },
      30s));
  std::vector<json> left;
  REQUIRE(wait_for(
      [&] {
        left = observe();
        return left.size() <= 3 + 1;
      },
      10s));
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);

  // Old rows went: none of the first runs seen is left.
  for (std::size_t i = 0; i < 4; ++i) {
    INFO(seen_in_order[i]);
    CHECK(std::none_of(left.begin(), left.end(),
                       [&](const json& run) { return run["run_id"] == seen_in_order[i]; }));
  }
  // No slot ran twice, and after the restart only later slots ran (the
  // pruned ones were not caught up again).
  for (const auto& [slot, ids] : runs_of_slot) {
    INFO(slot);
    CHECK(ids.size() == 1);
  }
  for (std::size_t i = seen_before; i < seen_in_order.size(); ++i) {
    for (const auto& [slot, ids] : runs_of_slot) {
      if (ids.contains(seen_in_order[i])) CHECK(slot > before_restart);
    }
  }
  // The events of the pruned runs went with them.
  auto store = open_ledger(config);
  const auto events = store->events("tick", 1000).value();
  for (const auto& event : events) {
    if (event.run_id) CHECK(store->get_run(*event.run_id).value().has_value());
  }
}

TEST_CASE("10 jobs in a group of 2 never run more than 2 at once (from the ledger)",
          "[daemon][groups]") {
  std::string jobs = "[groups.db]\nmax_concurrency = 2\n";
  for (int i = 0; i < 10; ++i) {
    jobs += "\n[jobs.g" + std::to_string(i) +
            "]\nplugin = \"sleeper\"\nschedule = \"* * * * * *\"\nconcurrency_group = \"db\"\n"
            "params = { seconds = 0.3 }\n";
  }
  TestHost host({"sleeper.so"}, jobs, "max_concurrency = 8\n");
  REQUIRE(wait_for(
      [&] {
        return finished(history(host.config()), "g0").size() +
                   finished(history(host.config()), "g9").size() >=
               2;
      },
      20s));
  std::this_thread::sleep_for(3s);
  host.stop();
  // Every run's [started_at, finished_at): the most at once.
  std::vector<std::pair<int64_t, int>> edges;  // (ms, +1 start / -1 end)
  int runs = 0;
  for (const auto& run : history(host.config())) {
    if (run["outcome"] == "skipped" || run["finished_at"].is_null()) continue;
    ++runs;
    const auto ms = [&](const char* key) {
      auto t = jobhost::schedule::parse_rfc3339(run[key].get<std::string>());
      REQUIRE(t);
      return t->time_since_epoch().count();
    };
    edges.emplace_back(ms("started_at"), +1);
    edges.emplace_back(ms("finished_at"), -1);
  }
  std::sort(edges.begin(), edges.end());  // an end before a start of the same instant
  int now = 0, most = 0;
  for (const auto& [at, step] : edges) most = std::max(most, now += step);
  INFO(runs << " runs");
  CHECK(runs >= 10);
  CHECK(most == 2);
}
