// The pure core of file triggers (file_triggers.h): which file names a
// watch path matches, a batch of changed paths and when it fires, and the
// payload its fire carries. No clock, no I/O: the times are arguments.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "common/time.h"

namespace jobhost::triggers {

// A watch path (config::Watch::paths) split at its last '/': the literal
// directory and the pattern of the file names in it.
struct WatchPath {
  std::filesystem::path dir;
  std::string pattern;
};
WatchPath split_watch_path(std::string_view path);

// Whether file name `name` matches `pattern`: fnmatch(3) with FNM_PERIOD,
// so that "*.csv" skips ".a.csv" (the temporary name of rsync and editors)
// and only a pattern starting with '.' matches such names.
bool name_matches(const std::string& pattern, const std::string& name);

// A batch waits at most this many debounces after its first change, so that
// a steady stream of changes still fires.
inline constexpr int kMaxWaitDebounces = 10;
// Most distinct paths a batch keeps; it is truncated beyond.
inline constexpr std::size_t kMaxBatchPaths = 100000;

// The changes of one job's watch since its last fire.
class Batch {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // `path` changed at `now` (again, if it is already in the batch).
  void add(const std::string& path, SteadyTime now);
  // The inotify queue overflowed at `now`: changes were lost.
  void overflowed(SteadyTime now);
  // The changes come (also) from a scan at the watch's start.
  void mark_catchup() { catchup_ = true; }

  bool empty() const { return paths_.empty() && !overflow_ && !truncated_; }
  std::size_t size() const { return paths_.size(); }
  // When it fires: `debounce` after its last change, but no later than
  // kMaxWaitDebounces x `debounce` after its first. Empty: meaningless.
  SteadyTime due(Duration debounce) const;
  // Its fire's payload, compact JSON of at most `max_bytes`:
  //   {"catchup":B,"count":N,"overflow":B,"paths":[...],"truncated":B}
  // paths sorted and distinct; when they do not all fit (or the batch kept
  // no more than kMaxBatchPaths), the first that fit, truncated true, and
  // count the number the batch held. Bytes of a name that are not UTF-8
  // are written as U+FFFD.
  std::string payload(std::size_t max_bytes) const;

 private:
  std::set<std::string> paths_;
  SteadyTime first_{};
  SteadyTime last_{};
  bool overflow_ = false;
  bool catchup_ = false;
  bool truncated_ = false;  // a path was left out: kMaxBatchPaths
  void touch(SteadyTime now);
};

}  // namespace jobhost::triggers
