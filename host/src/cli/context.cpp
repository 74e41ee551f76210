#include "cli/context.h"

#include <fmt/core.h>

#include <cstdlib>

#include "engine/daemon.h"

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
  catalog::Catalog catalog(config.host.plugin_dir, shadow_dir(config));
  return catalog.scan();
}

std::filesystem::path shadow_dir(const config::Config& config) {
  return config.host.state_dir / "plugins";
}

std::unique_ptr<ledger::Store> open_ledger_or_report(const config::Config& config,
                                                     ledger::Access access) {
  auto store =
      ledger::open_sqlite_store(engine::ledger_path(config), config.host.durability, access);
  if (!store) {
    fmt::print(stderr, "{}\n", store.error().message);
    return nullptr;
  }
  return std::move(*store);
}

}  // namespace jobhost::cli
