// command, shell, cwd and stdin: the exec plugin's job keys, read in
// [jobs.NAME] only, handed to the plugin as params, checked at line:col,
// part of the definition hash.
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

using jobhost::config::load_config;
using jobhost::config::test::TempConfig;
using jobhost::config::test::errors_of;
using jobhost::config::test::job_of;

namespace {

// A job without plugin or command, taking lines 1-2; cases add lines from 3 on.
constexpr std::string_view kJob = "[jobs.a]\nschedule = \"@manual\"\n";

using Params = std::map<std::string, std::string>;

}  // namespace

TEST_CASE("exec: command implies the exec plugin and reaches it as params", "[config][exec]") {
  const std::string job(kJob);
  auto argv = job_of(job +
                     "command = [\"/usr/local/bin/backup\", \"--full\", \"a \\\"b\\\"\\\\c\", "
                     "\"tab\\there\", \"grüß\"]\n");
  CHECK(argv.settings->plugin == "exec");
  CHECK(argv.plugin_pos.line == 3);
  CHECK(argv.plugin_pos.column == 11);
  CHECK(argv.settings->params ==
        Params{{"command",
                R"(["/usr/local/bin/backup","--full","a \"b\"\\c","tab\u0009here","grüß"])"}});

  auto shell = job_of(job +
                      "plugin = \"exec\"\ncommand = \"pg_dump db | gzip > /var/backups/db.gz\"\n"
                      "shell = true\ncwd = \"/var/backups\"\nstdin = \"line 1\\nline 2\\n\"\n"
                      "env = { LEVEL = \"full\" }\n");
  CHECK(shell.settings->plugin == "exec");
  CHECK(shell.settings->params == Params{{"command", "pg_dump db | gzip > /var/backups/db.gz"},
                                         {"shell", "true"},
                                         {"cwd", "/var/backups"},
                                         {"stdin", "line 1\nline 2\n"}});
  CHECK(shell.settings->env.at("LEVEL") == "full");

  // shell = false is the default, written or not: no "shell" param.
  auto plain = job_of(job + "command = [\"date\"]\nshell = false\nstdin = \"\"\n");
  CHECK(plain.settings->params == Params{{"command", R"(["date"])"}, {"stdin", ""}});

  // A relative cwd is a path relative to the config file, as every path.
  TempConfig file(job + "command = [\"date\"]\ncwd = \"work/../out\"\n");
  auto config = load_config(file.file());
  REQUIRE(config);
  CHECK(config->jobs[0].settings->params.at("cwd") == (file.dir() / "out").string());

  // A job's other params stay as they are.
  auto mixed = job_of(job + "command = [\"date\"]\nparams = { note = \"hi\" }\n");
  CHECK(mixed.settings->params == Params{{"command", R"(["date"])"}, {"note", "hi"}});
}

TEST_CASE("exec: each mistake is one error at its line:col", "[config][exec]") {
  struct Case {
    std::string toml;
    const char* where;  // "line:col"
    const char* says;   // a substring of the message
    int count = 1;      // errors in all
  };
  const std::string job(kJob);
  const Case cases[] = {
      // command with another plugin
      {job + "plugin = \"hello\"\ncommand = [\"/bin/date\"]\n", "4:11",
       "command in [jobs.a]: command runs a program through the exec plugin, but the job's "
       "plugin is \"hello\"; remove plugin"},
      // shell, cwd, stdin without command
      {job + "plugin = \"hello\"\nshell = true\n", "4:1",
       "shell in [jobs.a]: only a job with a command has it"},
      {job + "plugin = \"hello\"\ncwd = \"/tmp\"\n", "4:1",
       "cwd in [jobs.a]: only a job with a command has it"},
      {job + "plugin = \"hello\"\nstdin = \"x\"\n", "4:1",
       "stdin in [jobs.a]: only a job with a command has it"},
      // plugin = "exec" without command; neither plugin nor command
      {job + "plugin = \"exec\"\n", "1:1",
       "[jobs.a] runs plugin \"exec\" but has no command: add command = "},
      {job, "1:1", "[jobs.a] has no plugin: add plugin = \"NAME\""},
      // the shape of command
      {job + "command = \"/bin/date -u\"\n", "3:11",
       "command in [jobs.a]: a string is a shell command line: add shell = true"},
      {job + "command = [\"/bin/sh\", \"-c\", \"date\"]\nshell = true\n", "3:11",
       "command in [jobs.a]: with shell = true, write the command as one string for /bin/sh -c"},
      {job + "command = []\n", "3:11", "command in [jobs.a]: must name a program"},
      {job + "command = [\"\", \"x\"]\n", "3:12",
       "command in [jobs.a]: the program must not be empty"},
      {job + "command = [\"/bin/date\", 3]\n", "3:25",
       "command in [jobs.a]: expected a string, got integer"},
      {job + "command = [\"/bin/a\\u0000b\"]\n", "3:12",
       "command in [jobs.a]: an argument must not contain a NUL byte"},
      {job + "command = 3\n", "3:11",
       "command in [jobs.a]: expected a list like [\"/usr/local/bin/backup\", \"--full\"], got "
       "integer"},
      {job + "command = \"\"\nshell = true\n", "3:11", "command in [jobs.a]: must not be empty"},
      {job + "command = 3\nshell = true\n", "3:11",
       "command in [jobs.a]: expected a string (shell = true runs /bin/sh -c COMMAND), got "
       "integer"},
      {job + "command = \"a\\u0000b\"\nshell = true\n", "3:11",
       "command in [jobs.a]: must not contain NUL"},
      {job + "command = [\"/bin/date\"]\nshell = \"yes\"\n", "4:9",
       "shell in [jobs.a]: expected true or false, got string"},
      // cwd and stdin
      {job + "command = [\"/bin/date\"]\ncwd = \"\"\n", "4:7",
       "cwd in [jobs.a]: must not be empty"},
      {job + "command = [\"/bin/date\"]\ncwd = \"~/x\"\n", "4:7",
       "cwd in [jobs.a]: \"~\" is not expanded"},
      {job + "command = [\"/bin/date\"]\ncwd = \"/a\\u0000b\"\n", "4:7",
       "cwd in [jobs.a]: a path must not contain NUL"},
      {job + "command = [\"/bin/date\"]\ncwd = 1\n", "4:7",
       "cwd in [jobs.a]: expected a string, got integer"},
      {job + "command = [\"/bin/date\"]\nstdin = [\"a\"]\n", "4:9",
       "stdin in [jobs.a]: expected a string, got array"},
      {job + "command = [\"/bin/date\"]\nstdin = \"a\\u0000\"\n", "4:9",
       "stdin in [jobs.a]: must not contain NUL"},
      {job + "command = [\"/bin/date\"]\nstdin = \"" + std::string(64 * 1024 + 1, 'x') + "\"\n",
       "4:9", "stdin in [jobs.a]: at most 65536 bytes (got 65537)"},
      // the params an exec job takes from its own keys
      {job + "command = [\"/bin/date\"]\nparams = { command = \"x\" }\n", "4:12",
       "params.command in [jobs.a]: an exec job takes command from the job key of that name, "
       "not from params: write command = ... in [jobs.a] itself"},
      {job + "plugin = \"exec\"\ncommand = [\"/bin/date\"]\n[jobs.a.params]\nstdin = \"x\"\n",
       "6:1", "params.stdin in [jobs.a]: an exec job takes stdin from the job key"},
      {job + "plugin = \"exec\"\nparams = { cwd = \"/srv\" }\n", "4:12",
       "params.cwd in [jobs.a]: an exec job takes cwd from the job key", 2},  // and no command
      // job-only keys
      {"[defaults]\ncommand = [\"/bin/date\"]\n", "2:1",
       "\"command\" cannot be set in [defaults]: set it in each [jobs.NAME]"},
      {"[defaults]\nshell = true\n", "2:1", "\"shell\" cannot be set in [defaults]"},
      {"[host]\ncwd = \"/\"\n", "2:1", "unknown key \"cwd\" in [host]: it belongs in [jobs.NAME]"},
  };
  for (const auto& c : cases) {
    INFO(c.toml.substr(0, 300));
    const std::string errors = errors_of(c.toml);
    CHECK_THAT(errors, Catch::Contains(std::string(c.where) + ": " + c.says));
    // One error per mistake.
    CHECK(std::count(errors.begin(), errors.end(), '\n') == c.count);
  }
  // Params of the same names are the plugin's own business when it is not exec.
  CHECK(errors_of(job + "plugin = \"hello\"\nparams = { command = \"x\", cwd = \"y\" }\n") == "");
}

TEST_CASE("exec: an unknown exec plugin is reported at command", "[config][exec]") {
  TempConfig file(std::string(kJob) + "command = [\"/bin/date\"]\n");
  auto config = load_config(file.file(), std::set<std::string>{"hello"});
  REQUIRE_FALSE(config);
  REQUIRE(config.error().size() == 1);
  CHECK(config.error()[0].where.line == 3);
  CHECK(config.error()[0].where.column == 11);
  CHECK(config.error()[0].kind == jobhost::config::ConfigError::Kind::unknown_plugin);
  CHECK_THAT(config.error()[0].message, Catch::Contains("unknown plugin \"exec\" in [jobs.a]"));
  CHECK(load_config(file.file(), std::set<std::string>{"hello", "exec"}));
}

TEST_CASE("exec: the keys are part of the definition hash", "[config][exec]") {
  const std::string job(kJob);
  const std::string base = job + "command = [\"/bin/backup\", \"--full\"]\n";
  const std::string hash = job_of(base).definition_hash;
  CHECK(job_of(job + "plugin = \"exec\"\ncommand = [\"/bin/backup\", \"--full\"]\n")
            .definition_hash == hash);
  for (const std::string& other : {
           job + "command = [\"/bin/backup\", \"--fast\"]\n",
           job + "command = [\"/bin/backup\", \"--full\", \"\"]\n",
           job + "command = \"/bin/backup --full\"\nshell = true\n",
           base + "cwd = \"/srv\"\n",
           base + "stdin = \"\"\n",
           base + "stdin = \"x\"\n",
       }) {
    INFO(other);
    CHECK(job_of(other).definition_hash != hash);
  }
  CHECK(job_of(base + "shell = false\n").definition_hash == hash);
}
