// load_host_section: [host] and the job names, nothing else checked.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

using jobhost::config::ConfigError;
using jobhost::config::Durability;
using jobhost::config::load_config;
using jobhost::config::load_host_section;
using jobhost::config::test::TempConfig;

namespace {

std::string all_errors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

}  // namespace

TEST_CASE("load_host_section reads [host] and the job names, as load_config does", "[config]") {
  TempConfig config(
      "[host]\nstate_dir = \"state\"\ndurability = \"full\"\nid = \"worker-1\"\n"
      "[store]\nurl = \"postgresql://jobhost@db.example/jobhost\"\n"
      "[jobs.b]\nplugin = \"p\"\nevery = \"1m\"\n"
      "[jobs.a]\nplugin = \"p\"\nschedule = \"0 * * * *\"\n");
  auto section = load_host_section(config.file());
  REQUIRE(section);
  auto full = load_config(config.file());
  REQUIRE(full);
  CHECK(section->file == full->file);
  CHECK(section->host.state_dir == full->host.state_dir);
  CHECK(section->host.state_dir == config.dir() / "state");
  CHECK(section->host.plugin_dirs == std::vector<std::filesystem::path>{config.dir() / "plugins"});
  CHECK(section->host.durability == Durability::full);
  CHECK(section->host.id == "worker-1");
  CHECK(section->host.store_url == "postgresql://jobhost@db.example/jobhost");
  CHECK(section->host.store_url == full->host.store_url);
  CHECK(section->job_names == std::vector<std::string>{"a", "b"});  // sorted
  CHECK(section->has_job("a"));
  CHECK_FALSE(section->has_job("c"));
}

TEST_CASE("load_host_section does not check the jobs, nor resolve time zones", "[config]") {
  // Four mistakes load_config refuses: an unknown key, a bad cron field, an
  // unknown zone in a job and in [host].
  TempConfig config(
      "[host]\ntimezone = \"Mars/Olympus\"\n"
      "[jobs.a]\nplugin = \"p\"\nschedule = \"61 * * * *\"\ntimezone = \"Nowhere/City\"\n"
      "[jobs.b]\nplugin = \"p\"\nevery = \"1m\"\ntimout = \"5s\"\n"
      "[jobs.c]\n");
  auto full = load_config(config.file());
  REQUIRE_FALSE(full);
  CHECK(full.error().size() >= 4);
  auto section = load_host_section(config.file());
  INFO((section ? std::string() : all_errors(section.error())));
  REQUIRE(section);
  CHECK(section->host.timezone == "Mars/Olympus");
  CHECK(section->host.state_dir == config.dir() / "var");
  CHECK(section->job_names == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("load_host_section: mistakes in what it reads fail it at file:line:col", "[config]") {
  SECTION("[host]") {
    TempConfig config(
        "[host]\nstate_dir = 7\nmax_concurency = 2\n"
        "[jobs.a]\nplugin = \"p\"\nevery = \"1m\"\n");
    auto section = load_host_section(config.file());
    REQUIRE_FALSE(section);
    const std::string file = config.file().string();
    REQUIRE(section.error().size() == 2);
    CHECK(section.error()[0].to_string() ==
          file + ":2:13: state_dir in [host]: expected a string, got integer");
    CHECK(section.error()[1].to_string().starts_with(
        file +
        ":3:1: unknown key \"max_concurency\" in [host] (did you mean \"max_concurrency\"?)"));
  }
  SECTION("TOML syntax anywhere in the file") {
    TempConfig config("[host]\n[jobs.a]\nplugin = \"p\nevery = \"1m\"\n");
    auto section = load_host_section(config.file());
    REQUIRE_FALSE(section);
    REQUIRE(section.error().size() == 1);
    CHECK(section.error()[0].where.line == 3);
  }
  SECTION("a missing file") {
    TempConfig config("");
    auto section = load_host_section(config.dir() / "nope.toml");
    REQUIRE_FALSE(section);
    CHECK_THAT(section.error()[0].to_string(), Catch::Contains("nope.toml: cannot read"));
  }
  SECTION("[jobs] that is not a table of tables names no job") {
    TempConfig config("jobs = 3\n");
    auto section = load_host_section(config.file());
    REQUIRE(section);
    CHECK(section->job_names.empty());
  }
}
