// The crontab translation, table-driven: what cronie accepts imports to jobs
// that mean the same, what it refuses (or never runs) is reported with its
// line, and the TOML written is valid and says what the jobs hold.
#include <toml++/toml.h>
#include <catch2/catch.hpp>

#include "crontab/crontab_cases.h"
#include "crontab/import.h"
#include "schedule/schedule.h"

using jobhost::crontab::import_crontab;
using jobhost::crontab::ImportOptions;
using jobhost::crontab::ImportResult;
using jobhost::crontab::Job;
using jobhost::crontab::render_toml;

namespace {

std::vector<Job> jobs_of(const ImportResult& r) {
  std::vector<Job> out;
  for (const auto& item : r.items) {
    if (item.job) out.push_back(*item.job);
  }
  return out;
}

std::string problems_of(const ImportResult& r) {
  std::string out;
  for (const auto& p : r.problems) {
    out += std::to_string(p.line) + (p.error ? ": error: " : ": warning: ") + p.message + "\n";
  }
  return out;
}

std::string comments_of(const ImportResult& r) {
  std::string out;
  for (const auto& item : r.items) {
    for (const auto& c : item.comments) out += c + "\n";
  }
  return out;
}

ImportResult import_text(const std::string& text, bool system = false) {
  ImportOptions options;
  options.source = "crontab";
  options.system = system;
  return import_crontab(text, options);
}

}  // namespace

TEST_CASE("import: real-world crontab lines", "[crontab]") {
  const auto& cases = crontab_cases::cases();
  REQUIRE(cases.size() >= 30);
  for (const auto& c : cases) {
    INFO(c.crontab);
    ImportOptions options;
    options.system = c.system;
    const ImportResult r = import_crontab(c.crontab, options);
    INFO(problems_of(r));
    REQUIRE(r.ok());
    const auto jobs = jobs_of(r);
    REQUIRE(!jobs.empty());
    const Job& job = jobs.back();
    CHECK(job.name == c.name);
    CHECK(job.schedule == c.schedule);
    if (c.shell_command != nullptr) {
      CHECK(job.shell);
      CHECK(job.shell_command == c.shell_command);
      CHECK(job.argv.empty());
    } else {
      CHECK_FALSE(job.shell);
      CHECK(job.argv == c.argv);
    }
    if (c.stdin_text != nullptr) {
      REQUIRE(job.stdin_text);
      CHECK(*job.stdin_text == c.stdin_text);
    } else {
      CHECK_FALSE(job.stdin_text);
    }
    const std::map<std::string, std::string> env =
        c.env.empty() ? std::map<std::string, std::string>{{"PATH", crontab_cases::kCronPath}}
                      : c.env;
    CHECK(job.env == env);
    CHECK(job.user == c.user);
    CHECK(job.timezone == c.timezone);
    CHECK(job.jitter == c.jitter);
    // jobhost's own parser takes the schedule (H needs the job's name).
    CHECK(jobhost::schedule::CronExpr::parse(job.schedule, job.name).has_value());
  }
}

TEST_CASE("import: the TOML holds what the jobs hold", "[crontab]") {
  for (const auto& c : crontab_cases::cases()) {
    INFO(c.crontab);
    ImportOptions options;
    options.system = c.system;
    const ImportResult r = import_crontab(c.crontab, options);
    const std::string text = render_toml(r, options);
    INFO(text);
    toml::table doc;
    try {
      doc = toml::parse(text);
    } catch (const toml::parse_error& e) {
      FAIL("not TOML: " << e.description());
    }
    for (const Job& job : jobs_of(r)) {
      const toml::table* t = doc["jobs"][job.name].as_table();
      REQUIRE(t != nullptr);
      CHECK((*t)["schedule"].value_or(std::string()) == job.schedule);
      if (job.shell) {
        CHECK((*t)["command"].value_or(std::string()) == job.shell_command);
        CHECK((*t)["shell"].value_or(false));
      } else {
        const toml::array* argv = (*t)["command"].as_array();
        REQUIRE(argv != nullptr);
        std::vector<std::string> read;
        for (const auto& v : *argv) read.push_back(v.value_or(std::string()));
        CHECK(read == job.argv);
        CHECK_FALSE(t->contains("shell"));
      }
      CHECK((*t)["stdin"].value<std::string>() == job.stdin_text);
      std::map<std::string, std::string> env;
      if (const toml::table* e = (*t)["env"].as_table()) {
        for (const auto& [k, v] : *e) env[std::string(k.str())] = v.value_or(std::string());
      }
      CHECK(env == job.env);
      CHECK((*t)["user"].value_or(std::string()) == job.user);
      CHECK((*t)["timezone"].value_or(std::string()) == job.timezone);
      CHECK((*t)["jitter"].value_or(std::string()) == job.jitter);
    }
  }
}

TEST_CASE("import: lines cron refuses, or never runs, are reported with their line", "[crontab]") {
  struct Bad {
    std::string line;
    bool system;
    const char* message_part;
  };
  const Bad cases[] = {
      {"0 22-2 * * * /usr/local/bin/night", false, "selects nothing"},
      {"0 0 30 2 * /usr/local/bin/never", false, "never fires"},
      {"@Daily /usr/local/bin/x", false, "bad time specifier '@Daily'"},
      {"@every_5m /usr/local/bin/x", false, "bad time specifier"},
      {"* * * * * * /usr/local/bin/x", false, "starts with '*'"},
      {"0 5 * *", false, "day-of-week field: the line ends before it"},
      {"0 5 * * *", false, "no command"},
      {"0 0 * * 1#2 /usr/local/bin/x", false, "bad day-of-week field '1#2'"},
      {"0 0 L * * /usr/local/bin/x", false, "bad day-of-month field 'L'"},
      {"0 0 ? * MON /usr/local/bin/x", false, "bad day-of-month field '?'"},
      {"H * * * * /usr/local/bin/x", false, "bad minute field 'H'"},
      {"5/10 * * * * /usr/local/bin/x", false, "a step needs a range"},
      {"*/0 * * * * /usr/local/bin/x", false, "step of 1 or more"},
      {"60 * * * * /usr/local/bin/x", false, "60 is out of range"},
      {"0 0 * 13 * /usr/local/bin/x", false, "13 is out of range"},
      {"0 0 * * 8 /usr/local/bin/x", false, "8 is out of range"},
      {"0 0 * * monday /usr/local/bin/x", false, "'monday' is not a number or a day name"},
      {"0 0 1,,2 * * /usr/local/bin/x", false, "an empty list item"},
      {"0 0 * * * -x /usr/local/bin/x", false, "bad option"},
      {"0 0 * * * -n -n /usr/local/bin/x", false, "-n given twice"},
      {"0 0 * * * root", true, "no command after the user 'root'"},
      {"0 0 * * * /usr/local/bin/x\r", false, "carriage return"},
      {"CRON_TZ=Mars/Olympus_Mons", false, "CRON_TZ"},
      {"0 0 * * * /usr/local/bin/\xff", false, "not valid UTF-8"},
      {"0 0 * * * /usr/local/bin/\xe0\x9e\x8b", false, "not valid UTF-8"},  // overlong
      {"0 0 * * * /usr/local/bin/\xed\xa0\x80", false, "not valid UTF-8"},  // a surrogate
      // A control character is quoted escaped (raw, it made the TOML comment invalid).
      {"0 0 \x11-31 * * /usr/local/bin/x", false, "bad day-of-month field '\\x11-31'"},
  };
  const std::string big_stdin = "0 0 * * * cat%" + std::string(70000, 'x');
  std::vector<Bad> all(std::begin(cases), std::end(cases));
  all.push_back({big_stdin, false, "more than the 65536 the exec plugin takes"});
  const std::string nul = std::string("0 0 * * * echo a") + '\0' + "b";
  all.push_back({nul, false, "NUL"});
  for (const Bad& b : all) {
    INFO(b.line.substr(0, 80));
    const ImportResult r = import_text(std::string("# first\n") + b.line + "\n", b.system);
    INFO(problems_of(r));
    CHECK_FALSE(r.ok());
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].line == 2);
    CHECK(r.problems[0].error);
    CHECK(r.problems[0].message.find(b.message_part) != std::string::npos);
    CHECK(jobs_of(r).empty());
    // Never dropped in silence: the output says so at that line.
    CHECK(comments_of(r).find("line 2 not imported: ") != std::string::npos);
    // ... in a comment that is TOML, whatever bytes the line had.
    CHECK_NOTHROW(toml::parse(render_toml(r, ImportOptions{})));
  }
}

TEST_CASE("import: every line is accounted for, in order", "[crontab]") {
  const std::string text =
      "# a comment\n"
      "\n"
      "   \t# an indented comment\n"
      "MAILTO=root\n"
      "0 1 * * * /usr/local/bin/a\n"
      "0 0 30 2 * /usr/local/bin/b\n"
      "  0 2 * * * /usr/local/bin/a\n"
      "0 3 * * * /usr/local/bin/c";  // no newline at the end
  const ImportResult r = import_text(text);
  INFO(problems_of(r));
  CHECK_FALSE(r.ok());
  std::vector<std::size_t> lines;
  for (const auto& item : r.items) lines.push_back(item.line);
  CHECK(lines == std::vector<std::size_t>{4, 5, 6, 7, 8});
  const auto jobs = jobs_of(r);
  REQUIRE(jobs.size() == 3);
  CHECK(jobs[0].name == "a");
  CHECK(jobs[1].name == "a-2");
  CHECK(jobs[2].name == "c");
  REQUIRE(r.problems.size() == 2);
  CHECK(r.problems[0].line == 6);
  CHECK(r.problems[0].error);
  CHECK(r.problems[1].line == 8);
  CHECK_FALSE(r.problems[1].error);  // cron ignores it; imported, with a warning
  CHECK(r.problems[1].message.find("no newline") != std::string::npos);
  CHECK(r.items[0].comments.at(0).find("MAILTO=root: not carried") != std::string::npos);
}

TEST_CASE("import: environment lines as cron reads them", "[crontab]") {
  SECTION("quotes, blanks around '=', values kept as written") {
    const ImportResult r = import_text(
        "A = 'two  words' \n"
        "B=\"x\"\n"
        "C=it's $HOME/bin # not a comment  \n"
        "D=\n"
        "E = \"\"\n"
        "0 0 * * * /bin/true\n");
    INFO(problems_of(r));
    REQUIRE(r.ok());
    const auto jobs = jobs_of(r);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].env == std::map<std::string, std::string>{{"A", "two  words"},
                                                            {"B", "x"},
                                                            {"C", "it's $HOME/bin # not a comment"},
                                                            {"D", ""},
                                                            {"E", ""},
                                                            {"PATH", crontab_cases::kCronPath}});
  }
  SECTION("a setting applies to the entries after it, and a later one replaces it") {
    const ImportResult r = import_text(
        "0 0 * * * /bin/first\n"
        "FOO=1\n"
        "0 0 * * * /bin/second\n"
        "FOO=2\n"
        "CRON_TZ=Asia/Tokyo\n"
        "0 0 * * * /bin/third\n"
        "CRON_TZ=\n"
        "0 0 * * * /bin/fourth\n");
    REQUIRE(r.ok());
    const auto jobs = jobs_of(r);
    REQUIRE(jobs.size() == 4);
    CHECK_FALSE(jobs[0].env.contains("FOO"));
    CHECK(jobs[1].env.at("FOO") == "1");
    CHECK(jobs[2].env.at("FOO") == "2");
    CHECK(jobs[1].timezone.empty());
    CHECK(jobs[2].timezone == "Asia/Tokyo");
    CHECK(jobs[3].timezone.empty());  // an empty CRON_TZ is none
    CHECK_FALSE(jobs[2].env.contains("CRON_TZ"));
  }
  SECTION("not an environment line: a quoted value left open is read as an entry") {
    const ImportResult r = import_text("A=\"open\n");
    CHECK_FALSE(r.ok());
  }
  SECTION("names jobhost's env cannot take, cron's own settings, LOGNAME") {
    const ImportResult r = import_text(
        "\"MY VAR\"=x\n"
        "JOBHOST_JOB=x\n"
        "MAILFROM=cron@example.com\n"
        "LOGNAME=someone\n"
        "RANDOM_DELAY=5000\n"
        "0 0 * * * /bin/true\n");
    INFO(comments_of(r));
    REQUIRE(r.ok());
    const auto jobs = jobs_of(r);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].env == std::map<std::string, std::string>{{"PATH", crontab_cases::kCronPath}});
    CHECK(jobs[0].jitter.empty());
    const std::string comments = comments_of(r);
    CHECK(comments.find("MY VAR=x: not carried") != std::string::npos);
    CHECK(comments.find("JOBHOST_JOB=x: not carried") != std::string::npos);
    CHECK(comments.find("MAILFROM=cron@example.com: not carried") != std::string::npos);
    CHECK(comments.find("LOGNAME=someone: not carried") != std::string::npos);
    CHECK(comments.find("RANDOM_DELAY=5000: not carried") != std::string::npos);
  }
  SECTION("--user: the owner of a user crontab") {
    ImportOptions options;
    options.user = "alice";
    options.timezone = "Europe/Paris";
    const ImportResult r = import_crontab("0 0 * * * /bin/true\n", options);
    const auto jobs = jobs_of(r);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].user == "alice");
    CHECK(jobs[0].env.at("LOGNAME") == "alice");
    CHECK(jobs[0].env.at("USER") == "alice");
    CHECK(jobs[0].timezone == "Europe/Paris");
  }
}

TEST_CASE("import: '%' and stdin as cron's do_command.c reads them", "[crontab]") {
  struct Percent {
    const char* rest;  // after the time fields
    const char* command;
    const char* stdin_text;  // nullptr: none
  };
  const Percent cases[] = {
      {"cat%a%b", "cat", "a\nb\n"},
      {"cat%a%", "cat", "a\n"},                   // ends in a newline: none added
      {"cat%", "cat", nullptr},                   // nothing after the '%': no stdin
      {"date +\\%s", "date +%s", nullptr},        // escaped: a literal '%'
      {"printf '\\n'%x", "printf '\\n'", "x\n"},  // other backslashes stay
      {"cat%a\\%b", "cat", "a%b\n"},
      {"cat%a\\b", "cat", "a\\b\n"},
      {"cat%a\\\\%b", "cat", "a\\%b\n"},  // "\\\\%": cron's escape state carries on
      {"cat%a\\", "cat", "a\\\n"},
      {"%input", ":", "input\n"},  // an empty command
  };
  for (const Percent& c : cases) {
    INFO(c.rest);
    const ImportResult r = import_text(std::string("0 0 * * * ") + c.rest + "\n");
    INFO(problems_of(r));
    REQUIRE(r.ok());
    const auto jobs = jobs_of(r);
    REQUIRE(jobs.size() == 1);
    std::string command = jobs[0].shell_command;
    for (const std::string& word : jobs[0].argv) command += (command.empty() ? "" : " ") + word;
    CHECK(command == c.command);
    if (c.stdin_text == nullptr) {
      CHECK_FALSE(jobs[0].stdin_text);
    } else {
      REQUIRE(jobs[0].stdin_text);
      CHECK(*jobs[0].stdin_text == c.stdin_text);
    }
  }
}

TEST_CASE("import: argv only when /bin/sh would see plain words", "[crontab]") {
  struct Shape {
    const char* command;
    bool shell;
  };
  const Shape cases[] = {
      {"/usr/local/bin/backup --full --to=/srv/backup", false},
      {"rsync -a /srv/ host:/backup/srv/", false},
      {"curl -fsS https://hc-ping.com/uuid", false},
      {"backup > /dev/null", true},
      {"a | b", true},
      {"a; b", true},
      {"a && b", true},
      {"echo $HOME", true},
      {"echo ~/x", true},
      {"rm /tmp/*.tmp", true},
      {"echo 'quoted'", true},
      {"echo `date`", true},
      {"FOO=1 backup", true},
      {"cd /srv", true},
      {"echo hello", true},  // dash's builtin echo, not /bin/echo
      {"test -f /x", true},
      {"backup # with a comment", true},
      {"backup \\", true},
  };
  for (const Shape& s : cases) {
    INFO(s.command);
    const ImportResult r = import_text(std::string("0 0 * * * ") + s.command + "\n");
    const auto jobs = jobs_of(r);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].shell == s.shell);
  }
}

TEST_CASE("import: job names from the command's program", "[crontab]") {
  const ImportResult r = import_text(
      "0 0 * * * /usr/local/bin/Nightly-Backup.sh --full\n"
      "0 0 * * * /usr/local/bin/nightly-backup.sh\n"
      "0 0 * * * cd /srv/app && php artisan schedule:run >> /dev/null 2>&1\n"
      "0 0 * * * nice -n 10 ionice -c3 /usr/bin/updatedb\n"
      "0 0 * * * LANG=C /opt/tool/bin/report.py\n"
      "0 0 * * * \"$HOME/bin/daily job\"\n"
      "0 0 * * * ./...\n");
  const auto jobs = jobs_of(r);
  REQUIRE(jobs.size() == 7);
  CHECK(jobs[0].name == "nightly-backup");
  CHECK(jobs[1].name == "nightly-backup-2");
  CHECK(jobs[2].name == "php");
  CHECK(jobs[3].name == "updatedb");
  CHECK(jobs[4].name == "report");
  CHECK(jobs[5].name == "daily-job");
  CHECK(jobs[6].name == "job");
}

TEST_CASE("import: field rewrites cron's reading needs", "[crontab]") {
  SECTION("a reversed range in a list is left out, with a warning") {
    const ImportResult r = import_text("0 22-2,5 * * * /bin/true\n");
    REQUIRE(r.ok());
    CHECK(jobs_of(r).at(0).schedule == "0 5 * * *");
    REQUIRE(r.problems.size() == 1);
    CHECK_FALSE(r.problems[0].error);
  }
  SECTION("N-0 ends at 7 outside the day-of-week too (a warning there)") {
    const ImportResult r = import_text("3-0 * * * * /bin/true\n");
    REQUIRE(r.ok());
    CHECK(jobs_of(r).at(0).schedule == "3-7 * * * *");
    CHECK(r.problems.size() == 1);
  }
  SECTION("~ forms") {
    const ImportResult r = import_text("10~20 ~ ~15 jan~mar mon~ /bin/true\n");
    INFO(problems_of(r));
    REQUIRE(r.ok());
    CHECK(jobs_of(r).at(0).schedule == "H(10-20) H(0-23) H(1-15) H(1-3) H(1-7)");
  }
  SECTION("day-of-week */n and 0-7 mean what they meant") {
    const ImportResult r = import_text("0 0 * * */2 /bin/a\n0 0 * * 0-7 /bin/b\n");
    REQUIRE(r.ok());
    CHECK(jobs_of(r).at(0).schedule == "0 0 * * */2");
    CHECK(jobs_of(r).at(1).schedule == "0 0 * * 0-7");
  }
}

TEST_CASE("import: the TOML, as written", "[crontab]") {
  ImportOptions options;
  options.source = "/etc/cron.d/app";
  options.system = true;
  const ImportResult r = import_crontab(
      "MAILTO=ops@example.com\n"
      "CRON_TZ=Europe/Berlin\n"
      "*/5 * * * * app /srv/app/bin/poll --quiet\n"
      "0 3 * * * app pg_dump app | gzip > \"/var/backups/app-$(date +\\%F).gz\"\n",
      options);
  REQUIRE(r.ok());
  CHECK(render_toml(r, options) ==
        R"(# Jobs imported by `jobhost import-crontab` from /etc/cron.d/app (a system crontab).
# Each runs its command with the exec plugin: as an argv when the command has no shell
# syntax, else with /bin/sh -c (shell = true), as cron does. PATH is cron's unless the
# crontab sets it. Output goes to the ledger (jobhost history), not to mail.
# Unlike cron, jobhost stops a run after its timeout (5m unless set), skips a fire while
# the job's previous run goes on (concurrency), retries a failed run (retry) and runs a
# fire missed while it was down once at start (misfire): see docs/migrating.md.

# line 1: MAILTO=ops@example.com: not carried: jobhost sends no mail: each run's output and outcome are kept in the ledger (jobhost history); to hear of failures set alert_after and an [alerts.NAME] notifier

# line 3: */5 * * * * app /srv/app/bin/poll --quiet
[jobs.poll]
schedule = "*/5 * * * *"
command = ["/srv/app/bin/poll", "--quiet"]
env = { LOGNAME = "app", PATH = "/usr/bin:/bin:/usr/sbin:/sbin", USER = "app" }
user = "app"
timezone = "Europe/Berlin"

# line 4: 0 3 * * * app pg_dump app | gzip > "/var/backups/app-$(date +\%F).gz"
[jobs.pg_dump]
schedule = "0 3 * * *"
command = 'pg_dump app | gzip > "/var/backups/app-$(date +%F).gz"'
shell = true
env = { LOGNAME = "app", PATH = "/usr/bin:/bin:/usr/sbin:/sbin", USER = "app" }
user = "app"
timezone = "Europe/Berlin"
)");
}
