// Ledger faults for tests: a write lock held by another process, the
// ledger's files made immutable (chattr +i) under a running daemon, or this
// process's file writes limited in size (a commit that fails).
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <vector>

namespace jobhost::testing {

// Holds the ledger's write lock from this process, as another program with
// a write transaction open would. Every write of the daemon then fails after
// the store's busy timeout (SQLITE_BUSY), through the same path as a full
// disk or a read-only file: the transaction is rolled back, nothing changed,
// the caller gets an Error. Unlike `chattr +i` or a full file system it needs
// no root and works on any file system; readers (WAL) are not blocked, so
// `jobhost status` and `history` keep working meanwhile.
class LedgerWriteLock {
 public:
  explicit LedgerWriteLock(const std::filesystem::path& db)
      : db_(db.string(), SQLite::OPEN_READWRITE, /*busy timeout ms=*/10000) {
    db_.exec("BEGIN EXCLUSIVE");
  }
  ~LedgerWriteLock() { release(); }
  LedgerWriteLock(const LedgerWriteLock&) = delete;
  LedgerWriteLock& operator=(const LedgerWriteLock&) = delete;

  void release() {
    if (!held_) return;
    db_.exec("ROLLBACK");
    held_ = false;
  }

 private:
  SQLite::Database db_;
  bool held_ = true;
};

// Makes the ledger's files immutable (chattr +i): the daemon's writes then
// fail with EPERM even on descriptors it already has open (SQLite: "disk I/O
// error"), as on a file system remounted read-only. Needs root and a file
// system with the flag; available() says whether it took.
class LedgerReadOnly {
 public:
  explicit LedgerReadOnly(const std::filesystem::path& dir) {
    for (const char* name : {"jobhost.db", "jobhost.db-wal"}) {
      if (set_immutable(dir / name, true)) files_.push_back(dir / name);
    }
  }
  ~LedgerReadOnly() { release(); }
  LedgerReadOnly(const LedgerReadOnly&) = delete;
  LedgerReadOnly& operator=(const LedgerReadOnly&) = delete;

  bool available() const { return files_.size() == 2; }
  void release() {
    for (const auto& f : files_) set_immutable(f, false);
    files_.clear();
  }

 private:
  static bool set_immutable(const std::filesystem::path& file, bool on) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    ::close(fd);
    return ok;
  }
  std::vector<std::filesystem::path> files_;
};

// While it lives, every write of this process past `bytes` of a file fails
// (RLIMIT_FSIZE, with SIGXFSZ ignored so that write() returns EFBIG): a
// SQLite commit, which is when the log is written, then fails as on a full
// disk, and rolls back. ok() says whether the limit took.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previous_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*previous_)(int) = nullptr;
  bool ok_ = false;
};

}  // namespace jobhost::testing
