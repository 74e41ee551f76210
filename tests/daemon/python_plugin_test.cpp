// The python plugin (plugins/python) through the real binary, under the
// example config's default limits, with the default syscall filter and (the
// tests run as root) each run as a dynamic user: a job's module is read from
// a directory of its `path`, its function's outcome, message, metrics and
// output are recorded, and every way it can go wrong fails with a message
// that says what (docs/languages.md#python).
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

// The `limits` line of config/jobhost.toml's [defaults]: the limits a Python
// job must run under out of the box.
std::string example_limits() {
  std::ifstream in(fs::path(JOBHOST_SOURCE_DIR) / "config" / "jobhost.toml");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("limits = ")) return line;
  }
  FAIL("config/jobhost.toml has no limits line");
  return "";
}

// A temp dir with the python plugin, a directory of modules readable by any
// user (runs are dynamic users), and a config of `jobs`.
struct PythonJobs {
  TempDir dir;
  fs::path modules = dir.path() / "pyjobs";
  fs::path config;

  PythonJobs() {
    install_plugins(dir.path(), {"python.so"});
    fs::create_directory(modules);
    ::chmod(modules.c_str(), 0755);
  }

  void module(const std::string& name, const std::string& text) const {
    const fs::path file = modules / (name + ".py");
    std::ofstream(file) << text;
    ::chmod(file.c_str(), 0644);
  }

  // Writes the config: [defaults] with the example's limits, then `jobs`;
  // `{path}` in `jobs` is the modules' directory.
  void jobs(const std::string& text, const std::string& before = "") {
    std::string jobs_toml = text;
    for (std::size_t at; (at = jobs_toml.find("{path}")) != std::string::npos;) {
      jobs_toml.replace(at, 6, modules.string());
    }
    config =
        write_config(dir.path(), before + "[defaults]\n" + example_limits() + "\n\n" + jobs_toml);
  }

  // `jobhost run-once JOB` (as user `as_user` when given), then its run
  // from `history --json`.
  json run_once(const std::string& job, std::optional<uid_t> as_user = std::nullopt) const {
    const auto once = run_jobhost({"run-once", "--config", config.string(), job}, 60s, as_user);
    INFO(job << ": " << once.out << once.err);
    REQUIRE(once.exit_code >= 0);
    const auto runs = history(config, job);
    REQUIRE(!runs.empty());
    return runs.front();
  }

  std::string output_of(const json& run) const {
    auto store = open_ledger(config);
    auto found = store->get_run(run["run_id"].get<std::string>());
    REQUIRE(found);
    REQUIRE(*found);
    return (**found).output_tail;
  }
};

constexpr const char* kNightly = R"PY(import sys

import jobhost

ROWS = 42


def run():
    # Extension modules of the standard library load (lib-dynload).
    import _json, _decimal, json
    jobhost.log("starting run " + jobhost.run_id())
    jobhost.log("a warning", level="warn")
    print("to stdout: naïve café")
    print("to stderr", file=sys.stderr)
    assert jobhost.param("color") == "teal", jobhost.param("color")
    assert jobhost.param("missing") is None
    assert jobhost.param("missing", "fallback") == "fallback"
    assert jobhost.secret("token") == "tok-3141", "secret token"
    assert jobhost.secret("unlisted") is None
    assert jobhost.attempt() == 1
    assert jobhost.trigger_kind() == "manual", jobhost.trigger_kind()
    assert jobhost.event() is None
    assert jobhost.scheduled_for() > 1_700_000_000_000
    assert jobhost.cancelled() is False
    assert not sys.executable.endswith("forkserver"), sys.executable
    assert json.loads('{"a": [1, 2]}') == {"a": [1, 2]}
    jobhost.heartbeat(0.5)
    jobhost.metric("rows", ROWS)
    jobhost.metric("ratio", 0.25)
    return f"copied {ROWS} rows"


def quiet():
    jobhost.set_message("set by set_message")
    return None


async def run_async():
    import asyncio
    await asyncio.sleep(0.01)
    return "done in a coroutine"


def bye(code):
    sys.exit(code)


def exit_zero():
    bye(0)


def exit_three():
    bye(3)
)PY";

}  // namespace

TEST_CASE("a Python job reads params and secrets, logs, prints, records a metric and a message",
          "[daemon][python]") {
  PythonJobs py;
  py.module("nightly", kNightly);
  const fs::path token = py.dir.path() / "token";
  std::ofstream(token) << "tok-3141";
  ::chmod(token.c_str(), 0600);
  py.jobs(R"(
[jobs.nightly]
plugin = "python"
schedule = "@manual"
secrets = ["token"]
params = { module = "nightly", path = "{path}", color = "teal" }

[jobs.quiet]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", function = "quiet", path = "/nonexistent:{path}" }

[jobs.async]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", function = "run_async", path = "{path}" }

[jobs.exit_zero]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", function = "exit_zero", path = "{path}" }

[jobs.exit_three]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", function = "exit_three", path = "{path}" }
)",
          fmt::format("[secrets.token]\nfile = \"{}\"\n[secrets.unlisted]\nfile = \"{}\"\n\n",
                      token.string(), token.string()));

  // `function` defaults to "run".
  const json run = py.run_once("nightly");
  INFO(run.dump(2));
  CHECK(run["outcome"] == "succeeded");
  CHECK(run["message"] == "copied 42 rows");
  CHECK(run["metrics"]["rows"] == 42);
  CHECK(run["metrics"]["ratio"] == 0.25);
  CHECK(run["attempt"] == 1);
  const std::string output = py.output_of(run);
  INFO(output);
  CHECK_THAT(output, Catch::Contains("to stdout: naïve café"));
  CHECK_THAT(output, Catch::Contains("to stderr"));
  CHECK_THAT(output, Catch::Contains("[info] starting run " + run["run_id"].get<std::string>()));
  CHECK_THAT(output, Catch::Contains("[warn] a warning"));

  // None returned: the message set_message() gave.
  const json quiet = py.run_once("quiet");
  CHECK(quiet["outcome"] == "succeeded");
  CHECK(quiet["message"] == "set by set_message");

  // An `async def` function is run to its end.
  const json async = py.run_once("async");
  CHECK(async["outcome"] == "succeeded");
  CHECK(async["message"] == "done in a coroutine");

  // sys.exit(0) succeeds, sys.exit(3) fails, as the python3 command's status.
  const json zero = py.run_once("exit_zero");
  CHECK(zero["outcome"] == "succeeded");
  const json three = py.run_once("exit_three");
  CHECK(three["outcome"] == "failed");
  CHECK(three["message"] == "returned FAIL (not retryable): sys.exit(3)");
}

TEST_CASE("an exception fails a Python job with its traceback as the message", "[daemon][python]") {
  PythonJobs py;
  py.module("broken", R"PY(import jobhost


def load(row):
    raise ValueError(f"bad row {row}")


def run():
    jobhost.set_message("about to load")
    load(7)


def deep(n):
    if n == 0:
        raise RuntimeError("at the bottom")
    deeper(n - 1)


def deeper(n):
    deep(n)


def run_deep():
    deep(150)
)PY");
  py.module("deep_at_import", "import broken\n\nbroken.run_deep()\n");
  py.jobs(R"(
[jobs.deep_at_import]
plugin = "python"
schedule = "@manual"
params = { module = "deep_at_import", path = "{path}" }

[jobs.broken]
plugin = "python"
schedule = "@manual"
params = { module = "broken", path = "{path}" }

[jobs.deep]
plugin = "python"
schedule = "@manual"
params = { module = "broken", function = "run_deep", path = "{path}" }
)");

  const json run = py.run_once("broken");
  INFO(run.dump(2));
  CHECK(run["outcome"] == "failed");
  const std::string message = run["message"];
  CHECK(message.starts_with("returned FAIL (not retryable): Traceback (most recent call last):\n"));
  CHECK_THAT(message, Catch::Contains((py.modules / "broken.py").string() +
                                      "\", line 10, in run\n    load(7)"));
  CHECK_THAT(message, Catch::Contains("line 5, in load"));
  CHECK_THAT(message, Catch::EndsWith("ValueError: bad row 7"));
  // The whole traceback is in the run's output too.
  CHECK_THAT(py.output_of(run), Catch::Contains("ValueError: bad row 7"));

  // Too long for a message: its first line and its end are kept.
  const json deep = py.run_once("deep");
  INFO(deep.dump(2));
  CHECK(deep["outcome"] == "failed");
  const std::string deep_message = deep["message"];
  CHECK(deep_message.size() <= 4096);
  CHECK_THAT(deep_message, Catch::Contains("Traceback (most recent call last):\n  ... (cut;"));
  CHECK_THAT(deep_message, Catch::EndsWith("in deep\n    raise RuntimeError(\"at the bottom\")\n"
                                           "RuntimeError: at the bottom"));
  const std::string deep_output = py.output_of(deep);
  CHECK_THAT(deep_output, Catch::Contains("in run_deep\n    deep(150)"));

  // At import: what was being done stays at the head.
  const json at_import = py.run_once("deep_at_import");
  INFO(at_import.dump(2));
  const std::string import_message = at_import["message"];
  CHECK(import_message.size() <= 4096);
  CHECK(import_message.starts_with(
      "returned FAIL (not retryable): importing module \"deep_at_import\" failed:\n"
      "Traceback (most recent call last):\n  ... (cut;"));
  CHECK_THAT(import_message, Catch::EndsWith("RuntimeError: at the bottom"));
}

TEST_CASE("jobhost.Retry fails the attempt as retryable and the retry runs", "[daemon][python]") {
  PythonJobs py;
  py.module("flaky", R"PY(import jobhost


def run():
    if jobhost.attempt() == 1:
        raise jobhost.Retry("database busy")
    assert jobhost.trigger_kind() == "retry"
    return f"done on attempt {jobhost.attempt()}"
)PY");
  py.jobs(R"(
[jobs.flaky]
plugin = "python"
schedule = "@manual"
retry = { max_attempts = 3, initial_delay = "200ms", jitter = "none" }
params = { module = "flaky", path = "{path}" }
)");
  Daemon daemon(py.config);
  REQUIRE(daemon.wait_ready());
  REQUIRE(trigger(py.config, "flaky").exit_code == 0);
  std::vector<json> attempts;
  REQUIRE(wait_for(
      [&] {
        attempts = finished(history(py.config, "flaky"), "flaky");
        return attempts.size() >= 2;
      },
      30s));
  std::reverse(attempts.begin(), attempts.end());  // oldest first
  INFO(json(attempts).dump(2) << daemon.log());
  CHECK(attempts[0]["attempt"] == 1);
  CHECK(attempts[0]["outcome"] == "failed");
  CHECK(attempts[0]["message"] == "returned RETRY (retryable): database busy");
  CHECK(attempts[1]["attempt"] == 2);
  CHECK(attempts[1]["trigger"] == "retry");
  CHECK(attempts[1]["outcome"] == "succeeded");
  CHECK(attempts[1]["message"] == "done on attempt 2");
}

TEST_CASE("a Python job that cannot be imported or called fails saying why", "[daemon][python]") {
  PythonJobs py;
  py.module("nightly", "ROWS = 3\n\ndef run():\n    return 'ok'\n");
  py.module("syntax", "import jobhost\n\ndef run(:\n    pass\n");
  py.module("needs_dep", "import nosuch_dependency\n\ndef run():\n    pass\n");
  py.jobs(R"(
[jobs.no_module]
plugin = "python"
schedule = "@manual"
params = { module = "nosuch", path = "{path}" }

[jobs.syntax]
plugin = "python"
schedule = "@manual"
params = { module = "syntax", path = "{path}" }

[jobs.needs_dep]
plugin = "python"
schedule = "@manual"
params = { module = "needs_dep", path = "{path}" }

[jobs.no_function]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", function = "nope", path = "{path}" }

[jobs.not_callable]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", function = "ROWS", path = "{path}" }

[jobs.no_params]
plugin = "python"
schedule = "@manual"

[jobs.relative]
plugin = "python"
schedule = "@manual"
params = { module = "nightly", path = "pyjobs" }
)");
  const std::string fail = "returned FAIL (not retryable): ";
  const std::string file = (py.modules / "nightly.py").string();
  const std::map<std::string, std::vector<std::string>> expected = {
      {"no_module",
       {fail + "cannot import module \"nosuch\": no module named \"nosuch\" on sys.path",
        py.modules.string() + ", /usr/lib/python3"}},
      {"syntax",
       {fail + "importing module \"syntax\" failed:\n  File \"",
        (py.modules / "syntax.py").string(), "line 3", "SyntaxError"}},
      {"needs_dep",
       {fail + "importing module \"needs_dep\" failed:\nTraceback",
        "ModuleNotFoundError: No module named 'nosuch_dependency'"}},
      {"no_function", {fail + "module \"nightly\" (" + file + ") has no function \"nope\""}},
      {"not_callable",
       {fail + "nightly.ROWS in module \"nightly\" (" + file +
        ") is not a function (it is a int)"}},
      {"no_params", {fail + "the job has no params.module"}},
      {"relative", {fail + "params.path: \"pyjobs\" is not an absolute directory"}},
  };
  for (const auto& [job, parts] : expected) {
    const json run = py.run_once(job);
    INFO(job << ": " << run.dump(2));
    CHECK(run["outcome"] == "failed");
    const std::string message = run["message"];
    CHECK(message.starts_with(parts.front()));
    for (const auto& part : parts) CHECK_THAT(message, Catch::Contains(part));
  }
}

TEST_CASE("a Python job sees cancelled() when its timeout passes", "[daemon][python]") {
  PythonJobs py;
  py.module("patient", R"PY(import time

import jobhost


def run():
    while not jobhost.cancelled():
        time.sleep(0.05)
    print("saw the cancel")
    return "stopped early"
)PY");
  py.jobs(R"(
[jobs.patient]
plugin = "python"
schedule = "@manual"
timeout = "1s"
kill_grace = "30s"
params = { module = "patient", path = "{path}" }
)");
  const json run = py.run_once("patient");
  INFO(run.dump(2));
  CHECK(run["outcome"] == "timed_out");
  // It returned on its own: not killed after the grace.
  CHECK_THAT(run["message"].get<std::string>(), !Catch::Contains("killed"));
  CHECK_THAT(py.output_of(run), Catch::Contains("saw the cancel"));
}

TEST_CASE("the example Python job prunes old files", "[daemon][python]") {
  PythonJobs py;
  std::ifstream example(fs::path(JOBHOST_SOURCE_DIR) / "plugins/python/examples/nightly.py");
  REQUIRE(example);
  std::ostringstream text;
  text << example.rdbuf();
  py.module("nightly", text.str());
  const fs::path exports = run_writable_dir(py.dir.path());
  const auto month_ago = fs::file_time_type::clock::now() - std::chrono::hours(24 * 30);
  for (const char* name : {"old-1.csv", "old-2.csv", "new.csv"}) {
    std::ofstream(exports / name) << "0123456789";
    if (std::string_view(name).starts_with("old")) fs::last_write_time(exports / name, month_ago);
  }
  fs::create_directory(exports / "old-dir");
  fs::last_write_time(exports / "old-dir", month_ago);
  py.jobs(fmt::format(R"(
[jobs.nightly]
plugin = "python"
schedule = "@manual"
params = {{ module = "nightly", path = "{{path}}", dir = "{}", days = "14" }}
)",
                      exports.string()));
  const json run = py.run_once("nightly");
  INFO(run.dump(2));
  CHECK(run["outcome"] == "succeeded");
  CHECK(run["message"] == "removed 2 files (20 bytes) from " + exports.string());
  CHECK(run["metrics"]["files_removed"] == 2);
  CHECK(!fs::exists(exports / "old-1.csv"));
  CHECK(!fs::exists(exports / "old-2.csv"));
  CHECK(fs::exists(exports / "new.csv"));
  CHECK(fs::exists(exports / "old-dir"));
}

// The host as nobody: each run in user, pid and mount namespaces of its own
// (docs/security.md "Host not root"), with the host's uid.
TEST_CASE("a Python job runs on a host that is not root", "[daemon][python][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("the test switches the host to nobody: it needs root");
  constexpr uid_t kNobody = 65534;
  if (run_jobhost({"--version"}, 20s, kNobody).exit_code != 0) {
    JOBHOST_SKIP("user nobody cannot execute " JOBHOST_BIN " (a directory above it is private)");
  }
  PythonJobs py;
  REQUIRE(::chown(py.dir.path().c_str(), kNobody, kNobody) == 0);  // its state dir goes there
  py.module("whoami", R"PY(import os

import jobhost


def run():
    print("uid", os.getuid())
    jobhost.metric("uid", os.getuid())
    jobhost.metric("pid", os.getpid())
    return "ran as " + str(os.getuid())
)PY");
  py.jobs(R"(
[jobs.whoami]
plugin = "python"
schedule = "@manual"
params = { module = "whoami", path = "{path}" }
)");
  const json run = py.run_once("whoami", kNobody);
  INFO(run.dump(2));
  CHECK(run["outcome"] == "succeeded");
  CHECK(run["message"] == "ran as 65534");
  CHECK(run["metrics"]["uid"] == kNobody);
  // pid 2 in a pid namespace of its own; 1 is its init.
  CHECK(run["metrics"]["pid"] == 2);
}
