#include "triggers/batch.h"

#include <fnmatch.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace jobhost::triggers {

WatchPath split_watch_path(std::string_view path) {
  const auto slash = path.rfind('/');
  return {std::filesystem::path(path.substr(0, std::max<std::size_t>(slash, 1))),
          std::string(path.substr(slash + 1))};
}

bool name_matches(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) == 0;
}

void Batch::touch(SteadyTime now) {
  if (empty()) first_ = now;
  last_ = now;
}

void Batch::add(const std::string& path, SteadyTime now) {
  touch(now);
  if (paths_.size() < kMaxBatchPaths || paths_.contains(path)) {
    paths_.insert(path);
  } else {
    truncated_ = true;
  }
}

void Batch::overflowed(SteadyTime now) {
  touch(now);
  overflow_ = true;
}

Batch::SteadyTime Batch::due(Duration debounce) const {
  return std::min(last_ + debounce, first_ + kMaxWaitDebounces * debounce);
}

std::string Batch::payload(std::size_t max_bytes) const {
  using nlohmann::json;
  auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  json out = {{"catchup", catchup_},
              {"count", paths_.size()},
              {"overflow", overflow_},
              {"paths", json::array()},
              {"truncated", false}};
  // What is written around the paths, with "false" (longer than "true").
  std::size_t size = dump(out).size();
  json& listed = out["paths"];
  for (const auto& path : paths_) {
    json name = path;
    const std::size_t more = dump(name).size() + (listed.empty() ? 0 : 1);
    if (size + more > max_bytes) break;
    size += more;
    listed.push_back(std::move(name));
  }
  out["truncated"] = truncated_ || listed.size() < paths_.size();
  return dump(out);
}

}  // namespace jobhost::triggers
