#include "cli/context.h"

#include <fmt/core.h>

#include <cstdlib>

namespace jobhost::cli {

std::filesystem::path resolve_config_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("JOBHOST_CONFIG"); env && *env) return env;
  return "jobhost.toml";
}

std::optional<config::Config> load_or_report(const std::filesystem::path& file) {
  auto loaded = config::load_config(file);
  if (loaded) return std::move(*loaded);
  for (const auto& error : loaded.error()) fmt::print(stderr, "{}\n", error.to_string());
  return std::nullopt;
}

catalog::ScanResult scan_plugins(const config::Config& config) {
  catalog::Catalog catalog(config.host.plugin_dir, config.host.state_dir / "plugins");
  return catalog.scan();
}

}  // namespace jobhost::cli
