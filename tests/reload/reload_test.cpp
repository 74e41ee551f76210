// Integration tests of hot reload (issue 6): the real daemon, real files
// replaced under it, and the ledger as the witness.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/sha256.h"
#include "ledger/ids.h"
#include "ledger/sqlite_store.h"
#include "schedule/schedule.h"
#include "support/harness.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

fs::path test_plugin(const std::string& file) {
  return fs::path(JOBHOST_TEST_PLUGIN_DIR) / file;
}
fs::path shipped_plugin(const std::string& file) {
  return fs::path(JOBHOST_PLUGIN_DIR) / file;
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string sha_of(const fs::path& file) {
  auto sha = jobhost::sha256_file(file);
  REQUIRE(sha);
  return *sha;
}

// Overwrites `target` in place, as `cp new.so plugins/x.so` does (O_TRUNC, write, close).
void copy_over(const std::string& bytes, const fs::path& target) {
  std::ofstream out(target, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes a temporary file beside `target` and renames it over, as `install` or `mv` do.
void rename_over(const std::string& bytes, const fs::path& target) {
  fs::path temp = target.parent_path() / ("." + target.filename().string() + ".tmp");
  copy_over(bytes, temp);
  fs::permissions(temp, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
  fs::rename(temp, target);
}

// Replaces the config by rename, as editors do.
void edit_config(const fs::path& dir, const fs::path& config, const std::string& jobs,
                 const std::string& host_extra = "") {
  fs::path staged = dir / "staged.toml";
  write_config(dir, jobs, host_extra);
  fs::rename(config, staged);
  fs::rename(staged, config);
}

std::vector<jobhost::ledger::Event> events(const fs::path& config) {
  auto store = open_ledger(config);
  auto list = store->events(std::nullopt, 10000);
  REQUIRE(list);
  return *list;
}

// Events of `kind`, oldest first.
std::vector<jobhost::ledger::Event> events_of(const fs::path& config, const std::string& kind) {
  std::vector<jobhost::ledger::Event> out;
  for (const auto& e : events(config)) {
    if (e.kind == kind) out.push_back(e);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// `history --json` of `job`, newest first, read from the ledger itself: the
// CLI needs a valid config, and some steps leave an invalid one in place.
json ledger_history(const fs::path& config, const std::string& job, int limit = 1000) {
  auto store = open_ledger(config);
  auto runs = store->history(job, limit);
  REQUIRE(runs);
  json out = json::array();
  for (const auto& run : *runs) out.push_back(run);
  return out;
}

jobhost::TimePoint at(const json& text) {
  auto t = jobhost::schedule::parse_rfc3339(text.get<std::string>());
  REQUIRE(t);
  return *t;
}

// Runs of `job` (finished or not, skipped included) started after `after`, oldest first.
std::vector<json> runs_since(const fs::path& config, const std::string& job,
                             jobhost::TimePoint after) {
  std::vector<json> out;
  for (const auto& run : ledger_history(config, job)) {
    if (at(run["started_at"]) > after) out.push_back(run);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// Waits until `job` has `count` finished runs started after `after` and returns them.
std::vector<json> wait_runs_since(const fs::path& config, const std::string& job,
                                  jobhost::TimePoint after, std::size_t count,
                                  std::chrono::milliseconds timeout = 30s) {
  std::vector<json> done;
  wait_for(
      [&] {
        done.clear();
        for (auto& run : runs_since(config, job, after)) {
          if (!run["finished_at"].is_null()) done.push_back(run);
        }
        return done.size() >= count;
      },
      timeout);
  return done;
}

// The audit: every slot of an `every` job is claimed exactly once and none
// is missing between the first and the last (attempt-1 slots, run or skipped).
void check_slots_on_grid(const fs::path& config, const std::string& job,
                         std::chrono::milliseconds period) {
  std::vector<jobhost::TimePoint> slots;
  for (const auto& run : ledger_history(config, job, 100000)) {
    if (run["attempt"] == 1) slots.push_back(at(run["scheduled_for"]));
  }
  std::sort(slots.begin(), slots.end());
  REQUIRE(slots.size() >= 2);
  INFO(job << ": " << slots.size() << " slots");
  CHECK(std::adjacent_find(slots.begin(), slots.end()) == slots.end());  // no slot twice
  std::size_t off_grid = 0;
  for (std::size_t i = 1; i < slots.size(); ++i) {
    if (slots[i] - slots[i - 1] != period) ++off_grid;
  }
  CHECK(off_grid == 0);  // no slot lost
}

jobhost::TimePoint wall_now() {
  return std::chrono::time_point_cast<jobhost::Duration>(std::chrono::system_clock::now());
}

json daemon_plugins(const fs::path& config) {
  auto result = run_jobhost({"plugins", "--config", config.string(), "--json"});
  return json::parse(result.out);
}

std::optional<json> served(const json& plugins, const std::string& name) {
  for (const auto& p : plugins["accepted"]) {
    if (p["name"] == name) return p;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("a new build replaces the old one by cp and by rename; runs in flight keep theirs",
          "[reload]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const fs::path plugins = dir.path() / "plugins";
  fs::copy_file(test_plugin("napper_v1.so"), plugins / "napper.so");
  const std::string hello_v1 = read_bytes(shipped_plugin("hello.so"));
  const std::string hello_v2 = read_bytes(test_plugin("hello_v2.so"));
  const std::string napper_v2 = read_bytes(test_plugin("napper_v2.so"));
  const std::string sha_v1 = sha_of(shipped_plugin("hello.so"));
  const std::string sha_v2 = sha_of(test_plugin("hello_v2.so"));
  REQUIRE(sha_v1 != sha_v2);
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
every = "200ms"

[jobs.nap]
plugin = "napper"
schedule = "@manual"
concurrency = "allow"
params = { seconds = 2 }
)");
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  auto t0 = wall_now();
  auto first = wait_runs_since(config, "tick", t0 - 60s, 1);
  REQUIRE(first.size() >= 1);
  CHECK(first[0]["plugin_version"] == "1.0.0");
  CHECK(first[0]["plugin_sha256"] == sha_v1);

  // A run in flight while its plugin is overwritten in place finishes on its build.
  REQUIRE(trigger(config, "nap").exit_code == 0);
  REQUIRE(wait_for([&] { return ledger_history(config, "nap").size() == 1; }, 10s));
  REQUIRE(ledger_history(config, "nap")[0]["finished_at"].is_null());
  copy_over(napper_v2, plugins / "napper.so");
  REQUIRE(wait_for(
      [&] {
        auto p = served(daemon_plugins(config), "napper");
        return p && (*p)["version"] == "2.0.0";
      },
      20s));
  REQUIRE(trigger(config, "nap").exit_code == 0);
  std::vector<json> naps;
  REQUIRE(wait_for(
      [&] {
        naps = finished(ledger_history(config, "nap"), "nap");
        return naps.size() == 2;
      },
      20s));
  // Newest first: the second trigger ran the new build, the first the old one.
  CHECK(naps[1]["outcome"] == "succeeded");
  CHECK(naps[1]["plugin_version"] == "1.0.0");
  CHECK(naps[1]["message"] == "napper 1.0.0 slept");
  CHECK(naps[0]["outcome"] == "succeeded");
  CHECK(naps[0]["plugin_version"] == "2.0.0");
  CHECK(naps[0]["message"] == "napper 2.0.0 slept");
  CHECK(naps[0]["plugin_sha256"] == sha_of(test_plugin("napper_v2.so")));

  SECTION("cp over the file, then rename back") {
    copy_over(hello_v2, plugins / "hello.so");
    auto t1 = wall_now();
    auto after = wait_runs_since(config, "tick", t1, 1);
    REQUIRE(wait_for(
        [&] {
          after = runs_since(config, "tick", t1);
          return !after.empty() && after.back()["plugin_version"] == "2.0.0";
        },
        20s));
    CHECK(after.back()["plugin_sha256"] == sha_v2);
    // Once the new build is in service, every later run uses it.
    auto t2 = wall_now();
    for (const auto& run : wait_runs_since(config, "tick", t2, 3)) {
      INFO(run.dump());
      CHECK(run["plugin_version"] == "2.0.0");
      CHECK(run["plugin_sha256"] == sha_v2);
      CHECK(run["outcome"] == "succeeded");
    }
    CHECK_THAT(daemon.log(),
               Catch::Contains("reloaded: plugin hello 1.0.0 (sha256 " + sha_v1.substr(0, 12) +
                               ") -> 2.0.0 (sha256 " + sha_v2.substr(0, 12) + ")"));

    rename_over(hello_v1, plugins / "hello.so");
    REQUIRE(wait_for(
        [&] {
          auto p = served(daemon_plugins(config), "hello");
          return p && (*p)["sha256"] == sha_v1;
        },
        20s));
    auto t3 = wall_now();
    for (const auto& run : wait_runs_since(config, "tick", t3, 3)) {
      CHECK(run["plugin_version"] == "1.0.0");
      CHECK(run["plugin_sha256"] == sha_v1);
    }

    // A corrupt build is rejected with a reason; the last good one stays.
    copy_over(hello_v2.substr(0, 4096), plugins / "hello.so");
    std::vector<jobhost::ledger::Event> rejected;
    REQUIRE(wait_for(
        [&] {
          rejected = events_of(config, "rejected_plugin");
          return !rejected.empty();
        },
        20s));
    auto detail = json::parse(rejected.back().detail);
    CHECK(detail["file"] == (plugins / "hello.so").string());
    CHECK_FALSE(detail["reason"].get<std::string>().empty());
    CHECK(detail["in_service"]["sha256"] == sha_v1);
    CHECK_THAT(daemon.log(), Catch::Contains(fmt::format("plugin file {} rejected: ",
                                                         (plugins / "hello.so").string())) &&
                                 Catch::Contains("stays in service"));
    auto listing = daemon_plugins(config);
    CHECK(listing["source"] == "daemon");
    REQUIRE(served(listing, "hello"));
    CHECK((*served(listing, "hello"))["sha256"] == sha_v1);
    REQUIRE(listing["rejected"].size() == 1);
    CHECK_THAT(listing["rejected"][0]["reason"].get<std::string>(),
               Catch::Contains("build in service: 1.0.0"));
    auto t4 = wall_now();
    for (const auto& run : wait_runs_since(config, "tick", t4, 3)) {
      CHECK(run["outcome"] == "succeeded");
      CHECK(run["plugin_sha256"] == sha_v1);
    }
    // status says which build the next run loads.
    auto status = json::parse(run_jobhost({"status", "--config", config.string(), "--json"}).out);
    CHECK(status["jobs"][0]["next_build"]["sha256"] == sha_v1);
  }

  SECTION("a deleted plugin blocks its jobs until it comes back") {
    fs::remove(plugins / "hello.so");
    REQUIRE(wait_for([&] { return !served(daemon_plugins(config), "hello"); }, 20s));
    auto t1 = wall_now();
    auto blocked = wait_runs_since(config, "tick", t1, 2);
    REQUIRE(blocked.size() >= 2);
    for (const auto& run : blocked) {
      CHECK(run["outcome"] == "skipped");
      CHECK_THAT(run["message"].get<std::string>(), Catch::StartsWith("blocked: plugin \"hello\""));
    }
    auto status = json::parse(run_jobhost({"status", "--config", config.string(), "--json"}).out);
    CHECK(status["jobs"][0]["next_build"].is_null());
    CHECK_THAT(status["jobs"][0]["blocked"].get<std::string>(), Catch::Contains("hello"));
    rename_over(hello_v2, plugins / "hello.so");
    REQUIRE(wait_for([&] { return served(daemon_plugins(config), "hello").has_value(); }, 20s));
    auto t2 = wall_now();
    for (const auto& run : wait_runs_since(config, "tick", t2, 2)) {
      CHECK(run["outcome"] == "succeeded");
      CHECK(run["plugin_version"] == "2.0.0");
    }
  }

  check_slots_on_grid(config, "tick", 200ms);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("a config edit adds, removes and changes jobs; an invalid one is rejected", "[reload]") {
  const std::string steady = R"(
[jobs.steady]
plugin = "hello"
every = "300ms"
)";
  TestHost host({"hello.so"}, steady + R"(
[jobs.doomed]
plugin = "hello"
every = "300ms"

[jobs.shifting]
plugin = "hello"
every = "300ms"
params = { greeting = "before" }
)");
  const fs::path& config = host.config();
  Daemon& daemon = host.daemon();
  REQUIRE(wait_runs_since(config, "doomed", wall_now() - 60s, 2).size() >= 2);
  const std::string old_hash = ledger_history(config, "shifting")[0]["definition_hash"];

  edit_config(host.dir(), config, steady + R"(
[jobs.shifting]
plugin = "hello"
every = "500ms"
params = { greeting = "after" }

[jobs.fresh]
plugin = "hello"
every = "300ms"
)");
  std::vector<jobhost::ledger::Event> reloaded;
  REQUIRE(wait_for(
      [&] {
        reloaded = events_of(config, "reloaded");
        return !reloaded.empty();
      },
      20s));
  auto detail = json::parse(reloaded.back().detail);
  CHECK(detail["added"] == json::array({"fresh"}));
  CHECK(detail["removed"] == json::array({"doomed"}));
  CHECK(detail["changed"] == json::array({"shifting"}));
  CHECK_THAT(daemon.log(), Catch::Contains("config reloaded: jobs added: fresh; removed: doomed; "
                                           "changed: shifting"));
  const auto reload_at = reloaded.back().at;

  auto fresh = wait_runs_since(config, "fresh", reload_at, 3);
  REQUIRE(fresh.size() >= 3);
  CHECK(fresh[0]["outcome"] == "succeeded");
  auto shifted = wait_runs_since(config, "shifting", reload_at, 3);
  REQUIRE(shifted.size() >= 3);
  for (const auto& run : shifted) {
    CHECK(run["message"] == "said after");
    CHECK(run["definition_hash"] != old_hash);
  }
  CHECK(at(shifted[2]["scheduled_for"]) - at(shifted[1]["scheduled_for"]) ==
        std::chrono::milliseconds(500));
  // The removed job fired no more once the reload was applied.
  CHECK(runs_since(config, "doomed", reload_at).empty());
  CHECK(trigger(config, "fresh").exit_code == 0);

  // An invalid config: every error is logged with file:line:col, nothing changes.
  edit_config(host.dir(), config, steady + R"(
[jobs.fresh]
plugin = "hello"
every = "300ms"
timout = "5s"

[jobs.broken]
plugin = "hello"
schedule = "61 * * * *"

[jobs.wide]
plugin = "hello"
schedule = "0 0 1 */15 *"
timezone = "UTC"
)");
  std::vector<jobhost::ledger::Event> rejected;
  REQUIRE(wait_for(
      [&] {
        rejected = events_of(config, "config_rejected");
        return !rejected.empty();
      },
      20s));
  auto errors = json::parse(rejected.back().detail)["errors"];
  // A warning is reported with the errors, and not counted as one.
  const auto warnings = std::count_if(errors.begin(), errors.end(), [](const json& e) {
    return e.get<std::string>().find(": warning: ") != std::string::npos;
  });
  CHECK(warnings == 1);
  CHECK(errors.size() - warnings >= 2);
  const std::string log = daemon.log();
  CHECK_THAT(
      log, Catch::Contains("rejected (" + std::to_string(errors.size() - warnings) + " error(s))"));
  for (const auto& error : errors) {
    CHECK_THAT(error.get<std::string>(), Catch::Matches(".*jobhost\\.toml:[0-9]+:[0-9]+: .*"));
    CHECK_THAT(log, Catch::Contains(error.get<std::string>()));
  }
  // The schedule is untouched: shifting still fires every 500ms, fresh too.
  auto after_reject = rejected.back().at;
  auto still = wait_runs_since(config, "shifting", after_reject, 2);
  REQUIRE(still.size() >= 2);
  CHECK(still[0]["message"] == "said after");
  REQUIRE(wait_runs_since(config, "fresh", after_reject, 2).size() >= 2);
  CHECK(ledger_history(config, "broken").empty());

  // `jobhost reload` answers with what it did: here the config is still invalid.
  auto forced = run_jobhost({"reload", "--config", config.string()});
  CHECK(forced.exit_code == 1);
  CHECK_THAT(forced.out, Catch::Contains("config rejected") && Catch::Contains("timout"));

  // SIGHUP and `jobhost reload` reload a valid config (nothing changed here).
  edit_config(host.dir(), config, steady + R"(
[jobs.shifting]
plugin = "hello"
every = "500ms"
params = { greeting = "after" }

[jobs.fresh]
plugin = "hello"
every = "300ms"

[jobs.wide]
plugin = "hello"
schedule = "0 0 1 */15 *"
timezone = "UTC"
)");
  REQUIRE(wait_for([&] { return events_of(config, "reloaded").size() >= 2; }, 20s));
  const auto before_hup = events_of(config, "reloaded").size();
  daemon.signal(SIGHUP);
  REQUIRE(wait_for([&] { return events_of(config, "reloaded").size() > before_hup; }, 20s));
  CHECK_THAT(daemon.log(), Catch::Contains("SIGHUP: reloading plugins and config"));
  auto again = run_jobhost({"reload", "--config", config.string()});
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("config reloaded: no job changed"));
  // A valid config's warnings are logged and answered on every reload.
  CHECK_THAT(again.out, Catch::Contains(": warning: schedule in [jobs.wide]: cron expression"));
  CHECK_THAT(daemon.log(), Catch::Contains("month field: step 15 is larger than the range 1-12"));

  // No slot of the untouched job was lost or doubled throughout.
  check_slots_on_grid(config, "steady", 300ms);
  host.stop();
  // Without a daemon, reload says so with exit code 3.
  CHECK(run_jobhost({"reload", "--config", config.string()}).exit_code == 3);
}

TEST_CASE("without inotify the daemon polls and still picks up a new build", "[reload]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
every = "200ms"
)");
  setenv("JOBHOST_WATCH", "poll", 1);
  Daemon daemon(config);
  unsetenv("JOBHOST_WATCH");
  REQUIRE(daemon.wait_ready());
  CHECK_THAT(daemon.log(), Catch::Contains("polling"));
  rename_over(read_bytes(test_plugin("hello_v2.so")), dir.path() / "plugins" / "hello.so");
  auto t0 = wall_now();
  REQUIRE(wait_for(
      [&] {
        auto runs = runs_since(config, "tick", t0);
        return !runs.empty() && runs.back()["plugin_version"] == "2.0.0";
      },
      30s));
  check_slots_on_grid(config, "tick", 200ms);
}

TEST_CASE("unused shadow copies and stale temporary copies are removed", "[reload]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.hello]
plugin = "hello"
schedule = "@manual"
)");
  const fs::path shadows = dir.path() / "var" / "plugins";
  fs::create_directories(shadows);
  fs::permissions(dir.path() / "var", fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
  fs::permissions(shadows, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  auto make = [&](const std::string& name, std::chrono::hours age) {
    std::ofstream(shadows / name) << "old";
    fs::last_write_time(shadows / name, fs::file_time_type::clock::now() - age);
  };
  const std::string unused_old(64, 'a'), unused_young(64, 'b'), last_run_old(64, 'c');
  make(unused_old + ".so", std::chrono::hours(3));
  make(unused_young + ".so", std::chrono::hours(0));
  make(last_run_old + ".so", std::chrono::hours(3));
  make(".incoming-Crash1", std::chrono::hours(3));
  make("README", std::chrono::hours(3));
  {
    // The last run of "hello" loaded the build last_run_old: its copy stays.
    auto store = open_ledger(config, jobhost::ledger::Access::read_write);
    const auto at = std::chrono::time_point_cast<jobhost::Duration>(
        std::chrono::system_clock::now() - std::chrono::hours(2));
    jobhost::ledger::RunStart run;
    run.run_id = jobhost::ledger::new_id(at);
    run.trace_id = jobhost::ledger::new_id(at);
    run.job = "hello";
    run.scheduled_for = at;
    run.trigger = jobhost::ledger::Trigger::manual;
    run.started_at = at;
    run.plugin = "hello";
    run.plugin_sha256 = last_run_old;
    REQUIRE(store->claim_and_start(run).value());
    jobhost::ledger::RunEnd end;
    end.run_id = run.run_id;
    end.finished_at = at + std::chrono::seconds(1);
    end.duration = std::chrono::seconds(1);
    REQUIRE(store->finish_run(end).value());
  }
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  REQUIRE(wait_for([&] { return !fs::exists(shadows / (unused_old + ".so")); }, 10s));
  CHECK_FALSE(fs::exists(shadows / ".incoming-Crash1"));
  CHECK(fs::exists(shadows / (unused_young + ".so")));
  CHECK(fs::exists(shadows / (last_run_old + ".so")));
  CHECK(fs::exists(shadows / "README"));
  CHECK(fs::exists(shadows / (sha_of(shipped_plugin("hello.so")) + ".so")));  // in service
  CHECK_THAT(daemon.log(), Catch::Contains("removed 2 unused shadow copies"));
}

namespace {

std::vector<jobhost::ledger::PendingRetry> pending_retries(const fs::path& config) {
  auto store = open_ledger(config);
  auto retries = store->pending_retries();
  REQUIRE(retries);
  return *retries;
}

// The daemon's own {"op":"status"} answer (runs in flight, fires queued).
json daemon_status(const fs::path& config) {
  const std::string path = (config.parent_path() / "var" / "jobhost.sock").string();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "{\"op\":\"status\"}\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[4096];
      while (reply.find('\n') == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        reply.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  return json::parse(reply, nullptr, false);
}

}  // namespace

TEST_CASE("a reload drops the pending retries its new settings no longer allow", "[reload]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so", "retry.so"});
  fs::copy_file(test_plugin("napper_v1.so"), dir.path() / "plugins" / "napper.so");
  const std::string nap = R"(
[jobs.nap]
plugin = "napper"
schedule = "@manual"
params = { seconds = 30 }
)";
  const std::string host = "max_concurrency = 1\n";
  auto config = write_config(dir.path(), nap + R"(
[jobs.flaky]
plugin = "retry"
schedule = "@manual"
retry = { max_attempts = 5, initial_delay = "1h", max_delay = "1h" }

[jobs.shaky]
plugin = "retry"
schedule = "@manual"
retry = { max_attempts = 5, initial_delay = "1s", max_delay = "1s", multiplier = 1 }
)",
                             host);
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  auto retries_of = [&](const std::string& job) {
    auto all = pending_retries(config);
    return std::count_if(all.begin(), all.end(), [&](const auto& r) { return r.job == job; });
  };
  // flaky waits an hour for attempt 2; shaky's next attempt is due while nap
  // holds the only run slot, so it waits in the dispatch queue.
  REQUIRE(trigger(config, "flaky").exit_code == 0);
  REQUIRE(wait_for([&] { return retries_of("flaky") == 1; }, 20s));
  REQUIRE(trigger(config, "shaky").exit_code == 0);
  REQUIRE(wait_for([&] { return retries_of("shaky") == 1; }, 20s));
  REQUIRE(trigger(config, "nap").exit_code == 0);
  REQUIRE(wait_for(
      [&] {
        auto status = daemon_status(config);
        return status.is_object() && status["queued"] == 1 && status["running"].size() == 1 &&
               status["running"][0]["job"] == "nap";
      },
      20s));
  REQUIRE(retries_of("shaky") == 1);

  // flaky no longer retries; shaky is removed while its retry is queued.
  edit_config(dir.path(), config, nap + R"(
[jobs.flaky]
plugin = "retry"
schedule = "@manual"
retry = { max_attempts = 1 }
)",
              host);
  REQUIRE(wait_for([&] { return !events_of(config, "reloaded").empty(); }, 20s));
  auto detail = json::parse(events_of(config, "reloaded").back().detail);
  CHECK(detail["changed"] == json::array({"flaky"}));
  CHECK(detail["removed"] == json::array({"shaky"}));
  CHECK(pending_retries(config).empty());
  CHECK_THAT(daemon.log(), Catch::Contains("dropped: retry.max_attempts is now 1") &&
                               Catch::Contains("dropped: the job was removed from the config"));
  CHECK(daemon_status(config)["queued"] == 0);
  daemon.signal(SIGTERM);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}

TEST_CASE("a config rejected for a plugin not in service yet is applied once it arrives",
          "[reload]") {
  const std::string tick = R"(
[jobs.tick]
plugin = "hello"
schedule = "@manual"
)";
  TestHost host({"hello.so"}, tick);
  const fs::path& config = host.config();
  // The config names the new plugin before its file is deployed.
  edit_config(host.dir(), config, tick + R"(
[jobs.nap]
plugin = "napper"
schedule = "@manual"
params = { seconds = 0 }
)");
  REQUIRE(wait_for([&] { return !events_of(config, "config_rejected").empty(); }, 20s));
  rename_over(read_bytes(test_plugin("napper_v1.so")), host.dir() / "plugins" / "napper.so");
  std::vector<jobhost::ledger::Event> reloaded;
  REQUIRE(wait_for(
      [&] {
        reloaded.clear();
        for (const auto& e : events_of(config, "reloaded")) {
          if (json::parse(e.detail).contains("added")) reloaded.push_back(e);
        }
        return !reloaded.empty();
      },
      20s));
  CHECK(json::parse(reloaded.back().detail)["added"] == json::array({"nap"}));
  CHECK(trigger(config, "nap").exit_code == 0);
  REQUIRE(
      wait_for([&] { return finished(ledger_history(config, "nap"), "nap").size() == 1; }, 20s));
  CHECK(ledger_history(config, "nap")[0]["outcome"] == "succeeded");
}

TEST_CASE("a config mounted from a Kubernetes ConfigMap is reloaded when it is updated",
          "[reload]") {
  // The layout of a ConfigMap volume: jobhost.toml -> ..data/jobhost.toml,
  // ..data -> a timestamped directory; an update renames a new ..data over it.
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const fs::path volume = dir.path() / "cfg";
  auto publish = [&](const std::string& version, const std::string& jobs) {
    const fs::path data = volume / ("..2026_11_29_" + version);
    fs::create_directories(data);
    std::ofstream(data / "jobhost.toml")
        << "[host]\nplugin_dir = \"" << (dir.path() / "plugins").string() << "\"\nstate_dir = \""
        << (volume / "var").string() << "\"\n\n[http]\nlisten = \"\"\n\n"
        << jobs;
    fs::create_symlink(data.filename(), volume / "..data_tmp");
    fs::rename(volume / "..data_tmp", volume / "..data");
  };
  fs::create_directories(volume);
  publish("a", "[jobs.first]\nplugin = \"hello\"\nschedule = \"@manual\"\n");
  fs::create_symlink("..data/jobhost.toml", volume / "jobhost.toml");
  const fs::path config = volume / "jobhost.toml";
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());

  publish("b",
          "[jobs.first]\nplugin = \"hello\"\nschedule = \"@manual\"\n\n"
          "[jobs.second]\nplugin = \"hello\"\nschedule = \"@manual\"\n");
  std::vector<jobhost::ledger::Event> reloaded;
  REQUIRE(wait_for(
      [&] {
        reloaded = events_of(config, "reloaded");
        return !reloaded.empty();
      },
      20s));
  CHECK(json::parse(reloaded.back().detail)["added"] == json::array({"second"}));
}

TEST_CASE("the build of recent runs outlives its replacement by the cleanup age", "[reload]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
every = "100ms"
)");
  const fs::path plugins = dir.path() / "plugins";
  const fs::path old_copy =
      dir.path() / "var" / "plugins" / (sha_of(shipped_plugin("hello.so")) + ".so");
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  REQUIRE(wait_runs_since(config, "tick", wall_now() - 60s, 1).size() >= 1);
  // The build has been in service for hours (its copy was written then).
  fs::last_write_time(old_copy, fs::file_time_type::clock::now() - std::chrono::hours(3));
  rename_over(read_bytes(test_plugin("hello_v2.so")), plugins / "hello.so");
  REQUIRE(wait_for(
      [&] {
        auto p = served(daemon_plugins(config), "hello");
        return p && (*p)["version"] == "2.0.0";
      },
      20s));
  // More runs of the new build than the cleanup keeps per job, then a cleanup.
  auto t0 = wall_now();
  constexpr std::size_t kKeptRunsPerJob = 5;  // reload::kShadowKeepRunsPerJob
  REQUIRE(wait_runs_since(config, "tick", t0, kKeptRunsPerJob + 1).size() > kKeptRunsPerJob);
  REQUIRE(run_jobhost({"reload", "--config", config.string()}).exit_code == 0);
  // A run of the old build a moment ago can still be replayed.
  CHECK(fs::exists(old_copy));
}

TEST_CASE("a reload loads nothing from a plugin_dir others can write", "[reload]") {
  TempDir dir;
  const fs::path plugins = install_plugins(dir.path(), {"hello.so"});
  fs::permissions(plugins, fs::perms::all);  // 0777: refused at start, so nothing is loaded
  auto config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
schedule = "@manual"
)");
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  REQUIRE_FALSE(served(daemon_plugins(config), "hello"));
  rename_over(read_bytes(test_plugin("hello_v2.so")), plugins / "hello.so");
  auto forced = run_jobhost({"reload", "--config", config.string()});
  CHECK(forced.exit_code == 1);
  CHECK_THAT(forced.out,
             Catch::Contains(fmt::format("plugin file {} rejected: plugin directory: unsafe "
                                         "permissions",
                                         (plugins / "hello.so").string())));
  CHECK_FALSE(served(daemon_plugins(config), "hello"));
  // The fix the rejection names, and nothing else: the plugin is loaded.
  fs::permissions(plugins, fs::perms::group_write | fs::perms::others_write,
                  fs::perm_options::remove);
  REQUIRE(wait_for([&] { return served(daemon_plugins(config), "hello").has_value(); }, 20s));
  CHECK((*served(daemon_plugins(config), "hello"))["version"] == "2.0.0");
}

namespace {

// The details of the `reloaded` events of config reloads (not of plugins), oldest first.
std::vector<json> config_reloads(const fs::path& config) {
  std::vector<json> out;
  for (const auto& e : events_of(config, "reloaded")) {
    auto detail = json::parse(e.detail);
    if (detail.contains("added")) out.push_back(std::move(detail));
  }
  return out;
}

// Whether a config reload has listed exactly `jobs` as `key` ("added",
// "removed"), waiting up to 20 s for one. (An edit may be read twice: a
// reload is known by what it did, not by its rank.)
bool reloaded_with(const fs::path& config, const std::string& key, const json& jobs) {
  return wait_for(
      [&] {
        for (const auto& detail : config_reloads(config)) {
          if (detail[key] == jobs) return true;
        }
        return false;
      },
      20s);
}

bool lists_job(const fs::path& config, const std::string& job) {
  auto result = run_jobhost({"list", "--config", config.string(), "--json"});
  if (result.exit_code != 0) return false;
  for (const auto& entry : json::parse(result.out)) {
    if (entry["job"] == job) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("included files: a file added adds its jobs, a duplicate is refused, a removal removes",
          "[reload][include]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const fs::path jobs = dir.path() / "jobs.d";
  fs::create_directories(jobs);
  std::ofstream(jobs / "alpha.toml") << "[jobs.alpha]\nplugin = \"hello\"\nevery = \"300ms\"\n";
  auto config = write_config(dir.path(), "", "include = [\"jobs.d/*.toml\"]\n");
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  REQUIRE(wait_runs_since(config, "alpha", wall_now() - 60s, 1).size() >= 1);
  CHECK_THAT(daemon.log(), Catch::Contains(jobs.string()));  // watched

  // A file written into the directory while the daemon runs adds its job.
  std::ofstream(jobs / "beta.toml") << "[jobs.beta]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  REQUIRE(reloaded_with(config, "added", json::array({"beta"})));
  CHECK(lists_job(config, "beta"));
  CHECK(trigger(config, "beta").exit_code == 0);

  // An editor's swap and backup files in the directory reload nothing.
  std::ofstream(jobs / ".gamma.toml.swp") << "not TOML [[[";
  std::ofstream(jobs / "gamma.toml~") << "not TOML [[[";
  std::this_thread::sleep_for(1s);
  CHECK(config_reloads(config).size() == 1);
  CHECK(events_of(config, "config_rejected").empty());

  // A file defining a job again: refused, naming both files; the running jobs stay.
  const std::string gamma = "[jobs.gamma]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  std::ofstream(jobs / "gamma.toml")
      << gamma << "\n[jobs.alpha]\nplugin = \"hello\"\nevery = \"1s\"\n";
  std::vector<jobhost::ledger::Event> rejected;
  REQUIRE(wait_for(
      [&] {
        rejected = events_of(config, "config_rejected");
        return !rejected.empty();
      },
      20s));
  const std::string duplicate = (jobs / "gamma.toml").string() +
                                ":5:1: duplicate job \"alpha\": [jobs.alpha] is also defined at " +
                                (jobs / "alpha.toml").string() + ":1:1";
  auto errors = json::parse(rejected.back().detail)["errors"];
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0].get<std::string>(), Catch::StartsWith(duplicate));
  CHECK_THAT(daemon.log(), Catch::Contains("rejected (1 error(s)); the running config stays") &&
                               Catch::Contains(duplicate));
  auto still = wait_runs_since(config, "alpha", rejected.back().at, 3);
  REQUIRE(still.size() >= 3);
  CHECK(at(still[2]["scheduled_for"]) - at(still[1]["scheduled_for"]) == 300ms);
  CHECK(trigger(config, "gamma").exit_code != 0);  // not added

  // The duplicate taken out (the file replaced by rename, as editors do): applied.
  std::ofstream(jobs / ".gamma.toml.new") << gamma;
  fs::rename(jobs / ".gamma.toml.new", jobs / "gamma.toml");
  REQUIRE(reloaded_with(config, "added", json::array({"gamma"})));
  CHECK(trigger(config, "gamma").exit_code == 0);

  // A file removed removes its jobs.
  fs::remove(jobs / "beta.toml");
  REQUIRE(reloaded_with(config, "removed", json::array({"beta"})));
  CHECK_FALSE(lists_job(config, "beta"));

  // A directory newly included, with a broken file: rejected, yet watched,
  // so that fixing the file applies the config.
  const fs::path more = dir.path() / "more.d";
  fs::create_directories(more);
  std::ofstream(more / "delta.toml") << "[jobs.delta\n";
  edit_config(dir.path(), config, "", "include = [\"jobs.d/*.toml\", \"more.d/*.toml\"]\n");
  REQUIRE(wait_for([&] { return events_of(config, "config_rejected").size() >= 2; }, 20s));
  CHECK_THAT(json::parse(events_of(config, "config_rejected").back().detail)["errors"][0]
                 .get<std::string>(),
             Catch::StartsWith((more / "delta.toml").string() + ":1:"));
  std::ofstream(more / "delta.toml")
      << "[jobs.delta]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  REQUIRE(reloaded_with(config, "added", json::array({"delta"})));

  // A valid config that includes one more directory: watched from then on.
  const fs::path late = dir.path() / "late.d";
  fs::create_directories(late);
  const std::size_t before = config_reloads(config).size();
  edit_config(dir.path(), config, "",
              "include = [\"jobs.d/*.toml\", \"more.d/*.toml\", \"late.d/*.toml\"]\n");
  REQUIRE(wait_for([&] { return config_reloads(config).size() > before; }, 20s));
  std::ofstream(late / "zeta.toml") << "[jobs.zeta]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  CHECK(reloaded_with(config, "added", json::array({"zeta"})));
  check_slots_on_grid(config, "alpha", 300ms);
}

TEST_CASE("included files are polled without inotify", "[reload][include]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const fs::path jobs = dir.path() / "jobs.d";
  fs::create_directories(jobs);
  auto config = write_config(dir.path(), "", "include = [\"jobs.d/*.toml\"]\n");
  setenv("JOBHOST_WATCH", "poll", 1);
  Daemon daemon(config);
  unsetenv("JOBHOST_WATCH");
  REQUIRE(daemon.wait_ready());
  CHECK_THAT(daemon.log(), Catch::Contains("polling") && Catch::Contains("jobs.d/*.toml"));
  std::ofstream(jobs / "late.toml") << "[jobs.late]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  CHECK(reloaded_with(config, "added", json::array({"late"})));
}

TEST_CASE("several plugin directories: each is watched, the first one's build of a name wins",
          "[reload][dirs]") {
  TempDir dir;
  const fs::path shipped = install_plugins(dir.path(), {"hello.so"});
  const fs::path mine = dir.path() / "mine";
  fs::create_directory(mine);
  fs::permissions(mine, fs::perms(0755));
  const fs::path config = dir.path() / "jobhost.toml";
  std::ofstream(config) << "[host]\nplugin_dir = [\"mine\", \"plugins\"]\nstate_dir = \"var\"\n"
                        << "[http]\nlisten = \"\"\n"
                        << "[jobs.tick]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  Daemon daemon(config);
  REQUIRE(daemon.wait_ready());
  auto listing = daemon_plugins(config);
  CHECK(listing["plugin_dirs"] == json::array({mine.string(), shipped.string()}));
  REQUIRE(served(listing, "hello"));
  CHECK((*served(listing, "hello"))["path"] == (shipped / "hello.so").string());

  // A build of the same name in the first directory takes over; the other is
  // rejected naming it.
  rename_over(read_bytes(test_plugin("hello_v2.so")), mine / "hello.so");
  REQUIRE(wait_for(
      [&] {
        auto p = served(daemon_plugins(config), "hello");
        return p && (*p)["version"] == "2.0.0";
      },
      20s));
  listing = daemon_plugins(config);
  CHECK((*served(listing, "hello"))["path"] == (mine / "hello.so").string());
  REQUIRE(listing["rejected"].size() == 1);
  CHECK(listing["rejected"][0]["path"] == (shipped / "hello.so").string());
  CHECK_THAT(listing["rejected"][0]["reason"].get<std::string>(),
             Catch::Contains("duplicate plugin name \"hello\": " + (mine / "hello.so").string()));
  const auto t0 = wall_now();
  REQUIRE(run_jobhost({"trigger", "--config", config.string(), "tick"}).exit_code == 0);
  auto runs = wait_runs_since(config, "tick", t0 - 1s, 1);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0]["outcome"] == "succeeded");
  CHECK(runs[0]["plugin_version"] == "2.0.0");

  // The second directory is watched too.
  rename_over(read_bytes(shipped_plugin("hello_c.so")), shipped / "hello_c.so");
  REQUIRE(wait_for([&] { return served(daemon_plugins(config), "hello_c").has_value(); }, 20s));

  // Gone from the first directory: the second one's build is back in service.
  fs::remove(mine / "hello.so");
  REQUIRE(wait_for(
      [&] {
        auto p = served(daemon_plugins(config), "hello");
        return p && (*p)["version"] == "1.0.0";
      },
      20s));
  listing = daemon_plugins(config);
  CHECK((*served(listing, "hello"))["path"] == (shipped / "hello.so").string());
  CHECK(listing["rejected"].empty());
}
