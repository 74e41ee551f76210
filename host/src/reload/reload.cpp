#include "reload/reload.h"

#include <fmt/core.h>

#include <algorithm>

namespace jobhost::reload {
namespace {

std::string build_text(const catalog::PluginInfo& p) {
  return fmt::format("{} (sha256 {})", p.version, p.sha256.substr(0, 12));
}

bool is_shadow_name(const std::string& name) {
  constexpr std::size_t kHexLength = 64;
  if (name.size() != kHexLength + 3 || !name.ends_with(".so")) return false;
  return std::all_of(name.begin(), name.begin() + kHexLength,
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

nlohmann::json plugin_json(const catalog::PluginInfo& p) {
  return {{"name", p.name},
          {"version", p.version},
          {"description", p.description},
          {"abi", fmt::format("{}.{}", p.abi_major, p.abi_minor)},
          {"abi_major", p.abi_major},
          {"abi_minor", p.abi_minor},
          {"sha256", p.sha256},
          {"path", p.path.string()},
          {"shadow_path", p.shadow_path.string()}};
}

std::vector<PluginChange> diff_plugins(const catalog::ScanResult& before,
                                       const catalog::ScanResult& after) {
  std::map<std::string, PluginChange> changes;
  for (const auto& p : before.accepted) changes[p.name] = {p.name, p, std::nullopt};
  for (const auto& p : after.accepted) {
    auto& change = changes[p.name];
    change.name = p.name;
    change.after = p;
  }
  std::vector<PluginChange> out;
  for (auto& [name, change] : changes) {
    if (change.before && change.after && change.before->sha256 == change.after->sha256) continue;
    out.push_back(std::move(change));
  }
  return out;
}

std::string describe(const PluginChange& change) {
  if (change.before && change.after) {
    return fmt::format("{} {} -> {}", change.name, build_text(*change.before),
                       build_text(*change.after));
  }
  if (change.after) return fmt::format("{} added: {}", change.name, build_text(*change.after));
  if (change.before) {
    return fmt::format("{} removed (was {})", change.name, build_text(*change.before));
  }
  return change.name;
}

catalog::ScanResult served_plugins(const std::map<std::string, PluginFile>& files) {
  catalog::ScanResult result;
  std::vector<const PluginFile*> ordered;  // as Catalog::scan: by directory, then by key
  for (const auto& entry : files) ordered.push_back(&entry.second);
  std::stable_sort(ordered.begin(), ordered.end(), [](const PluginFile* a, const PluginFile* b) {
    return a->dir_rank < b->dir_rank;
  });
  std::map<std::string, std::filesystem::path> first_with_name;  // plugin name -> file
  for (const PluginFile* file : ordered) {
    const PluginFile& state = *file;
    if (state.rejection) {
      std::string reason = *state.rejection;
      if (state.in_service) {
        reason += fmt::format(" (build in service: {})", build_text(*state.in_service));
      }
      result.rejected.push_back({state.path, reason});
    }
    if (!state.in_service) continue;
    const auto& info = *state.in_service;
    auto [first, inserted] = first_with_name.emplace(info.name, info.path);
    if (!inserted) {
      result.rejected.push_back({info.path, catalog::duplicate_reason(info, first->second)});
      continue;
    }
    result.accepted.push_back(info);
  }
  return result;
}

std::vector<std::string> settings_needing_restart(const config::Config& running,
                                                  const config::Config& loaded) {
  std::vector<std::string> out;
  if (running.host.state_dir != loaded.host.state_dir) out.push_back("state_dir");
  if (running.host.plugin_dirs != loaded.host.plugin_dirs) out.push_back("plugin_dir");
  if (running.host.log_format != loaded.host.log_format) out.push_back("log_format");
  if (running.host.durability != loaded.host.durability) out.push_back("durability");
  if (running.http.listen != loaded.http.listen) out.push_back("http.listen");
  return out;
}

std::vector<std::string> shadow_files_to_remove(const std::vector<ShadowFile>& files,
                                                const std::set<std::string>& keep,
                                                std::chrono::system_clock::time_point now,
                                                std::chrono::system_clock::duration max_age) {
  std::vector<std::string> out;
  for (const auto& file : files) {
    if (now - file.modified < max_age) continue;
    if (file.name.starts_with(".incoming-")) {
      out.push_back(file.name);
    } else if (is_shadow_name(file.name) && !keep.contains(file.name.substr(0, 64))) {
      out.push_back(file.name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace jobhost::reload
