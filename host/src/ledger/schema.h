// Internal: the schemas (SQLite, PostgreSQL) as ordered lists of
// forward-only migrations.
#pragma once

#include <span>

namespace jobhost::ledger {

// Migration `version` takes a database from user_version version-1 to
// `version`. Never edit a released migration: append a new one.
struct Migration {
  int version;
  const char* sql;
};

// All migrations, versions 1, 2, ... in order.
std::span<const Migration> migrations();

// The schema version this build writes (the last migration's version).
int current_schema_version();

// The PostgreSQL schema's migrations (their own numbers) and version.
std::span<const Migration> pg_migrations();
int current_pg_schema_version();

// PRAGMA application_id of a jobhost ledger ("JBHL").
inline constexpr int kApplicationId = 0x4A42484C;

}  // namespace jobhost::ledger
