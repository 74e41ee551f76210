// Chains (on_success, on_failure, on_done): parsed, defaulted from
// [defaults], their jobs checked, cycles refused with the cycle printed, and
// kept out of the definition hash.
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <string>

#include "config/config.h"
#include "config/temp_config.h"

using namespace jobhost;
using jobhost::config::load_config;
using jobhost::config::test::TempConfig;
using jobhost::config::test::errors_of;

namespace {

// The errors of loading `toml`, one "line:col: message" a line.
std::string job(const std::string& name, const std::string& extra = "") {
  return fmt::format("[jobs.{}]\nplugin = \"hello\"\nschedule = \"@manual\"\n{}\n", name, extra);
}

}  // namespace

TEST_CASE("chains load, [defaults] included, out of the definition hash", "[config][chain]") {
  TempConfig file("[defaults]\non_failure = [\"page\"]\n\n" +
                  job("a", "on_success = [\"report\", \"report\"]\non_done = [\"log\"]") +
                  job("report") + job("log") + job("page", "on_failure = []"));
  auto loaded = load_config(file.file());
  INFO((loaded ? "" : loaded.error().front().to_string()));
  REQUIRE(loaded);
  const auto& a = *loaded->find_job("a")->settings;
  CHECK(a.on_success == std::vector<std::string>{"report"});  // once
  CHECK(a.on_failure == std::vector<std::string>{"page"});    // from [defaults]
  CHECK(a.on_done == std::vector<std::string>{"log"});
  CHECK(loaded->find_job("page")->settings->on_failure.empty());

  TempConfig plain(job("a") + job("report") + job("log") + job("page"));
  auto without = load_config(plain.file());
  REQUIRE(without);
  CHECK(without->find_job("a")->definition_hash == loaded->find_job("a")->definition_hash);
}

TEST_CASE("a chain to a job that does not exist, or a cycle, is an error at its place",
          "[config][chain]") {
  struct Case {
    std::string toml;
    std::string says;  // a substring of the errors
  };
  const Case cases[] = {
      {job("a", "on_success = [\"reprot\"]") + job("report"),
       "4:15: on_success in [jobs.a]: no job named \"reprot\" (did you mean \"report\"?)"},
      {job("a", "on_failure = [\"b\"]") + job("b", "on_done = [\"a\"]"),
       "4:15: chain cycle: a → b → a"},
      {job("a", "on_success = [\"a\"]"), "4:15: chain cycle: a → a"},
      {job("a", "on_done = [\"b\"]") + job("b", "on_success = [\"c\"]") +
           job("c", "on_failure = [\"b\"]"),
       "chain cycle: b → c → b"},
      // From [defaults]: every job pages, the pager too.
      {"[defaults]\non_failure = [\"page\"]\n\n" + job("a") + job("page"),
       "2:15: chain cycle: page → page"},
      {job("a", "on_done = \"b\"") + job("b"),
       "4:11: on_done in [jobs.a]: expected a list of job names"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    CHECK_THAT(errors_of(c.toml), Catch::Contains(c.says));
  }
}

TEST_CASE("find_chain_cycle: the path that closes a cycle, or none", "[config][chain]") {
  const auto jobs_of = [](std::vector<std::pair<std::string, std::vector<std::string>>> links) {
    std::vector<config::JobConfig> jobs;
    for (auto& [name, done] : links) {
      config::JobConfig j;
      j.name = name;
      config::own_settings(j).on_done = done;
      jobs.push_back(std::move(j));
    }
    return jobs;
  };
  using Path = std::optional<std::vector<std::string>>;
  CHECK(config::find_chain_cycle(jobs_of({{"a", {"b"}}, {"b", {"c"}}, {"c", {}}})) == Path());
  CHECK(config::find_chain_cycle(jobs_of({{"a", {"b", "c"}}, {"b", {"c"}}, {"c", {}}})) ==
        Path());  // a diamond is no cycle
  CHECK(config::find_chain_cycle(jobs_of({{"a", {"missing"}}})) == Path());
  CHECK(config::find_chain_cycle(jobs_of({{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}})) ==
        Path({"a", "b", "c", "a"}));
  CHECK(config::find_chain_cycle(jobs_of({{"x", {"a"}}, {"a", {"b"}}, {"b", {"a"}}})) ==
        Path({"a", "b", "a"}));
  // A long chain, iteratively: no stack to overflow.
  std::vector<std::pair<std::string, std::vector<std::string>>> long_chain;
  for (int i = 0; i < 100000; ++i) {
    long_chain.push_back({fmt::format("j{}", i), {fmt::format("j{}", i + 1)}});
  }
  CHECK(config::find_chain_cycle(jobs_of(long_chain)) == Path());
}

TEST_CASE("[groups.NAME] and concurrency_group, priority: loaded, mistakes at their place",
          "[config][groups]") {
  TempConfig file("[groups.db]\nmax_concurrency = 2\n\n[defaults]\nconcurrency_group = \"db\"\n\n" +
                  job("a", "priority = 7") + job("b"));
  auto loaded = load_config(file.file());
  INFO((loaded ? "" : loaded.error().front().to_string()));
  REQUIRE(loaded);
  REQUIRE(loaded->groups.size() == 1);
  CHECK(loaded->find_group("db")->max_concurrency == 2);
  CHECK(loaded->find_job("a")->settings->concurrency_group == "db");
  CHECK(loaded->find_job("a")->settings->priority == 7);
  CHECK(loaded->find_job("b")->settings->priority == 0);

  struct Case {
    std::string toml;
    std::string says;
  };
  const Case cases[] = {
      {"[groups.db]\nmax_concurrency = 2\n\n" + job("a", "concurrency_group = \"bd\""),
       "7:21: concurrency_group in [jobs.a]: unknown group \"bd\" (did you mean \"db\"?)"},
      {job("a", "concurrency_group = \"db\""), "unknown group \"db\" (define it: [groups.NAME]"},
      {"[groups.db]\n", "[groups.db] has no max_concurrency"},
      {"[groups.db]\nmax_concurrency = 0\n", "2:19: max_concurrency in [groups.db]"},
      {"[groups.db]\nmax_concurency = 2\n", "did you mean \"max_concurrency\"?"},
      {job("a", "priority = \"high\""), "4:12: priority in [jobs.a]: expected an integer"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    CHECK_THAT(errors_of(c.toml), Catch::Contains(c.says));
  }
}
