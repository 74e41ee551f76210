// Ledger faults for integration tests: a write lock held by another process,
// or the ledger's files made immutable (chattr +i) under a running daemon.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

}  // namespace jobhost::testing
