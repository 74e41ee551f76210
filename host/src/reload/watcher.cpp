#include "reload/watcher.h"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>

#include "common/log.h"
#include "config/config.h"

namespace jobhost::reload {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Completed writes, renames in and out, and deletions: never IN_MODIFY, so a
// file is looked at only once its writer has closed it (or renamed it in).
// IN_ATTRIB for plugins: a chmod or chown can be what makes a rejected
// plugin (or plugin_dir) safe to load.
constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
// An include directory also reports creations: `ln -s` adds a file with
// IN_CREATE alone (handle_event_bytes counts it for a symbolic link only; a
// file being written is counted when it is closed).
constexpr uint32_t kIncludeWatchMask = kWatchMask | IN_CREATE;

// Kubernetes mounts a ConfigMap as <name> -> ..data/<name>, ..data -> a
// timestamped directory, and updates it by renaming a new ..data over the
// old: the config file's own name sees no event then.
constexpr std::string_view kAtomicWriterLink = "..data";

bool is_plugin_name(std::string_view name) {
  return !name.starts_with('.') && name.ends_with(".so") && name.size() > 3;
}

std::optional<FileStamp> stamp_of(const std::filesystem::path& file, bool follow) {
  struct stat st {};
  if ((follow ? ::stat(file.c_str(), &st) : ::lstat(file.c_str(), &st)) != 0) return std::nullopt;
  return FileStamp{st.st_ino, st.st_size,
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

}  // namespace

void ChangeSet::merge(const ChangeSet& other) {
  plugin_files.insert(other.plugin_files.begin(), other.plugin_files.end());
  all_plugins = all_plugins || other.all_plugins;
  config = config || other.config;
}

ChangeSet classify_event(std::string_view name, uint32_t mask, bool in_plugin_dir,
                         bool in_config_dir, std::string_view config_name,
                         std::span<const std::string> include_globs) {
  ChangeSet changes;
  const bool in_include_dir = !include_globs.empty();
  if (mask & IN_Q_OVERFLOW) {
    changes.all_plugins = true;
    changes.config = true;
    return changes;
  }
  // The directory itself went away or was replaced: look at everything again.
  if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    changes.all_plugins = in_plugin_dir;
    changes.config = in_config_dir || in_include_dir;
    return changes;
  }
  if (mask & IN_ATTRIB) {
    if (!in_plugin_dir) return changes;  // a touch or chmod leaves a config as it was
    if (name.empty()) {
      changes.all_plugins = true;  // plugin_dir's own owner or mode
    } else if (is_plugin_name(name)) {
      changes.plugin_files.insert(std::string(name));
    }
    return changes;
  }
  if (!(mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))) return changes;
  if (in_plugin_dir && is_plugin_name(name)) changes.plugin_files.insert(std::string(name));
  if (in_config_dir && (name == config_name || name == kAtomicWriterLink)) changes.config = true;
  if (in_include_dir &&
      (name == kAtomicWriterLink ||
       std::any_of(include_globs.begin(), include_globs.end(), [&](const std::string& glob) {
         return config::include_name_matches(glob, name);
       }))) {
    changes.config = true;
  }
  return changes;
}

SteadyClock::time_point reload_due(SteadyClock::time_point first, SteadyClock::time_point last,
                                   SteadyClock::duration quiet, SteadyClock::duration max_wait) {
  return std::min(last + quiet, first + max_wait);
}

std::set<std::string> stable_changes(const DirSnapshot& reported, const DirSnapshot& previous,
                                     const DirSnapshot& current) {
  std::set<std::string> out;
  for (const auto& [name, stamp] : current) {
    auto before = previous.find(name);
    if (before == previous.end() || !(before->second == stamp)) continue;  // still changing
    auto seen = reported.find(name);
    if (seen == reported.end() || !(seen->second == stamp)) out.insert(name);
  }
  for (const auto& [name, stamp] : reported) {
    if (!current.contains(name) && !previous.contains(name)) out.insert(name);
  }
  return out;
}

Watcher::Watcher(boost::asio::io_context& io, std::vector<std::filesystem::path> plugin_dirs,
                 std::filesystem::path config_file, OnChange on_change, WatcherOptions options)
    : io_(io),
      plugin_dirs_(std::move(plugin_dirs)),
      config_file_(std::move(config_file)),
      on_change_(std::move(on_change)),
      options_(options),
      inotify_(io),
      debounce_(io),
      poll_timer_(io) {}

Watcher::~Watcher() {
  stop();
}

void Watcher::start() {
  if (const char* mode = std::getenv("JOBHOST_WATCH"); mode && std::string_view(mode) == "poll") {
    options_.force_polling = true;
  }
  if (options_.force_polling) return start_polling("JOBHOST_WATCH=poll");
  if (start_inotify()) {
    std::string includes;
    for (const auto& [dir, wd] : include_wds_) {
      if (wd >= 0) includes += ", " + dir.string();
    }
    log::info(fmt::format("watching {}{} for changes (inotify)", watched_text(), includes));
  }
}

void Watcher::watch_includes(std::vector<std::filesystem::path> patterns) {
  if (patterns == include_patterns_) return;
  include_patterns_ = std::move(patterns);
  if (polling_) {
    // The new patterns' files as they are now: no reload for what was just read.
    config_previous_ = config_reported_ = snapshot_config();
  } else if (inotify_.is_open()) {
    update_include_watches();
    boost::system::error_code ignored;
    if (polling_) inotify_.close(ignored);  // out of watches: add_watch started polling
  }
}

bool Watcher::start_inotify() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    start_polling(fmt::format("inotify is not available: {}", std::strerror(errno)));
    return false;
  }
  inotify_.assign(fd);
  plugin_wds_.clear();
  for (const auto& dir : plugin_dirs_) {
    plugin_wds_.push_back(add_watch(dir, false));
    if (polling_) break;
  }
  if (!polling_) config_wd_ = add_watch(config_file_.parent_path(), false);
  if (!polling_) update_include_watches();
  if (polling_) {  // a watch failed: add_watch started polling
    boost::system::error_code ignored;
    inotify_.close(ignored);
    return false;
  }
  read_events();
  return true;
}

int Watcher::add_watch(const std::filesystem::path& dir, bool include) {
  const int wd = ::inotify_add_watch(inotify_.native_handle(), dir.c_str(),
                                     (include ? kIncludeWatchMask : kWatchMask) | IN_ONLYDIR);
  if (wd >= 0) return wd;
  const int err = errno;
  if (include && (err == ENOENT || err == ENOTDIR)) {
    // Only a rejected config names one (the loader refuses it): its reload
    // comes from the config file, or `jobhost reload`, once it exists.
    log::warn(fmt::format("include directory {} does not exist: not watched", dir.string()));
    return -1;
  }
  std::string why = err == ENOSPC ? "the inotify watch limit is reached (raise "
                                    "fs.inotify.max_user_watches)"
                                  : std::strerror(err);
  start_polling(fmt::format("cannot watch {}: {}", dir.string(), why));
  return -1;
}

void Watcher::update_include_watches() {
  std::map<std::filesystem::path, int> wanted;
  for (const auto& pattern : include_patterns_) wanted.emplace(pattern.parent_path(), -1);
  for (auto& [dir, wd] : wanted) {
    auto old = include_wds_.find(dir);
    wd = old != include_wds_.end() && old->second >= 0 ? old->second : add_watch(dir, true);
    if (polling_) return;
  }
  for (const auto& [dir, wd] : include_wds_) {
    if (wd < 0 || wanted.contains(dir) || wd == config_wd_ ||
        std::find(plugin_wds_.begin(), plugin_wds_.end(), wd) != plugin_wds_.end()) {
      continue;
    }
    // Two paths of one directory (a symbolic link) share one watch.
    const bool shared = std::any_of(wanted.begin(), wanted.end(),
                                    [&](const auto& entry) { return entry.second == wd; });
    if (!shared) ::inotify_rm_watch(inotify_.native_handle(), wd);
  }
  include_wds_ = std::move(wanted);
}

std::vector<std::string> Watcher::include_globs_of(int wd) const {
  std::vector<std::string> globs;
  if (wd < 0) return globs;
  for (const auto& pattern : include_patterns_) {
    auto it = include_wds_.find(pattern.parent_path());
    if (it != include_wds_.end() && it->second == wd) {
      globs.push_back(pattern.filename().string());
    }
  }
  return globs;
}

bool Watcher::is_symlink_in(int wd, std::string_view name) const {
  for (const auto& [dir, include_wd] : include_wds_) {
    if (include_wd != wd) continue;
    struct stat st {};
    return ::lstat((dir / name).c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }
  return false;
}

const std::filesystem::path* Watcher::plugin_dir_of(int wd) const {
  if (wd < 0) return nullptr;
  for (std::size_t i = 0; i < plugin_wds_.size(); ++i) {
    if (plugin_wds_[i] == wd) return &plugin_dirs_[i];
  }
  return nullptr;
}

std::string Watcher::watched_text() const {
  std::string text;
  for (const auto& dir : plugin_dirs_) text += dir.string() + ", ";
  return text + config_file_.string();
}

void Watcher::start_polling(const std::string& why) {
  polling_ = true;
  std::string includes;
  for (const auto& pattern : include_patterns_) includes += ", " + pattern.string();
  log::warn(fmt::format("{}: polling {}{} every {}ms instead", why, watched_text(), includes,
                        options_.poll_interval.count()));
  plugins_previous_ = plugins_reported_ = snapshot_plugins();
  config_previous_ = config_reported_ = snapshot_config();
  poll_once();
}

void Watcher::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  debounce_.cancel();
  poll_timer_.cancel();
  if (inotify_.is_open()) inotify_.close(ignored);
}

void Watcher::read_events() {
  inotify_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (ec || stopped_) return;
                        alignas(inotify_event) std::array<char, 16384> buf;
                        while (true) {
                          const ssize_t n =
                              ::read(inotify_.native_handle(), buf.data(), buf.size());
                          if (n < 0 && errno == EINTR) continue;
                          if (n <= 0) break;  // EAGAIN: drained
                          handle_event_bytes(buf.data(), static_cast<std::size_t>(n));
                        }
                        read_events();
                      });
}

void Watcher::handle_event_bytes(const char* data, std::size_t size) {
  const std::string config_name = config_file_.filename().string();
  for (std::size_t offset = 0; offset + sizeof(inotify_event) <= size;) {
    const auto* event = reinterpret_cast<const inotify_event*>(data + offset);
    offset += sizeof(inotify_event) + event->len;
    std::string_view name = event->len > 0 ? std::string_view(event->name) : std::string_view();
    const std::vector<std::string> globs = include_globs_of(event->wd);
    uint32_t mask = event->mask;
    if ((mask & IN_CREATE) && !globs.empty() && is_symlink_in(event->wd, name)) {
      mask |= IN_MOVED_TO;  // complete once made, as a file renamed in
    }
    // One directory can hold several: then their watches share one descriptor.
    const std::filesystem::path* plugin_dir = plugin_dir_of(event->wd);
    ChangeSet changes = classify_event(name, mask, plugin_dir != nullptr, event->wd == config_wd_,
                                       config_name, globs);
    if (plugin_dir != nullptr && !changes.plugin_files.empty()) {
      std::set<std::string> paths;  // the reloader wants paths: several directories
      for (const auto& file : changes.plugin_files) paths.insert((*plugin_dir / file).string());
      changes.plugin_files = std::move(paths);
    }
    if (event->mask & IN_Q_OVERFLOW) log::warn("inotify queue overflowed: reloading everything");
    if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
      log::warn("a watched directory was removed or moved: reloading, then polling for changes");
      note(changes);
      boost::system::error_code ignored;
      inotify_.close(ignored);
      start_polling("inotify lost its watch");
      return;
    }
    if (!changes.empty()) note(changes);
  }
}

void Watcher::note(const ChangeSet& changes) {
  const auto now = SteadyClock::now();
  if (pending_.empty()) first_event_ = now;
  last_event_ = now;
  pending_.merge(changes);
  arm_debounce();
}

void Watcher::arm_debounce() {
  debounce_.expires_at(reload_due(first_event_, last_event_, options_.quiet, options_.max_wait));
  debounce_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_ || pending_.empty()) return;
    on_change_(std::exchange(pending_, {}));
  });
}

void Watcher::poll_once() {
  poll_timer_.expires_after(options_.poll_interval);
  poll_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    ChangeSet changes;
    DirSnapshot plugins = snapshot_plugins();
    for (auto& name : stable_changes(plugins_reported_, plugins_previous_, plugins)) {
      changes.plugin_files.insert(name);
      if (auto it = plugins.find(name); it != plugins.end()) {
        plugins_reported_[name] = it->second;
      } else {
        plugins_reported_.erase(name);
      }
    }
    plugins_previous_ = std::move(plugins);
    DirSnapshot config = snapshot_config();
    if (!stable_changes(config_reported_, config_previous_, config).empty()) {
      changes.config = true;
      config_reported_ = config;
    }
    config_previous_ = std::move(config);
    if (!changes.empty()) on_change_(std::move(changes));
    poll_once();
  });
}

DirSnapshot Watcher::snapshot_plugins() const {
  DirSnapshot out;
  for (const auto& dir : plugin_dirs_) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (!is_plugin_name(it->path().filename().string())) continue;
      if (auto stamp = stamp_of(it->path(), false)) out.emplace(it->path().string(), *stamp);
    }
  }
  return out;
}

DirSnapshot Watcher::snapshot_config() const {
  DirSnapshot out;
  if (auto stamp = stamp_of(config_file_, true)) out.emplace(config_file_.string(), *stamp);
  for (const auto& pattern : include_patterns_) {
    auto files = config::match_include(pattern);
    if (!files) continue;  // a missing directory: its files come with it
    for (const auto& file : *files) {
      if (auto stamp = stamp_of(file, true)) out.emplace(file.string(), *stamp);
    }
  }
  return out;
}

}  // namespace jobhost::reload
