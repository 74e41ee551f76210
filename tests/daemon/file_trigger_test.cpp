// File triggers through the daemon (docs/triggers.md): a debounced batch is
// one run, trigger file, its paths in the payload; renames in and
// directories made later are seen; a batch that never reached the ledger
// is caught up at the next start.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "support/harness.h"

using namespace jobhost;
using namespace jobhost::testing;
using json = nlohmann::json;

namespace {

void write_file(const fs::path& path, const std::string& text = "x\n") {
  std::ofstream(path) << text;
}

// The file-triggered runs of `job`, oldest first, with their payloads.
std::vector<ledger::RunRecord> file_runs(const fs::path& config, const std::string& job) {
  auto store = open_ledger(config);
  ledger::RunQuery query;
  query.job = job;
  query.trigger = ledger::Trigger::file;
  query.limit = 100;
  auto runs = store->query_runs(query).value();
  std::reverse(runs.begin(), runs.end());
  for (auto& run : runs) run.event = store->get_run(run.run_id).value()->event;
  return runs;
}

// Waits until `job` has `count` finished file-triggered runs; returns them.
std::vector<ledger::RunRecord> wait_file_runs(const fs::path& config, const std::string& job,
                                              std::size_t count,
                                              std::chrono::milliseconds timeout = 20s) {
  std::vector<ledger::RunRecord> runs;
  wait_for(
      [&] {
        runs = file_runs(config, job);
        return runs.size() >= count &&
               std::all_of(runs.begin(), runs.end(), [](const auto& r) { return !r.running(); });
      },
      timeout);
  return runs;
}

std::set<std::string> paths_of(const ledger::RunRecord& run) {
  REQUIRE(run.event);
  const json payload = json::parse(*run.event);
  std::set<std::string> out;
  for (const auto& p : payload["paths"]) out.insert(p.get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("100 files within the debounce are one run listing all 100", "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  fs::create_directories(in);
  TestHost host({"trigger_probe.so"}, fmt::format(R"(
[jobs.drop]
plugin = "trigger_probe"
watch = {{ paths = ["{}/*.csv"], debounce = "1500ms" }}
)",
                                                  in.string()));
  const fs::path& config = host.config();
  std::set<std::string> expected;
  for (int i = 0; i < 100; ++i) {
    const fs::path file = in / fmt::format("file-{:03}.csv", i);
    write_file(file);
    expected.insert(file.string());
  }
  write_file(in / "notes.txt");     // another name
  write_file(in / ".partial.csv");  // a dot file: "*" does not match it
  auto runs = wait_file_runs(config, "drop", 1);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].outcome == Outcome::succeeded);
  CHECK(runs[0].trigger == ledger::Trigger::file);
  CHECK(runs[0].message.starts_with("trigger=file attempt=1 event={"));
  CHECK(paths_of(runs[0]) == expected);
  const json payload = json::parse(*runs[0].event);
  CHECK(payload["count"] == 100);
  CHECK(payload["truncated"] == false);
  CHECK(payload["overflow"] == false);
  CHECK(payload["catchup"] == false);
  // Nothing else fires: one batch, one run.
  std::this_thread::sleep_for(2500ms);
  CHECK(file_runs(config, "drop").size() == 1);
  CHECK(history(config, "drop").size() == 1);
  host.stop();
}

TEST_CASE("a rename into the directory fires; directories made later are watched",
          "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  const fs::path stage = files.path() / "stage";
  const fs::path later = files.path() / "later" / "sub";
  fs::create_directories(in);
  fs::create_directories(stage);
  TestHost host({"trigger_probe.so"}, fmt::format(R"(
[jobs.watcher]
plugin = "trigger_probe"
schedule = "@manual"
watch = {{ paths = ["{}/*.csv", "{}/*.csv"], debounce = "300ms" }}
)",
                                                  in.string(), later.string()));
  const fs::path& config = host.config();

  // Written elsewhere, then renamed in: moved_to.
  write_file(stage / "a.csv");
  fs::rename(stage / "a.csv", in / "a.csv");
  auto runs = wait_file_runs(config, "watcher", 1);
  REQUIRE(runs.size() == 1);
  CHECK(paths_of(runs[0]) == std::set<std::string>{(in / "a.csv").string()});

  // Two levels made after the start, then a file in them.
  fs::create_directories(later);
  write_file(later / "b.csv");
  runs = wait_file_runs(config, "watcher", 2);
  REQUIRE(runs.size() == 2);
  CHECK(paths_of(runs[1]) == std::set<std::string>{(later / "b.csv").string()});

  // Removed, then made again with a file already in it (renamed into place):
  // the files a directory holds when it comes to be watched are listed.
  fs::remove_all(files.path() / "later");
  std::this_thread::sleep_for(200ms);
  fs::create_directories(stage / "sub");
  write_file(stage / "sub" / "c.csv");
  fs::create_directories(files.path() / "later");
  fs::rename(stage / "sub", later);
  runs = wait_file_runs(config, "watcher", 3);
  REQUIRE(runs.size() == 3);
  CHECK(paths_of(runs[2]) == std::set<std::string>{(later / "c.csv").string()});
  CHECK_THAT(host.log(), Catch::Contains(later.string() + " does not exist: waiting for it on " +
                                         files.path().string()));
  host.stop();
}

TEST_CASE("an inotify queue overflow fires once, flagged; a long batch is truncated",
          "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  fs::create_directories(in);
  TestHost host({"trigger_probe.so"}, fmt::format(R"(
[jobs.drop]
plugin = "trigger_probe"
watch = {{ paths = ["{}/*.csv"], debounce = "500ms" }}
)",
                                                  in.string()));
  const fs::path& config = host.config();
  std::ifstream limit("/proc/sys/fs/inotify/max_queued_events");
  int queued = 0;
  REQUIRE(limit >> queued);
  // The daemon stopped while more events than its queue holds are made.
  host.daemon().signal(SIGSTOP);
  for (int i = 0; i <= queued + 100; ++i) write_file(in / fmt::format("f{:06}.csv", i), "");
  host.daemon().signal(SIGCONT);
  auto runs = wait_file_runs(config, "drop", 1, 30s);
  REQUIRE(runs.size() == 1);
  const json payload = json::parse(*runs[0].event);
  CHECK(payload["overflow"] == true);
  CHECK(payload["truncated"] == true);  // more paths than 32 KiB holds
  CHECK(payload["count"].get<int>() <= queued);
  CHECK(runs[0].event->size() <= 32 * 1024);
  CHECK(payload["paths"][0] == (in / "f000000.csv").string());
  std::this_thread::sleep_for(1500ms);
  CHECK(file_runs(config, "drop").size() == 1);
  CHECK_THAT(host.log(), Catch::Contains("inotify queue overflowed"));
  host.stop();
}

TEST_CASE("a restart catches up the files of a batch that was not claimed", "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  const fs::path stage = files.path() / "stage";
  fs::create_directories(in);
  fs::create_directories(stage);
  write_file(in / "old.csv");  // there before the first start
  TestHost host({"trigger_probe.so"}, fmt::format(R"(
[jobs.drop]
plugin = "trigger_probe"
watch = {{ paths = ["{}/*.csv"], debounce = "1s" }}
)",
                                                  in.string()));
  const fs::path& config = host.config();
  // No file fire recorded yet: every matching file is listed once.
  auto runs = wait_file_runs(config, "drop", 1);
  REQUIRE(runs.size() == 1);
  CHECK(paths_of(runs[0]) == std::set<std::string>{(in / "old.csv").string()});
  CHECK(json::parse(*runs[0].event)["catchup"] == true);

  // Dropped, then the daemon stops before the debounce ends.
  write_file(in / "new1.csv");
  write_file(in / "new2.csv");
  // Renamed in with an old mtime (as mv from another directory, cp -p or
  // rsync -t leave it): its ctime is still now.
  write_file(stage / "kept.csv");
  const timespec old_times[2] = {{978307200, 0}, {978307200, 0}};  // 2001-01-01
  REQUIRE(::utimensat(AT_FDCWD, (stage / "kept.csv").c_str(), old_times, 0) == 0);
  fs::rename(stage / "kept.csv", in / "kept.csv");
  host.stop();
  CHECK(file_runs(config, "drop").size() == 1);

  host.start();
  runs = wait_file_runs(config, "drop", 2);
  REQUIRE(runs.size() == 2);
  CHECK(paths_of(runs[1]) == std::set<std::string>{(in / "new1.csv").string(),
                                                   (in / "new2.csv").string(),
                                                   (in / "kept.csv").string()});
  CHECK(json::parse(*runs[1].event)["catchup"] == true);
  CHECK_THAT(host.log(), Catch::Contains("catch-up: 3 file(s) changed since the last file fire"));
  host.stop();
}

TEST_CASE("a fire still waiting for a run slot at a stop is caught up at the next start",
          "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  fs::create_directories(in);
  TestHost host({"trigger_probe.so", "sleeper.so"},
                fmt::format(R"(
[jobs.long]
plugin = "sleeper"
schedule = "@manual"
kill_grace = "200ms"
params = {{ seconds = 60 }}

[jobs.drop]
plugin = "trigger_probe"
watch = {{ paths = ["{}/*.csv"], debounce = "1500ms" }}
)",
                            in.string()),
                "max_concurrency = 1\n");
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "long").exit_code == 0);
  REQUIRE(wait_for([&] { return !history(config, "long").empty(); }, 10s));
  write_file(in / "waiting.csv");
  // The fire is claimed only when a run slot is free: it waits behind long.
  REQUIRE(wait_for([&] { return host.log().find("fired as slot") != std::string::npos; }, 10s));
  host.stop();
  // At the stop the waiting fire was recorded skipped: not a claim of its
  // files (its slot is more than kCatchupMargin after their change).
  auto runs = file_runs(config, "drop");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].outcome == Outcome::skipped);

  host.start();
  runs = wait_file_runs(config, "drop", 2);
  REQUIRE(runs.size() == 2);
  CHECK(runs[1].outcome == Outcome::succeeded);
  CHECK(paths_of(runs[1]) == std::set<std::string>{(in / "waiting.csv").string()});
  CHECK(json::parse(*runs[1].event)["catchup"] == true);
  host.stop();
}

TEST_CASE("watches follow reloads: added with a catch-up, removed", "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  fs::create_directories(in);
  write_file(in / "before.csv");  // there before the watch
  const std::string job = "[jobs.drop]\nplugin = \"trigger_probe\"\nschedule = \"@manual\"\n";
  TestHost host({"trigger_probe.so"}, job);
  const fs::path& config = host.config();
  auto reload = [&](const std::string& jobs) {
    write_config(host.dir(), jobs);
    auto r = run_jobhost({"reload", "--config", config.string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  };

  reload(job +
         fmt::format("watch = {{ paths = [\"{}/*.csv\"], debounce = \"300ms\" }}\n", in.string()));
  // No file fire recorded: the catch-up of the new watch lists what is there.
  auto runs = wait_file_runs(config, "drop", 1);
  REQUIRE(runs.size() == 1);
  CHECK(paths_of(runs[0]) == std::set<std::string>{(in / "before.csv").string()});
  CHECK(json::parse(*runs[0].event)["catchup"] == true);
  write_file(in / "after.csv");
  runs = wait_file_runs(config, "drop", 2);
  REQUIRE(runs.size() == 2);
  CHECK(paths_of(runs[1]) == std::set<std::string>{(in / "after.csv").string()});

  reload(job);
  write_file(in / "unwatched.csv");
  std::this_thread::sleep_for(1500ms);
  CHECK(file_runs(config, "drop").size() == 2);
  host.stop();
}

TEST_CASE("a batch of a busy or paused job waits for it, then fires once", "[daemon][triggers]") {
  TempDir files;
  const fs::path in = files.path() / "in";
  fs::create_directories(in);
  TestHost host({"sleeper.so"}, fmt::format(R"(
[jobs.slow]
plugin = "sleeper"
kill_grace = "200ms"
params = {{ seconds = 2 }}
watch = {{ paths = ["{}/*"], debounce = "200ms" }}
)",
                                            in.string()));
  const fs::path& config = host.config();
  write_file(in / "one");
  REQUIRE(wait_for([&] { return !history(config, "slow").empty(); }, 10s));
  // While the first runs (concurrency = forbid), the next batch waits, not skipped.
  write_file(in / "two");
  write_file(in / "three");
  auto runs = wait_file_runs(config, "slow", 2);
  REQUIRE(runs.size() == 2);
  CHECK(paths_of(runs[1]) == std::set<std::string>{(in / "two").string(), (in / "three").string()});
  for (const auto& run : history(config, "slow")) CHECK(run["outcome"] != "skipped");

  // Paused: the batch waits for the resume.
  REQUIRE(run_jobhost({"pause", "--config", config.string(), "slow"}).exit_code == 0);
  write_file(in / "four");
  std::this_thread::sleep_for(1500ms);
  CHECK(file_runs(config, "slow").size() == 2);
  REQUIRE(run_jobhost({"resume", "--config", config.string(), "slow"}).exit_code == 0);
  runs = wait_file_runs(config, "slow", 3);
  REQUIRE(runs.size() == 3);
  CHECK(paths_of(runs[2]) == std::set<std::string>{(in / "four").string()});
  host.stop();
}
