// Watches the plugin directories, the config file and the files its [host] include
// patterns match, for hot reload: inotify on their directories (editors and
// deploy tools replace files by rename), read on the io_context through a
// stream_descriptor, debounced so that a burst of events is one reload.
// Falls back to polling mtime/size every few seconds, and says so in the
// log, when inotify is unavailable or out of watches.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jobhost::reload {

// What a reload has to look at.
struct ChangeSet {
  std::set<std::string> plugin_files;  // paths of plugin files (changed, added or removed)
  bool all_plugins = false;  // every file in every plugin directory (SIGHUP, reload, overflow)
  bool config = false;       // the config file, or a file it includes

  bool empty() const { return plugin_files.empty() && !all_plugins && !config; }
  void merge(const ChangeSet& other);
};

// Pure: what one inotify event means. `name` is the file name in the watched
// directory, `mask` the event's mask; plugin_files holds `name` itself (the
// caller knows the directory). Plugin files are "*.so" not starting
// with "."; a temporary name that is renamed to "x.so" later counts when the
// IN_MOVED_TO arrives. `include_globs`: the file-name globs of the include
// patterns in this directory (none if it has none); a name one of them
// matches (config::include_name_matches) is the config's. IN_Q_OVERFLOW asks
// for everything.
ChangeSet classify_event(std::string_view name, uint32_t mask, bool in_plugin_dir,
                         bool in_config_dir, std::string_view config_name,
                         std::span<const std::string> include_globs);

// Pure: when a burst of events that began at `first` and was last extended
// at `last` is acted upon: after `quiet` without events, but no later than
// `max_wait` after the first (a steady trickle must not starve the reload).
std::chrono::steady_clock::time_point reload_due(std::chrono::steady_clock::time_point first,
                                                 std::chrono::steady_clock::time_point last,
                                                 std::chrono::steady_clock::duration quiet,
                                                 std::chrono::steady_clock::duration max_wait);

// What polling compares: a file's identity, size and modification time.
struct FileStamp {
  ino_t inode = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
using DirSnapshot = std::map<std::string, FileStamp>;

// Pure: the names to reload when polling. A file counts once its stamp is
// the same in two polls in a row (`previous` and `current`: not being
// written) and differs from what was last `reported`; a file gone from both
// polls that was reported counts as removed.
std::set<std::string> stable_changes(const DirSnapshot& reported, const DirSnapshot& previous,
                                     const DirSnapshot& current);

struct WatcherOptions {
  std::chrono::milliseconds quiet{25};
  std::chrono::milliseconds max_wait{500};
  std::chrono::milliseconds poll_interval{2000};
  bool force_polling = false;  // JOBHOST_WATCH=poll, for tests and odd file systems
};

class Watcher {
 public:
  using OnChange = std::function<void(ChangeSet)>;

  // `on_change` runs on io's thread once per debounced burst.
  Watcher(boost::asio::io_context& io, std::vector<std::filesystem::path> plugin_dirs,
          std::filesystem::path config_file, OnChange on_change, WatcherOptions options = {});
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Starts watching (inotify, or polling when it is not available).
  void start();
  // The include patterns (absolute, as config::HostConfig::include) whose
  // files are the config's from now on, before or after start(): their
  // directories are watched, and those of the previous patterns no longer.
  // A directory that does not exist is not watched (logged); polling looks
  // for the patterns' files at each poll.
  void watch_includes(std::vector<std::filesystem::path> patterns);
  // Stops every watch and timer; on_change is not called any more.
  void stop();
  bool polling() const { return polling_; }

 private:
  bool start_inotify();
  // Adds an inotify watch of `dir` (an include directory's: also
  // creations); -1 after logging why not, polling from then on unless it is
  // an include directory that does not exist.
  int add_watch(const std::filesystem::path& dir, bool include);
  // Watches the directories of include_patterns_ (inotify), and no others.
  void update_include_watches();
  // The file-name globs of the include patterns in the directory of watch `wd`.
  std::vector<std::string> include_globs_of(int wd) const;
  // Whether `name` in the include directory of watch `wd` is a symbolic link.
  bool is_symlink_in(int wd, std::string_view name) const;
  // The plugin directory watched by `wd`, or nullptr.
  const std::filesystem::path* plugin_dir_of(int wd) const;
  // The plugin directories and the config file, for log lines.
  std::string watched_text() const;
  void start_polling(const std::string& why);
  void read_events();
  void handle_event_bytes(const char* data, std::size_t size);
  void note(const ChangeSet& changes);
  void arm_debounce();
  void poll_once();
  DirSnapshot snapshot_plugins() const;
  DirSnapshot snapshot_config() const;

  boost::asio::io_context& io_;
  std::vector<std::filesystem::path> plugin_dirs_;
  std::filesystem::path config_file_;
  OnChange on_change_;
  WatcherOptions options_;
  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer debounce_;
  boost::asio::steady_timer poll_timer_;
  std::vector<int> plugin_wds_;  // one per plugin directory, in order
  int config_wd_ = -1;
  std::vector<std::filesystem::path> include_patterns_;
  std::map<std::filesystem::path, int> include_wds_;  // by directory; -1: not watched
  bool polling_ = false;
  bool stopped_ = false;
  ChangeSet pending_;
  std::chrono::steady_clock::time_point first_event_{};
  std::chrono::steady_clock::time_point last_event_{};
  // Polling state: last two polls and what was last reported, per kind.
  DirSnapshot plugins_previous_, plugins_reported_, config_previous_, config_reported_;
};

}  // namespace jobhost::reload
