// load_config on invalid configs: every mistake reported at its line:col.
#include <string>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "config/config.h"
#include "config/temp_config.h"

using jobhost::config::ConfigError;
using jobhost::config::load_config;
using jobhost::config::test::TempConfig;

namespace {

// A job that is valid on its own, taking lines 1-3; cases add lines from 4 on.
constexpr std::string_view kJob = "[jobs.a]\nplugin = \"hello\"\nevery = \"1s\"\n";

std::string listing(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors)
    out += fmt::format("{}:{}: {}\n", e.where.line, e.where.column, e.message);
  return out;
}

}  // namespace

TEST_CASE("each mistake is one error at its line:col with a message that helps") {
  struct Case {
    std::string toml;
    const char* where;  // "line:col"
    const char* says;   // a substring of the message
  };
  const std::string job(kJob);
  const Case cases[] = {
      // TOML syntax: toml++ stops at the first, with its position.
      {"[host\nplugin_dir = \"p\"\n", "1:6", "invalid TOML"},
      {job + "timeout = 5m\n", "4:12", "invalid TOML: expected digit, saw 'm'"},
      {job + "timeout = \"1s\"\ntimeout = \"2s\"\n",
       "5:", "duplicate key \"timeout\": it is already set in this table"},
      {job + "\n[jobs.a]\nplugin = \"hello\"\n", "5:1",
       "duplicate job \"a\": [jobs.a] is defined twice (first defined at line 1)"},
      {"[host]\n[host]\n", "2:1", "duplicate table [host] (first defined at line 1)"},

      // Unknown keys, in every table, with a suggestion or the known keys.
      {"[hosts]\n", "1:2", "unknown key \"hosts\" at the top level (did you mean \"host\"?)"},
      {"[host]\nplugin_dirr = \"p\"\n", "2:1",
       "unknown key \"plugin_dirr\" in [host] (did you mean \"plugin_dir\"?)"},
      {"[host]\ncolor = 1\n", "2:1", "unknown key \"color\" in [host] (see docs/config.md"},
      {"[http]\nlisten_on = \"x\"\n", "2:1",
       "unknown key \"listen_on\" in [http] (did you mean \"listen\"?)"},
      {"[defaults]\ntimout = \"5m\"\n", "2:1",
       "unknown key \"timout\" in [defaults] (did you mean \"timeout\"?)"},
      {job + "enabeld = true\n", "4:1",
       "unknown key \"enabeld\" in [jobs.a] (did you mean \"enabled\"?)"},
      {job + "colour = 1\n", "4:1", "unknown key \"colour\" in [jobs.a] (see docs/config.md"},
      {job + "retry = { max_attemps = 3 }\n", "4:11",
       "unknown key \"max_attemps\" in [jobs.a.retry] (did you mean \"max_attempts\"?)"},
      {job + "[jobs.a.limits]\nmemroy = \"1GiB\"\n", "5:1",
       "unknown key \"memroy\" in [jobs.a.limits] (did you mean \"memory\"?)"},
      {"[defaults]\nlimits = { stack = \"8MiB\" }\n", "2:12",
       "unknown key \"stack\" in [defaults.limits] (known keys: \"memory\""},
      {"[host]\ntimeout = \"5m\"\n", "2:1",
       "unknown key \"timeout\" in [host]: it belongs in [defaults] or [jobs.NAME]"},
      {job + "max_concurrency = 2\n", "4:1", "it belongs in [host]"},
      {job + "memory = \"1GiB\"\n", "4:1", "it belongs in limits = { ... }"},
      {"timeout = \"5m\"\n", "1:1", "unknown key \"timeout\" at the top level: it belongs in"},
      {"[defaults]\nplugin = \"hello\"\n", "2:1",
       "\"plugin\" cannot be set in [defaults]: set it in each [jobs.NAME]"},
      {"[defaults]\ntimezone = \"UTC\"\n", "2:1", "set [host] timezone for every job"},

      // Wrong types.
      {job + "timeout = 30\n", "4:11",
       "timeout in [jobs.a]: expected a duration string like \"30s\", got integer"},
      {job + "enabled = \"yes\"\n", "4:11",
       "enabled in [jobs.a]: expected true or false, got string"},
      {job + "misfire = 1\n", "4:11",
       "expected one of \"skip\", \"run_once\", \"run_all\", got integer"},
      {job + "retry = 3\n", "4:9", "retry in [jobs.a]: expected a table like { max_attempts = 3 }"},
      {job + "limits = { memory = true }\n", "4:21",
       "memory in [jobs.a.limits]: expected a size like \"64MiB\" or a number of bytes, got "
       "boolean"},
      {job + "retry = { multiplier = \"2\" }\n", "4:24", "expected a number like 2.0, got string"},
      {job + "params = [1, 2]\n", "4:10", "params in [jobs.a]: expected a table"},
      {job + "params = { list = [1] }\n", "4:19",
       "params.list in [jobs.a]: expected a string, number, boolean or date, got array"},
      {job + "user = 1000\n", "4:8", "user in [jobs.a]: expected a string, got integer"},
      {"[host]\nmax_concurrency = \"4\"\n", "2:19", "expected an integer, got string"},
      {"host = 1\n", "1:8", "[host]: expected a table, got integer"},
      {"jobs = 1\n", "1:8", "jobs: expected tables like [jobs.NAME], got integer"},
      {"[[jobs]]\nplugin = \"hello\"\n", "1:1",
       "jobs: expected tables like [jobs.NAME], got array"},
      {"[jobs]\na = 3\n", "2:5", "[jobs.a]: expected a table of settings, got integer"},

      // Bad values.
      {job + "kill_grace = \"5 sec\"\n", "4:14",
       "kill_grace in [jobs.a]: invalid duration \"5 sec\""},
      {job + "jitter = \"-5s\"\n", "4:10", "invalid duration \"-5s\": it is negative"},
      {job + "timeout = \"0s\"\n", "4:11", "timeout in [jobs.a]: must be longer than 0"},
      {"[defaults]\ntimeout = \"0\"\n", "2:11", "timeout in [defaults]: must be longer than 0"},
      {job + "limits = { memory = \"1.5GiB\" }\n", "4:21", "whole numbers only"},
      {job + "limits = { output = -1 }\n", "4:21", "must not be negative, got -1"},
      {job + "limits = { open_files = -1 }\n", "4:25", "must be at least 0, got -1"},
      {job + "concurrency = \"alow\"\n", "4:15",
       "concurrency in [jobs.a]: \"alow\" is not one of \"allow\", \"forbid\", \"replace\" (did "
       "you "
       "mean \"allow\"?)"},
      {job + "retry = { jitter = \"random\" }\n", "4:20",
       "\"random\" is not one of \"full\", \"equal\", \"none\""},
      {"[host]\nlog_format = \"xml\"\n", "2:14", "\"xml\" is not one of \"text\", \"json\""},
      {"[host]\ndurability = \"fsync\"\n", "2:14", "is not one of \"normal\", \"full\""},
      {"[host]\nmax_concurrency = 0\n", "2:19",
       "max_concurrency in [host]: must be at least 1, got 0"},
      {"[host]\nmax_concurrency = 3000000000\n", "2:19", "must be at most 2147483647"},
      {"[host]\npark_lead = \"2m\"\n", "2:13", "park_lead in [host]: at most 1m"},
      {"[host]\npark_lead = 2\n", "2:13", "expected a duration string"},
      {"[host]\nmax_parked = 0\n", "2:14", "max_parked in [host]: must be at least 1, got 0"},
      {"[host]\nid = \"web 1\"\n", "2:6",
       "id in [host]: letters, digits, '.', '-' and '_' only, got \"web 1\""},
      {"[host]\nid = \"\"\n", "2:6", "id in [host]: "},
      {"[host]\nid = \"" + std::string(65, 'h') + "\"\n", "2:6", "1 to 64 characters, got 65"},
      {"[store]\nurl = \"mysql://db/x\"\n", "2:7",
       "url in [store]: a PostgreSQL connection URI, as \"postgresql://"},
      {"[store]\nuri = \"postgresql://db/x\"\n", "2:1", "unknown key \"uri\" in [store]"},
      {"[host]\nid = \"localhost\"\n[store]\nurl = \"postgresql://db/x\"\n", "4:7",
       "[host] id \"localhost\" cannot tell this host from the others sharing the ledger"},
      {"store = 1\n", "1:9", "[store]"},
      {"[store]\nheartbeat = \"0s\"\n", "2:13", "heartbeat in [store]: at least 100ms"},
      {"[store]\nheartbeat = \"10ms\"\n", "2:13", "at least 100ms (every heartbeat writes"},
      {"[store]\nheartbeat = \"5s\"\nlease = \"8s\"\n", "3:9",
       "lease in [store]: at least twice the heartbeat (10s), got 8s"},
      {job + "retry = { max_attempts = 0 }\n", "4:26", "must be at least 1, got 0"},
      {job + "retry = { multiplier = 0.5 }\n", "4:24", "must be a number of at least 1"},
      {job + "retry = { multiplier = nan }\n", "4:24", "must be a number of at least 1"},
      {job + "misfire_limit = 0\n", "4:17", "misfire_limit in [jobs.a]: must be at least 1"},
      {job + "retry = { initial_delay = \"10m\" }\n", "4:27",
       "[jobs.a.retry]: max_delay (5m) is shorter than initial_delay (10m)"},
      {"[defaults]\nretry = { max_delay = \"100ms\" }\n", "2:23",
       "[defaults.retry]: max_delay (100ms) is shorter than initial_delay (1s)"},
      {job + "user = \"\"\n", "4:8", "user in [jobs.a]: must not be empty"},
      {"[host]\nstate_dir = \"\"\n", "2:13", "state_dir in [host]: must not be empty"},
      {"[host]\nstate_dir = \"~/var\"\n", "2:13", "\"~\" is not expanded"},
      {"[host]\nplugin_dir = 1\n", "2:14",
       "plugin_dir in [host]: expected a directory, or a list of directories like"},
      {"[host]\nplugin_dir = []\n", "2:14", "plugin_dir in [host]: the list is empty"},
      {"[host]\nplugin_dir = [\"a\", \"\"]\n", "2:20", "plugin_dir in [host]: must not be empty"},
      {"[host]\nplugin_dir = [\"a\", 2]\n", "2:20", "plugin_dir in [host]: expected a string"},
      {"[host]\nplugin_dir = [\"p\", \"./p/\"]\n", "2:20",
       "plugin_dir in [host]: \"./p/\" is listed twice"},
      {"[http]\nlisten = \"localhost\"\n", "2:10",
       "invalid address \"localhost\": missing \":PORT\""},
      {"[http]\nlisten = \"127.0.0.1:99999\"\n", "2:10",
       "the port must be a number from 0 to 65535"},
      {"[http]\nlisten = \"::1:80\"\n", "2:10", "write an IPv6 address in brackets"},
      {"[http]\nlisten = \":80\"\n", "2:10", "missing host"},

      // Job names.
      {"[jobs.\"my job\"]\nplugin = \"hello\"\nevery = \"1s\"\n", "1:7",
       "invalid job name \"my job\": use letters, digits, '_' and '-'"},
      {"[jobs._a]\nplugin = \"hello\"\nevery = \"1s\"\n", "1:7", "invalid job name \"_a\""},
      {"[jobs.\"a.b\"]\nplugin = \"hello\"\nevery = \"1s\"\n", "1:7", "invalid job name \"a.b\""},

      // Plugin and schedule presence.
      {"[jobs.a]\nevery = \"1s\"\n", "1:1", "[jobs.a] has no plugin: add plugin = \"NAME\""},
      {"[jobs.a]\nplugin = \"\"\nevery = \"1s\"\n", "2:10",
       "plugin in [jobs.a]: must not be empty"},
      {"[jobs.a]\nplugin = \"hello\"\n", "1:1",
       "[jobs.a] has no schedule: set one of schedule (cron, e.g. \"0 3 * * *\"), every"},
      {job + "at = \"2026-01-01T00:00:00Z\"\n", "4:1",
       "[jobs.a] sets both \"every\" (line 3) and \"at\": keep exactly one of schedule, every and "
       "at"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"@daily\"\n\n\n every = \"1s\"\n", "6:2",
       "sets both \"schedule\" (line 3) and \"every\""},

      // Schedules: cron errors point at the character inside the string.
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"0 61 * * *\"\n", "3:15",
       "schedule in [jobs.a]: bad cron expression \"0 61 * * *\""},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = '*/10 * * * 13 *'\n", "3:24", "month"},
      {"[jobs.a]\nplugin = \"hello\"\n  schedule   =   \"0  0   *  * mon-fry\"\n", "3:35",
       "bad cron expression"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"@hourlyy\"\n", "3:13", "unknown macro"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"0 0 30 2 *\"\n", "3:17", "never fires"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"H(30-10) * * * *\"\n", "3:18",
       "schedule in [jobs.a]: bad cron expression \"H(30-10) * * * *\": minute field: range "
       "H(30-10) is reversed; write H(10-30)"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"H/0 * * * *\"\n", "3:15", "step 0"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"H(0-99) * * * *\"\n", "3:17",
       "minute field: 99 is out of range (0-59)"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"0 0 H/30 * *\"\n", "3:19",
       "day-of-month field: step 30 is larger than the range 1-28 that H picks from"},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = { cron = \"* * * * *\" }\n", "3:12",
       "schedule in [jobs.a]: expected a string, got table"},
      // An escape inside the string: point at the string itself.
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"0 61\\u0020* * *\"\n", "3:12",
       "bad cron expression \"0 61 * * *\""},
      {"[jobs.a]\nplugin = \"hello\"\nschedule = \"\"\n", "3:12",
       "schedule in [jobs.a]: must not be empty"},
      {"[jobs.a]\nplugin = \"hello\"\nevery = \"0s\"\n", "3:9",
       "every in [jobs.a]: must be longer than 0"},
      {"[jobs.a]\nplugin = \"hello\"\nevery = 30\n", "3:9",
       "expected a duration string like \"30s\""},
      {"[jobs.a]\nplugin = \"hello\"\nat = \"tomorrow\"\n", "3:6", "at in [jobs.a]:"},
      {"[jobs.a]\nplugin = \"hello\"\nat = 2026-12-01T00:00:00\n", "3:6",
       "at in [jobs.a]: 2026-12-01T00:00:00 has no UTC offset; add \"Z\""},
      {"[jobs.a]\nplugin = \"hello\"\nat = 2026-12-01\n", "3:6",
       "expected an instant like \"2026-12-01T00:00:00Z\", got date"},

      // Time zones.
      {job + "timezone = \"Europe/Berln\"\n", "4:12",
       "timezone in [jobs.a]: unknown time zone \"Europe/Berln\" (did you mean "
       "\"Europe/Berlin\"?)"},
      {job + "timezone = \"Mars/Olympus_Mons\"\n", "4:12",
       "unknown time zone \"Mars/Olympus_Mons\" (use an IANA name like"},
      {"[host]\ntimezone = \"Europe/Berln\"\n", "2:12",
       "timezone in [host]: unknown time zone \"Europe/Berln\" (did you mean \"Europe/Berlin\"?)"},
      // A bad [host] zone is reported once, not again for each cron job using it.
      {"[host]\ntimezone = \"Nowhere\"\n[jobs.a]\nplugin = \"hello\"\nschedule = \"@daily\"\n",
       "2:12", "unknown time zone \"Nowhere\""},

      // Retention.
      {"[host]\nkeep_runs = 30\n", "2:13",
       "keep_runs in [host]: expected a duration string like \"30s\", got integer"},
      {"[host]\nkeep_runs = \"30 days\"\n", "2:13",
       "keep_runs in [host]: invalid duration \"30 days\""},
      {"[host]\nkeep_runs = \"-1d\"\n", "2:13", "it is negative"},
      {job + "keep_last = -1\n", "4:13", "keep_last in [jobs.a]: must be at least 0, got -1"},
      {job + "keep_last = \"1000\"\n", "4:13",
       "keep_last in [jobs.a]: expected an integer, got string"},
      {"[defaults]\nkeep_last = 1.5\n", "2:13", "keep_last in [defaults]: expected an integer"},
      {job + "keep_last = 3000000000\n", "4:13", "must be at most 2147483647"},
      {job + "keep_runs = \"7d\"\n", "4:1",
       "unknown key \"keep_runs\" in [jobs.a]: it belongs in [host]"},
      {"[host]\nkeep_last = 5\n", "2:1",
       "unknown key \"keep_last\" in [host]: it belongs in [defaults] or [jobs.NAME]"},
      {job + "keep_lats = 5\n", "4:1", "(did you mean \"keep_last\"?)"},
  };
  for (const Case& c : cases) {
    INFO("config:\n" << c.toml);
    TempConfig file(c.toml);
    auto config = load_config(file.file());
    REQUIRE_FALSE(config.has_value());
    const auto& errors = config.error();
    INFO("errors:\n" << listing(errors));
    REQUIRE(errors.size() == 1);
    const ConfigError& e = errors.front();
    CHECK(fmt::format("{}:{}", e.where.line, e.where.column).starts_with(c.where));
    CHECK_THAT(e.message, Catch::Contains(c.says));
    CHECK(e.where.file == file.file().string());
    CHECK_THAT(e.to_string(), Catch::StartsWith(fmt::format("{}:{}:{}: ", file.file().string(),
                                                            e.where.line, e.where.column)));
  }
}

TEST_CASE("five_mistakes.toml: all five are reported, in file order, with exact positions") {
  const std::string file = std::string(JOBHOST_CONFIG_TEST_DATA) + "/five_mistakes.toml";
  auto config = load_config(file);
  REQUIRE_FALSE(config.has_value());
  const auto& errors = config.error();
  INFO(listing(errors));
  struct Expected {
    int line;
    int column;
    const char* says;
  };
  const Expected expected[] = {
      {6, 1, "unknown key \"timout\" in [defaults] (did you mean \"timeout\"?)"},
      {7, 14, "kill_grace in [defaults]: invalid duration \"5 sec\""},
      {11, 24, "schedule in [jobs.hello]: bad cron expression \"*/10 * * * 13 *\""},
      {12, 12,
       "timezone in [jobs.hello]: unknown time zone \"Europe/Berln\" (did you mean "
       "\"Europe/Berlin\"?)"},
      {18, 11, "timeout in [jobs.hello_c]: expected a duration string like \"30s\", got integer"},
  };
  REQUIRE(errors.size() == std::size(expected));
  for (std::size_t i = 0; i < errors.size(); ++i) {
    INFO(i);
    CHECK(errors[i].where.file == file);
    CHECK(errors[i].where.line == expected[i].line);
    CHECK(errors[i].where.column == expected[i].column);
    CHECK_THAT(errors[i].message, Catch::Contains(expected[i].says));
  }
}

TEST_CASE("errors from [defaults], [host] and jobs come out together in file order") {
  TempConfig file(R"([jobs.z]
plugin = "hello"
every = "soon"
[host]
max_concurrency = 0
[defaults]
misfire = "sometimes"
[jobs.a]
plugin = "hello"
schedule = "61 * * * *"
)");
  auto config = load_config(file.file());
  REQUIRE_FALSE(config.has_value());
  const auto& errors = config.error();
  INFO(listing(errors));
  REQUIRE(errors.size() == 4);
  CHECK(errors[0].where.line == 3);
  CHECK(errors[1].where.line == 5);
  CHECK(errors[2].where.line == 7);
  CHECK(errors[3].where.line == 10);
  CHECK(errors[3].where.column == 13);
}

TEST_CASE("a job with several mistakes reports each of them") {
  TempConfig file(R"([jobs.a]
plugin = 3
schedule = "* * *"
timeout = "forever"
retry = { max_attempts = 0, multiplier = 0 }
limits = { memory = "lots", processes = -1 }
)");
  auto config = load_config(file.file());
  REQUIRE_FALSE(config.has_value());
  INFO(listing(config.error()));
  CHECK(config.error().size() == 7);
}
