#include "daemon/pid_lock.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace jobhost::daemon {
namespace {

int read_pid(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::atoi(buf) : 0;
}

}  // namespace

Result<PidLock> PidLock::acquire(const std::filesystem::path& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec)
    return fail(fmt::format("{}: cannot create state dir: {}", state_dir.string(), ec.message()));
  auto path = state_dir / "jobhost.pid";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fail(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int pid = read_pid(fd);
    ::close(fd);
    return fail(fmt::format(
        "another jobhost (pid {}) is already running on state dir {}; stop it first or use "
        "another state_dir",
        pid, state_dir.string()));
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int err = errno;
    ::close(fd);
    return fail(fmt::format("{}: cannot write pid: {}", path.string(), std::strerror(err)));
  }
  return PidLock(fd, path);
}

PidLock::PidLock(PidLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

PidLock::~PidLock() {
  if (fd_ < 0) return;
  [[maybe_unused]] int rc = ftruncate(fd_, 0);  // the lock is released by close either way
  ::close(fd_);
}

int PidLock::holder(const std::filesystem::path& state_dir) {
  int fd = ::open((state_dir / "jobhost.pid").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int pid = flock(fd, LOCK_SH | LOCK_NB) == 0 ? 0 : read_pid(fd);
  ::close(fd);
  return pid;
}

}  // namespace jobhost::daemon
