// Real-world crontab lines, what each imports to, and the instants cron runs
// it at. Shared by the translation's unit test (tests/crontab) and the
// end-to-end test that runs `jobhost validate` and `jobhost next` on the
// result (tests/cli/import_crontab_test.cpp).
//
// The instants were worked out by hand from man 5 crontab and a calendar
// (2026-01-01 is a Thursday, 2026-01-04 a Sunday, 2026-02-01 a Sunday,
// 2028-02-29 a Tuesday), never by jobhost's own parser.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace crontab_cases {

// Every case's instants are the first fires strictly after this.
inline constexpr const char* kFrom = "2026-01-01T00:00:00Z";
// cronie's PATH, which every job gets unless the crontab sets one.
inline constexpr const char* kCronPath = "/usr/bin:/bin:/usr/sbin:/sbin";

struct Case {
  const char* crontab;  // one or more lines, each ending in '\n'
  bool system = false;  // import with --system
  // The job checked: the last one of the output.
  const char* name = nullptr;
  const char* schedule = nullptr;
  std::vector<std::string> argv{};           // or:
  const char* shell_command = nullptr;       // shell = true
  const char* stdin_text = nullptr;          // nullptr: no stdin
  std::map<std::string, std::string> env{};  // empty: PATH = kCronPath only
  const char* user = "";
  const char* timezone = "";
  const char* jitter = "";
  std::vector<const char*> instants{};  // after kFrom; empty: not checked (@reboot, H)
};

inline const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      // Steps, ranges with steps, lists, names.
      {.crontab = "*/5 * * * * /usr/local/bin/poll-queue --quiet\n",
       .name = "poll-queue",
       .schedule = "*/5 * * * *",
       .argv = {"/usr/local/bin/poll-queue", "--quiet"},
       .instants = {"2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z", "2026-01-01T00:15:00Z"}},
      {.crontab = "0 2 * * * /usr/local/bin/backup --full\n",
       .name = "backup",
       .schedule = "0 2 * * *",
       .argv = {"/usr/local/bin/backup", "--full"},
       .instants = {"2026-01-01T02:00:00Z", "2026-01-02T02:00:00Z"}},
      {.crontab = "1-30/7 * * * * /usr/local/bin/probe\n",
       .name = "probe",
       .schedule = "1-30/7 * * * *",
       .argv = {"/usr/local/bin/probe"},
       .instants = {"2026-01-01T00:01:00Z", "2026-01-01T00:08:00Z", "2026-01-01T00:15:00Z",
                    "2026-01-01T00:22:00Z", "2026-01-01T00:29:00Z", "2026-01-01T01:01:00Z"}},
      {.crontab = "23 0-23/2 * * * echo \"run 23 minutes after midn, 2am, 4am ..., everyday\"\n",
       .name = "echo",
       .schedule = "23 0-23/2 * * *",
       .shell_command = "echo \"run 23 minutes after midn, 2am, 4am ..., everyday\"",
       .instants = {"2026-01-01T00:23:00Z", "2026-01-01T02:23:00Z", "2026-01-01T04:23:00Z"}},
      {.crontab = "*/15 9-17 * * MON-FRI /usr/local/bin/check-queue\n",
       .name = "check-queue",
       .schedule = "*/15 9-17 * * MON-FRI",
       .argv = {"/usr/local/bin/check-queue"},
       .instants = {"2026-01-01T09:00:00Z", "2026-01-01T09:15:00Z", "2026-01-01T09:30:00Z",
                    "2026-01-01T09:45:00Z", "2026-01-01T10:00:00Z"}},
      {.crontab = "0 3 * jan-mar,oct-dec mon-fri /opt/app/bin/rotate\n",
       .name = "rotate",
       .schedule = "0 3 * jan-mar,oct-dec mon-fri",
       .argv = {"/opt/app/bin/rotate"},
       .instants = {"2026-01-01T03:00:00Z", "2026-01-02T03:00:00Z", "2026-01-05T03:00:00Z"}},
      {.crontab = "5 4 * * sun echo \"run at 5 after 4 every sunday\"\n",
       .name = "echo",
       .schedule = "5 4 * * sun",
       .shell_command = "echo \"run at 5 after 4 every sunday\"",
       .instants = {"2026-01-04T04:05:00Z", "2026-01-11T04:05:00Z"}},
      // 7 is Sunday as well as 0.
      {.crontab = "0 0 * * 7 /usr/local/bin/sunday\n",
       .name = "sunday",
       .schedule = "0 0 * * 7",
       .argv = {"/usr/local/bin/sunday"},
       .instants = {"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}},
      {.crontab = "0 12 * * Sat,SUN /usr/local/bin/weekend\n",
       .name = "weekend",
       .schedule = "0 12 * * Sat,SUN",
       .argv = {"/usr/local/bin/weekend"},
       .instants = {"2026-01-03T12:00:00Z", "2026-01-04T12:00:00Z", "2026-01-10T12:00:00Z"}},
      // cronie reads a range ending at 0 (sun) as ending at 7: Friday to Sunday.
      {.crontab = "0 6 * * fri-sun /usr/local/bin/long-weekend\n",
       .name = "long-weekend",
       .schedule = "0 6 * * fri-7",
       .argv = {"/usr/local/bin/long-weekend"},
       .instants = {"2026-01-02T06:00:00Z", "2026-01-03T06:00:00Z", "2026-01-04T06:00:00Z",
                    "2026-01-09T06:00:00Z"}},
      {.crontab = "59 23 31 12 * /usr/local/bin/year-end\n",
       .name = "year-end",
       .schedule = "59 23 31 12 *",
       .argv = {"/usr/local/bin/year-end"},
       .instants = {"2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"}},
      {.crontab = "0 0 29 2 * /usr/local/bin/leap-day\n",
       .name = "leap-day",
       .schedule = "0 0 29 2 *",
       .argv = {"/usr/local/bin/leap-day"},
       .instants = {"2028-02-29T00:00:00Z"}},

      // Day of month and day of week both restricted: either one matching is enough.
      {.crontab = "30 4 1,15 * 5 /usr/local/bin/report\n",
       .name = "report",
       .schedule = "30 4 1,15 * 5",
       .argv = {"/usr/local/bin/report"},
       .instants = {"2026-01-01T04:30:00Z", "2026-01-02T04:30:00Z", "2026-01-09T04:30:00Z",
                    "2026-01-15T04:30:00Z", "2026-01-16T04:30:00Z"}},
      {.crontab = "0 9 1-7 * 1 /usr/local/bin/first-week\n",
       .name = "first-week",
       .schedule = "0 9 1-7 * 1",
       .argv = {"/usr/local/bin/first-week"},
       .instants = {"2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z",
                    "2026-01-04T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z",
                    "2026-01-07T09:00:00Z", "2026-01-12T09:00:00Z", "2026-01-19T09:00:00Z"}},
      {.crontab = "0 0 13 * fri /usr/local/bin/friday\n",
       .name = "friday",
       .schedule = "0 0 13 * fri",
       .argv = {"/usr/local/bin/friday"},
       .instants = {"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z",
                    "2026-01-16T00:00:00Z"}},
      // Neither field starts with '*' and 1-31 is every day: cron runs it every day.
      {.crontab = "0 0 1-31 * 1 /usr/local/bin/daily-anyway\n",
       .name = "daily-anyway",
       .schedule = "0 0 * * *",
       .argv = {"/usr/local/bin/daily-anyway"},
       .instants = {"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"}},
      // A leading '*' makes cron need both: odd days that are Mondays (Jan 5, 19;
      // Feb 9, 23 in 2026), jobhost's '&'.
      {.crontab = "0 0 */2 * 1 /usr/local/bin/odd-mondays\n",
       .name = "odd-mondays",
       .schedule = "0 0 */2 * &1",
       .argv = {"/usr/local/bin/odd-mondays"},
       .instants = {"2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z",
                    "2026-02-23T00:00:00Z"}},
      // The 1st and 15th when they fall on Sunday, Tuesday, Thursday or Saturday
      // (*/2 over 0-6), after Jan 1 00:00: Jan 15 (Thu), Feb 1 (Sun), Feb 15 (Sun),
      // Mar 1 (Sun); not Apr 1 (Wed).
      {.crontab = "0 0 1,15 * */2 /usr/local/bin/mid-month\n",
       .name = "mid-month",
       .schedule = "0 0 1,15 * &*/2",
       .argv = {"/usr/local/bin/mid-month"},
       .instants = {"2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-15T00:00:00Z",
                    "2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z"}},
      // A leading '*' makes cron need both: "*" and a weekday is that weekday.
      {.crontab = "0 9 * * 1 [ \"$(date +\\%d)\" -le 07 ] && /usr/local/bin/first-monday\n",
       .name = "first-monday",
       .schedule = "0 9 * * 1",
       .shell_command = "[ \"$(date +%d)\" -le 07 ] && /usr/local/bin/first-monday",
       .instants = {"2026-01-05T09:00:00Z", "2026-01-12T09:00:00Z"}},

      // Macros.
      {.crontab = "@reboot /usr/local/bin/start-tunnel\n",
       .name = "start-tunnel",
       .schedule = "@reboot",
       .argv = {"/usr/local/bin/start-tunnel"}},
      {.crontab = "@reboot sleep 60 && /usr/local/bin/start-worker\n",
       .name = "start-worker",
       .schedule = "@reboot",
       .shell_command = "sleep 60 && /usr/local/bin/start-worker"},
      {.crontab = "@hourly /usr/bin/updatedb\n",
       .name = "updatedb",
       .schedule = "@hourly",
       .argv = {"/usr/bin/updatedb"},
       .instants = {"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"}},
      {.crontab = "@daily /usr/sbin/logrotate /etc/logrotate.conf\n",
       .name = "logrotate",
       .schedule = "@daily",
       .argv = {"/usr/sbin/logrotate", "/etc/logrotate.conf"},
       .instants = {"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
      {.crontab = "@midnight /usr/local/bin/purge\n",
       .name = "purge",
       .schedule = "@midnight",
       .argv = {"/usr/local/bin/purge"},
       .instants = {"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
      {.crontab = "@weekly /usr/local/bin/weekly-report\n",
       .name = "weekly-report",
       .schedule = "@weekly",
       .argv = {"/usr/local/bin/weekly-report"},
       .instants = {"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}},
      {.crontab = "@monthly /usr/local/bin/invoice\n",
       .name = "invoice",
       .schedule = "@monthly",
       .argv = {"/usr/local/bin/invoice"},
       .instants = {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
      {.crontab = "@yearly /usr/local/bin/archive\n",
       .name = "archive",
       .schedule = "@yearly",
       .argv = {"/usr/local/bin/archive"},
       .instants = {"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
      {.crontab = "@annually /usr/local/bin/archive\n",
       .name = "archive",
       .schedule = "@annually",
       .argv = {"/usr/local/bin/archive"},
       .instants = {"2027-01-01T00:00:00Z"}},

      // Commands: shell syntax, '%' and stdin, options.
      {.crontab = "0 22 * * 1-5 mail -s \"It's 10pm\" joe%Joe,%%Where are your kids?%\n",
       .name = "mail",
       .schedule = "0 22 * * 1-5",
       .shell_command = "mail -s \"It's 10pm\" joe",
       .stdin_text = "Joe,\n\nWhere are your kids?\n",
       .instants = {"2026-01-01T22:00:00Z", "2026-01-02T22:00:00Z", "2026-01-05T22:00:00Z"}},
      {.crontab = "0 12 * * * cat > /tmp/in.txt%one\\%two%three\n",
       .name = "cat",
       .schedule = "0 12 * * *",
       .shell_command = "cat > /tmp/in.txt",
       .stdin_text = "one%two\nthree\n",
       .instants = {"2026-01-01T12:00:00Z"}},
      {.crontab = "0 3 * * * pg_dump mydb | gzip > /var/backups/db-$(date +\\%F).sql.gz\n",
       .name = "pg_dump",
       .schedule = "0 3 * * *",
       .shell_command = "pg_dump mydb | gzip > /var/backups/db-$(date +%F).sql.gz",
       .instants = {"2026-01-01T03:00:00Z"}},
      {.crontab = "0 1 * * * /usr/local/bin/cleanup.sh > /var/log/cleanup.log 2>&1\n",
       .name = "cleanup",
       .schedule = "0 1 * * *",
       .shell_command = "/usr/local/bin/cleanup.sh > /var/log/cleanup.log 2>&1",
       .instants = {"2026-01-01T01:00:00Z"}},
      {.crontab = "0 */6 * * * cd /srv/app && ./bin/sync >> log/sync.log 2>&1\n",
       .name = "sync",
       .schedule = "0 */6 * * *",
       .shell_command = "cd /srv/app && ./bin/sync >> log/sync.log 2>&1",
       .instants = {"2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z"}},
      {.crontab = "0 4 * * * /usr/bin/find /tmp -type f -mtime +7 -delete\n",
       .name = "find",
       .schedule = "0 4 * * *",
       .argv = {"/usr/bin/find", "/tmp", "-type", "f", "-mtime", "+7", "-delete"},
       .instants = {"2026-01-01T04:00:00Z"}},
      {.crontab = "0 7 * * * -n /usr/local/bin/quiet-job\n",
       .name = "quiet-job",
       .schedule = "0 7 * * *",
       .argv = {"/usr/local/bin/quiet-job"},
       .instants = {"2026-01-01T07:00:00Z"}},
      {.crontab = "-*/30 * * * * /usr/local/bin/unlogged\n",
       .name = "unlogged",
       .schedule = "*/30 * * * *",
       .argv = {"/usr/local/bin/unlogged"},
       .instants = {"2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"}},
      // cronie's random value: H picks one from the job's name.
      {.crontab = "~ 3 * * * /usr/local/bin/randomized\n",
       .name = "randomized",
       .schedule = "H(0-59) 3 * * *",
       .argv = {"/usr/local/bin/randomized"}},

      // Environment lines.
      {.crontab = "PATH=/usr/local/bin:/usr/bin:/bin\n*/10 * * * * sync-mail\n",
       .name = "sync-mail",
       .schedule = "*/10 * * * *",
       .argv = {"sync-mail"},
       .env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}},
       .instants = {"2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z"}},
      {.crontab = "MAILTO=ops@example.com\n0 5 * * * /usr/local/bin/digest\n",
       .name = "digest",
       .schedule = "0 5 * * *",
       .argv = {"/usr/local/bin/digest"},
       .instants = {"2026-01-01T05:00:00Z"}},
      {.crontab = "GREETING = \"hello world\"\n0 8 * * * logger -t cron \"$GREETING\"\n",
       .name = "logger",
       .schedule = "0 8 * * *",
       .shell_command = "logger -t cron \"$GREETING\"",
       .env = {{"GREETING", "hello world"}, {"PATH", kCronPath}},
       .instants = {"2026-01-01T08:00:00Z"}},
      {.crontab = "SHELL=/bin/bash\n0 5 * * * source ~/.profile; backup-home\n",
       .name = "backup-home",
       .schedule = "0 5 * * *",
       .argv = {"/bin/bash", "-c", "source ~/.profile; backup-home"},
       .env = {{"PATH", kCronPath}, {"SHELL", "/bin/bash"}},
       .instants = {"2026-01-01T05:00:00Z"}},
      {.crontab = "RANDOM_DELAY=30\n0 6 * * * /usr/local/bin/fetch-feeds\n",
       .name = "fetch-feeds",
       .schedule = "0 6 * * *",
       .argv = {"/usr/local/bin/fetch-feeds"},
       .jitter = "30m",
       .instants = {"2026-01-01T06:00:00Z"}},
      {.crontab = "CRON_TZ=Europe/Berlin\n30 2 * * * /usr/local/bin/nightly\n",
       .name = "nightly",
       .schedule = "30 2 * * *",
       .argv = {"/usr/local/bin/nightly"},
       .timezone = "Europe/Berlin",
       .instants = {"2026-01-01T02:30:00+01:00", "2026-01-02T02:30:00+01:00"}},
      {.crontab = "CRON_TZ=America/New_York\n0 9 * * 1-5 /usr/local/bin/market-open\n",
       .name = "market-open",
       .schedule = "0 9 * * 1-5",
       .argv = {"/usr/local/bin/market-open"},
       .timezone = "America/New_York",
       .instants = {"2026-01-01T09:00:00-05:00", "2026-01-02T09:00:00-05:00",
                    "2026-01-05T09:00:00-05:00"}},

      // System crontabs: the user field.
      {.crontab = "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
       .system = true,
       .name = "run-parts",
       .schedule = "17 * * * *",
       .shell_command = "cd / && run-parts --report /etc/cron.hourly",
       .env = {{"LOGNAME", "root"}, {"PATH", kCronPath}, {"USER", "root"}},
       .user = "root",
       .instants = {"2026-01-01T00:17:00Z", "2026-01-01T01:17:00Z"}},
      {.crontab = "*/5 * * * * www-data php -f /var/www/nextcloud/cron.php\n",
       .system = true,
       .name = "php",
       .schedule = "*/5 * * * *",
       .argv = {"php", "-f", "/var/www/nextcloud/cron.php"},
       .env = {{"LOGNAME", "www-data"}, {"PATH", kCronPath}, {"USER", "www-data"}},
       .user = "www-data",
       .instants = {"2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"}},
      // Debian's /etc/crontab.
      {.crontab = "SHELL=/bin/sh\n"
                  "PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n"
                  "# Example of job definition:\n"
                  "# m h dom mon dow user  command\n"
                  "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n"
                  "25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts "
                  "--report /etc/cron.daily; }\n"
                  "47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts "
                  "--report /etc/cron.weekly; }\n"
                  "52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts "
                  "--report /etc/cron.monthly; }\n",
       .system = true,
       .name = "run-parts-4",
       .schedule = "52 6 1 * *",
       .shell_command =
           "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }",
       .env = {{"LOGNAME", "root"},
               {"PATH", "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"},
               {"SHELL", "/bin/sh"},
               {"USER", "root"}},
       .user = "root",
       .instants = {"2026-01-01T06:52:00Z", "2026-02-01T06:52:00Z"}},
  };
  return kCases;
}

}  // namespace crontab_cases
