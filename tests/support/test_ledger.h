// TestLedger: where a test's ledger lives, so that the store tests are one
// contract suite run against each store. By default a file in a temp
// directory (SQLite); with JOBHOST_TEST_STORE=postgresql, a database of its
// own on the test server that `ctest` starts (scripts/pg-test-server.sh,
// the pg_server fixture), dropped at the end. Without that server the test
// case skips: JOBHOST_TEST_LEDGER declares the ledger and skips for you.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/error.h"
#include "config/config.h"
#include "ledger/store.h"
#include "support/skip.h"
#include "support/temp_dir.h"

namespace jobhost::testing {

class TestLedger {
 public:
  // Which store: as JOBHOST_TEST_STORE says, or PostgreSQL whatever it says
  // (the cluster tests).
  enum class Kind { from_environment, postgresql };
  explicit TestLedger(Kind kind = Kind::from_environment);
  ~TestLedger();
  TestLedger(const TestLedger&) = delete;
  TestLedger& operator=(const TestLedger&) = delete;

  // False (with why) when the store under test cannot be reached here.
  bool available() const { return why_.empty(); }
  const std::string& why() const { return why_; }
  bool postgresql() const { return !url_.empty(); }

  // Opens the ledger (durability applies to SQLite) for host `host` ([host]
  // id); REQUIREs success.
  std::unique_ptr<ledger::Store> open(config::Durability durability = config::Durability::normal,
                                      ledger::Access access = ledger::Access::read_write,
                                      const std::string& host = "") const;
  // The same, as a Result: for tests of what opening refuses.
  Result<std::unique_ptr<ledger::Store>> try_open(
      config::Durability durability = config::Durability::normal,
      ledger::Access access = ledger::Access::read_write, const std::string& host = "") const;

  // The PostgreSQL url of this test's database (empty for SQLite).
  const std::string& url() const { return url_; }
  // Runs `sql` on this test's PostgreSQL database, as its owner: the
  // error, or empty.
  std::string execute(const std::string& sql) const;
  // A temp directory of the test's own (SQLite keeps its file there).
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  std::string url_;        // PostgreSQL: this test's database
  std::string admin_url_;  // PostgreSQL: the server's default database
  std::string database_;
  std::string why_;
};

}  // namespace jobhost::testing

// Declares TestLedger `name`; skips the test case if its store is not here.
#define JOBHOST_TEST_LEDGER(name)      \
  ::jobhost::testing::TestLedger name; \
  if (!name.available()) JOBHOST_SKIP(name.why())
