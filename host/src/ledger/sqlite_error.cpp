#include "ledger/sqlite_error.h"

#include <fmt/format.h>
#include <sqlite3.h>

namespace jobhost::ledger {

std::string explain_sqlite_error(int code, std::string_view sqlite_message) {
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "database is locked by another process: wait for it to finish or stop it "
             "(another jobhost, or a tool holding a write transaction)";
    case SQLITE_FULL:
      return "disk full: free space on the file system that holds the ledger";
    case SQLITE_READONLY:
      return "database is read-only: make the file, its -wal and -shm files and its "
             "directory writable by this user";
    case SQLITE_CANTOPEN:
      return "cannot open the database file: check that its directory exists and is "
             "writable by this user";
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return "access denied: check the file's permissions";
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return "not an SQLite database, or corrupt: move the file aside and start again "
             "(jobhost creates a new ledger)";
    case SQLITE_IOERR:
      return fmt::format("I/O error ({}): check the disk and the file system", sqlite_message);
    case SQLITE_NOMEM:
      return "out of memory";
    default:
      return std::string(sqlite_message);
  }
}

}  // namespace jobhost::ledger
