// Crontab import: a crontab, read as cronie reads it (man 5 crontab), turned
// into jobs for the exec plugin. Pure: no clock, no files, no user database;
// the same text and options give the same output. See docs/migrating.md.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jobhost::crontab {

struct ImportOptions {
  // How FILE:LINE names the input in messages and in the header ("-" is
  // shown as "<stdin>").
  std::string source = "crontab";
  // A system crontab (/etc/crontab, /etc/cron.d/*): a user field after the
  // five time fields.
  bool system = false;
  // The user every job of a user crontab runs as (its owner); empty: none.
  // A system crontab names its users per line instead.
  std::string user;
  // The zone of the jobs no CRON_TZ applies to (cron ran them in the
  // system's local zone); empty: they get no `timezone`.
  std::string timezone;
};

// One job, as it is written out.
struct Job {
  std::size_t line = 0;  // 1-based line of the entry
  std::string name;      // [jobs.NAME]: from the command's program, unique in the file
  std::string schedule;  // for jobhost's parser: 5 fields, an @macro or @reboot
  // Exactly one of: argv (no shell syntax, SHELL=/bin/sh), or a command for
  // /bin/sh -c (shell = true).
  std::vector<std::string> argv;
  std::string shell_command;
  bool shell = false;
  std::optional<std::string> stdin_text;  // what cron writes to its stdin (after '%')
  std::map<std::string, std::string> env;
  std::string user;      // system crontab's user field, or ImportOptions::user
  std::string timezone;  // CRON_TZ, or ImportOptions::timezone
  std::string jitter;    // from RANDOM_DELAY, e.g. "30m"
};

// What the output holds at one line of the input, in input order: comments
// (a setting dropped, a line not imported, notes on a translated entry), then
// the job the line became, if any.
struct Item {
  std::size_t line = 0;
  std::vector<std::string> comments;  // without the leading "# "
  std::optional<Job> job;
};

// A line that could not be carried (error) or that was carried with a change
// worth a look (warning). `line` is 1-based.
struct Problem {
  std::size_t line = 0;
  std::string message;
  bool error = true;
};

struct ImportResult {
  std::vector<Item> items;
  std::vector<Problem> problems;  // in line order
  bool ok() const;                // no error among the problems
};

// Reads `text` (a whole crontab). Every line is accounted for: a comment or
// blank line is skipped, an environment line applies to the entries after
// it, an entry becomes a job; anything else is a Problem (error) and an Item
// comment. Never throws.
ImportResult import_crontab(std::string_view text, const ImportOptions& options);

// The TOML of `result`: a header naming the source, then each item's
// comments and job. Stable: same result, same text.
std::string render_toml(const ImportResult& result, const ImportOptions& options);

}  // namespace jobhost::crontab
