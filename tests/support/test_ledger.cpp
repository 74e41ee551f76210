#include "support/test_ledger.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "ledger/pg_store.h"
#include "ledger/sqlite_store.h"

namespace jobhost::testing {
namespace {

// Runs one statement on `url`; the error, or empty.
std::string admin(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  return error;
}

}  // namespace

TestLedger::TestLedger(Kind kind) {
  if (kind == Kind::from_environment) {
    const char* store = ::getenv("JOBHOST_TEST_STORE");
    if (!store || std::string(store) == "sqlite") return;
    if (std::string(store) != "postgresql") {
      why_ = std::string("JOBHOST_TEST_STORE must be sqlite or postgresql, not ") + store;
      return;
    }
  }
  std::ifstream in(std::filesystem::path(JOBHOST_TEST_PG_DIR) / "url");
  std::getline(in, admin_url_);
  if (admin_url_.empty()) {
    why_ = "no PostgreSQL test server (" JOBHOST_TEST_PG_DIR
           "/url is missing: ctest's pg_server fixture writes it when PostgreSQL's server "
           "binaries are installed; outside ctest, scripts/pg-test-server.sh "
           "start " JOBHOST_TEST_PG_DIR ")";
    return;
  }
  static int made = 0;
  database_ = "jh_test_" + std::to_string(::getpid()) + "_" + std::to_string(++made);
  if (auto error = admin(admin_url_, "CREATE DATABASE " + database_); !error.empty()) {
    why_ = "cannot create a test database: " + error;
    database_.clear();
    return;
  }
  url_ = admin_url_.substr(0, admin_url_.rfind('/') + 1) + database_;
}

TestLedger::~TestLedger() {
  if (!database_.empty()) admin(admin_url_, "DROP DATABASE " + database_ + " WITH (FORCE)");
}

std::string TestLedger::execute(const std::string& sql) const {
  return admin(url_, sql);
}

Result<std::unique_ptr<ledger::Store>> TestLedger::try_open(config::Durability durability,
                                                            ledger::Access access,
                                                            const std::string& host) const {
  if (postgresql()) return ledger::open_pg_store(url_, access, host);
  return ledger::open_sqlite_store(dir_.db(), durability, access, host);
}

std::unique_ptr<ledger::Store> TestLedger::open(config::Durability durability,
                                                ledger::Access access,
                                                const std::string& host) const {
  auto store = try_open(durability, access, host);
  INFO((store ? std::string() : store.error().message));
  REQUIRE(store.has_value());
  return std::move(*store);
}

}  // namespace jobhost::testing
