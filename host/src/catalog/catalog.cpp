#include "catalog/catalog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <system_error>
#include <utility>

#include "catalog/checks.h"
#include "catalog/shadow.h"
#include "common/sha256.h"

namespace jobhost::catalog {
namespace {

std::unexpected<Rejection> reject(const std::filesystem::path& path, std::string reason) {
  return std::unexpected(Rejection{path, std::move(reason)});
}

// Reads the whole file through a descriptor opened without following links,
// and checks it is still the file lstat() saw (not swapped in between).
Result<std::string> read_checked(const std::filesystem::path& file, const struct stat& seen) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(fmt::format("cannot be read: {}", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_dev != seen.st_dev || st.st_ino != seen.st_ino) {
    ::close(fd);
    return fail("was replaced while it was being checked: scan again");
  }
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(fmt::format("cannot be read: {}", std::strerror(err)));
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return bytes;
}

// A link's reason names its target: "is a symbolic link (to /x): ...".
std::string unsafe_reason(const std::filesystem::path& file, const Error& error) {
  if (error.kind != Error::Kind::symbolic_link) return error.message;
  std::error_code ec;
  const auto target = std::filesystem::read_symlink(file, ec);
  if (ec) return error.message;
  const auto colon = error.message.find(':');
  std::string reason = error.message;
  reason.insert(colon == std::string::npos ? reason.size() : colon,
                fmt::format(" (to {})", target.string()));
  return reason;
}

}  // namespace

const PluginInfo* ScanResult::find(std::string_view name) const {
  auto it = std::find_if(accepted.begin(), accepted.end(),
                         [&](const PluginInfo& p) { return p.name == name; });
  return it == accepted.end() ? nullptr : &*it;
}

Catalog::Catalog(std::vector<std::filesystem::path> plugin_dirs, std::filesystem::path shadow_dir,
                 Duration probe_timeout)
    : plugin_dirs_(std::move(plugin_dirs)),
      shadow_dir_(std::move(shadow_dir)),
      probe_timeout_(probe_timeout) {}

Catalog::Catalog(std::filesystem::path plugin_dir, std::filesystem::path shadow_dir,
                 Duration probe_timeout)
    : Catalog(std::vector{std::move(plugin_dir)}, std::move(shadow_dir), probe_timeout) {}

std::size_t Catalog::dir_rank(const std::filesystem::path& dir) const {
  return static_cast<std::size_t>(std::find(plugin_dirs_.begin(), plugin_dirs_.end(), dir) -
                                  plugin_dirs_.begin());
}

std::optional<Rejection> Catalog::check_plugin_dir(const std::filesystem::path& dir) const {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    return Rejection{dir,
                     err == ENOENT
                         ? std::string("plugin directory does not exist: create it, or "
                                       "set [host] plugin_dir to the directory that "
                                       "holds the plugins")
                         : fmt::format("plugin directory cannot be read: {}", std::strerror(err))};
  }
  if (auto ok = check_file_safety(dir, st.st_mode, st.st_uid, ::geteuid(), Expect::plugin_dir);
      !ok) {
    return Rejection{dir, "plugin directory: " + ok.error().message};
  }
  return std::nullopt;
}

std::string duplicate_reason(const PluginInfo& loser, const std::filesystem::path& winner) {
  const bool same_dir = loser.path.parent_path() == winner.parent_path();
  return fmt::format(
      "duplicate plugin name \"{}\": {} has the same name and is the one loaded (of files with "
      "the same plugin name, {}); remove or rename one of them",
      loser.name, same_dir ? winner.filename().string() : winner.string(),
      same_dir ? "the first by file name wins"
               : "the one in the directory listed first in [host] plugin_dir wins");
}

ScanResult Catalog::scan() {
  ScanResult result;
  if (auto ok = prepare_shadow_dir(shadow_dir_); !ok) {
    // Each directory's own problem is worth saying too: one fix, not two rounds.
    for (const auto& dir : plugin_dirs_) {
      if (auto bad = check_plugin_dir(dir)) result.rejected.push_back(std::move(*bad));
    }
    result.rejected.push_back({shadow_dir_, ok.error().message});
    return result;
  }

  std::map<std::string, std::filesystem::path> first_with_name;
  for (const auto& dir : plugin_dirs_) {
    if (auto bad = check_plugin_dir(dir)) {
      result.rejected.push_back(std::move(*bad));
      continue;
    }
    std::vector<std::string> names;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!name.starts_with('.') && name.ends_with(".so")) names.push_back(std::move(name));
    }
    if (ec) {
      result.rejected.push_back(
          {dir, fmt::format("plugin directory cannot be listed: {}", ec.message())});
      continue;
    }
    std::sort(names.begin(), names.end());

    for (const auto& name : names) {
      auto checked = probe_file(dir / name);
      if (!checked) {
        result.rejected.push_back(std::move(checked.error()));
        continue;
      }
      auto [first, inserted] = first_with_name.emplace(checked->name, checked->path);
      if (!inserted) {
        result.rejected.push_back({checked->path, duplicate_reason(*checked, first->second)});
        continue;
      }
      result.accepted.push_back(std::move(*checked));
    }
  }
  std::sort(result.rejected.begin(), result.rejected.end(),
            [](const Rejection& a, const Rejection& b) { return a.path < b.path; });
  return result;
}

std::expected<PluginInfo, Rejection> Catalog::probe_file(const std::filesystem::path& file) {
  auto prepared = prepare_probe(file);
  if (auto* info = std::get_if<PluginInfo>(&prepared)) return std::move(*info);
  if (auto* rejection = std::get_if<Rejection>(&prepared)) return std::unexpected(*rejection);
  const auto& pending = std::get<PendingProbe>(prepared);
  return finish_probe(pending, probe(pending.probed, probe_timeout_, file.filename().string()));
}

Catalog::Prepared Catalog::prepare_probe(const std::filesystem::path& file) {
  auto rejected = [&](std::string reason) { return Rejection{file, std::move(reason)}; };
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    return rejected(fmt::format("cannot be read: {}", std::strerror(errno)));
  }
  if (auto ok = check_file_safety(file, st.st_mode, st.st_uid, ::geteuid(), Expect::plugin_file);
      !ok) {
    return rejected(unsafe_reason(file, ok.error()));
  }
  auto bytes = read_checked(file, st);
  if (!bytes) return rejected(bytes.error().message);
  if (auto ok = check_elf_header(*bytes); !ok) return rejected(ok.error().message);

  const std::string sha = sha256_hex(*bytes);
  const auto shadow = shadow_path_for(shadow_dir_, sha);
  if (auto ok = prepare_shadow_dir(shadow_dir_); !ok) return rejected(ok.error().message);
  auto cached = verdicts_.find(sha);
  if (cached == verdicts_.end()) {
    // Probe exactly the bytes that were hashed: an intact shadow copy of them,
    // or a new temporary one, which becomes the shadow copy if accepted.
    PendingProbe pending{file, sha, shadow, std::nullopt};
    if (!is_intact_copy(shadow, sha)) {
      auto written = write_temp_copy(shadow_dir_, *bytes);
      if (!written) return rejected(written.error().message);
      pending.temp = *written;
      pending.probed = *written;
    }
    return pending;
  }
  if (!cached->second) return rejected(cached->second.error());

  // Accepted earlier: make sure its shadow copy is still there (state_dir may
  // have been cleaned); the content is the same, so no new probe is needed.
  struct stat shadow_st {};
  if (::lstat(shadow.c_str(), &shadow_st) != 0 || !S_ISREG(shadow_st.st_mode) ||
      static_cast<std::size_t>(shadow_st.st_size) != bytes->size()) {
    auto temp = write_temp_copy(shadow_dir_, *bytes);
    if (!temp) return rejected(temp.error().message);
    if (auto ok = commit_copy(*temp, shadow); !ok) return rejected(ok.error().message);
  }
  const Descriptor& d = *cached->second;
  return PluginInfo{*d.name, *d.version, d.description.value_or(""), d.abi_major, d.abi_minor, sha,
                    file,    shadow};
}

std::expected<PluginInfo, Rejection> Catalog::finish_probe(const PendingProbe& pending,
                                                           const ProbeResult& result) {
  ++probes_run_;
  Verdict verdict = std::unexpected(std::string());
  bool cacheable = true;  // false for a timeout or a host-side failure: try again next scan
  if (!result) {
    verdict = std::unexpected(result.error().reason);
    cacheable = !result.error().transient;
  } else if (auto ok = check_descriptor(*result); !ok) {
    verdict = std::unexpected(ok.error().message);
  } else {
    verdict = *result;
  }
  const auto shadow = shadow_path_for(shadow_dir_, pending.sha256);
  if (pending.temp) {
    if (!verdict) {
      ::unlink(pending.temp->c_str());
    } else if (auto ok = commit_copy(*pending.temp, shadow); !ok) {
      return reject(pending.file, ok.error().message);
    }
  }
  if (cacheable) verdicts_.insert_or_assign(pending.sha256, verdict);
  if (!verdict) return reject(pending.file, verdict.error());
  const Descriptor& d = *verdict;
  return PluginInfo{*d.name,      *d.version,  d.description.value_or(""),
                    d.abi_major,  d.abi_minor, pending.sha256,
                    pending.file, shadow};
}

}  // namespace jobhost::catalog
