// Opens the ledger a host's config names: the PostgreSQL database at
// [store] url if set, else the SQLite file jobhost.db in state_dir.
#pragma once

#include <filesystem>
#include <memory>

#include "common/error.h"
#include "config/config.h"
#include "ledger/store.h"

namespace jobhost::ledger {

// The SQLite ledger's file in `host`'s state_dir (whether it is used or not).
std::filesystem::path sqlite_path(const config::HostConfig& host);

// open_pg_store(host.store_url) or open_sqlite_store(sqlite_path(host)),
// with their errors.
Result<std::unique_ptr<Store>> open_store(const config::HostConfig& host,
                                          Access access = Access::read_write);

}  // namespace jobhost::ledger
