// The example jobs in other languages (plugins/rust_hello, plugins/go_hello;
// docs/languages.md) through the real daemon, under the limits of the shipped
// config's [defaults]: each reads its params, logs, sets its message, records
// a metric and ends as its `outcome` param says (ok, fail, retry, panic). A
// Go library starts threads when it is loaded: the fork server gives up
// keeping it loaded and its runs load it themselves. A plugin whose tool
// (cargo, go) was missing when CMake configured is not built: its cases skip.
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

// The `limits = {...}` line of [defaults] in config/jobhost.toml, so that the
// runs get exactly the limits a user of the example config gets.
std::string shipped_limits() {
  std::ifstream in(JOBHOST_SOURCE_DIR "/config/jobhost.toml");
  std::string line;
  bool in_defaults = false;
  while (std::getline(in, line)) {
    if (line.starts_with("[")) in_defaults = line.starts_with("[defaults]");
    if (in_defaults && line.starts_with("limits = {")) return line.substr(0, line.find('}') + 1);
  }
  FAIL("config/jobhost.toml has no `limits = {...}` line in [defaults]");
  return {};
}

// Four manual jobs of `plugin`, one per outcome, each allowed a retry.
std::string outcome_jobs(const std::string& plugin) {
  std::string jobs = "[defaults]\n" + shipped_limits() +
                     "\nretry = { max_attempts = 2, initial_delay = \"1s\", jitter = \"none\" }\n";
  for (const char* outcome : {"ok", "fail", "retry", "panic"}) {
    jobs += fmt::format(
        "[jobs.{0}]\nplugin = \"{1}\"\nschedule = \"@manual\"\n"
        "params = {{ greeting = \"grüezi\", outcome = \"{0}\" }}\n",
        outcome, plugin);
  }
  return jobs;
}

// The finished runs of `job`, newest first, once there are `count`.
json finished_runs(const fs::path& config, const std::string& job, std::size_t count) {
  json runs = json::array();
  const bool done = wait_for(
      [&] {
        auto found = finished(history(config, job), job);
        if (found.size() < count) return false;
        runs = found;
        return true;
      },
      30s);
  INFO("job " << job << ": " << history(config, job).dump(2));
  REQUIRE(done);
  return runs;
}

// Triggers the four jobs and checks each run's outcome, message and metric.
// `language` is how the plugin signs its message ("Rust", "Go").
void check_outcomes(TestHost& host, const std::string& plugin, const std::string& language) {
  const fs::path& config = host.config();
  auto fire = [&](const char* job) {
    const auto triggered = trigger(config, job);
    INFO(triggered.err);
    REQUIRE(triggered.exit_code == 0);
  };
  for (const char* job : {"ok", "fail", "panic"}) fire(job);
  INFO("daemon log:\n" << host.log());

  const json ok = finished_runs(config, "ok", 1).front();
  CHECK(ok["outcome"] == "succeeded");
  CHECK(ok["plugin"] == plugin);
  CHECK(ok["plugin_version"] == "1.0.0");
  CHECK(ok["message"] == "grüezi from " + language);
  // Bytes, not characters: the UTF-8 param reached the plugin intact.
  CHECK(ok["metrics"]["greeting_bytes"] == 7);

  // The host puts what the plugin returned before its message.
  const json failed = finished_runs(config, "fail", 1).front();
  CHECK(failed["outcome"] == "failed");
  CHECK_THAT(failed["message"].get<std::string>(),
             Catch::EndsWith(": grüezi from " + language + ", asked to fail"));

  const json panicked = finished_runs(config, "panic", 1).front();
  CHECK(panicked["outcome"] == "failed");
  CHECK_THAT(panicked["message"].get<std::string>(),
             Catch::EndsWith(": panicked: asked to panic after saying grüezi"));
  // The metric recorded before the panic is kept.
  CHECK(panicked["metrics"]["greeting_bytes"] == 7);

  // RETRY is retried (attempt 2, trigger "retry"). Fired after `fail` and
  // `panic` had finished, with the same retry policy: had either of them
  // been retried, its second attempt would have come first.
  fire("retry");
  const json retried = finished_runs(config, "retry", 2);
  CHECK(retried.size() == 2);
  for (const auto& run : retried) {
    CHECK(run["outcome"] == "failed");
    CHECK_THAT(run["message"].get<std::string>(),
               Catch::EndsWith(": grüezi from " + language + ", asked to retry"));
    CHECK(run["metrics"]["greeting_bytes"] == 7);
  }
  CHECK(retried[0]["attempt"] == 2);
  CHECK(retried[0]["trigger"] == "retry");
  CHECK(finished(history(config, "fail"), "fail").size() == 1);
  CHECK(finished(history(config, "panic"), "panic").size() == 1);
}

// The symbols `so` (a file in the build's plugin directory) exports, from
// binutils' nm: plugins export jobhost_plugin_v1 and nothing else.
std::vector<std::string> exported_symbols(const std::string& so) {
  const std::string command =
      fmt::format("nm -D --defined-only '{}/{}' 2>&1", JOBHOST_PLUGIN_DIR, so);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  REQUIRE(pipe);
  std::vector<std::string> names;
  char line[512];
  while (std::fgets(line, sizeof line, pipe.get())) {
    std::istringstream fields(line);
    std::string address, type, name;
    if (fields >> address >> type >> name) {
      names.push_back(name);
    } else {
      names.push_back(line);  // an error of nm's, shown by the CHECK
    }
  }
  return names;
}

constexpr char kForkServerGaveUp[] = "could not keep plugin";

constexpr uid_t kNobody = 65534;

// What docs/languages.md tells Go users to set limits.memory to in mode none
// (Go 1.19 on this 2-core machine needs about 800 MiB of address space).
constexpr char kGoMemoryInModeNone[] = "1GiB";

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

// Why a daemon run as nobody cannot be had here, or "" when it can.
std::string why_not_as_nobody() {
  if (::geteuid() != 0) return "the test switches the host to nobody: it needs root";
  if (!executable_by(kNobody, JOBHOST_BIN)) {
    return "user nobody cannot execute " JOBHOST_BIN " (a directory above it is private)";
  }
  return "";
}

// A daemon run as nobody normally has no cgroup it may write to: isolation
// mode none, where limits.memory is RLIMIT_AS (docs/isolation.md).
bool in_mode_none(const TestHost& host) {
  return host.log().find("isolation: no cgroups") != std::string::npos;
}

}  // namespace

TEST_CASE("the shipped config's [defaults] has the limits these tests run under",
          "[daemon][languages]") {
  const std::string limits = shipped_limits();
  CHECK_THAT(limits, Catch::Contains("memory = \"512MiB\""));
  CHECK_THAT(limits, Catch::Contains("processes = 64"));
}

TEST_CASE("a Rust plugin runs through the daemon under the default limits",
          "[daemon][languages][rust]") {
#if !JOBHOST_HAVE_RUST
  JOBHOST_SKIP("no cargo when CMake configured (JOBHOST_CARGO): plugins/rust_hello was not built");
#endif
  CHECK(exported_symbols("rust_hello.so") == std::vector<std::string>{"jobhost_plugin_v1"});
  TestHost host({"rust_hello.so"}, outcome_jobs("rust_hello"));
  check_outcomes(host, "rust_hello", "Rust");
  // No thread at load: the fork server keeps it loaded.
  CHECK(host.log().find(kForkServerGaveUp) == std::string::npos);
  host.stop();
}

TEST_CASE("a Go plugin runs through the daemon and its fork server under the default limits",
          "[daemon][languages][go]") {
#if !JOBHOST_HAVE_GO
  JOBHOST_SKIP("no go when CMake configured (JOBHOST_GO): plugins/go_hello was not built");
#endif
  CHECK(exported_symbols("go_hello.so") == std::vector<std::string>{"jobhost_plugin_v1"});
  TestHost host({"go_hello.so"}, outcome_jobs("go_hello"));
  check_outcomes(host, "go_hello", "Go");
  // The first run's loading left the fork server with the Go runtime's
  // threads: it was replaced, and every run since loads the plugin itself.
  const std::string log = host.log();
  INFO(log);
  CHECK(log.find(kForkServerGaveUp) != std::string::npos);
  CHECK(log.find("started a thread in the fork server") != std::string::npos);

  // Another run on the replacement server.
  REQUIRE(trigger(host.config(), "ok").exit_code == 0);
  const json again = finished_runs(host.config(), "ok", 2);
  CHECK(again[0]["outcome"] == "succeeded");
  CHECK(again[0]["metrics"]["goroutines"] == 4);
  host.stop();
}

TEST_CASE("a Rust plugin runs under RLIMIT_AS = the default memory limit (isolation mode none)",
          "[daemon][languages][rust-as-nobody]") {
#if !JOBHOST_HAVE_RUST
  JOBHOST_SKIP("no cargo when CMake configured (JOBHOST_CARGO): plugins/rust_hello was not built");
#endif
  if (const auto why = why_not_as_nobody(); !why.empty()) JOBHOST_SKIP(why);
  TestHost host({"rust_hello.so"}, outcome_jobs("rust_hello"), "", kNobody);
  if (!in_mode_none(host)) JOBHOST_SKIP("a host run as nobody gets cgroups here: not mode none");
  REQUIRE(trigger(host.config(), "ok").exit_code == 0);
  const json ok = finished_runs(host.config(), "ok", 1).front();
  CHECK(ok["outcome"] == "succeeded");
  CHECK(ok["message"] == "grüezi from Rust");
  host.stop();
}

TEST_CASE("a Go plugin needs more than RLIMIT_AS = 512MiB (isolation mode none)",
          "[daemon][languages][go-as-nobody]") {
#if !JOBHOST_HAVE_GO
  JOBHOST_SKIP("no go when CMake configured (JOBHOST_GO): plugins/go_hello was not built");
#endif
  if (const auto why = why_not_as_nobody(); !why.empty()) JOBHOST_SKIP(why);
  // docs/languages.md: the Go runtime reserves address space at start.
  TestHost host({"go_hello.so"},
                outcome_jobs("go_hello") +
                    "[jobs.roomy]\nplugin = \"go_hello\"\n"
                    "schedule = \"@manual\"\nlimits = { memory = \"" +
                    std::string(kGoMemoryInModeNone) + "\" }\n",
                "", kNobody);
  if (!in_mode_none(host)) JOBHOST_SKIP("a host run as nobody gets cgroups here: not mode none");
  REQUIRE(trigger(host.config(), "ok").exit_code == 0);
  REQUIRE(trigger(host.config(), "roomy").exit_code == 0);
  const json roomy = finished_runs(host.config(), "roomy", 1).front();
  CHECK(roomy["outcome"] == "succeeded");
  CHECK(roomy["message"] == "hello from Go");
  // Under the default 512MiB the runtime cannot reserve its heap's
  // metadata and exits(2) before run() is called. Not in a sanitizer build:
  // there the executor sets no RLIMIT_AS (exec/isolation.cpp; ASan reserves
  // terabytes of shadow), so the run succeeds.
  const json cramped = finished_runs(host.config(), "ok", 1).front();
#if defined(__SANITIZE_ADDRESS__)
  CHECK(cramped["outcome"] == "succeeded");
#else
  CHECK(cramped["outcome"] == "failed");
  CHECK_THAT(cramped["message"].get<std::string>(), Catch::Contains("without reporting a result"));
#endif
  host.stop();
}
