#include "ledger/open_store.h"

#include "ledger/pg_store.h"
#include "ledger/sqlite_store.h"

namespace jobhost::ledger {

std::filesystem::path sqlite_path(const config::HostConfig& host) {
  return host.state_dir / "jobhost.db";
}

Result<std::unique_ptr<Store>> open_store(const config::HostConfig& host, Access access) {
  if (!host.store_url.empty()) return open_pg_store(host.store_url, access, host.id);
  return open_sqlite_store(sqlite_path(host), host.durability, access, host.id);
}

}  // namespace jobhost::ledger
