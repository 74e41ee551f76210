#include "config/dynamic_users.h"

#include <fmt/core.h>
#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace jobhost::config {
namespace {

constexpr std::string_view kRangeExample = "write it as \"FIRST-LAST\", e.g. \"61184-65519\"";

Result<uint32_t> parse_id(std::string_view text, std::string_view which) {
  uint64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ptr != end || ec != std::errc{} || text.front() == '+') {
    return fail(
        fmt::format("the {} id \"{}\" is not a whole number: {}", which, text, kRangeExample));
  }
  if (value == 0 || value > 4294967294u) {
    return fail(
        fmt::format("the {} id {} is out of range: ids go from 1 (0 is root) to "
                    "4294967294 (4294967295 is the invalid id)",
                    which, value));
  }
  return static_cast<uint32_t>(value);
}

// FNV-1a: fixed across builds and machines (std::hash is neither).
uint64_t name_hash(std::string_view name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

Result<UidRange> parse_uid_range(std::string_view text) {
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    return fail(fmt::format("\"{}\" is not a range: {}", text, kRangeExample));
  }
  auto first = parse_id(text.substr(0, dash), "first");
  if (!first) return std::unexpected(first.error());
  auto last = parse_id(text.substr(dash + 1), "last");
  if (!last) return std::unexpected(last.error());
  if (*first > *last) {
    return fail(
        fmt::format("the range \"{}\" is empty: the first id must not be above the last", text));
  }
  return UidRange{*first, *last};
}

Result<std::map<std::string, uint32_t>> allocate_dynamic_uids(const UidRange& range,
                                                              std::vector<std::string> jobs,
                                                              const std::set<uint32_t>& taken,
                                                              const IdKnown& known) {
  std::sort(jobs.begin(), jobs.end());
  jobs.erase(std::unique(jobs.begin(), jobs.end()), jobs.end());
  const uint64_t size = uint64_t{range.last} - range.first + 1;
  std::map<std::string, uint32_t> out;
  std::unordered_set<uint32_t> given;
  given.reserve(jobs.size());
  std::unordered_map<uint32_t, bool> known_cache;  // one account lookup per id
  const auto is_known = [&](uint32_t id) {
    auto [it, fresh] = known_cache.try_emplace(id, false);
    if (fresh) it->second = known(id);
    return it->second;
  };
  for (const auto& job : jobs) {
    const uint64_t start = name_hash(job) % size;
    bool found = false;
    for (uint64_t i = 0; i < size && !found; ++i) {
      const auto id = static_cast<uint32_t>(range.first + (start + i) % size);
      // 65535 is (uint16_t)-1, the invalid id of 16-bit interfaces.
      if (id == 65535 || taken.contains(id) || given.contains(id) || is_known(id)) continue;
      out.emplace_hint(out.end(), job, id);  // jobs are in name order
      given.insert(id);
      found = true;
    }
    if (!found) {
      return fail(
          fmt::format("no free uid left for job \"{}\" in [host] dynamic_users {}-{} "
                      "({} ids, {} given to other jobs, the rest used by accounts or "
                      "numeric users): widen the range, or give some jobs a user",
                      job, range.first, range.last, size, given.size()));
    }
  }
  return out;
}

bool account_id_known(uint32_t id) {
  std::vector<char> buf(16384);
  for (;;) {
    passwd pw{};
    passwd* result = nullptr;
    const int err = ::getpwuid_r(id, &pw, buf.data(), buf.size(), &result);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (result != nullptr) return true;
    break;
  }
  for (;;) {
    struct group gr {};
    struct group* result = nullptr;
    const int err = ::getgrgid_r(id, &gr, buf.data(), buf.size(), &result);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return result != nullptr;
  }
}

bool account_sources_enumerable(std::string_view nsswitch) {
  static constexpr std::string_view kEnumerable[] = {"files", "compat", "systemd", "db"};
  bool passwd = false;
  bool group = false;
  std::istringstream lines{std::string(nsswitch)};
  for (std::string line; std::getline(lines, line);) {
    line = line.substr(0, line.find('#'));
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(0, colon));
    std::string database;
    words >> database;
    if (database != "passwd" && database != "group") continue;
    std::istringstream sources(line.substr(colon + 1));
    bool any = false;
    int in_action = 0;  // inside "[NOTFOUND=return]" and the like
    for (std::string word; sources >> word;) {
      if (word.starts_with('[')) in_action = 1;
      if (in_action != 0) {
        if (word.ends_with(']')) in_action = 0;
        continue;
      }
      if (std::find(std::begin(kEnumerable), std::end(kEnumerable), word) ==
          std::end(kEnumerable)) {
        return false;
      }
      any = true;
    }
    if (!any) return false;
    (database == "passwd" ? passwd : group) = true;
  }
  return passwd && group;
}

IdKnown account_ids_known() {
  std::ifstream file("/etc/nsswitch.conf");
  std::ostringstream text;
  text << file.rdbuf();
  if (!file || !account_sources_enumerable(text.str())) return account_id_known;
  auto ids = std::make_shared<std::unordered_set<uint32_t>>();
  ::setpwent();
  while (const passwd* pw = ::getpwent()) ids->insert(pw->pw_uid);
  ::endpwent();
  ::setgrent();
  while (const struct group* gr = ::getgrent()) ids->insert(gr->gr_gid);
  ::endgrent();
  return [ids](uint32_t id) { return ids->contains(id); };
}

}  // namespace jobhost::config
