// load_config on valid configs: inheritance, overrides, paths, schedules, hashes.
#include <chrono>
#include <set>
#include <string>
#include <variant>

#include <date/tz.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using jobhost::TimePoint;
using jobhost::config::Concurrency;
using jobhost::config::Config;
using jobhost::config::ConfigError;
using jobhost::config::Durability;
using jobhost::config::Jitter;
using jobhost::config::JobConfig;
using jobhost::config::load_config;
using jobhost::config::LogFormat;
using jobhost::config::Misfire;
using jobhost::config::test::TempConfig;
namespace schedule = jobhost::schedule;

namespace {

const fs::path kData = JOBHOST_CONFIG_TEST_DATA;

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

const JobConfig& job(const Config& config, std::string_view name) {
  const JobConfig* found = config.find_job(name);
  if (found == nullptr) FAIL("no job " << name);
  return *found;
}

TimePoint utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  using namespace std::chrono;
  return time_point_cast<jobhost::Duration>(sys_days{year{y} / month{m} / day{d}}) + hours{hh} +
         minutes{mm} + seconds{ss};
}

std::string hash_of(std::string_view text, std::string_view name = "a") {
  TempConfig file(text);
  const Config config = load_ok(file.file());
  return job(config, name).definition_hash;
}

}  // namespace

TEST_CASE("valid.toml: host, http and paths") {
  const Config config = load_ok(kData / "valid.toml");
  CHECK(config.file == (kData / "valid.toml").lexically_normal());
  CHECK(config.host.plugin_dirs ==
        std::vector<fs::path>{(kData.parent_path() / "plugins").lexically_normal()});
  CHECK(config.host.state_dir == fs::path("/var/lib/jobhost/state"));
  CHECK(config.host.max_concurrency == 8);
  CHECK(config.host.timezone == "Europe/Berlin");
  CHECK(config.host.log_format == LogFormat::json);
  CHECK(config.host.durability == Durability::full);
  CHECK(config.http.listen == "[::1]:9999");

  std::vector<std::string> names;
  for (const JobConfig& j : config.jobs) names.push_back(j.name);
  CHECK(names == std::vector<std::string>{"cron_default_zone", "cron_own_zone", "every",
                                          "at_string", "at_datetime", "reboot", "manual",
                                          "dotted"});
}

TEST_CASE("valid.toml: a job inherits every setting of [defaults]") {
  const Config config = load_ok(kData / "valid.toml");
  const JobConfig& j = job(config, "cron_default_zone");
  CHECK(j.settings->plugin == "hello");
  CHECK(j.plugin_pos.line == 29);
  CHECK(j.plugin_pos.column == 10);
  CHECK(j.pos.line == 28);
  CHECK(j.pos.column == 1);
  CHECK(j.settings->timeout == 10min);
  CHECK(j.settings->stall_timeout == 1min);
  CHECK(j.settings->kill_grace == 2s);
  CHECK(j.settings->jitter == 3s);
  CHECK(j.settings->concurrency == Concurrency::allow);
  CHECK(j.settings->misfire == Misfire::run_all);
  CHECK(j.settings->misfire_limit == 5);
  CHECK(j.settings->catchup_spread == 20s);
  CHECK(j.settings->enabled);
  CHECK(j.settings->user == "nobody");
  CHECK_FALSE(j.settings->group.has_value());
  CHECK(j.settings->retry.max_attempts == 5);
  CHECK(j.settings->retry.initial_delay == 2s);
  CHECK(j.settings->retry.max_delay == 1h);
  CHECK(j.settings->retry.multiplier == 3.0);
  CHECK(j.settings->retry.jitter == Jitter::equal);
  CHECK(j.settings->limits.memory_bytes == 1ull << 30);
  CHECK(j.settings->limits.cpu_time == 1h);
  CHECK(j.settings->limits.open_files == 128);
  CHECK(j.settings->limits.processes == 32);
  CHECK(j.settings->limits.file_size == 1048576);
  CHECK(j.settings->limits.output_bytes == 1ull << 20);
  CHECK(j.settings->params == std::map<std::string, std::string>{{"greeting", "hi"},
                                                                 {"count", "3"},
                                                                 {"ratio", "0.5"},
                                                                 {"loud", "true"},
                                                                 {"day", "2026-03-29"}});
  const auto* cron = std::get_if<schedule::Cron>(&j.schedule);
  REQUIRE(cron != nullptr);
  CHECK(cron->expr.text() == "*/10 * * * * *");
  REQUIRE(cron->zone != nullptr);
  CHECK(cron->zone->name() == "Europe/Berlin");
  CHECK(j.settings->timezone == "Europe/Berlin");
  CHECK(j.schedule_text == "*/10 * * * * *");
  CHECK_FALSE(j.on_reboot);
}

TEST_CASE("valid.toml: a job overrides settings, retry and limits key by key") {
  const Config config = load_ok(kData / "valid.toml");
  const JobConfig& j = job(config, "cron_own_zone");
  CHECK(j.settings->timeout == 30s);
  CHECK(j.settings->kill_grace == 2s);  // inherited
  CHECK(j.settings->retry.max_attempts == 1);
  CHECK(j.settings->retry.initial_delay == 2s);  // inherited from [defaults] retry
  CHECK(j.settings->retry.jitter == Jitter::equal);
  CHECK(j.settings->limits.memory_bytes == 0);
  CHECK(j.settings->limits.cpu_time == 1h);  // inherited from [defaults] limits
  CHECK(j.settings->limits.open_files == 128);
  CHECK(j.settings->user == "nobody");
  CHECK(j.settings->group == "nogroup");
  CHECK(j.settings->timezone == "America/New_York");
  const auto* cron = std::get_if<schedule::Cron>(&j.schedule);
  REQUIRE(cron != nullptr);
  CHECK(cron->zone->name() == "America/New_York");

  const JobConfig& dotted = job(config, "dotted");
  CHECK(dotted.settings->retry.max_delay == 10s);
  CHECK(dotted.settings->retry.initial_delay == 2s);
  CHECK(dotted.settings->retry.max_attempts == 5);
  CHECK(dotted.settings->limits.output_bytes == 4096);
  CHECK(dotted.settings->limits.memory_bytes == 1ull << 30);
}

TEST_CASE("valid.toml: every, at, @reboot and @manual") {
  const Config config = load_ok(kData / "valid.toml");

  const JobConfig& every = job(config, "every");
  const auto* e = std::get_if<schedule::Every>(&every.schedule);
  REQUIRE(e != nullptr);
  CHECK(e->period == 90min);
  CHECK(e->anchor == TimePoint{});
  CHECK(every.schedule_text == "every 1h30m");
  CHECK_FALSE(every.settings->enabled);
  CHECK(every.settings->concurrency == Concurrency::replace);

  const JobConfig& at_string = job(config, "at_string");
  const auto* a = std::get_if<schedule::At>(&at_string.schedule);
  REQUIRE(a != nullptr);
  CHECK(a->instant == utc(2026, 11, 30, 22));
  CHECK(at_string.schedule_text == "2026-12-01T00:00:00+02:00");

  const JobConfig& at_datetime = job(config, "at_datetime");
  const auto* b = std::get_if<schedule::At>(&at_datetime.schedule);
  REQUIRE(b != nullptr);
  CHECK(b->instant == utc(2026, 12, 1) + 250ms);

  const JobConfig& reboot = job(config, "reboot");
  CHECK(std::holds_alternative<schedule::Manual>(reboot.schedule));
  CHECK(reboot.on_reboot);
  CHECK(reboot.schedule_text == "@reboot");

  const JobConfig& manual = job(config, "manual");
  CHECK(std::holds_alternative<schedule::Manual>(manual.schedule));
  CHECK_FALSE(manual.on_reboot);
  CHECK(manual.schedule_text == "@manual");
  CHECK(manual.settings->misfire == Misfire::skip);
}

TEST_CASE("jobs with equal settings share one block; a different setting gets its own") {
  TempConfig file(R"([defaults]
timeout = "1m"
[jobs.a]
plugin = "hello"
every = "30s"
[jobs.b]
plugin = "hello"
schedule = "0 3 * * *"
[jobs.c]
plugin = "hello"
every = "30s"
timeout = "1m"
[jobs.d]
plugin = "hello"
every = "30s"
timeout = "2m"
[jobs.e]
plugin = "hello"
every = "30s"
params = { n = 1 }
[jobs.f]
plugin = "hello"
every = "30s"
params = { n = 2 }
[jobs.g]
plugin = "other"
every = "30s"
[jobs.h]
plugin = "hello"
every = "30s"
timezone = "Europe/Paris"
[jobs.i]
plugin = "hello"
every = "30s"
keep_last = 5
)");
  Config config = load_ok(file.file());
  const auto block = [&](std::string_view name) { return job(config, name).settings.get(); };
  // The same settings, whatever the schedule, and written again or inherited.
  CHECK(block("b") == block("a"));
  CHECK(block("c") == block("a"));
  const std::set<const jobhost::config::JobSettings*> distinct = {
      block("a"), block("d"), block("e"), block("f"), block("g"), block("h"), block("i")};
  CHECK(distinct.size() == 7);
  CHECK(block("d")->timeout == 2min);
  CHECK(block("f")->params.at("n") == "2");
  CHECK(block("h")->timezone == "Europe/Paris");

  // own_settings copies: the jobs that shared the block keep theirs.
  JobConfig& a = config.jobs.front();
  jobhost::config::own_settings(a).timeout = 3min;
  CHECK(a.settings->timeout == 3min);
  CHECK(block("b")->timeout == 1min);
  CHECK(block("c")->timeout == 1min);
}

TEST_CASE("an almost empty config gets the documented defaults") {
  TempConfig file(R"([jobs.a]
plugin = "hello"
every = "30s"
)");
  const Config config = load_ok(file.file());
  CHECK(config.host.plugin_dirs == std::vector<fs::path>{file.dir() / "plugins"});
  CHECK(config.host.state_dir == file.dir() / "var");
  CHECK(config.host.max_concurrency == 4);
  CHECK(config.host.timezone == "UTC");
  CHECK(config.host.log_format == LogFormat::text);
  CHECK(config.host.durability == Durability::normal);
  CHECK(config.host.keep_runs == std::chrono::days(30));
  CHECK(config.host.park_lead == std::chrono::seconds(2));
  CHECK(config.host.max_parked == 256);
  CHECK_FALSE(config.host.id.empty());   // the hostname
  CHECK(config.host.store_url.empty());  // SQLite
  CHECK(config.http.listen == "127.0.0.1:9187");

  const JobConfig built_in;
  const JobConfig& j = job(config, "a");
  CHECK(j.settings->timeout == built_in.settings->timeout);
  CHECK(j.settings->timeout == 5min);
  CHECK(j.settings->stall_timeout == 0s);
  CHECK(j.settings->kill_grace == 5s);
  CHECK(j.settings->concurrency == Concurrency::forbid);
  CHECK(j.settings->misfire == Misfire::run_once);
  CHECK(j.settings->misfire_limit == 10);
  CHECK(j.settings->catchup_spread == 10s);
  CHECK(j.settings->retry.max_attempts == 3);
  CHECK(j.settings->retry.jitter == Jitter::full);
  CHECK(j.settings->limits.memory_bytes == 512ull << 20);
  CHECK(j.settings->limits.output_bytes == 64ull << 10);
  CHECK(j.settings->timezone == "UTC");
  CHECK(j.settings->params.empty());
  CHECK_FALSE(j.settings->user.has_value());
  CHECK(j.settings->keep_last == 10000);
}

TEST_CASE("retention: keep_runs in [host], keep_last in [defaults] and each job") {
  struct Case {
    std::string toml;
    jobhost::Duration keep_runs;
    int keep_last_a;  // a sets no keep_last of its own
    int keep_last_b;  // b sets keep_last = 7
  };
  const std::string jobs =
      "[jobs.a]\nplugin = \"hello\"\nevery = \"1s\"\n"
      "[jobs.b]\nplugin = \"hello\"\nevery = \"1s\"\nkeep_last = 7\n";
  const Case cases[] = {
      {jobs, std::chrono::days(30), 10000, 7},
      {"[host]\nkeep_runs = \"7d\"\n" + jobs, std::chrono::days(7), 10000, 7},
      {"[host]\nkeep_runs = \"0\"\n" + jobs, jobhost::Duration(0), 10000, 7},
      {"[host]\nkeep_runs = \"1h30m\"\n" + jobs, 90min, 10000, 7},
      {"[defaults]\nkeep_last = 100\n" + jobs, std::chrono::days(30), 100, 7},
      {"[defaults]\nkeep_last = 0\n" + jobs, std::chrono::days(30), 0, 7},
  };
  for (const Case& c : cases) {
    INFO(c.toml);
    TempConfig file(c.toml);
    const Config config = load_ok(file.file());
    CHECK(config.host.keep_runs == c.keep_runs);
    CHECK(job(config, "a").settings->keep_last == c.keep_last_a);
    CHECK(job(config, "b").settings->keep_last == c.keep_last_b);
  }
}

TEST_CASE("definition_hash does not follow keep_last") {
  const std::string base = "[jobs.a]\nplugin = \"hello\"\nschedule = \"0 3 * * *\"\n";
  CHECK(hash_of(base) == hash_of(base + "keep_last = 5\n"));
  CHECK(hash_of(base) == hash_of("[defaults]\nkeep_last = 0\n" + base));
}

TEST_CASE("an empty file is a valid config with no jobs") {
  TempConfig file("");
  const Config config = load_ok(file.file());
  CHECK(config.jobs.empty());
}

TEST_CASE("paths are relative to the config file's directory, made absolute and normal") {
  struct Case {
    const char* written;
    const char* expected;  // relative to the config dir, or absolute
  };
  const Case cases[] = {
      {"plugins", "plugins"},
      {"./plugins/", "plugins"},
      {"a/../b", "b"},
      {"/opt/jobhost/plugins", "/opt/jobhost/plugins"},
      {"/opt//x/./y/", "/opt/x/y"},
      {".", ""},
  };
  for (const Case& c : cases) {
    INFO(c.written);
    TempConfig file(std::string("[host]\nplugin_dir = \"") + c.written + "\"\n");
    const Config config = load_ok(file.file());
    const fs::path expected = fs::path(c.expected).is_absolute()
                                  ? fs::path(c.expected)
                                  : (file.dir() / c.expected).lexically_normal();
    REQUIRE(config.host.plugin_dirs.size() == 1);
    CHECK(config.host.plugin_dirs[0] ==
          (std::string_view(c.expected).empty() ? file.dir() : expected));
    CHECK(config.host.plugin_dirs[0].is_absolute());
  }
}

TEST_CASE("plugin_dir may list several directories, kept in order") {
  TempConfig file("[host]\nplugin_dir = [\"mine\", \"/usr/lib/jobhost/plugins\", \"../b/\"]\n");
  const Config config = load_ok(file.file());
  CHECK(config.host.plugin_dirs == std::vector<fs::path>{file.dir() / "mine",
                                                         "/usr/lib/jobhost/plugins",
                                                         file.dir().parent_path() / "b"});
}

TEST_CASE("a relative config path still gives absolute paths") {
  TempConfig file("[host]\nstate_dir = \"../state\"\n");
  const fs::path cwd = fs::current_path();
  fs::current_path(file.dir());
  auto config = load_config("jobhost.toml");
  fs::current_path(cwd);
  REQUIRE(config.has_value());
  CHECK(config->file == file.file());
  CHECK(config->host.state_dir == file.dir().parent_path() / "state");
}

TEST_CASE("the example config/jobhost.toml is valid and names only the shipped plugins") {
  const fs::path example = fs::path(JOBHOST_SOURCE_DIR) / "config" / "jobhost.toml";
  auto config = load_config(example, std::set<std::string>{"hello", "hello_c", "exec"});
  if (!config) FAIL(all_errors(config.error()));
  CHECK(config->host.plugin_dirs ==
        std::vector<fs::path>{fs::path(JOBHOST_SOURCE_DIR) / "build" / "plugins"});
  CHECK(config->host.state_dir == fs::path(JOBHOST_SOURCE_DIR) / "var");
  CHECK(config->http.listen == "127.0.0.1:9187");
  REQUIRE(config->find_job("hello") != nullptr);
  REQUIRE(config->find_job("hello_c") != nullptr);
  CHECK(config->find_job("hello")->settings->params.at("greeting").size() > 0);
  CHECK(std::holds_alternative<schedule::Every>(config->find_job("hello_c")->schedule));
  REQUIRE(config->find_job("date") != nullptr);
  CHECK(config->find_job("date")->settings->plugin == "exec");
}

TEST_CASE("definition_hash ignores key order and where a setting comes from") {
  const std::string a = hash_of(R"([jobs.a]
plugin = "hello"
schedule = "0 3 * * *"
timeout = "1m"
retry = { max_attempts = 2, jitter = "none" }
params = { x = "1", y = "2" }
)");
  const std::string reordered = hash_of(R"([jobs.a]
params = { y = "2", x = "1" }
retry = { jitter = "none", max_attempts = 2 }
timeout = "1m"
schedule = "0 3 * * *"
plugin = "hello"
)");
  const std::string from_defaults = hash_of(R"([defaults]
timeout = "60s"
retry = { max_attempts = 2 }
[jobs.a]
plugin = "hello"
schedule = "0 3 * * *"
params = { x = "1", y = "2" }
retry = { jitter = "none" }
)");
  CHECK(a.size() == 64);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a == reordered);
  CHECK(a == from_defaults);
}

TEST_CASE("definition_hash changes when any setting changes") {
  const std::string base = "[jobs.a]\nplugin = \"hello\"\nschedule = \"0 3 * * *\"\n";
  const char* changes[] = {
      "",
      "timeout = \"6m\"\n",
      "stall_timeout = \"1s\"\n",
      "kill_grace = \"1s\"\n",
      "jitter = \"1s\"\n",
      "concurrency = \"allow\"\n",
      "misfire = \"skip\"\n",
      "misfire_limit = 11\n",
      "catchup_spread = \"1s\"\n",
      "enabled = false\n",
      "user = \"nobody\"\n",
      "group = \"nogroup\"\n",
      "timezone = \"Europe/Berlin\"\n",
      "retry = { max_attempts = 4 }\n",
      "retry = { initial_delay = \"2s\" }\n",
      "retry = { max_delay = \"6m\" }\n",
      "retry = { multiplier = 1.5 }\n",
      "retry = { jitter = \"equal\" }\n",
      "limits = { memory = \"1GiB\" }\n",
      "limits = { cpu_time = \"1m\" }\n",
      "limits = { open_files = 1 }\n",
      "limits = { processes = 1 }\n",
      "limits = { file_size = 1 }\n",
      "limits = { output = 1 }\n",
      "params = { x = \"1\" }\n",
      "params = { x = \"2\" }\n",
      "watch = { paths = [\"/srv/in/*.csv\"] }\n",
      "watch = { paths = [\"/srv/in/*.csv\"], debounce = \"1s\" }\n",
      "watch = { paths = [\"/srv/in/*.csv\"], events = [\"create\"] }\n",
      "watch = { paths = [\"/srv/in/*.tsv\"] }\n",
  };
  std::set<std::string> hashes;
  for (const char* change : changes) {
    INFO(change);
    CHECK(hashes.insert(hash_of(base + change)).second);
  }
  CHECK(
      hashes.insert(hash_of("[jobs.a]\nplugin = \"hello_c\"\nschedule = \"0 3 * * *\"\n")).second);
  CHECK(hashes.insert(hash_of("[jobs.a]\nplugin = \"hello\"\nschedule = \"0 4 * * *\"\n")).second);
  CHECK(hashes.insert(hash_of("[jobs.a]\nplugin = \"hello\"\nevery = \"1h\"\n")).second);
  CHECK(hashes.insert(hash_of("[jobs.a]\nplugin = \"hello\"\nschedule = \"@reboot\"\n")).second);
  CHECK(hashes.insert(hash_of("[jobs.a]\nplugin = \"hello\"\nschedule = \"@manual\"\n")).second);
  CHECK(hashes.insert(hash_of("[jobs.a]\nplugin = \"hello\"\nat = \"2026-01-01T00:00:00Z\"\n"))
            .second);
}

TEST_CASE("definition_hash of a cron job follows the zone, of an interval job does not") {
  const std::string every = "[jobs.a]\nplugin = \"hello\"\nevery = \"1h\"\n";
  const std::string cron = "[jobs.a]\nplugin = \"hello\"\nschedule = \"0 3 * * *\"\n";
  const std::string berlin = "[host]\ntimezone = \"Europe/Berlin\"\n";
  CHECK(hash_of(every) == hash_of(berlin + every));
  CHECK(hash_of(cron) != hash_of(berlin + cron));
}

TEST_CASE("check_plugins points at the plugin value and suggests a close name") {
  TempConfig file(R"([jobs.a]
plugin = "helo"
every = "1s"
[jobs.b]
plugin = "hello_c"
every = "1s"
[jobs.c]
plugin  =  "backup"
every = "1s"
)");
  const Config config = load_ok(file.file());
  const std::set<std::string> known = {"hello", "hello_c"};
  const auto errors = jobhost::config::check_plugins(config, known);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].where.line == 2);
  CHECK(errors[0].where.column == 10);
  CHECK(errors[0].message ==
        "unknown plugin \"helo\" in [jobs.a] (did you mean \"hello\"? known: hello, hello_c)");
  CHECK(errors[1].where.line == 8);
  CHECK(errors[1].where.column == 12);
  CHECK(errors[1].message == "unknown plugin \"backup\" in [jobs.c] (known: hello, hello_c)");
  // validate explains an unknown plugin by this kind and name, not by the text.
  CHECK(errors[0].kind == jobhost::config::ConfigError::Kind::unknown_plugin);
  CHECK(errors[0].plugin == "helo");
  CHECK(errors[1].plugin == "backup");
  CHECK(jobhost::config::check_plugins(config, {"helo", "hello_c", "backup"}).empty());

  const auto none = jobhost::config::check_plugins(config, {});
  REQUIRE(none.size() == 3);
  CHECK_THAT(none[0].message, Catch::Contains("known: none; check [host] plugin_dir"));
}

TEST_CASE("load_config with plugin names reports unknown plugins among the other errors") {
  TempConfig file(R"([jobs.a]
plugin = "helo"
every = "1s"
[jobs.b]
plugin = "hello"
every = "1 s"
)");
  auto config = load_config(file.file(), std::set<std::string>{"hello"});
  REQUIRE_FALSE(config.has_value());
  const auto& errors = config.error();
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].where.line == 2);
  CHECK_THAT(errors[0].message, Catch::Contains("unknown plugin \"helo\""));
  CHECK(errors[1].where.line == 6);
  CHECK_THAT(errors[1].message, Catch::Contains("invalid duration \"1 s\""));
  CHECK(errors[0].kind == jobhost::config::ConfigError::Kind::unknown_plugin);
  CHECK(errors[0].plugin == "helo");
  CHECK(errors[1].kind == jobhost::config::ConfigError::Kind::other);
}

TEST_CASE("a missing or unreadable file is one error naming the file") {
  auto missing = load_config("/nonexistent/dir/jobhost.toml");
  REQUIRE_FALSE(missing.has_value());
  REQUIRE(missing.error().size() == 1);
  CHECK(missing.error()[0].to_string() ==
        "/nonexistent/dir/jobhost.toml: cannot read the config file: No such file or directory "
        "(pass --config or set JOBHOST_CONFIG)");

  TempConfig file("");
  auto directory = load_config(file.dir());
  REQUIRE_FALSE(directory.has_value());
  CHECK_THAT(directory.error()[0].message, Catch::Contains("it is a directory"));
}

TEST_CASE("a cron step wider than its range loads with a warning at the step") {
  TempConfig file(R"([jobs.a]
plugin = "hello"
schedule = "0 0 1 */15 *"
timezone = "UTC"
)");
  const Config config = load_ok(file.file());
  REQUIRE(config.warnings.size() == 1);
  const ConfigError& warning = config.warnings[0];
  CHECK(warning.kind == ConfigError::Kind::warning);
  CHECK(warning.where.line == 3);
  CHECK(warning.where.column == 21);  // the '1' of "15"
  CHECK_THAT(warning.to_string(),
             Catch::StartsWith(file.file().string() + ":3:21: warning: schedule in [jobs.a]"));
  CHECK_THAT(warning.message, Catch::Contains("month field: step 15 is larger than the range "
                                              "1-12, so it selects only 1; write that value"));
  REQUIRE(config.jobs.size() == 1);
  CHECK(std::holds_alternative<jobhost::schedule::Cron>(config.jobs[0].schedule));

  // Beside an error, the warning is reported too, in file order.
  TempConfig broken(R"([jobs.a]
plugin = "hello"
schedule = "0 0 1 */15 *"
timezone = "UTC"
timeout = "soon"
)");
  auto failed = load_config(broken.file());
  REQUIRE_FALSE(failed.has_value());
  REQUIRE(failed.error().size() == 2);
  CHECK(failed.error()[0].kind == ConfigError::Kind::warning);
  CHECK(failed.error()[1].kind == ConfigError::Kind::other);
  CHECK(failed.error()[1].where.line == 5);

  TempConfig plain(
      "[jobs.a]\nplugin = \"hello\"\nschedule = \"*/15 * * * *\"\n"
      "timezone = \"UTC\"\n");
  CHECK(load_ok(plain.file()).warnings.empty());
}

TEST_CASE("ConfigError::to_string leaves out what is unknown") {
  using jobhost::config::SourcePos;
  CHECK(ConfigError{SourcePos{"a.toml", 3, 7}, "bad"}.to_string() == "a.toml:3:7: bad");
  CHECK(ConfigError{SourcePos{"a.toml", 3, 7}, "odd", ConfigError::Kind::warning}.to_string() ==
        "a.toml:3:7: warning: odd");
  CHECK(ConfigError{SourcePos{"a.toml", 3, 0}, "bad"}.to_string() == "a.toml:3: bad");
  CHECK(ConfigError{SourcePos{"a.toml", 0, 0}, "bad"}.to_string() == "a.toml: bad");
}

TEST_CASE("enum names are the words of the config file") {
  using jobhost::config::to_string;
  CHECK(to_string(Jitter::equal) == "equal");
  CHECK(to_string(Concurrency::replace) == "replace");
  CHECK(to_string(Misfire::run_all) == "run_all");
  CHECK(to_string(LogFormat::json) == "json");
  CHECK(to_string(Durability::full) == "full");
}

TEST_CASE("load_config asks for the plugin names of the resolved plugin_dir") {
  TempConfig file(R"([host]
plugin_dir = "p"
[jobs.a]
plugin = "helo"
every = "1 s"
)");
  fs::path asked;
  int calls = 0;
  const jobhost::config::PluginNamesFor names_for = [&](const jobhost::config::HostConfig& host) {
    REQUIRE(host.plugin_dirs.size() == 1);
    asked = host.plugin_dirs[0];
    ++calls;
    return std::optional<std::set<std::string>>({"hello"});
  };
  auto config = load_config(file.file(), names_for);
  REQUIRE_FALSE(config.has_value());
  CHECK(calls == 1);
  CHECK(asked == file.dir() / "p");
  REQUIRE(config.error().size() == 2);
  CHECK_THAT(config.error()[0].message, Catch::Contains("unknown plugin \"helo\""));
  CHECK_THAT(config.error()[1].message, Catch::Contains("invalid duration"));

  // nullopt: the names are unknown, so no plugin is reported.
  const jobhost::config::PluginNamesFor unknown = [](const jobhost::config::HostConfig&) {
    return std::optional<std::set<std::string>>();
  };
  auto unchecked = load_config(file.file(), unknown);
  REQUIRE_FALSE(unchecked.has_value());
  CHECK(unchecked.error().size() == 1);
}

TEST_CASE("load_config does not check plugins against a [host] with mistakes") {
  TempConfig file(R"([host]
plugin_dir = 3
[jobs.a]
plugin = "helo"
every = "1s"
)");
  int calls = 0;
  const jobhost::config::PluginNamesFor names_for = [&](const jobhost::config::HostConfig&) {
    ++calls;
    return std::optional<std::set<std::string>>({"hello"});
  };
  auto config = load_config(file.file(), names_for);
  REQUIRE_FALSE(config.has_value());
  CHECK(calls == 0);
  REQUIRE(config.error().size() == 1);
  CHECK_THAT(config.error()[0].message,
             Catch::Contains("plugin_dir in [host]: expected a directory, or a list"));
}

TEST_CASE("jobs on the same cron expression share its compiled fields", "[config]") {
  TempConfig file(R"(
[jobs.a]
plugin = "p"
schedule = "*/5 * * * * *"
[jobs.b]
plugin = "p"
schedule = "*/5 * * * * *"
timezone = "Europe/Berlin"
[jobs.c]
plugin = "p"
schedule = "*/6 * * * * *"
)");
  auto config = load_config(file.file());
  REQUIRE(config);
  REQUIRE(config->jobs.size() == 3);
  const auto& a = std::get<jobhost::schedule::Cron>(config->jobs[0].schedule);
  const auto& b = std::get<jobhost::schedule::Cron>(config->jobs[1].schedule);
  const auto& c = std::get<jobhost::schedule::Cron>(config->jobs[2].schedule);
  CHECK(&a.expr.fields() == &b.expr.fields());
  CHECK(a.zone != b.zone);  // the zone stays the job's own
  CHECK(&a.expr.fields() != &c.expr.fields());
  CHECK(c.expr.text() == "*/6 * * * * *");
}

TEST_CASE("cron H: each job gets the values of its own name", "[config]") {
  TempConfig file(R"(
[jobs.backup]
plugin = "p"
schedule = "H(0-29) 2 * * *"
[jobs.job-1]
plugin = "p"
schedule = "H(0-29) 2 * * *"
[jobs.often]
plugin = "p"
every = "90s"
)");
  const Config config = load_ok(file.file());
  const JobConfig& backup = job(config, "backup");
  const JobConfig& other = job(config, "job-1");
  CHECK(backup.schedule_text == "H(0-29) 2 * * *");
  CHECK(jobhost::config::resolved_schedule(backup) == "3 2 * * *");
  CHECK(jobhost::config::resolved_schedule(other) == "16 2 * * *");
  CHECK(jobhost::config::resolved_schedule(job(config, "often")) == "every 90s");
  // Same text, different values: the compiled fields are not shared.
  const auto& a = std::get<schedule::Cron>(backup.schedule);
  const auto& b = std::get<schedule::Cron>(other.schedule);
  CHECK(&a.expr.fields() != &b.expr.fields());
  CHECK(schedule::next_fire_after(a, utc(2026, 1, 1)) == utc(2026, 1, 1, 2, 3));
  CHECK(schedule::next_fire_after(b, utc(2026, 1, 1)) == utc(2026, 1, 1, 2, 16));
}
