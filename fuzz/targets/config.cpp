// Fuzz target: the config loader, TOML text -> load_config. The input is
// written to a file in a private temporary directory (load_config reads a
// path); relative paths in it resolve against that directory, which holds
// nothing else. No plugin list is given, so unknown plugins are not checked
// (that needs a catalog). A config that loads diffs as unchanged against
// itself; every error and warning formats.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "config/config.h"

using namespace jobhost;

namespace {

// The private directory, removed when the process exits normally.
std::filesystem::path temp_dir;

void remove_temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(temp_dir, ignored);
}

std::filesystem::path config_file() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/jobhost-fuzz-config.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  temp_dir = pattern;
  std::atexit(remove_temp_dir);
  return temp_dir / "jobhost.toml";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const std::filesystem::path file = config_file();
  {
    std::FILE* out = std::fopen(file.c_str(), "wb");
    if (out == nullptr) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, out) != size) std::abort();
    std::fclose(out);
  }
  auto config = config::load_config(file);
  if (!config) {
    if (config.error().empty()) std::abort();  // a failure says why
    for (const auto& error : config.error()) (void)error.to_string();
    return 0;
  }
  for (const auto& warning : config->warnings) (void)warning.to_string();
  for (const auto& job : config->jobs) {
    if (job.definition_hash != config::compute_definition_hash(job)) std::abort();
    (void)schedule::describe(job.schedule);
  }
  if (!config::diff_jobs(config->jobs, config->jobs).empty()) std::abort();
  return 0;
}
