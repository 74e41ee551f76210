// `jobhost import-crontab`: a crontab in, TOML jobs for the exec plugin out
// (crontab/import.h does the translation; this reads the file and reports).
#include <date/tz.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/cli.h"
#include "cli/commands.h"
#include "crontab/import.h"
#include "schedule/schedule.h"

namespace jobhost::cli {
namespace {

// The machine's zone name, for the hint about jobs without CRON_TZ; empty
// when it cannot be told.
std::string local_zone_name() {
  try {
    return std::string(date::current_zone()->name());
  } catch (const std::exception&) {
    return {};
  }
}

}  // namespace

int cmd_import_crontab(const ImportCrontabOptions& options) {
  if (!options.timezone.empty()) {
    if (auto zone = schedule::find_zone(options.timezone); !zone) {
      fmt::print(stderr, "--timezone: {}\n", zone.error().message);
      return kExitFailed;
    }
  }
  std::string text;
  if (options.file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(options.file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "{}: cannot read the crontab: {}\n", options.file, std::strerror(errno));
      return kExitFailed;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }

  crontab::ImportOptions import;
  import.source = options.file;
  import.system = options.system;
  import.user = options.user;
  import.timezone = options.timezone;
  const crontab::ImportResult result = crontab::import_crontab(text, import);
  fmt::print("{}", crontab::render_toml(result, import));
  std::fflush(stdout);

  const std::string shown = options.file == "-" ? "<stdin>" : options.file;
  for (const crontab::Problem& p : result.problems) {
    fmt::print(stderr, "{}:{}: {}: {}\n", shown, p.line, p.error ? "error" : "warning", p.message);
  }
  if (options.timezone.empty()) {
    std::size_t zoneless = 0;
    for (const crontab::Item& item : result.items) {
      if (item.job && item.job->timezone.empty()) ++zoneless;
    }
    if (zoneless > 0) {
      const std::string zone = local_zone_name();
      fmt::print(stderr,
                 "note: {} job(s) have no CRON_TZ: they follow [host] timezone (UTC unless set), "
                 "where cron ran them in the local zone{}; give --timezone {} to keep their "
                 "instants\n",
                 zoneless, zone.empty() ? "" : fmt::format(" ({} here)", zone),
                 zone.empty() ? "ZONE" : zone);
    }
  }
  return result.ok() ? kExitOk : kExitFailed;
}

}  // namespace jobhost::cli
