// Fuzz target: a crontab as `jobhost import-crontab` reads it, as a user
// crontab and as a system one. Checked beyond "no crash": every problem
// names a line of the input and says something; the TOML written parses and
// holds each job under its name; each name is one a config takes; each
// schedule parses with jobhost's own parser (H from the job's name).
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "crontab/import.h"
#include "schedule/schedule.h"

using namespace jobhost;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool valid_job_name(const std::string& name) {
  const auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  return !name.empty() && name.size() <= 64 && alnum(name.front()) &&
         std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '_' || c == '-'; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (bool system : {false, true}) {
    crontab::ImportOptions options;
    options.source = "fuzz";
    options.system = system;
    const crontab::ImportResult result = crontab::import_crontab(text, options);
    for (const auto& p : result.problems)
      check(p.line >= 1 && p.line <= lines && !p.message.empty());
    toml::table doc;
    try {
      doc = toml::parse(crontab::render_toml(result, options));
    } catch (const toml::parse_error&) {
      check(false);
    }
    for (const auto& item : result.items) {
      check(item.line >= 1 && item.line <= lines);
      if (!item.job) continue;
      check(valid_job_name(item.job->name));
      check(doc["jobs"][item.job->name].is_table());
      check(schedule::CronExpr::parse(item.job->schedule, item.job->name).has_value());
    }
  }
  return 0;
}
