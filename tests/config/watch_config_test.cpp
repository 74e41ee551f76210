// watch = { paths, events, debounce }: file triggers read in [jobs.NAME]
// only, validated at line:col with suggestions, part of the definition hash.
#include <string>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

using jobhost::config::FileEvent;
using jobhost::config::load_config;
using jobhost::config::Watch;
using jobhost::config::test::TempConfig;
using jobhost::config::test::errors_of;
using jobhost::config::test::job_of;
using namespace std::chrono_literals;

namespace {

// A job without a schedule, taking lines 1-2; cases add lines from 3 on.
constexpr std::string_view kJob = "[jobs.a]\nplugin = \"hello\"\n";

}  // namespace

TEST_CASE("watch: defaults, normalised paths, events in a fixed order", "[config][watch]") {
  const std::string job(kJob);
  auto a = job_of(job + "watch = { paths = [\"/srv/in/*.csv\"] }\n");
  REQUIRE(a.settings->watch);
  CHECK(a.settings->watch->paths == std::vector<std::string>{"/srv/in/*.csv"});
  CHECK(a.settings->watch->events ==
        std::vector<FileEvent>{FileEvent::close_write, FileEvent::moved_to});
  CHECK(a.settings->watch->debounce == 2s);

  auto b = job_of(job +
                  "[jobs.a.watch]\npaths = [\"/srv//in/./x/../*.csv\", \"/srv/in/*.csv\", "
                  "\"/srv/ready\"]\nevents = [\"delete\", \"create\", \"delete\", \"attrib\", "
                  "\"modify\", \"moved_from\"]\ndebounce = \"250ms\"\n");
  REQUIRE(b.settings->watch);
  CHECK(b.settings->watch->paths == std::vector<std::string>{"/srv/in/*.csv", "/srv/ready"});
  CHECK(b.settings->watch->events ==
        std::vector<FileEvent>{FileEvent::create, FileEvent::deleted, FileEvent::modify,
                               FileEvent::moved_from, FileEvent::attrib});
  CHECK(b.settings->watch->debounce == 250ms);
  CHECK(to_string(FileEvent::deleted) == "delete");
}

TEST_CASE("watch: a job without a schedule is @manual; with one it keeps it", "[config][watch]") {
  const std::string job(kJob);
  auto only = job_of(job + "watch = { paths = [\"/srv/in/*\"] }\n");
  CHECK(std::holds_alternative<jobhost::schedule::Manual>(only.schedule));
  CHECK(only.schedule_text == "@manual");
  CHECK_FALSE(only.on_reboot);

  auto both = job_of(job + "every = \"1h\"\nwatch = { paths = [\"/srv/in/*\"] }\n");
  CHECK(std::holds_alternative<jobhost::schedule::Every>(both.schedule));
  CHECK(both.settings->watch);

  auto none = job_of(job + "every = \"1h\"\n");
  CHECK_FALSE(none.settings->watch);
}

TEST_CASE("watch: each mistake at its line:col", "[config][watch]") {
  struct Case {
    std::string toml;
    const char* where;  // "line:col"
    const char* says;   // a substring of the message
  };
  const std::string job(kJob);
  const Case cases[] = {
      {job + "watch = \"/srv/in\"\n", "3:9", "watch in [jobs.a]: expected a table like"},
      {job + "watch = { events = [\"create\"] }\n", "3:9",
       "[jobs.a.watch] has no paths: add paths = [\"/dir/*.csv\"]"},
      {job + "watch = { paths = [] }\n", "3:19", "paths in [jobs.a.watch]: must not be empty"},
      {job + "watch = { paths = \"/srv/in/*\" }\n", "3:19",
       "paths in [jobs.a.watch]: expected a list of absolute paths"},
      {job + "watch = { paths = [\"in/*.csv\"] }\n", "3:20",
       "paths in [jobs.a.watch]: \"in/*.csv\" is not an absolute path"},
      {job + "watch = { paths = [\"/srv/in/\"] }\n", "3:20",
       "paths in [jobs.a.watch]: \"/srv/in/\" names no file: end it with a file name or a pattern"},
      {job + "watch = { paths = [\"/srv/in/..\"] }\n", "3:20",
       "paths in [jobs.a.watch]: \"/srv/in/..\" names no file"},
      {job + "watch = { paths = [\"/\"] }\n", "3:20",
       "paths in [jobs.a.watch]: \"/\" names no file"},
      {job + "watch = { paths = [\"/srv/*/in/*.csv\"] }\n", "3:20",
       "paths in [jobs.a.watch]: \"/srv/*/in/*.csv\" has a glob in its directory part: only the "
       "file name"},
      {job + "watch = { paths = [\"/srv/in/*\", 3] }\n", "3:33",
       "paths in [jobs.a.watch]: expected a string, got integer"},
      {job + "watch = { paths = [\"/srv/in/*\"], events = [\"close_wirte\"] }\n", "3:44",
       "events in [jobs.a.watch]: \"close_wirte\" is not one of \"close_write\", \"moved_to\", "
       "\"create\", \"delete\", \"modify\", \"moved_from\", \"attrib\" (did you mean "
       "\"close_write\"?)"},
      {job + "watch = { paths = [\"/srv/in/*\"], events = [] }\n", "3:43",
       "events in [jobs.a.watch]: must not be empty"},
      {job + "watch = { paths = [\"/srv/in/*\"], debounce = \"0s\" }\n", "3:45",
       "debounce in [jobs.a.watch]: must be longer than 0"},
      {job + "watch = { paths = [\"/srv/in/*\"], debounce = 2 }\n", "3:45",
       "debounce in [jobs.a.watch]: expected a duration string"},
      {job + "watch = { paths = [\"/srv/in/*\"], debounce = \"2h\" }\n", "3:45",
       "debounce in [jobs.a.watch]: at most 1h"},
      {job + "watch = { paths = [\"/srv/in/*\"], debounse = \"1s\" }\n", "3:34",
       "unknown key \"debounse\" in [jobs.a.watch] (did you mean \"debounce\"?)"},
      {job + "watch = { paths = [\"/srv/in/*\"], color = 1 }\n", "3:34",
       "unknown key \"color\" in [jobs.a.watch] (known keys: \"paths\", \"events\", "
       "\"debounce\")"},
      {job + "paths = [\"/srv/in/*\"]\nevery = \"1h\"\n", "3:1",
       "unknown key \"paths\" in [jobs.a]: it belongs in watch = { ... }"},
      {job + "wacth = { paths = [\"/srv/in/*\"] }\nevery = \"1h\"\n", "3:1",
       "unknown key \"wacth\" in [jobs.a] (did you mean \"watch\"?)"},
      {"[defaults]\nwatch = { paths = [\"/srv/in/*\"] }\n", "2:1",
       "\"watch\" cannot be set in [defaults]: set it in each [jobs.NAME]"},
      // A job with neither a schedule nor a watch still needs one.
      {job, "1:1", "[jobs.a] has no schedule"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    const std::string errors = errors_of(c.toml);
    CHECK_THAT(errors, Catch::Contains(std::string(c.where) + ": " + c.says));
    // One mistake, one line: a bad watch is not also "no schedule".
    CHECK(std::count(errors.begin(), errors.end(), '\n') == 1);
  }
}

TEST_CASE("watch: at most 64 paths", "[config][watch]") {
  std::string paths;
  for (int i = 0; i < 65; ++i) paths += fmt::format("\"/srv/in/{}\", ", i);
  const std::string errors = errors_of(std::string(kJob) + "watch = { paths = [" + paths + "] }\n");
  CHECK_THAT(errors, Catch::Contains("3:19: paths in [jobs.a.watch]: at most 64 paths (got 65)"));
}

TEST_CASE("watch: part of the definition hash", "[config][watch][definition-hash]") {
  const std::string job = std::string(kJob) + "every = \"1h\"\n";
  const std::string without = job_of(job).definition_hash;
  const std::string with =
      job_of(job + "watch = { paths = [\"/srv/in/*.csv\"] }\n").definition_hash;
  CHECK(with != without);
  // The same settings written another way hash the same.
  CHECK(job_of(job + "watch = { paths = [\"/srv/in/./*.csv\"], events = [\"moved_to\", "
                     "\"close_write\"], debounce = \"2000ms\" }\n")
            .definition_hash == with);
}
