#include "ledger/sqlite_error.h"

#include <sqlite3.h>
#include <catch2/catch.hpp>

using jobhost::ledger::explain_sqlite_error;

TEST_CASE("SQLite result codes become advice", "[ledger][errors]") {
  struct Case {
    int code;
    const char* phrase;
  };
  for (auto c :
       {Case{SQLITE_BUSY, "locked by another process"},
        Case{SQLITE_BUSY_SNAPSHOT, "locked by another process"},
        Case{SQLITE_LOCKED, "locked by another process"}, Case{SQLITE_FULL, "disk full"},
        Case{SQLITE_READONLY, "read-only"}, Case{SQLITE_READONLY_DBMOVED, "read-only"},
        Case{SQLITE_CANTOPEN, "directory exists"}, Case{SQLITE_NOTADB, "not an SQLite database"},
        Case{SQLITE_CORRUPT, "corrupt"}, Case{SQLITE_IOERR_FSYNC, "I/O error (boom)"}}) {
    INFO("code " << c.code);
    CHECK_THAT(explain_sqlite_error(c.code, "boom"), Catch::Contains(c.phrase));
  }
  CHECK(explain_sqlite_error(SQLITE_MISMATCH, "datatype mismatch") == "datatype mismatch");
}
