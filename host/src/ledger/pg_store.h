// The PostgreSQL ledger: one database that one or several hosts share
// (docs/cluster.md). Queries run on one connection, one short transaction
// each (or a write group's), at READ COMMITTED; a slot is claimed once
// across hosts by the same unique keys as in SQLite.
#pragma once

#include <memory>
#include <string>

#include "common/error.h"
#include "ledger/store.h"

namespace jobhost::ledger {

// Connects to `url` (a libpq connection URI or key=value string: "postgresql://
// jobhost@db.example/jobhost"; a password is best kept in ~/.pgpass), checks
// that the database holds a jobhost ledger or nothing, and (read_write)
// applies the pending schema migrations in one transaction under an advisory
// lock, so that hosts starting together migrate once. Errors name the server
// and database (never the password) and what to do: unreachable, access
// denied, no such database, another application's tables, or a schema newer
// than this build knows. A connection lost later is made again at the next
// operation outside a transaction.
// `host` ([host] id) is recorded with each run claimed, and
// close_orphaned_runs closes only that host's runs.
Result<std::unique_ptr<Store>> open_pg_store(const std::string& url,
                                             Access access = Access::read_write,
                                             const std::string& host = "");

}  // namespace jobhost::ledger
