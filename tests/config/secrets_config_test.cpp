// env = { ... }, [secrets.NAME] and a job's secrets = [...]: what loads, what
// is refused (at its line:col, with a message that helps), and the hash.
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/temp_config.h"

using jobhost::config::Config;
using jobhost::config::ConfigError;
using jobhost::config::load_config;
using jobhost::config::SecretConfig;
using jobhost::config::test::TempConfig;

namespace {

std::string listing(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors)
    out += fmt::format("{}:{}: {}\n", e.where.line, e.where.column, e.message);
  return out;
}

constexpr std::string_view kSecrets =
    "[secrets.db]\nfile = \"db.secret\"\n"        // lines 1-2
    "[secrets.api]\nenv = \"API_TOKEN\"\n"        // lines 3-4
    "[secrets.tls]\ncredential = \"tls.key\"\n";  // lines 5-6
// A valid job, lines 7-9; cases add lines from 10 on.
constexpr std::string_view kJob = "[jobs.a]\nplugin = \"hello\"\nevery = \"1s\"\n";

}  // namespace

TEST_CASE("env, [secrets.NAME] and secrets load into the job") {
  TempConfig file(std::string(kSecrets) + std::string(kJob) +
                  "env = { LOG_LEVEL = \"debug\", PATH = \"/opt/bin:/usr/bin\" }\n"
                  "secrets = [\"tls\", \"db\", \"db\"]\n");
  auto config = load_config(file.file());
  REQUIRE(config.has_value());
  REQUIRE(config->secrets.size() == 3);
  CHECK(config->secrets[0].name == "db");
  CHECK(config->secrets[0].source == SecretConfig::Source::file);
  CHECK(config->secrets[0].location == (file.dir() / "db.secret").string());
  CHECK(config->secrets[1].source == SecretConfig::Source::env);
  CHECK(config->secrets[1].location == "API_TOKEN");
  CHECK(config->secrets[2].source == SecretConfig::Source::credential);
  CHECK(config->secrets[2].location == "tls.key");
  const auto& job = config->jobs.at(0);
  CHECK(job.settings->env.at("LOG_LEVEL") == "debug");
  CHECK(job.settings->env.at("PATH") == "/opt/bin:/usr/bin");
  REQUIRE(job.settings->secrets.size() == 2);  // in the order given, once each
  CHECK(job.settings->secrets[0].name == "tls");
  CHECK(job.settings->secrets[1].name == "db");
}

TEST_CASE("mistakes in env and secrets are errors at their line:col") {
  struct Case {
    std::string toml;  // appended to kSecrets + kJob
    const char* where;
    const char* says;
  };
  const Case cases[] = {
      {"env = { 1X = \"a\" }\n", "10:9", "env.1X in [jobs.a]: invalid variable name"},
      {"env = { \"A-B\" = \"a\" }\n", "10:9", "invalid variable name"},
      {"env = { JOBHOST_JOB = \"x\" }\n", "10:9",
       "JOBHOST_* variables are set by the host and cannot be overridden"},
      {"env = { A = 1 }\n", "10:13", "env.A in [jobs.a]: expected a string, got integer"},
      {"env = \"A=1\"\n", "10:7", "env in [jobs.a]: expected a table like { LOG_LEVEL"},
      {"secrets = [\"bd\"]\n", "10:12", "unknown secret \"bd\" (did you mean \"db\"?)"},
      {"secrets = [\"zzzzzz\"]\n", "10:12", "(known: \"db\", \"api\", \"tls\")"},
      {"secrets = \"db\"\n", "10:11", "expected a list of secret names like [\"db\"]"},
      {"secrets = [1]\n", "10:12", "expected a string"},
      {"[secrets.x]\n", "10:1", "[secrets.x] needs exactly one source: file = \"PATH\""},
      {"[secrets.x]\nfile = \"a\"\nenv = \"B\"\n", "10:1", "needs exactly one source"},
      {"[secrets.x]\nenv = \"NOT-A-NAME\"\n", "11:7", "is not a variable name"},
      {"[secrets.x]\ncredential = \"../etc/shadow\"\n", "11:14", "is not a credential name"},
      {"[secrets.x]\nfiel = \"a\"\n", "11:1",
       "unknown key \"fiel\" in [secrets.x] (did you mean \"file\"?)"},
      {"[secrets.x]\nfile = \"\"\n", "11:8", "must not be empty"},
      {"[secrets.\"a b\"]\nfile = \"x\"\n", "10:10", "invalid secret name \"a b\""},
      {"[secrets]\nx = 1\n", "11:5", "[secrets.x]: expected a table like { file ="},
      {"[defaults]\nsecrets = [\"db\"]\n", "11:1",
       "\"secrets\" cannot be set in [defaults]: set it in each [jobs.NAME]"},
      {"file = \"x\"\n", "10:1", "it belongs in [secrets.NAME]"},
  };
  for (const Case& c : cases) {
    TempConfig file(std::string(kSecrets) + std::string(kJob) + c.toml);
    auto config = load_config(file.file());
    INFO(c.toml);
    REQUIRE_FALSE(config.has_value());
    const std::string all = listing(config.error());
    INFO(all);
    CHECK(all.find(std::string(c.where) + ": ") != std::string::npos);
    CHECK(all.find(c.says) != std::string::npos);
  }
}

TEST_CASE("a job naming a broken [secrets.NAME] gets one error about the section") {
  TempConfig file("[secrets.db]\n" + std::string(kJob) + "secrets = [\"db\"]\n");
  auto config = load_config(file.file());
  REQUIRE_FALSE(config.has_value());
  const std::string all = listing(config.error());
  CHECK(all.find("needs exactly one source") != std::string::npos);
  CHECK(all.find("its [secrets.db] section has errors") != std::string::npos);
}

TEST_CASE("definition_hash covers env and secret names and sources, not values") {
  auto hash = [](std::string_view secrets, std::string_view job_lines) {
    TempConfig file(std::string(secrets) + std::string(kJob) + std::string(job_lines));
    auto config = load_config(file.file());
    if (!config) FAIL(listing(config.error()));
    return config->jobs.at(0).definition_hash;
  };
  // Absolute paths: each TempConfig has a directory of its own.
  const std::string secrets =
      "[secrets.db]\nfile = \"/etc/jobhost/db\"\n[secrets.api]\nenv = \"API_TOKEN\"\n";
  const std::string plain = hash("", "");
  // Without env or secrets the hash is what it was before they existed.
  CHECK(plain == hash(secrets, ""));
  const std::string with_env = hash("", "env = { A = \"1\" }\n");
  CHECK(with_env != plain);
  CHECK(with_env != hash("", "env = { A = \"2\" }\n"));
  const std::string with_db = hash(secrets, "secrets = [\"db\"]\n");
  CHECK(with_db != plain);
  CHECK(with_db != hash(secrets, "secrets = [\"api\"]\n"));
  // Another source of the same name is another definition...
  CHECK(with_db != hash("[secrets.db]\nfile = \"/etc/other\"\n", "secrets = [\"db\"]\n"));
  // ...but an unused section is not part of the job, nor the value.
  CHECK(with_db == hash(secrets + "[secrets.more]\nenv = \"X\"\n", "secrets = [\"db\"]\n"));
}
