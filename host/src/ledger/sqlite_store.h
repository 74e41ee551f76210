// The SQLite ledger: one file, WAL mode, short IMMEDIATE transactions.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "common/error.h"
#include "config/config.h"
#include "ledger/store.h"

namespace jobhost::ledger {

// How long a write waits for another connection's lock before failing
// ("locked by another process"): short, so the event loop never blocks long.
inline constexpr std::chrono::milliseconds kBusyTimeout{250};

// Opens (read_write: creating if needed) the ledger at `path`, sets WAL,
// synchronous NORMAL or FULL per `durability`, foreign keys and the busy
// timeout, and applies the pending schema migrations in one transaction.
// Errors name the file and what to do: cannot open or create, locked, disk
// full, read-only, not a jobhost ledger, or made by a newer jobhost (schema
// version higher than this build knows).
// `host` ([host] id) is recorded with each run claimed (empty: unknown).
Result<std::unique_ptr<Store>> open_sqlite_store(const std::filesystem::path& path,
                                                 config::Durability durability,
                                                 Access access = Access::read_write,
                                                 const std::string& host = "");

// The SQL Store::query_runs runs for `query` (its parameters in the order
// job, outcome, trigger, since, until, after, limit): for EXPLAIN QUERY PLAN.
std::string runs_query_sql(const RunQuery& query);

// The SQL of Store::running_runs (and of the read in close_orphaned_runs): for
// EXPLAIN QUERY PLAN.
std::string open_runs_sql();

// The SQL that reads a job's stats window in Store::job_stats (parameters:
// job, limit): for EXPLAIN QUERY PLAN.
std::string stats_window_sql();

}  // namespace jobhost::ledger
