// Internal: the Store over a sql::Connection, whichever the database. The
// openers (open_sqlite_store, open_pg_store) make the connection, check and
// migrate the schema, then hand it here.
#pragma once

#include <memory>
#include <string>

#include "ledger/connection.h"
#include "ledger/store.h"

namespace jobhost::ledger {

// The store on `db`; `name` (the file, or the server and database, never a
// password) starts its error messages. `host` ([host] id; empty: unknown) is
// recorded with every run it claims and, on PostgreSQL, scopes
// close_orphaned_runs to that host's runs.
std::unique_ptr<Store> make_sql_store(std::string name, std::unique_ptr<sql::Connection> db,
                                      std::string host);

}  // namespace jobhost::ledger
