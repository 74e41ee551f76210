// One daemon per state directory: an exclusive flock on <state_dir>/jobhost.pid
// that also records the daemon's pid. Released when the process exits, even by kill -9.
#pragma once

#include <filesystem>

#include "common/error.h"

namespace jobhost::daemon {

class PidLock {
 public:
  // Creates state_dir if needed. Fails with "another jobhost (pid N) is
  // already running on <state_dir>" when the lock is held.
  static Result<PidLock> acquire(const std::filesystem::path& state_dir);

  PidLock(PidLock&& other) noexcept;
  PidLock& operator=(PidLock&&) = delete;
  ~PidLock();

  // The pid recorded by the daemon holding the lock, or 0 when none does.
  static int holder(const std::filesystem::path& state_dir);

 private:
  PidLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::filesystem::path path_;
};

}  // namespace jobhost::daemon
