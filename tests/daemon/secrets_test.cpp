// Secrets and the clean environment through the real daemon: a job reads its
// secret and not another job's; the value it logged, printed and returned is
// in none of the ledger's bytes, the daemon's log, `history --json` or the
// API; a rotated file reaches the next run; the daemon's environment reaches
// no run; a missing secret fails the run naming it; validate refuses a secret
// file that group or others can read.
#include <sys/stat.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "support/harness.h"
#include "support/http_client.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

void write_secret(const fs::path& file, const std::string& value, mode_t mode = 0600) {
  std::ofstream(file, std::ios::trunc | std::ios::binary) << value;
  ::chmod(file.c_str(), mode);
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Sets an environment variable of this process (so of the daemon it starts)
// for the scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

// The newest finished run of `job` once there are `count` of them.
json nth_run(const fs::path& config, const std::string& job, std::size_t count) {
  json run;
  REQUIRE(wait_for(
      [&] {
        const auto runs = finished(history(config, job), job);
        if (runs.size() < count) return false;
        run = runs.front();
        return true;
      },
      20s));
  return run;
}

}  // namespace

TEST_CASE("a job's secret reaches its run only and never the ledger, logs, history or API",
          "[daemon][secrets]") {
  TempDir secrets;
  const std::string mine = "Sup3r-Secret-Value-7781";
  const std::string rotated = "R0tated-Secret-Value-7782-longer";
  const std::string theirs = "Theirs-Secret-Value-5543";
  const std::string from_env = "Env-Secret-Value-6612";
  write_secret(secrets.path() / "mine", mine);
  write_secret(secrets.path() / "theirs", theirs);
  ScopedEnv leak("JOBHOST_TEST_LEAK", "xyz-leak-value");
  ScopedEnv env_secret("JOBHOST_TEST_SECRET_ENV", from_env);

  TestHost host({"environ_dump.so"}, fmt::format(R"([http]
listen = "127.0.0.1:0"

[secrets.mine]
file = "{}"
[secrets.theirs]
file = "{}"
[secrets.fromenv]
env = "JOBHOST_TEST_SECRET_ENV"

[jobs.reader]
plugin = "environ_dump"
schedule = "@manual"
secrets = ["mine"]
params = {{ secret = "mine", other = "theirs", expect = "{}" }}
env = {{ GREETING = "hi" }}

[jobs.envreader]
plugin = "environ_dump"
schedule = "@manual"
secrets = ["fromenv"]
params = {{ secret = "fromenv", other = "mine" }}

[jobs.other]
plugin = "environ_dump"
schedule = "@manual"
secrets = ["theirs"]
)",
                                                 (secrets.path() / "mine").string(),
                                                 (secrets.path() / "theirs").string(), mine));
  const auto port = wait_http_port(host.daemon());
  REQUIRE(port.has_value());

  REQUIRE(trigger(host.config(), "reader").exit_code == 0);
  const json first = nth_run(host.config(), "reader", 1);
  INFO(first.dump(2));
  REQUIRE(first["outcome"] == "succeeded");
  CHECK(first["metrics"]["has_secret"] == 1);
  CHECK(first["metrics"]["secret_matches"] == 1);
  CHECK(first["metrics"]["other_visible"] == 0);  // another job's secret: NULL
  CHECK(first["message"] == "message with [secret:mine]");

  // Rotated: the next run reads the new file, with no reload.
  write_secret(secrets.path() / "mine", rotated);
  REQUIRE(trigger(host.config(), "reader").exit_code == 0);
  const json second = nth_run(host.config(), "reader", 2);
  CHECK(second["outcome"] == "succeeded");
  CHECK(second["metrics"]["secret_matches"] == 0);
  CHECK(second["metrics"]["secret_size"] == rotated.size());
  CHECK(second["message"] == "message with [secret:mine]");

  // An env secret: the run gets it through secret(), never in its environment.
  REQUIRE(trigger(host.config(), "envreader").exit_code == 0);
  const json env_run = nth_run(host.config(), "envreader", 1);
  CHECK(env_run["outcome"] == "succeeded");
  CHECK(env_run["metrics"]["has_secret"] == 1);
  CHECK(env_run["metrics"]["other_visible"] == 0);

  // What the API, history and the ledger's files hold, while the daemon runs
  // (the WAL not yet checkpointed) and after it stopped.
  const std::string run_id = first["run_id"];
  auto api = http_get(*port, "/api/v1/runs/" + run_id);
  REQUIRE(api.status == 200);
  const std::string env_tail =
      json::parse(http_get(*port, "/api/v1/runs/" + env_run["run_id"].get<std::string>()).body)
          .value("output_tail", "");
  CHECK_THAT(api.body, Catch::Contains("[secret:mine]"));
  std::string stored = read_bytes(host.dir() / "var" / "jobhost.db") +
                       read_bytes(host.dir() / "var" / "jobhost.db-wal");
  host.stop();
  stored += read_bytes(host.dir() / "var" / "jobhost.db");
  const std::string listing = history(host.config()).dump();
  const std::string log = host.log();
  CHECK_THAT(listing, Catch::Contains("[secret:mine]"));
  CHECK_THAT(log, Catch::Contains("the secret is [secret:mine]"));
  CHECK_THAT(log, Catch::Contains("the secret is [secret:fromenv]"));
  CHECK_THAT(stored, Catch::Contains("[secret:mine]"));

  // The run's environment: the documented set and its env only.
  CHECK_THAT(env_tail, Catch::Contains("env: JOBHOST_JOB=envreader"));
  CHECK_THAT(env_tail, Catch::Contains("env: PATH="));
  for (const char* name : {"GREETING=", "JOBHOST_TEST_LEAK", "JOBHOST_TEST_SECRET_ENV"}) {
    CHECK(env_tail.find(name) == std::string::npos);
  }
  for (const std::string& value : {mine, rotated, theirs, from_env, std::string("xyz-leak")}) {
    INFO(value);
    CHECK(stored.find(value) == std::string::npos);
    CHECK(log.find(value) == std::string::npos);
    CHECK(listing.find(value) == std::string::npos);
    CHECK(api.body.find(value) == std::string::npos);
    CHECK(env_tail.find(value) == std::string::npos);
  }
}

TEST_CASE("a secret that cannot be read fails the run, naming it", "[daemon][secrets]") {
  TempDir secrets;
  TestHost host({"environ_dump.so"}, fmt::format(R"([secrets.gone]
file = "{}"

[jobs.needs]
plugin = "environ_dump"
schedule = "@manual"
secrets = ["gone"]
params = {{ secret = "gone" }}
)",
                                                 (secrets.path() / "gone").string()));
  REQUIRE(trigger(host.config(), "needs").exit_code == 0);
  auto run = wait_outcome(host.config(), "needs", "failed");
  REQUIRE(run.has_value());
  const std::string message = (*run)["message"];
  CHECK_THAT(message, Catch::Contains("secret \"gone\""));
  CHECK_THAT(message, Catch::Contains("No such file or directory"));
  host.stop();
}

TEST_CASE("validate refuses a secret file open to others, saying how to fix it, never its value",
          "[daemon][secrets]") {
  TempDir dir;
  const std::string value = "Readable-By-All-9931";
  write_secret(dir.path() / "db", value, 0644);
  install_plugins(dir.path(), {"environ_dump.so"});
  const auto config = write_config(dir.path(), fmt::format(R"([secrets.db]
file = "{}"
[jobs.a]
plugin = "environ_dump"
schedule = "@manual"
secrets = ["db"]
)",
                                                           (dir.path() / "db").string()));
  auto bad = run_jobhost({"validate", "--config", config.string()});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("secret \"db\""));
  CHECK_THAT(bad.err, Catch::Contains("is open to group or others (mode 0644); run `chmod 600"));
  CHECK(bad.err.find(value) == std::string::npos);
  CHECK(bad.out.find(value) == std::string::npos);

  ::chmod((dir.path() / "db").c_str(), 0600);
  auto good = run_jobhost({"validate", "--config", config.string()});
  CHECK(good.exit_code == 0);
  CHECK(good.out.find(value) == std::string::npos);
}
