// The CLI contract (docs/cli.md), through the real binary.
#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "exec/isolation.h"
#include "ledger/ids.h"
#include "ledger/sqlite_store.h"
#include "schedule/schedule.h"
#include "support/harness.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("validate: the example config is valid", "[cli]") {
  auto r = run_jobhost({"validate", "--config", JOBHOST_SOURCE_DIR "/config/jobhost.toml"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("valid") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("validate: five mistakes, all reported with file:line:col", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  fs::path file = dir.path() / "bad.toml";
  std::ofstream(file) << R"([host]
plugin_dir = "plugins"
state_dir = "var"

[jobs.a]
plugin = "helo"
schedule = "0 61 * * *"
timout = "5m"
timezone = "Europe/Berlln"

[jobs.b]
plugin = "hello"
every = "5 minutes"
)";
  auto r = run_jobhost({"validate", "--config", file.string()});
  CHECK(r.exit_code == 1);
  auto lines = lines_of(r.err);
  INFO(r.err);
  REQUIRE(lines.size() == 5);
  std::string f = file.string();
  CHECK(lines[0].starts_with(f + ":6:10: "));          // unknown plugin "helo"
  CHECK(lines[0].find("hello") != std::string::npos);  // did you mean
  CHECK(lines[1].starts_with(f + ":7:15: "));          // minute 61, at the '6'
  CHECK(lines[2].starts_with(f + ":8:1: "));           // unknown key timout
  CHECK(lines[2].find("timeout") != std::string::npos);
  CHECK(lines[3].starts_with(f + ":9:12: "));  // unknown time zone
  CHECK(lines[4].starts_with(f + ":13:9: "));  // bad duration
}

TEST_CASE("validate and --config resolution", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), "[jobs.a]\nplugin = \"hello\"\nevery = \"1m\"\n");
  SECTION("a missing file is an error naming it") {
    auto r = run_jobhost({"validate", "--config", (dir.path() / "nope.toml").string()});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("nope.toml") != std::string::npos);
  }
  SECTION("a missing plugin_dir is named, not just its plugins") {
    fs::remove_all(dir.path() / "plugins");
    auto r = run_jobhost({"validate", "--config", config.string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("unknown plugin \"hello\""));
    CHECK_THAT(r.err, Catch::Contains((dir.path() / "plugins").string() + ": "));
  }
  SECTION("an unknown plugin whose file was rejected says why; other errors do not") {
    std::ofstream(dir.path() / "plugins" / "broken.so") << "not an ELF file";
    auto unknown = write_config(dir.path(), "[jobs.a]\nplugin = \"broken\"\nevery = \"1m\"\n");
    auto r = run_jobhost({"validate", "--config", unknown.string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("unknown plugin \"broken\""));
    CHECK_THAT(r.err, Catch::Contains("(broken.so was rejected: "));
    // The same quoted name in another error is not an unknown plugin.
    auto other = write_config(dir.path(), "[jobs.a]\nplugin = \"hello\"\nevery = \"broken\"\n");
    r = run_jobhost({"validate", "--config", other.string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("\"broken\""));
    CHECK(r.err.find("was rejected") == std::string::npos);
  }
  SECTION("a cron step wider than its range is valid, with a warning at file:line:col") {
    auto wide = write_config(dir.path(),
                             "[jobs.a]\nplugin = \"hello\"\nschedule = \"36-38/3 * * * *\"\n"
                             "timezone = \"UTC\"\n");
    auto r = run_jobhost({"validate", "--config", wide.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains(": valid (1 jobs"));
    // write_config's [host] lines come first: find the schedule's line.
    std::ifstream in(wide);
    int line = 0;
    for (std::string text; std::getline(in, text);) {
      ++line;
      if (text.starts_with("schedule")) break;
    }
    // Column 19: the step's '3' in `schedule = "36-38/3 * * * *"`.
    CHECK_THAT(r.err, Catch::StartsWith(fmt::format("{}:{}:19: warning: ", wide.string(), line)));
    CHECK_THAT(r.err, Catch::Contains(": warning: schedule in [jobs.a]: cron expression "
                                      "\"36-38/3 * * * *\": minute field: step 3 is larger than "
                                      "the range 36-38, so it selects only 36"));
  }
  SECTION("usage errors exit 2") {
    CHECK(run_jobhost({"validate", "--bogus"}).exit_code == 2);
    CHECK(run_jobhost({}).exit_code == 2);
    CHECK(run_jobhost({"next", "--config", config.string()}).exit_code == 2);
  }
  SECTION("--help exits 0 on every command") {
    for (const char* cmd : {"validate", "plugins", "list", "next", "run", "run-once", "trigger",
                            "history", "status"}) {
      auto r = run_jobhost({cmd, "--help"});
      INFO(cmd);
      CHECK(r.exit_code == 0);
      CHECK(r.out.find("--config") != std::string::npos);
    }
  }
}

TEST_CASE("plugins --json lists the example plugins", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so", "hello_c.so"});
  auto config = write_config(dir.path(), "");
  auto r = run_jobhost({"plugins", "--config", config.string(), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto out = json::parse(r.out);
  REQUIRE(out["accepted"].size() == 2);
  CHECK(out["rejected"].empty());
  for (const auto& p : out["accepted"]) {
    CHECK((p["name"] == "hello" || p["name"] == "hello_c"));
    CHECK(p["version"] == "1.0.0");
    CHECK(p["abi"] == "1.1");  // built with this SDK (the 1.0 header: sdk_abi_test)
    CHECK(p["sha256"].get<std::string>().size() == 64);
    CHECK(fs::path(p["path"].get<std::string>()).parent_path() == dir.path() / "plugins");
  }
}

TEST_CASE("plugins: bad plugins are rejected with reasons and jobhost survives", "[cli]") {
  TempDir dir;
  auto plugins =
      install_plugins(dir.path(), {"hello.so", "catalog_no_entry.so", "catalog_abi_major_99.so",
                                   "catalog_crash_in_init.so", "catalog_unresolved_symbol.so"});
  std::ofstream(plugins / "x.so") << "this is text, not a shared library\n";
  fs::copy_file(plugins / "hello.so", plugins / "writable.so");
  fs::permissions(plugins / "writable.so", fs::perms::others_write, fs::perm_options::add);
  auto config = write_config(dir.path(), "");
  auto r = run_jobhost({"plugins", "--config", config.string(), "--json"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);  // some plugins were rejected
  auto out = json::parse(r.out);
  REQUIRE(out["accepted"].size() == 1);
  CHECK(out["accepted"][0]["name"] == "hello");
  std::map<std::string, std::string> reasons;
  for (const auto& rej : out["rejected"]) {
    reasons[fs::path(rej["path"].get<std::string>()).filename().string()] = rej["reason"];
  }
  REQUIRE(reasons.size() == 6);
  CHECK_THAT(reasons["x.so"], Catch::Contains("not an ELF"));
  CHECK_THAT(reasons["catalog_no_entry.so"], Catch::Contains("jobhost_plugin_v1"));
  CHECK_THAT(reasons["catalog_abi_major_99.so"], Catch::Contains("99"));
  CHECK_THAT(reasons["catalog_crash_in_init.so"], Catch::Contains("SIGSEGV"));
  CHECK_THAT(reasons["catalog_unresolved_symbol.so"],
             Catch::Contains("jobhost_test_missing_symbol"));
  CHECK_THAT(reasons["writable.so"], Catch::Contains("writable"));
}

TEST_CASE("next: cron expressions, zones and JSON", "[cli]") {
  auto r = run_jobhost({"next", "--expr", "30 2 * * *", "--tz", "Europe/Berlin", "--from",
                        "2026-03-28T12:00:00Z", "--count", "3", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  // 02:30 does not exist on 2026-03-29 in Berlin: it fires at 03:00 (+02:00).
  CHECK(json::parse(r.out) == json({"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00",
                                    "2026-03-31T02:30:00+02:00"}));
  auto text = run_jobhost(
      {"next", "--expr", "*/15 * * * * *", "--from", "2026-01-01T00:00:00Z", "--count", "2"});
  CHECK(text.exit_code == 0);
  CHECK(text.out == "2026-01-01T00:00:15Z\n2026-01-01T00:00:30Z\n");
  auto bad = run_jobhost({"next", "--expr", "0 0 30 2 *"});
  CHECK(bad.exit_code == 1);
  CHECK_FALSE(bad.err.empty());
}

TEST_CASE("list and next for configured jobs", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.nightly]
plugin = "hello"
schedule = "0 30 2 * * *"
timezone = "America/New_York"

[jobs.often]
plugin = "hello"
every = "90s"
)");
  auto list = run_jobhost({"list", "--config", config.string(), "--json"});
  INFO(list.err);
  REQUIRE(list.exit_code == 0);
  auto jobs = json::parse(list.out);
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0]["job"] == "nightly");
  CHECK(jobs[0]["next_fire"].get<std::string>().find("T02:30:00-0") != std::string::npos);
  CHECK(jobs[1]["job"] == "often");
  auto next = run_jobhost({"next", "--config", config.string(), "nightly", "--from",
                           "2026-11-01T00:00:00Z", "--count", "2", "--json"});
  REQUIRE(next.exit_code == 0);
  // New York falls back on 2026-11-01: 02:30 occurs once, in EST.
  CHECK(json::parse(next.out) == json({"2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"}));
}

TEST_CASE("next and list: cron H shows the values it resolved to", "[cli]") {
  // Without a name H has nothing to derive from: say what to give.
  auto nameless = run_jobhost({"next", "--expr", "H/15 * * * *"});
  CHECK(nameless.exit_code == 2);
  CHECK_THAT(nameless.err, Catch::Contains("H needs a job name"));
  CHECK_THAT(nameless.err, Catch::Contains("--name NAME"));
  auto named = run_jobhost({"next", "--expr", "H/15 * * * *", "--name", "backup", "--from",
                            "2026-01-01T00:00:00Z", "--count", "2"});
  INFO(named.err);
  CHECK(named.exit_code == 0);
  CHECK(named.out == "# H/15 * * * * = 1/15 * * * *\n2026-01-01T00:01:00Z\n2026-01-01T00:16:00Z\n");

  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.backup]
plugin = "hello"
schedule = "H(0-29) 2 * * *"
timezone = "UTC"

[jobs.plain]
plugin = "hello"
schedule = "0 3 * * *"
timezone = "UTC"
)");
  auto list = run_jobhost({"list", "--config", config.string(), "--json"});
  INFO(list.err);
  REQUIRE(list.exit_code == 0);
  auto jobs = json::parse(list.out);
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0]["schedule"] == "H(0-29) 2 * * *");
  CHECK(jobs[0]["schedule_resolved"] == "3 2 * * *");
  CHECK(jobs[0]["description"] == "at 02:03 every day (UTC)");
  CHECK(jobs[1]["schedule_resolved"] == "0 3 * * *");
  auto text = run_jobhost({"list", "--config", config.string()});
  CHECK_THAT(text.out, Catch::Contains("at 02:03 every day (UTC) [3 2 * * *]"));
  CHECK_THAT(text.out, !Catch::Contains("[0 3 * * *]"));

  auto next = run_jobhost({"next", "--config", config.string(), "backup", "--from",
                           "2026-01-01T00:00:00Z", "--count", "1"});
  CHECK(next.out == "# H(0-29) 2 * * * = 3 2 * * *\n2026-01-01T02:03:00Z\n");
  // --json stays an array of instants.
  auto next_json = run_jobhost({"next", "--config", config.string(), "backup", "--from",
                                "2026-01-01T00:00:00Z", "--count", "1", "--json"});
  CHECK(json::parse(next_json.out) == json({"2026-01-01T02:03:00Z"}));
  auto plain = run_jobhost({"next", "--config", config.string(), "plain", "--from",
                            "2026-01-01T00:00:00Z", "--count", "1"});
  CHECK(plain.out == "2026-01-01T03:00:00Z\n");
}

TEST_CASE("validate, list, next and trigger see the jobs of included files", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const fs::path included = dir.path() / "jobs.d" / "inc.toml";
  fs::create_directories(included.parent_path());
  std::ofstream(included) << "[jobs.inc]\nplugin = \"hello\"\nevery = \"1m\"\n";
  auto config = write_config(dir.path(), "[jobs.main]\nplugin = \"hello\"\nevery = \"1m\"\n",
                             "include = [\"jobs.d/*.toml\"]\n");
  auto valid = run_jobhost({"validate", "--config", config.string()});
  INFO(valid.err);
  CHECK(valid.exit_code == 0);
  CHECK_THAT(valid.out, Catch::Contains(": valid (2 jobs in 2 files;"));
  auto list = run_jobhost({"list", "--config", config.string(), "--json"});
  REQUIRE(list.exit_code == 0);
  auto jobs = json::parse(list.out);
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[1]["job"] == "inc");
  CHECK(run_jobhost({"next", "--config", config.string(), "inc"}).exit_code == 0);
  // Known by name (it is the daemon that is missing), not "no job named".
  CHECK(run_jobhost({"trigger", "--config", config.string(), "inc"}).exit_code == 3);

  std::ofstream(included, std::ios::app) << "timout = \"5s\"\n";
  auto invalid = run_jobhost({"validate", "--config", config.string()});
  CHECK(invalid.exit_code == 1);
  CHECK_THAT(invalid.err,
             Catch::StartsWith(included.string() + ":4:1: unknown key \"timout\" in [jobs.inc]"));
}

TEST_CASE("commands that need the daemon exit 3 when none runs", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), "[jobs.a]\nplugin = \"hello\"\nevery = \"1m\"\n");
  auto r = trigger(config, "a");
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("jobhost run") != std::string::npos);
}

TEST_CASE("history and the daemon's commands read only the host section, not the jobs", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const std::string good = "[jobs.a]\nplugin = \"hello\"\nschedule = \"@manual\"\n";
  auto config = write_config(dir.path(), good);
  REQUIRE(run_jobhost({"run-once", "--config", config.string(), "a"}).exit_code == 0);
  // Now job b is invalid (a cron minute of 61, an unknown time zone), and
  // so is the whole config for the commands that run jobs.
  write_config(dir.path(), good +
                               "[jobs.b]\nplugin = \"hello\"\nschedule = \"61 * * * *\"\n"
                               "timezone = \"Nowhere/City\"\n");
  REQUIRE(run_jobhost({"validate", "--config", config.string()}).exit_code == 1);
  CHECK(run_jobhost({"status", "--config", config.string()}).exit_code == 1);

  auto all = run_jobhost({"history", "--config", config.string(), "--json"});
  INFO(all.err);
  REQUIRE(all.exit_code == 0);
  CHECK(all.err.empty());
  CHECK(json::parse(all.out).size() == 1);
  auto of_a = run_jobhost({"history", "--config", config.string(), "a"});
  CHECK(of_a.exit_code == 0);
  CHECK(lines_of(of_a.out).size() == 2);  // the header and the run
  // No daemon: exit 3 from each, not 1 for the config.
  const std::vector<std::vector<std::string>> commands = {{"trigger", "a"}, {"trigger", "b"},
                                                          {"pause", "b"},   {"resume", "a"},
                                                          {"cancel", "x"},  {"reload"}};
  for (const auto& args : commands) {
    std::vector<std::string> full = {args[0], "--config", config.string()};
    full.insert(full.end(), args.begin() + 1, args.end());
    auto r = run_jobhost(full);
    INFO(args[0] << " " << r.err);
    CHECK(r.exit_code == 3);
  }
  // A job that is not in the config at all is still refused.
  auto unknown = run_jobhost({"pause", "--config", config.string(), "c"});
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.err, Catch::Contains("no job named \"c\" in "));

  SECTION("a mistake in [host] stops them, at file:line:col") {
    write_config(dir.path(), good, "max_concurency = 2\n");
    for (const char* cmd : {"history", "cancel"}) {
      std::vector<std::string> args = {cmd, "--config", config.string()};
      if (std::string(cmd) == "cancel") args.push_back("x");
      auto r = run_jobhost(args);
      INFO(cmd);
      CHECK(r.exit_code == 1);
      CHECK_THAT(r.err, Catch::StartsWith(config.string() + ":4:1: unknown key \"max_concurency\" "
                                                            "in [host]"));
    }
  }
  SECTION("so does invalid TOML anywhere in the file") {
    write_config(dir.path(), good + "[jobs.b]\nplugin = \"hello\n");
    auto r = run_jobhost({"history", "--config", config.string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::StartsWith(config.string() + ":"));
    CHECK_THAT(r.err, Catch::Contains("invalid TOML"));
  }
}

TEST_CASE("a daemon that takes a request but does not answer in time: exit 4, not 3", "[cli]") {
  TestHost host({"hello.so"}, "[jobs.a]\nplugin = \"hello\"\nevery = \"1m\"\n");
  const fs::path& config = host.config();
  Daemon& daemon = host.daemon();
  daemon.signal(SIGSTOP);  // the kernel still accepts connections into the backlog
  auto r = trigger(config, "a");
  daemon.signal(SIGCONT);
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("did not answer within 5s") != std::string::npos);
  CHECK(r.err.find("pid " + std::to_string(daemon.pid())) != std::string::npos);
  host.stop();
}

namespace {

// Cgroup directories (under /sys/fs/cgroup, a few levels down) whose name
// starts with `prefix`.
std::vector<fs::path> cgroups_named(const std::string& prefix) {
  std::vector<fs::path> found;
  std::error_code ec;
  fs::recursive_directory_iterator it("/sys/fs/cgroup",
                                      fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() >= 4) it.disable_recursion_pending();
    if (it->is_directory(ec) && it->path().filename().string().starts_with(prefix)) {
      found.push_back(it->path());
    }
  }
  return found;
}

}  // namespace

TEST_CASE("run-once runs the job isolated, records it, exit 0 iff it succeeded", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so", "fail.so"});
  auto config = write_config(dir.path(), R"(
[jobs.greet]
plugin = "hello"
schedule = "@manual"
params = { greeting = "bonjour" }

[jobs.broken]
plugin = "fail"
schedule = "@manual"
)");
  auto ok = run_jobhost({"run-once", "--config", config.string(), "greet"});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("succeeded") != std::string::npos);
  CHECK(ok.err.find("bonjour") != std::string::npos);  // the plugin's log line
  auto bad = run_jobhost({"run-once", "--config", config.string(), "broken"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("failed") != std::string::npos);
  auto runs = history(config);
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["job"] == "broken");
  CHECK(runs[0]["outcome"] == "failed");
  CHECK(runs[1]["job"] == "greet");
  CHECK(runs[1]["outcome"] == "succeeded");
  CHECK(runs[1]["message"] == "said bonjour");
  // Its cgroups were its own (not the daemon's parent) and are gone.
  auto loaded = jobhost::config::load_config(config);
  REQUIRE(loaded);
  CHECK(cgroups_named(jobhost::exec::parent_cgroup_name(loaded->host.state_dir)).empty());
}

namespace {

// "attempt N slot MS" from an api_probe run's message.
std::string probe_context(const json& run) {
  auto message = run["message"].get<std::string>();
  auto at = message.find("attempt ");
  auto end = message.find(" cancelled");
  if (at == std::string::npos || end == std::string::npos) return "(none in: " + message + ")";
  return message.substr(at, end - at);
}

// The run `run_id` in a history array, or null.
json run_with_id(const json& runs, const std::string& run_id) {
  for (const auto& run : runs) {
    if (run["run_id"] == run_id) return run;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("replay runs a recorded run again on its build, linked to it", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"api_probe.so"});
  auto config = write_config(dir.path(), R"(
[jobs.probe]
plugin = "api_probe"
schedule = "@manual"
params = { color = "teal" }
)");
  auto once = run_jobhost({"run-once", "--config", config.string(), "probe"});
  REQUIRE(once.exit_code == 0);
  auto runs = history(config);
  REQUIRE(runs.size() == 1);
  const json original = runs[0];
  const std::string original_id = original["run_id"];

  auto replay = run_jobhost({"replay", "--config", config.string(), original_id});
  INFO(replay.err);
  CHECK(replay.exit_code == 0);
  CHECK_THAT(replay.out, Catch::Contains("succeeded"));
  CHECK_THAT(replay.err, Catch::Contains("param color=teal"));  // the job's params
  runs = history(config);
  REQUIRE(runs.size() == 2);
  const json replayed = runs[0];
  CHECK(replayed["trigger"] == "replay");
  CHECK(replayed["replay_of"] == original_id);
  CHECK(replayed["job"] == "probe");
  CHECK(replayed["outcome"] == "succeeded");
  CHECK(replayed["plugin_sha256"] == original["plugin_sha256"]);
  // A slot of its own in the ledger; the plugin was told the original's.
  CHECK(replayed["scheduled_for"] != original["scheduled_for"]);
  CHECK(replayed["trace_id"] != original["trace_id"]);
  CHECK(probe_context(replayed) == probe_context(original));
  CHECK(probe_context(original).starts_with("attempt 1 slot "));
  CHECK(run_with_id(runs, original_id)["replay_of"].is_null());

  // A replay of the replay still tells the plugin the original fire.
  const std::string replayed_id = replayed["run_id"];
  auto again = run_jobhost({"replay", "--config", config.string(), replayed_id});
  CHECK(again.exit_code == 0);
  runs = history(config);
  REQUIRE(runs.size() == 3);
  CHECK(runs[0]["replay_of"] == replayed_id);
  CHECK(probe_context(runs[0]) == probe_context(original));
}

TEST_CASE("replay of a retry passes the recorded attempt and slot to the plugin", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"api_probe.so"});
  auto config = write_config(dir.path(), R"(
[jobs.probe]
plugin = "api_probe"
schedule = "@manual"
)");
  REQUIRE(run_jobhost({"run-once", "--config", config.string(), "probe"}).exit_code == 0);
  const std::string sha = history(config)[0]["plugin_sha256"];
  // Attempts 1 and 2 of a scheduled slot, as the daemon records them.
  const std::string retry_id = [&] {
    namespace ledger = jobhost::ledger;
    auto store = open_ledger(config, ledger::Access::read_write);
    const jobhost::TimePoint slot{jobhost::Duration(1795939200000)};  // 2026-11-29T08:00:00Z
    ledger::RunStart start{.run_id = ledger::new_id(slot),
                           .job = "probe",
                           .scheduled_for = slot,
                           .attempt = 1,
                           .trace_id = ledger::new_id(slot),
                           .trigger = ledger::Trigger::schedule,
                           .started_at = slot,
                           .plugin = "api_probe",
                           .plugin_version = "1.0.0",
                           .plugin_sha256 = sha,
                           .definition_hash = std::nullopt,
                           .replay_of = std::nullopt,
                           .host_pid = 1,
                           .event = std::nullopt};
    REQUIRE(store->claim_and_start(start).value());
    ledger::RunEnd end{.run_id = start.run_id,
                       .finished_at = slot + 1s,
                       .outcome = jobhost::Outcome::failed,
                       .retry_at = slot + 2s};
    REQUIRE(store->finish_run(end).value());
    start.run_id = ledger::new_id(slot + 2s);
    start.attempt = 2;
    start.trigger = ledger::Trigger::retry;
    start.started_at = slot + 2s;
    REQUIRE(store->claim_and_start(start).value());
    end.run_id = start.run_id;
    end.retry_at.reset();
    REQUIRE(store->finish_run(end).value());
    return start.run_id;
  }();

  auto replay = run_jobhost({"replay", "--config", config.string(), retry_id});
  INFO(replay.err);
  REQUIRE(replay.exit_code == 0);
  auto runs = history(config);
  CHECK(runs[0]["replay_of"] == retry_id);
  CHECK(runs[0]["attempt"] == 1);  // the ledger's own slot and attempt
  CHECK(probe_context(runs[0]) == "attempt 2 slot 1795939200000");
}

TEST_CASE("replay whose build is gone says so, and --current replays on today's build", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.greet]
plugin = "hello"
schedule = "@manual"
params = { greeting = "salut" }
)");
  REQUIRE(run_jobhost({"run-once", "--config", config.string(), "greet"}).exit_code == 0);
  const json original = history(config)[0];
  const std::string original_id = original["run_id"];
  const std::string sha = original["plugin_sha256"];
  const fs::path shadow = dir.path() / "var" / "plugins" / (sha + ".so");
  REQUIRE(fs::exists(shadow));
  fs::remove(shadow);

  auto gone = run_jobhost({"replay", "--config", config.string(), original_id});
  CHECK(gone.exit_code == 1);
  CHECK_THAT(gone.err, Catch::Contains("is gone"));
  CHECK_THAT(gone.err, Catch::Contains(shadow.string()));
  CHECK_THAT(gone.err, Catch::Contains("--current"));
  CHECK(history(config).size() == 1);  // nothing recorded

  auto current = run_jobhost({"replay", "--config", config.string(), "--current", original_id});
  INFO(current.err);
  CHECK(current.exit_code == 0);
  CHECK_THAT(current.out, Catch::Contains("succeeded"));
  auto runs = history(config);
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["replay_of"] == original_id);
  CHECK(runs[0]["trigger"] == "replay");
  CHECK(runs[0]["message"] == "said salut");
  CHECK(runs[0]["plugin"] == "hello");
  CHECK(runs[0]["plugin_sha256"].get<std::string>().size() == 64);
}

TEST_CASE("replay: unknown run ids exit 1, usage errors 2", "[cli]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), "[jobs.a]\nplugin = \"hello\"\nschedule = \"@manual\"\n");
  const std::string unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  SECTION("no ledger yet, and none is created") {
    auto r = run_jobhost({"replay", "--config", config.string(), unknown});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("no run \"" + unknown + "\""));
    CHECK_FALSE(fs::exists(dir.path() / "var" / "jobhost.db"));
  }
  SECTION("a ledger without that run") {
    REQUIRE(run_jobhost({"run-once", "--config", config.string(), "a"}).exit_code == 0);
    auto r = run_jobhost({"replay", "--config", config.string(), unknown});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("no run \"" + unknown + "\""));
    CHECK(history(config).size() == 1);
  }
  SECTION("usage") {
    CHECK(run_jobhost({"replay", "--config", config.string()}).exit_code == 2);
    CHECK(run_jobhost({"replay", "--config", config.string(), "--newest", unknown}).exit_code == 2);
  }
}

// ---- list: the next fires the daemon will use ---------------------------------

namespace list_next_fires {

jobhost::TimePoint parse_time(const json& text) {
  REQUIRE(text.is_string());
  auto t = jobhost::schedule::parse_rfc3339(text.get<std::string>());
  INFO(text);
  REQUIRE(t.has_value());
  return *t;
}

json list_json(const fs::path& config) {
  auto list = run_jobhost({"list", "--config", config.string(), "--json"});
  INFO(list.err);
  REQUIRE(list.exit_code == 0);
  return json::parse(list.out);
}

json entry_of(const json& list, const std::string& job) {
  for (const auto& e : list) {
    if (e["job"] == job) return e;
  }
  FAIL("no job " << job);
  return {};
}

}  // namespace list_next_fires

TEST_CASE("list: with a daemon, the next fire is the one the daemon then fires", "[cli][list]") {
  using namespace list_next_fires;
  TestHost host({"hello.so"}, R"(
[jobs.tick]
plugin = "hello"
schedule = "*/3 * * * * *"
timezone = "UTC"
jitter = "2s"
)");
  const fs::path& config = host.config();
  auto entry = entry_of(list_json(config), "tick");
  CHECK(entry["source"] == "daemon");
  auto due = parse_time(entry["next_fire"]);
  auto slot = parse_time(entry["next_slot"]);
  CHECK(due >= slot);
  CHECK(due - slot < std::chrono::seconds(2));
  // The run of that slot starts at that instant (plus the loop's latency).
  std::optional<json> run;
  wait_for(
      [&] {
        for (const auto& r : history(config, "tick")) {
          if (parse_time(r["scheduled_for"]) == slot) run = r;
        }
        return run.has_value();
      },
      15s);
  REQUIRE(run.has_value());
  auto started = parse_time((*run)["started_at"]);
  CHECK(started >= due);
  CHECK(started - due < std::chrono::milliseconds(1000));
  // The text output has no note when the daemon answered.
  auto text = run_jobhost({"list", "--config", config.string()});
  CHECK(text.out.find("daemon not running") == std::string::npos);
  host.stop();
}

TEST_CASE("list: without a daemon, the next fires come from the ledger and say so", "[cli][list]") {
  using namespace list_next_fires;
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.yearly]
plugin = "hello"
schedule = "0 0 0 1 1 *"
timezone = "UTC"
jitter = "6h"
)");
  SECTION("no ledger yet: from the config") {
    auto entry = entry_of(list_json(config), "yearly");
    CHECK(entry["source"] == "config");
    CHECK(entry["next_fire"].is_string());
  }
  SECTION("a ledger: the fire a restarted daemon plans, jitter included") {
    std::string planned;
    {
      Daemon daemon(config);
      REQUIRE(daemon.wait_ready());
      planned = entry_of(list_json(config), "yearly")["next_fire"].get<std::string>();
      daemon.signal(SIGTERM);
      REQUIRE(daemon.wait_exit(20s) == 0);
    }
    auto entry = entry_of(list_json(config), "yearly");
    CHECK(entry["source"] == "ledger");
    CHECK(entry["next_fire"] == planned);
    auto text = run_jobhost({"list", "--config", config.string()});
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("daemon not running: next fires computed from the ledger") !=
          std::string::npos);
    CHECK(text.out.find(planned) != std::string::npos);
  }
}

TEST_CASE("trigger --payload: the run, its retry and a replay get the payload (ABI 1.1)",
          "[cli][abi]") {
  TestHost host({"trigger_probe.so", "abi_1_0.so"}, R"(
[jobs.probe]
plugin = "trigger_probe"
schedule = "@manual"
params = { fail_first = "true" }
retry = { max_attempts = 2, initial_delay = "100ms", jitter = "none" }

[jobs.old]
plugin = "abi_1_0"
schedule = "@manual"
)");
  const fs::path& config = host.config();
  const fs::path payload = host.dir() / "payload.json";
  std::ofstream(payload) << R"({ "file": "in/a.csv", "rows": 3 })";
  auto r =
      run_jobhost({"trigger", "--config", config.string(), "probe", "--payload", payload.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(wait_outcome(config, "probe", "succeeded"));
  auto runs = history(config, "probe");
  REQUIRE(runs.size() == 2);
  const std::string event = R"({"file":"in/a.csv","rows":3})";
  CHECK_THAT(runs[1]["message"].get<std::string>(),
             Catch::EndsWith("trigger=manual attempt=1 event=" + event));
  CHECK(runs[0]["message"] == "trigger=retry attempt=2 event=" + event);

  auto replay =
      run_jobhost({"replay", "--config", config.string(), runs[0]["run_id"].get<std::string>()});
  INFO(replay.err);
  CHECK(replay.exit_code == 0);
  CHECK_THAT(replay.out, Catch::Contains("trigger=replay attempt=2 event=" + event));

  // Bad payloads are refused before the daemon is asked.
  std::ofstream(payload) << "{ not json";
  r = run_jobhost({"trigger", "--config", config.string(), "probe", "--payload", payload.string()});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("is not a JSON document"));
  std::ofstream(payload) << "\"" << std::string(40 * 1024, 'x') << "\"";
  r = run_jobhost({"trigger", "--config", config.string(), "probe", "--payload", payload.string()});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("at most 32768"));

  // A plugin built against the 1.0 header runs here, and says so.
  REQUIRE(trigger(config, "old").exit_code == 0);
  auto old = wait_outcome(config, "old", "succeeded");
  REQUIRE(old);
  CHECK((*old)["message"] == "abi 1.0 attempt 1 color (none) table complete");
  auto plugins = run_jobhost({"plugins", "--config", config.string(), "--json"});
  REQUIRE(plugins.exit_code == 0);
  const json listed =
      json::parse(plugins.out);  // named: a range-for over a temporary's member dangles
  REQUIRE(listed["accepted"].size() == 2);
  for (const auto& p : listed["accepted"]) {
    CHECK(p["abi"] == (p["name"] == "abi_1_0" ? "1.0" : "1.1"));
  }
  host.stop();
}

TEST_CASE("ABI 1.1: a plugin sees reboot, chain and schedule triggers, with their payloads",
          "[cli][abi]") {
  TestHost host({"trigger_probe.so"}, R"(
[jobs.boot]
plugin = "trigger_probe"
schedule = "@reboot"
on_success = ["after"]

[jobs.after]
plugin = "trigger_probe"
schedule = "@manual"

[jobs.tick]
plugin = "trigger_probe"
every = "1s"
)");
  const fs::path& config = host.config();
  auto boot = wait_outcome(config, "boot", "succeeded");
  REQUIRE(boot);
  CHECK((*boot)["message"] == "trigger=reboot attempt=1 event=none");
  auto after = wait_outcome(config, "after", "succeeded");
  REQUIRE(after);
  CHECK((*after)["trigger"] == "chain");
  CHECK((*after)["trace_id"] == (*boot)["trace_id"]);
  const std::string message = (*after)["message"];
  REQUIRE(message.starts_with("trigger=chain attempt=1 event="));
  const json upstream = json::parse(message.substr(message.find("event=") + 6))["upstream"];
  CHECK(upstream["job"] == "boot");
  CHECK(upstream["run_id"] == (*boot)["run_id"]);
  CHECK(upstream["outcome"] == "succeeded");
  auto tick = wait_outcome(config, "tick", "succeeded");
  REQUIRE(tick);
  CHECK((*tick)["message"] == "trigger=schedule attempt=1 event=none");
  host.stop();
}

// ---- simulate: the forecast of a window ----------------------------------------

namespace simulate_test {

using jobhost::TimePoint;
using list_next_fires::parse_time;

// A finished run of `job` in the ledger, slot `slot`, lasting `duration`.
void add_run(jobhost::ledger::Store& store, const std::string& job, TimePoint slot,
             jobhost::Duration duration) {
  static int n = 0;
  jobhost::ledger::RunStart start;
  start.run_id = fmt::format("run{:04}", ++n);
  start.trace_id = "t" + start.run_id;
  start.job = job;
  start.scheduled_for = slot;
  start.started_at = slot;
  start.host_pid = 1;
  REQUIRE(store.claim_and_start(start).value());
  jobhost::ledger::RunEnd end;
  end.run_id = start.run_id;
  end.finished_at = slot + duration;
  end.outcome = jobhost::Outcome::succeeded;
  end.duration = duration;
  REQUIRE(store.finish_run(end).value());
}

}  // namespace simulate_test

TEST_CASE("simulate --json: fires, waits, forbid skips and the peak from the ledger's p95",
          "[cli][simulate]") {
  using namespace simulate_test;
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  // Two run slots; batch, long and tick as in tests/engine/forecast_test.cpp.
  auto config = write_config(dir.path(), R"(
[jobs.batch]
plugin = "hello"
schedule = "*/20 * * * * *"
timezone = "UTC"
concurrency = "allow"

[jobs.long]
plugin = "hello"
schedule = "0 * * * * *"
timezone = "UTC"
concurrency = "allow"

[jobs.tick]
plugin = "hello"
every = "10s"
concurrency = "forbid"

[jobs.fresh]
plugin = "hello"
schedule = "@manual"

[jobs.off]
plugin = "hello"
schedule = "* * * * * *"
enabled = false
)",
                             "max_concurrency = 2\n");
  const TimePoint t0 = *jobhost::schedule::parse_rfc3339("2030-01-07T10:00:00Z");
  fs::create_directories(dir.path() / "var");
  {
    auto store = open_ledger(config, jobhost::ledger::Access::read_write);
    add_run(*store, "batch", t0 - 1h, 12s);
    add_run(*store, "long", t0 - 2h, 30s);
    add_run(*store, "tick", t0 - 10s, 15s);  // its grid: ..., t0 - 10s, t0, t0 + 10s, ...
  }
  auto r = run_jobhost({"simulate", "--config", config.string(), "--from", "2030-01-07T10:00:00Z",
                        "--for", "1m", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto out = json::parse(r.out);
  CHECK(out["from"] == "2030-01-07T10:00:00.000Z");
  CHECK(out["to"] == "2030-01-07T10:01:00.000Z");
  CHECK(out["max_concurrency"] == 2);
  CHECK(out["source"] == "ledger");
  CHECK(out["jitter"] == false);
  CHECK(out["disabled"] == json::array({"off"}));
  CHECK(out["jobs_without_history"] == json::array());
  std::vector<std::string> fires;
  for (const auto& f : out["fires"]) {
    const auto at = [&](const char* key) {
      return f[key].is_null() ? std::string("-") : std::to_string((parse_time(f[key]) - t0) / 1s);
    };
    fires.push_back(fmt::format(
        "{} {} {} {} {}", f["job"].get<std::string>(), at("slot"), at("start"), at("end"),
        f["skipped"].is_null() ? f["waited_for"].is_null()
                                     ? std::string("ran")
                                     : "waited for " + f["waited_for"].get<std::string>()
                               : f["skipped"].get<std::string>()));
  }
  CHECK(fires ==
        std::vector<std::string>{
            "batch 0 0 12 ran", "long 0 0 30 ran", "tick 0 12 27 waited for max_concurrency",
            "tick 10 - - forbid", "batch 20 27 39 waited for max_concurrency", "tick 20 - - forbid",
            "tick 30 30 45 ran", "batch 40 40 52 ran", "tick 40 - - forbid", "tick 50 50 65 ran"});
  CHECK(out["fires"][2]["waited_ms"] == 12000);
  CHECK(out["fires"][3]["reason"] ==
        "the previous fire is still waiting to start (concurrency = forbid)");
  CHECK(out["fires"][0]["expected_run_ms"] == 12000);
  CHECK(out["fires"][0]["history"] == true);
  const json& s = out["summary"];
  CHECK(s["fires"] == 10);
  CHECK(s["runs"] == 7);
  CHECK(s["waited"] == 2);
  CHECK(s["wait_ms"] == 19000);
  CHECK(s["skipped"]["forbid"] == 3);
  CHECK(s["peak_runs"] == 2);
  CHECK(s["peak_at"] == "2030-01-07T10:00:00.000Z");

  // The text: one line a fire, the summary, the peak.
  auto text = run_jobhost({"simulate", "--config", config.string(), "--from",
                           "2030-01-07T10:00:00Z", "--to", "2030-01-07T10:01:00Z"});
  INFO(text.out);
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("waited 12s for max_concurrency"));
  CHECK_THAT(text.out, Catch::Contains("skipped: the previous run is still running "
                                       "(concurrency = forbid)"));
  CHECK_THAT(text.out, Catch::Contains("10 fires: 7 run (2 after waiting for a run slot, 19s in "
                                       "all), 3 skipped by forbid"));
  CHECK_THAT(text.out, Catch::Contains("peak: 2 runs at once, first at 2030-01-07T10:00:00.000Z"));
  CHECK_THAT(text.out, Catch::Contains("disabled (no fires): off"));
}

TEST_CASE("simulate: DST in the job's zone, no ledger, bounds and usage errors",
          "[cli][simulate]") {
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  auto config = write_config(dir.path(), R"(
[jobs.nightly]
plugin = "hello"
schedule = "30 2 * * *"
timezone = "Europe/Berlin"
)");
  SECTION("spring forward: 02:30 fires once, at 03:00 CEST; no ledger: 1 s a run, no jitter") {
    auto r = run_jobhost(
        {"simulate", "--config", config.string(), "--from", "2026-03-28T00:00:00Z", "--for", "3d"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("2026-03-28T02:30:00+01:00"));
    CHECK_THAT(r.out, Catch::Contains("2026-03-29T03:00:00+02:00"));
    CHECK_THAT(r.out, Catch::Contains("2026-03-30T02:30:00+02:00"));
    CHECK_THAT(r.out, Catch::Contains("3 fires: 3 run"));
    CHECK_THAT(r.out, Catch::Contains("no history (1s assumed per run): nightly"));
    CHECK_THAT(r.out, Catch::Contains("(no ledger"));
  }
  SECTION("more fires than --limit: refused, saying how far they reach") {
    auto r = run_jobhost({"simulate", "--config", config.string(), "--from", "2026-03-28T00:00:00Z",
                          "--for", "10d", "--limit", "3"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("has more than 3 fires to simulate"));
    CHECK_THAT(r.err, Catch::Contains("raise --limit"));
  }
  SECTION("usage errors exit 2") {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--from", "tomorrow"},
             {"--from", "2026-03-28T00:00:00Z", "--to", "2026-03-27T00:00:00Z"},
             {"--for", "0"},
             {"--for", "soon"},
             {"--to", "2030-01-01T00:00:00Z", "--for", "1h"},
             {"--limit", "0"}}) {
      std::vector<std::string> full = {"simulate", "--config", config.string()};
      full.insert(full.end(), args.begin(), args.end());
      auto r = run_jobhost(full);
      INFO(fmt::format("{}", fmt::join(args, " ")) << ": " << r.err);
      CHECK(r.exit_code == 2);
    }
  }
}

TEST_CASE("simulate: the slots it forecasts are the ones the daemon then fires",
          "[cli][simulate][integration]") {
  using namespace simulate_test;
  TestHost host({"sleeper.so"}, R"(
[jobs.tick]
plugin = "sleeper"
schedule = "* * * * * *"
timezone = "UTC"
params = { seconds = 0 }

[jobs.slow]
plugin = "sleeper"
schedule = "* * * * * *"
timezone = "UTC"
params = { seconds = 1.5 }

[jobs.pair]
plugin = "sleeper"
every = "2s"
params = { seconds = 0 }

[jobs.jittery]
plugin = "sleeper"
every = "2s"
jitter = "1500ms"
params = { seconds = 0 }
)");
  const fs::path& config = host.config();
  // pair's grid starts at the second the daemon started. Asked in the next
  // second (before pair first fires), a CLI anchoring its own grid at the
  // current second would be off by one: the forecast must continue the daemon's.
  const auto pair = list_next_fires::entry_of(list_next_fires::list_json(config), "pair");
  const TimePoint anchor = parse_time(pair["next_slot"]) - 2s;
  while (jobhost::wall_now() < anchor + 1s) std::this_thread::sleep_for(10ms);
  const TimePoint from =
      std::chrono::ceil<std::chrono::seconds>(jobhost::wall_now()) + std::chrono::seconds(2);
  const TimePoint to = from + 5s;
  auto r = run_jobhost({"simulate", "--config", config.string(), "--from",
                        jobhost::ledger::format_utc(from), "--for", "5s", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto forecast = json::parse(r.out);
  CHECK(forecast["jitter"] == true);
  const std::vector<std::string> jobs = {"tick", "slow", "pair", "jittery"};
  std::map<std::string, std::set<std::string>> forecast_slots;
  std::map<std::string, json> jittery;  // by slot
  for (const auto& f : forecast["fires"]) {
    forecast_slots[f["job"]].insert(f["slot"].get<std::string>());
    if (f["job"] == "jittery") jittery[f["slot"]] = f;
  }
  CHECK(forecast_slots["tick"].size() == 5);
  CHECK(forecast_slots["pair"].size() >= 2);

  // Once every job fired past the window, each slot of it is in the ledger.
  std::map<std::string, json> runs;
  const bool past = wait_for(
      [&] {
        for (const auto& job : jobs) {
          runs[job] = history(config, job);
          bool beyond = false;
          for (const auto& run : runs[job]) beyond |= parse_time(run["scheduled_for"]) >= to;
          if (!beyond) return false;
        }
        return true;
      },
      30s);
  INFO(host.log());
  REQUIRE(past);
  bool delayed = false;
  for (const auto& job : jobs) {
    std::set<std::string> fired;
    for (const auto& run : runs[job]) {
      const TimePoint slot = parse_time(run["scheduled_for"]);
      if (run["trigger"] != "schedule" || slot < from || slot >= to) continue;
      fired.insert(run["scheduled_for"].get<std::string>());
      // Jitter included: a run starts at the forecast's due, never before.
      if (job == "jittery" && run["outcome"] != "skipped" &&
          jittery.contains(run["scheduled_for"])) {
        const json& f = jittery[run["scheduled_for"]];
        const TimePoint due = parse_time(f["due"]);
        delayed |= due > slot;
        CHECK(parse_time(run["started_at"]) >= due);
        CHECK(parse_time(run["started_at"]) - due < 1000ms);
      }
    }
    INFO(job);
    CHECK(fired == forecast_slots[job]);
  }
  CHECK(delayed);
  host.stop();
}

TEST_CASE("ABI 1.1: a fire missed while the host was down runs with trigger catchup",
          "[cli][abi]") {
  TestHost host({"trigger_probe.so"}, R"(
[jobs.tick]
plugin = "trigger_probe"
every = "1s"
misfire = "run_once"
catchup_spread = "0s"
)");
  const fs::path& config = host.config();
  REQUIRE(wait_outcome(config, "tick", "succeeded"));
  host.stop();
  std::this_thread::sleep_for(3s);  // slots pass while it is down
  host.start();
  REQUIRE(wait_for(
      [&] {
        for (const auto& run : history(config, "tick")) {
          if (run["trigger"] == "catchup" && run["outcome"] == "succeeded") return true;
        }
        return false;
      },
      20s));
  for (const auto& run : history(config, "tick")) {
    if (run["trigger"] != "catchup" || run["outcome"] != "succeeded") continue;
    CHECK(run["message"] == "trigger=catchup attempt=1 event=none");
  }
  host.stop();
}
