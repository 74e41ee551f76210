// Watches plugin_dir and the config file for hot reload: inotify on both
// directories (editors and deploy tools replace files by rename), read on
// the io_context through a stream_descriptor, debounced so that a burst of
// events is one reload. Falls back to polling mtime/size every few seconds,
// and says so in the log, when inotify is unavailable or out of watches.
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
#include <string>
#include <string_view>

namespace jobhost::reload {

// What a reload has to look at.
struct ChangeSet {
  std::set<std::string> plugin_files;  // file names in plugin_dir (changed, added or removed)
  bool all_plugins = false;            // every file in plugin_dir (SIGHUP, reload, overflow)
  bool config = false;                 // the config file

  bool empty() const { return plugin_files.empty() && !all_plugins && !config; }
  void merge(const ChangeSet& other);
};

// Pure: what one inotify event means. `name` is the file name in the watched
// directory, `mask` the event's mask. Plugin files are "*.so" not starting
// with "."; a temporary name that is renamed to "x.so" later counts when the
// IN_MOVED_TO arrives. IN_Q_OVERFLOW asks for everything.
ChangeSet classify_event(std::string_view name, uint32_t mask, bool in_plugin_dir,
                         bool in_config_dir, std::string_view config_name);

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
  Watcher(boost::asio::io_context& io, std::filesystem::path plugin_dir,
          std::filesystem::path config_file, OnChange on_change, WatcherOptions options = {});
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Starts watching (inotify, or polling when it is not available).
  void start();
  // Stops every watch and timer; on_change is not called any more.
  void stop();
  bool polling() const { return polling_; }

 private:
  bool start_inotify();
  void start_polling(const std::string& why);
  void read_events();
  void handle_event_bytes(const char* data, std::size_t size);
  void note(const ChangeSet& changes);
  void arm_debounce();
  void poll_once();
  DirSnapshot snapshot_plugins() const;
  DirSnapshot snapshot_config() const;

  boost::asio::io_context& io_;
  std::filesystem::path plugin_dir_;
  std::filesystem::path config_file_;
  OnChange on_change_;
  WatcherOptions options_;
  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer debounce_;
  boost::asio::steady_timer poll_timer_;
  int plugin_wd_ = -1;
  int config_wd_ = -1;
  bool polling_ = false;
  bool stopped_ = false;
  ChangeSet pending_;
  std::chrono::steady_clock::time_point first_event_{};
  std::chrono::steady_clock::time_point last_event_{};
  // Polling state: last two polls and what was last reported, per kind.
  DirSnapshot plugins_previous_, plugins_reported_, config_previous_, config_reported_;
};

}  // namespace jobhost::reload
