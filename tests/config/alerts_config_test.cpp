// [alerts.NAME] notifiers and the jobs' alert settings: parsed, defaulted
// from [defaults], validated at line:col, and kept out of the definition hash.
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "config/config.h"
#include "config/temp_config.h"

using namespace jobhost;
using jobhost::config::load_config;
using jobhost::config::NotifierConfig;
using jobhost::config::test::TempConfig;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kNotifiers = R"([alerts.ops]
type = "command"
command = ["/bin/sh", "-c", "cat > /dev/null"]
timeout = "30s"

[alerts.hook]
type = "webhook"
url = "https://hooks.example.com:8443/jobhost?team=ops"
ca_file = "ca.pem"
retries = 5
headers = { Authorization = "Bearer abc", X-Team = "ops" }
)";

}  // namespace

TEST_CASE("alert settings and notifiers load, with [defaults] and alert_to", "[config][alerts]") {
  TempConfig file(std::string(kNotifiers) + R"(
[defaults]
alert_after = 3
expect_success_within = "26h"

[jobs.a]
plugin = "hello"
every = "1h"

[jobs.b]
plugin = "hello"
every = "1h"
alert_after = 0
alert_to = ["hook"]
)");
  std::ofstream(file.dir() / "ca.pem") << "-----BEGIN CERTIFICATE-----\nMII...\n";
  auto config = load_config(file.file());
  INFO((config ? std::string() : config.error().front().to_string()));
  REQUIRE(config.has_value());
  REQUIRE(config->alerts.size() == 2);
  const NotifierConfig& ops = config->alerts[0];
  CHECK(ops.name == "ops");
  CHECK(ops.type == NotifierConfig::Type::command);
  CHECK(ops.command == std::vector<std::string>{"/bin/sh", "-c", "cat > /dev/null"});
  CHECK(ops.timeout == 30s);
  const NotifierConfig& hook = config->alerts[1];
  CHECK(hook.type == NotifierConfig::Type::webhook);
  CHECK(hook.url == "https://hooks.example.com:8443/jobhost?team=ops");
  CHECK(hook.ca_file == file.dir() / "ca.pem");
  CHECK(hook.retries == 5);
  CHECK(hook.timeout == 10s);
  CHECK(hook.headers.size() == 2);

  const auto* a = config->find_job("a");
  CHECK(a->settings->alert_after == 3);
  CHECK(a->settings->expect_success_within == 26h);
  CHECK_FALSE(a->settings->alert_to.has_value());
  const auto* b = config->find_job("b");
  CHECK(b->settings->alert_after == 0);
  CHECK(b->settings->expect_success_within == 26h);
  CHECK(b->settings->alert_to == std::vector<std::string>{"hook"});
}

TEST_CASE("alert settings are not part of the definition hash", "[config][alerts]") {
  config::JobConfig job;
  jobhost::config::own_settings(job).plugin = "hello";
  const std::string before = config::compute_definition_hash(job);
  jobhost::config::own_settings(job).alert_after = 5;
  jobhost::config::own_settings(job).expect_success_within = 1h;
  jobhost::config::own_settings(job).alert_to = std::vector<std::string>{"ops"};
  CHECK(config::compute_definition_hash(job) == before);
}

TEST_CASE("parse_url splits http and https URLs", "[config][alerts]") {
  auto u = config::parse_url("https://hooks.example.com/a/b?c=d");
  REQUIRE(u.has_value());
  CHECK(u->tls);
  CHECK(u->host == "hooks.example.com");
  CHECK(u->port == 443);
  CHECK(u->target == "/a/b?c=d");
  auto v6 = config::parse_url("http://[::1]:8080");
  REQUIRE(v6.has_value());
  CHECK_FALSE(v6->tls);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 8080);
  CHECK(v6->target == "/");
  CHECK_FALSE(config::parse_url("ftp://x/").has_value());
  CHECK_FALSE(config::parse_url("https://user:pw@x/").has_value());
  CHECK_FALSE(config::parse_url("https://x:99999/").has_value());
  CHECK_FALSE(config::parse_url("https:///path").has_value());
  CHECK_FALSE(config::parse_url("https://x/a b").has_value());
}

TEST_CASE("a command notifier's user and group load; user = root is warned about",
          "[config][alerts]") {
  {
    TempConfig file(
        "[alerts.x]\ntype = \"command\"\ncommand = [\"/bin/sh\"]\nuser = \"nobody\"\n"
        "group = \"0\"\n");
    auto config = load_config(file.file());
    REQUIRE(config.has_value());
    REQUIRE(config->alerts.size() == 1);
    CHECK(config->alerts[0].user == "nobody");
    CHECK(config->alerts[0].group == "0");
    CHECK(config->warnings.empty());
  }
  {
    TempConfig file("[alerts.x]\ntype = \"command\"\ncommand = [\"/bin/sh\"]\nuser = \"root\"\n");
    auto config = load_config(file.file());
    REQUIRE(config.has_value());
    REQUIRE(config->warnings.size() == 1);
    CHECK(config->warnings[0].where.line == 4);
    CHECK_THAT(config->warnings[0].message, Catch::Contains("runs as root"));
  }
}

TEST_CASE("alert mistakes are reported at their line:col", "[config][alerts]") {
  struct Case {
    std::string toml;
    const char* where;
    const char* says;
  };
  const std::string job = "[jobs.a]\nplugin = \"hello\"\nevery = \"1s\"\n";
  const Case cases[] = {
      {"[alerts.x]\ntype = \"pager\"\ncommand = [\"/bin/sh\"]\n", "2:8",
       "type in [alerts.x]: \"pager\" is not one of \"command\", \"webhook\""},
      {"[alerts.x]\ncommand = [\"/bin/sh\"]\n", "1:1", "[alerts.x] has no type"},
      {"[alerts.x]\ntype = \"command\"\n", "1:1", "[alerts.x] has no command"},
      {"[alerts.x]\ntype = \"webhook\"\n", "1:1", "[alerts.x] has no url"},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"ftp://h/\"\n", "3:7",
       "url in [alerts.x]: \"ftp://h/\" is not an http:// or https:// URL"},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"https://h/\"\nca_file = \"missing.pem\"\n", "4:11",
       "ca_file in [alerts.x]: cannot read"},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"https://h/\"\nca_file = \"jobhost.toml\"\n", "4:11",
       "holds no PEM certificate"},
      {"[alerts.x]\ntype = \"command\"\ncommand = [\"/nonexistent/notify\"]\n", "3:12",
       "\"/nonexistent/notify\" is not an executable file: no such file"},
      {"[alerts.x]\ntype = \"command\"\ncommand = []\n", "3:11", "must name a program"},
      {"[alerts.x]\ntype = \"command\"\ncommand = [\"/bin/sh\"]\nurl = \"https://h/\"\n", "4:1",
       "url in [alerts.x]: only a webhook notifier has it"},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"https://h/\"\nretries = 50\n", "4:11",
       "must be at most 10"},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"https://h/\"\nheaders = { Host = \"x\" }\n", "4:13",
       "jobhost sets this header itself"},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"https://h/\"\ntimout = \"1s\"\n", "4:1",
       "(did you mean \"timeout\"?)"},
      {"[alerts.ops]\ntype = \"command\"\ncommand = [\"/bin/sh\"]\n" + job +
           "alert_to = [\"opz\"]\n",
       "7:13", "alert_to in [jobs.a]: unknown notifier \"opz\" (did you mean \"ops\"?)"},
      {job + "alert_to = [\"ops\"]\n", "4:13", "(no [alerts.NAME] section is defined)"},
      {job + "alert_after = -1\n", "4:15", "alert_after in [jobs.a]: must be at least 0"},
      {job + "expect_success_within = 26\n", "4:25",
       "expect_success_within in [jobs.a]: expected a duration string"},
      {"[defaults]\nalert_to = \"ops\"\n", "2:12", "alert_to in [defaults]: expected a list"},
      {job + "url = \"https://h/\"\n", "4:1", "it belongs in [alerts.NAME]"},
      {"[alerts.x]\ntype = \"command\"\ncommand = [\"/bin/sh\"]\nuser = \"no-such-user-jh\"\n",
       "4:8", "user in [alerts.x]: unknown user \"no-such-user-jh\""},
      {"[alerts.x]\ntype = \"command\"\ncommand = [\"/bin/sh\"]\ngroup = \"no-such-group-jh\"\n",
       "4:9", "group in [alerts.x]: unknown group \"no-such-group-jh\""},
      {"[alerts.x]\ntype = \"webhook\"\nurl = \"https://h/\"\nuser = \"nobody\"\n", "4:1",
       "user in [alerts.x]: only a command notifier has it"},
  };
  for (const Case& c : cases) {
    INFO("config:\n" << c.toml);
    TempConfig file(c.toml);
    auto config = load_config(file.file());
    REQUIRE_FALSE(config.has_value());
    const auto& errors = config.error();
    std::string listing;
    for (const auto& e : errors) listing += e.to_string() + "\n";
    INFO("errors:\n" << listing);
    REQUIRE(errors.size() == 1);
    CHECK(fmt::format("{}:{}", errors[0].where.line, errors[0].where.column).starts_with(c.where));
    CHECK_THAT(errors[0].message, Catch::Contains(c.says));
  }
}
