// [host] include: jobs in other files, their errors at their own file:line:col.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using jobhost::config::Config;
using jobhost::config::ConfigError;
using jobhost::config::include_name_matches;
using jobhost::config::include_patterns;
using jobhost::config::load_config;
using jobhost::config::load_host_section;
using jobhost::config::test::TempConfig;

namespace {

// A job that is valid on its own, in three lines.
std::string job(std::string_view name) {
  return fmt::format("[jobs.{}]\nplugin = \"p\"\nevery = \"1m\"\n", name);
}

void write(const fs::path& file, std::string_view text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

std::string all_errors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

Config load_ok(const fs::path& file) {
  auto config = load_config(file);
  if (!config) FAIL(all_errors(config.error()));
  return *config;
}

std::vector<std::string> job_names(const Config& config) {
  std::vector<std::string> names;
  for (const auto& j : config.jobs) names.push_back(j.name);
  return names;
}

}  // namespace

TEST_CASE("included files add their jobs after the main file's, file by file in name order",
          "[config][include]") {
  TempConfig config(
      "[host]\ninclude = [\"jobs.d/*.toml\"]\n\n[defaults]\ntimeout = \"7m\"\n\n"
      "[secrets.db]\nenv = \"DB_URL\"\n\n" +
      job("main"));
  const fs::path jobs = config.dir() / "jobs.d";
  write(jobs / "20-b.toml", job("b2") + "\n" + job("b1"));
  write(jobs / "10-a.toml", job("a") + "secrets = [\"db\"]\n");
  // A ConfigMap's files are symbolic links: followed.
  write(config.dir() / "elsewhere" / "c.toml", job("c"));
  fs::create_symlink("../elsewhere/c.toml", jobs / "30-c.toml");
  // Editors' and tools' files the pattern does not match are never read.
  for (const char* other : {".10-a.toml.swp", "10-a.toml~", ".hidden.toml", "notes.txt", "4913"}) {
    write(jobs / other, "this is not TOML [[[");
  }

  const Config loaded = load_ok(config.file());
  CHECK(job_names(loaded) == std::vector<std::string>{"main", "a", "b2", "b1", "c"});
  CHECK(loaded.host.include == std::vector<fs::path>{jobs / "*.toml"});
  CHECK(loaded.included_files ==
        std::vector<fs::path>{jobs / "10-a.toml", jobs / "20-b.toml", jobs / "30-c.toml"});
  // Each job knows where it was written; [defaults] and [secrets] of the main file apply.
  const auto* b1 = loaded.find_job("b1");
  REQUIRE(b1 != nullptr);
  CHECK(b1->pos.file == (jobs / "20-b.toml").string());
  CHECK(b1->pos.line == 5);
  CHECK(b1->settings->timeout == 7min);
  const auto* a = loaded.find_job("a");
  REQUIRE(a != nullptr);
  REQUIRE(a->settings->secrets.size() == 1);
  CHECK(a->settings->secrets[0].name == "db");
  CHECK_FALSE(a->definition_hash.empty());
}

TEST_CASE("an empty include directory is a config with the main file's jobs", "[config][include]") {
  TempConfig config("[host]\ninclude = [\"jobs.d/*.toml\"]\n" + job("main"));
  fs::create_directory(config.dir() / "jobs.d");
  const Config loaded = load_ok(config.file());
  CHECK(job_names(loaded) == std::vector<std::string>{"main"});
  CHECK(loaded.included_files.empty());
}

TEST_CASE("include patterns are relative to the config file; included files are shown as it is",
          "[config][include]") {
  jobhost::testing::TempDir dir;
  write(dir / "etc/jobhost.toml", "[host]\ninclude = [\"jobs.d/*.toml\", \"../shared/*.toml\"]\n");
  write(dir / "etc/jobs.d/a.toml", job("a"));
  write(dir / "shared/b.toml", job("b"));
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  auto loaded = load_config("etc/jobhost.toml");
  write(dir / "shared/b.toml", job("b") + "timout = \"5s\"\n");
  auto rejected = load_config("etc/jobhost.toml");
  fs::current_path(cwd);

  REQUIRE(loaded);
  CHECK(loaded->host.include ==
        std::vector<fs::path>{dir / "etc/jobs.d/*.toml", dir / "shared/*.toml"});
  CHECK(job_names(*loaded) == std::vector<std::string>{"a", "b"});
  CHECK(loaded->find_job("a")->pos.file == "etc/jobs.d/a.toml");
  CHECK(loaded->find_job("b")->pos.file == "shared/b.toml");
  REQUIRE_FALSE(rejected);
  REQUIRE(rejected.error().size() == 1);
  CHECK(rejected.error()[0].to_string() ==
        "shared/b.toml:4:1: unknown key \"timout\" in [jobs.b] (did you mean \"timeout\"?)");
}

TEST_CASE("an error in an included file is at its file:line:col, after the main file's",
          "[config][include]") {
  TempConfig config("[host]\ninclude = [\"jobs.d/*.toml\"]\n" + job("main") + "enabeld = true\n");
  const fs::path jobs = config.dir() / "jobs.d";
  write(jobs / "a.toml", job("a") + "retry = { max_attemps = 3 }\n");
  write(jobs / "b.toml", "# a comment\n[jobs.b\nplugin = \"p\"\n");
  write(jobs / "c.toml", job("c") + "\n" + job("c"));
  auto loaded = load_config(config.file());
  REQUIRE_FALSE(loaded);
  const std::string main = config.file().string();
  const std::string a = (jobs / "a.toml").string();
  const std::string b = (jobs / "b.toml").string();
  const std::string c = (jobs / "c.toml").string();
  INFO(all_errors(loaded.error()));
  REQUIRE(loaded.error().size() == 4);
  CHECK(loaded.error()[0].to_string() ==
        main + ":6:1: unknown key \"enabeld\" in [jobs.main] (did you mean \"enabled\"?)");
  CHECK(loaded.error()[1].to_string() ==
        a + ":4:11: unknown key \"max_attemps\" in [jobs.a.retry] (did you mean "
            "\"max_attempts\"?)");
  CHECK_THAT(loaded.error()[2].to_string(), Catch::StartsWith(b + ":2:8: invalid TOML"));
  // TOML's own duplicate check, with the line in that file.
  CHECK(loaded.error()[3].to_string() ==
        c + ":5:1: duplicate job \"c\": [jobs.c] is defined twice (first defined at line 1); "
            "give each job its own name");
}

TEST_CASE("a job defined in two files is one error naming both places", "[config][include]") {
  TempConfig config("[host]\ninclude = [\"jobs.d/*.toml\"]\n" + job("x"));
  const fs::path jobs = config.dir() / "jobs.d";
  write(jobs / "a.toml", job("y") + job("x"));
  write(jobs / "b.toml", "\n" + job("y"));
  auto loaded = load_config(config.file());
  REQUIRE_FALSE(loaded);
  INFO(all_errors(loaded.error()));
  REQUIRE(loaded.error().size() == 2);
  const std::string a = (jobs / "a.toml").string();
  CHECK(loaded.error()[0].to_string() ==
        a + ":4:1: duplicate job \"x\": [jobs.x] is also defined at " + config.file().string() +
            ":3:1; give each job its own name, in one file");
  CHECK(loaded.error()[1].to_string() ==
        (jobs / "b.toml").string() + ":2:1: duplicate job \"y\": [jobs.y] is also defined at " + a +
            ":1:1; give each job its own name, in one file");
}

TEST_CASE("an included file holds only [jobs.NAME] tables", "[config][include]") {
  TempConfig config("[host]\ninclude = [\"jobs.d/*.toml\"]\n");
  const fs::path file = config.dir() / "jobs.d" / "a.toml";
  write(file, "jbos = 3\n[host]\nmax_concurrency = 2\n\n" + job("a") +
                  "\n[defaults]\ntimeout = \"1m\"\n");
  auto loaded = load_config(config.file());
  REQUIRE_FALSE(loaded);
  INFO(all_errors(loaded.error()));
  REQUIRE(loaded.error().size() == 3);
  CHECK(loaded.error()[0].to_string() ==
        file.string() + ":1:1: unknown key \"jbos\" at the top level (did you mean \"jobs\"?)");
  const std::string set_in = ": set it in " + config.file().string();
  CHECK(loaded.error()[1].to_string() ==
        file.string() +
            ":2:2: [host] cannot be set in an included file, which holds only [jobs.NAME] "
            "tables" +
            set_in);
  CHECK(loaded.error()[2].to_string() ==
        file.string() +
            ":9:2: [defaults] cannot be set in an included file, which holds only "
            "[jobs.NAME] tables" +
            set_in);
}

TEST_CASE("include patterns: each mistake is an error at the pattern", "[config][include]") {
  struct Case {
    std::string include;  // the value, on line 2 after "include = "
    const char* where;    // "line:col"
    std::string says;
  };
  const Case cases[] = {
      {"\"jobs.d/*.toml\"", "2:11",
       "include in [host]: expected a list of file patterns like [\"jobs.d/*.toml\"], got "
       "string"},
      {"[\"*/jobs.toml\"]", "2:12",
       "include in [host]: \"*/jobs.toml\": wildcards are allowed in the file name only"},
      {"[\"missing.d/*.toml\"]", "2:12", "include in [host]: \"missing.d/*.toml\": no directory "},
      {"[\"extra.toml\"]", "2:12", "include in [host]: \"extra.toml\": no such file "},
      {"[\"jobs.d\"]", "2:12", "include in [host]: \"jobs.d\" matches "},
      {"[\"~/jobs/*.toml\"]", "2:12", "\"~\" is not expanded"},
      {"[\"jobs.d/*.toml\", \"\"]", "2:29", "include in [host]: must not be empty"},
  };
  for (const Case& c : cases) {
    INFO(c.include);
    TempConfig config("[host]\ninclude = " + c.include + "\n");
    fs::create_directory(config.dir() / "jobs.d");
    auto loaded = load_config(config.file());
    REQUIRE_FALSE(loaded);
    REQUIRE(loaded.error().size() == 1);
    const ConfigError& e = loaded.error()[0];
    CHECK(e.where.file == config.file().string());
    CHECK(fmt::format("{}:{}", e.where.line, e.where.column) == c.where);
    CHECK_THAT(e.message, Catch::Contains(c.says));
  }
  SECTION("a directory the pattern matches is not a file to read") {
    TempConfig config("[host]\ninclude = [\"jobs.d/*\"]\n");
    fs::create_directories(config.dir() / "jobs.d" / "old");
    auto loaded = load_config(config.file());
    REQUIRE_FALSE(loaded);
    CHECK_THAT(
        loaded.error()[0].message,
        Catch::EndsWith((config.dir() / "jobs.d" / "old").string() + ": not a regular file"));
  }
}

TEST_CASE("the main file is never included again; a file two patterns match is read once",
          "[config][include]") {
  TempConfig config("[host]\ninclude = [\"*.toml\", \"jobs.d/*.toml\", \"jobs.d/a.toml\"]\n" +
                    job("main"));
  write(config.dir() / "jobs.d" / "a.toml", job("a"));
  write(config.dir() / "more.toml", job("more"));
  const Config loaded = load_ok(config.file());
  CHECK(job_names(loaded) == std::vector<std::string>{"main", "more", "a"});
  CHECK(loaded.included_files ==
        std::vector<fs::path>{config.dir() / "more.toml", config.dir() / "jobs.d" / "a.toml"});
}

TEST_CASE("a job's definition hash does not depend on the file it is in", "[config][include]") {
  const std::string settings = "timeout = \"2m\"\nparams = { bucket = \"b\" }\n";
  TempConfig inline_config(job("a") + settings);
  TempConfig included("[host]\ninclude = [\"jobs.d/*.toml\"]\n");
  write(included.dir() / "jobs.d" / "a.toml", "\n\n" + job("a") + settings);
  CHECK(load_ok(inline_config.file()).jobs.at(0).definition_hash ==
        load_ok(included.file()).jobs.at(0).definition_hash);
}

TEST_CASE("load_host_section names included jobs and reads their files", "[config][include]") {
  TempConfig config("[host]\ninclude = [\"jobs.d/*.toml\"]\n" + job("main"));
  const fs::path jobs = config.dir() / "jobs.d";
  write(jobs / "a.toml", job("zeta") + job("alpha"));
  auto section = load_host_section(config.file());
  REQUIRE(section);
  CHECK(section->job_names == std::vector<std::string>{"alpha", "main", "zeta"});
  CHECK(section->has_job("zeta"));

  write(jobs / "b.toml", "[jobs.b\n");
  auto broken = load_host_section(config.file());
  REQUIRE_FALSE(broken);
  CHECK(broken.error()[0].where.file == (jobs / "b.toml").string());
}

TEST_CASE("include_patterns reads the patterns whatever else is wrong", "[config][include]") {
  TempConfig config("[host]\ninclude = [\"jobs.d/*.toml\", \"more.d/*.toml\"]\ncolour = 1\n");
  write(config.dir() / "jobs.d" / "a.toml", "[jobs.a\n");  // and more.d does not exist
  REQUIRE_FALSE(load_config(config.file()));
  CHECK(include_patterns(config.file()) ==
        std::vector<fs::path>{config.dir() / "jobs.d/*.toml", config.dir() / "more.d/*.toml"});
  write(config.file(), "[host\n");
  CHECK_FALSE(include_patterns(config.file()).has_value());
  CHECK_FALSE(include_patterns(config.dir() / "nope.toml").has_value());
}

TEST_CASE("include_name_matches: the glob decides, and hidden names need a written '.'",
          "[config][include]") {
  struct Case {
    const char* glob;
    const char* name;
    bool matches;
  };
  auto [c] = GENERATE(table<Case>({
      {Case{"*.toml", "backup.toml", true}},
      {Case{"*.toml", ".backup.toml", false}},  // hidden
      {Case{"*.toml", ".backup.toml.swp", false}},
      {Case{"*.toml", "backup.toml~", false}},
      {Case{"*.toml", "backup.toml.dpkg-new", false}},
      {Case{"*.toml", "4913", false}},  // vim's probe file
      {Case{".*.toml", ".backup.toml", true}},
      {Case{"job-?.toml", "job-1.toml", true}},
      {Case{"[ab]*.toml", "c.toml", false}},
      {Case{"backup.toml", "backup.toml", true}},
  }));
  INFO(c.glob << " " << c.name);
  CHECK(include_name_matches(c.glob, c.name) == c.matches);
}
