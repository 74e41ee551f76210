// The sandbox keys (network, private_tmp, read_only, read_write_paths,
// syscall_filter): parsed in [defaults] and [jobs.NAME], validated at
// line:col, and part of the definition hash.
#include <string>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

using jobhost::config::compute_definition_hash;
using jobhost::config::load_config;
using jobhost::config::Network;
using jobhost::config::Sandbox;
using jobhost::config::SyscallFilter;
using jobhost::config::test::TempConfig;

namespace {

constexpr std::string_view kJob = "[jobs.a]\nplugin = \"hello\"\nevery = \"1s\"\n";

Sandbox sandbox_of(const std::string& toml) {
  TempConfig file(toml);
  auto config = load_config(file.file());
  if (!config) {
    std::string all;
    for (const auto& e : config.error()) all += e.to_string() + "\n";
    FAIL(all);
  }
  REQUIRE(config->jobs.size() == 1);
  return config->jobs[0].settings->sandbox;
}

template <class F>
Sandbox sb(F set) {
  Sandbox s;
  set(s);
  return s;
}

}  // namespace

TEST_CASE("sandbox defaults: host network, shared /tmp, writable, default syscall filter") {
  const Sandbox s = sandbox_of(std::string(kJob));
  CHECK(s.network == Network::host);
  CHECK_FALSE(s.private_tmp);
  CHECK_FALSE(s.read_only);
  CHECK(s.read_write_paths.empty());
  CHECK(s.syscall_filter == SyscallFilter::standard);
  CHECK(to_string(s.syscall_filter) == "default");
}

TEST_CASE("sandbox keys are read in the job and in [defaults]") {
  struct Case {
    std::string toml;
    Sandbox expected;
  };
  const std::string job(kJob);
  const Case cases[] = {
      {job + "network = \"none\"\n", sb([](Sandbox& s) { s.network = Network::none; })},
      {job + "network = \"host\"\n", {}},
      {job + "private_tmp = true\n", sb([](Sandbox& s) { s.private_tmp = true; })},
      {job + "read_only = true\n", sb([](Sandbox& s) { s.read_only = true; })},
      {job + "read_only = true\nread_write_paths = [\"/var/cache/x/\", \"/srv/a/../b\", "
             "\"/var/cache/x\"]\n",
       sb([](Sandbox& s) {
         s.read_only = true;
         s.read_write_paths = {"/var/cache/x", "/srv/b"};
       })},
      {job + "syscall_filter = \"none\"\n",
       sb([](Sandbox& s) { s.syscall_filter = SyscallFilter::none; })},
      {job + "syscall_filter = \"default\"\n", {}},
      // [defaults] applies to every job, which may override it.
      {"[defaults]\nnetwork = \"none\"\nread_only = true\nsyscall_filter = \"none\"\n" + job,
       sb([](Sandbox& s) {
         s.network = Network::none;
         s.read_only = true;
         s.syscall_filter = SyscallFilter::none;
       })},
      {"[defaults]\nnetwork = \"none\"\nprivate_tmp = true\n" + job + "network = \"host\"\n",
       sb([](Sandbox& s) { s.private_tmp = true; })},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    const Sandbox s = sandbox_of(c.toml);
    CHECK(s.network == c.expected.network);
    CHECK(s.private_tmp == c.expected.private_tmp);
    CHECK(s.read_only == c.expected.read_only);
    CHECK(s.read_write_paths == c.expected.read_write_paths);
    CHECK(s.syscall_filter == c.expected.syscall_filter);
  }
}

TEST_CASE("a wrong sandbox value is an error at its line:col naming the allowed values") {
  struct Case {
    std::string toml;
    const char* where;
    const char* says;
  };
  const std::string job(kJob);
  const Case cases[] = {
      {job + "network = \"off\"\n", "4:11",
       "network in [jobs.a]: \"off\" is not one of \"host\", \"none\""},
      {job + "network = \"nonee\"\n", "4:11", "(did you mean \"none\"?)"},
      {job + "network = false\n", "4:11", "expected one of \"host\", \"none\", got boolean"},
      {job + "syscall_filter = \"strict\"\n", "4:18",
       "syscall_filter in [jobs.a]: \"strict\" is not one of \"default\", \"none\""},
      {"[defaults]\nsyscall_filter = \"defualt\"\n", "2:18",
       "syscall_filter in [defaults]: \"defualt\" is not one of \"default\", \"none\" (did you "
       "mean \"default\"?)"},
      {job + "private_tmp = \"yes\"\n", "4:15", "private_tmp in [jobs.a]: expected true or false"},
      {job + "read_only = 1\n", "4:13", "read_only in [jobs.a]: expected true or false"},
      {job + "read_write_paths = \"/srv\"\n", "4:20",
       "read_write_paths in [jobs.a]: expected a list of absolute paths"},
      {job + "read_write_paths = [\"/srv\", \"data\"]\n", "4:29",
       "\"data\" is not an absolute path"},
      {job + "read_write_paths = [\"/srv\", 3]\n", "4:29", "expected a string, got integer"},
      {job + "read_write_paths = [\"\"]\n", "4:21", "must not be empty"},
      {job + "read_write_paths = [\"/tmp/..\"]\n", "4:21",
       "\"/\" would make the whole file system writable"},
      {"[defaults]\nread_write_paths = [\"rel\"]\n", "2:21",
       "read_write_paths in [defaults]: \"rel\" is not an absolute path"},
      {job + "netwrok = \"none\"\n", "4:1", "(did you mean \"network\"?)"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    TempConfig file(c.toml);
    auto config = load_config(file.file());
    REQUIRE_FALSE(config.has_value());
    REQUIRE(config.error().size() == 1);
    const auto& e = config.error()[0];
    CHECK(fmt::format("{}:{}", e.where.line, e.where.column).starts_with(c.where));
    CHECK_THAT(e.message, Catch::Contains(c.says));
    CHECK_THAT(e.to_string(), Catch::StartsWith(file.file().string() + ":"));
  }
}

TEST_CASE("every sandbox key changes the definition hash; defaults leave it as before") {
  jobhost::config::JobConfig base;
  base.name = "a";
  jobhost::config::own_settings(base).plugin = "hello";
  const std::string plain = compute_definition_hash(base);
  // The hash of a job without sandbox keys did not change when they were added.
  jobhost::config::JobConfig same = base;
  jobhost::config::own_settings(same).sandbox = Sandbox{};
  CHECK(compute_definition_hash(same) == plain);

  std::vector<Sandbox> variants = {
      sb([](Sandbox& s) { s.network = Network::none; }),
      sb([](Sandbox& s) { s.private_tmp = true; }),
      sb([](Sandbox& s) { s.read_only = true; }),
      sb([](Sandbox& s) {
        s.read_only = true;
        s.read_write_paths = {"/srv"};
      }),
      sb([](Sandbox& s) {
        s.read_only = true;
        s.read_write_paths = {"/srv", "/var"};
      }),
      sb([](Sandbox& s) { s.syscall_filter = SyscallFilter::none; }),
  };
  std::vector<std::string> hashes{plain};
  for (const auto& v : variants) {
    jobhost::config::JobConfig job = base;
    jobhost::config::own_settings(job).sandbox = v;
    const std::string h = compute_definition_hash(job);
    for (const auto& other : hashes) CHECK(h != other);
    hashes.push_back(h);
  }
}

TEST_CASE("read_write_paths without read_only is a warning") {
  TempConfig file(std::string(kJob) + "read_write_paths = [\"/srv\"]\n");
  auto config = load_config(file.file());
  REQUIRE(config);
  REQUIRE(config->warnings.size() == 1);
  CHECK(config->warnings[0].where.line == 1);
  CHECK_THAT(config->warnings[0].message,
             Catch::Contains("read_write_paths has no effect without read_only = true"));
  TempConfig quiet(std::string(kJob) + "read_only = true\nread_write_paths = [\"/srv\"]\n");
  auto fine = load_config(quiet.file());
  REQUIRE(fine);
  CHECK(fine->warnings.empty());
}
