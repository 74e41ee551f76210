#include "cli/context.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "engine/engine.h"
#include "schedule/schedule.h"

namespace jobhost::cli {

std::filesystem::path resolve_config_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("JOBHOST_CONFIG"); env && *env) return env;
  // The installed config (/etc/jobhost/jobhost.toml for the package) unless
  // the working directory has one: `jobhost status` works as it is typed on a
  // host installed from the package, and a checkout's config wins inside it.
  std::error_code ec;
  if (std::filesystem::exists("jobhost.toml", ec)) return "jobhost.toml";
  if (std::filesystem::exists(JOBHOST_INSTALLED_CONFIG, ec)) return JOBHOST_INSTALLED_CONFIG;
  return "jobhost.toml";
}

std::optional<config::Config> load_or_report(const std::filesystem::path& file) {
  auto loaded = config::load_config(file);
  if (loaded) return std::move(*loaded);
  for (const auto& error : loaded.error()) fmt::print(stderr, "{}\n", error.to_string());
  return std::nullopt;
}

std::optional<config::HostSection> load_host_or_report(const std::filesystem::path& file) {
  auto loaded = config::load_host_section(file);
  if (loaded) return std::move(*loaded);
  for (const auto& error : loaded.error()) fmt::print(stderr, "{}\n", error.to_string());
  return std::nullopt;
}

catalog::ScanResult scan_plugins(const config::Config& config) {
  catalog::Catalog catalog(config.host.plugin_dirs, shadow_dir(config));
  return catalog.scan();
}

std::filesystem::path shadow_dir(const config::Config& config) {
  return config.host.state_dir / "plugins";
}

const date::time_zone* display_zone(const config::Config& config, const config::JobConfig& job) {
  if (const auto* cron = std::get_if<schedule::Cron>(&job.schedule)) return cron->zone;
  if (auto zone = schedule::find_zone(job.settings->timezone)) return *zone;
  if (auto zone = schedule::find_zone(config.host.timezone)) return *zone;
  return *schedule::find_zone("UTC");
}

std::unique_ptr<ledger::Store> open_ledger_or_report(const config::HostConfig& host,
                                                     ledger::Access access) {
  auto store = ledger::open_store(host, access);
  if (!store) {
    fmt::print(stderr, "{}\n", store.error().message);
    return nullptr;
  }
  return std::move(*store);
}

std::expected<nlohmann::json, std::string> read_payload(const std::string& path) {
  using nlohmann::json;
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::unexpected(fmt::format("cannot read the payload {}", path));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  int depth = 0;
  json event = json::parse(
      text,
      [&depth](int d, json::parse_event_t, json&) {
        depth = std::max(depth, d);
        return true;
      },
      false);
  if (event.is_discarded()) {
    return std::unexpected(
        fmt::format("the payload {} is not a JSON document", path == "-" ? "on stdin" : path));
  }
  if (depth > engine::kMaxEventDepth) {
    return std::unexpected(
        fmt::format("the payload nests deeper than {} levels", engine::kMaxEventDepth));
  }
  if (const std::size_t size = event.dump().size(); size > engine::kMaxEventBytes) {
    return std::unexpected(fmt::format("the payload is {} bytes (as compact JSON); at most {}",
                                       size, engine::kMaxEventBytes));
  }
  return event;
}

int report_control_error(const daemon::ControlError& error) {
  fmt::print(stderr, "{}\n", error.message);
  switch (error.kind) {
    case daemon::ControlError::Kind::no_daemon:
      return kExitUnreachable;
    case daemon::ControlError::Kind::no_answer:
      return kExitNoAnswer;
    case daemon::ControlError::Kind::failed:
      break;
  }
  return kExitFailed;
}

}  // namespace jobhost::cli
