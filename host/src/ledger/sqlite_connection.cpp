// The SQLite ledger: sql::Connection over SQLiteCpp, and open_sqlite_store
// (WAL, synchronous, foreign keys, busy timeout, migrations).
#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <unordered_map>

#include "ledger/schema.h"
#include "ledger/sql_store.h"
#include "ledger/sqlite_error.h"
#include "ledger/sqlite_store.h"

namespace jobhost::ledger {
namespace {

class SqliteStatement final : public sql::Statement {
 public:
  SqliteStatement(SQLite::Database& db, const char* sql) : s_(db, sql) {}

  void bind_null(int i) override { s_.bind(i); }
  void bind_int(int i, int64_t v) override { s_.bind(i, v); }
  void bind_real(int i, double v) override { s_.bind(i, v); }
  // SQLiteCpp binds a (pointer, size) as a blob, and text only from a
  // std::string.
  void bind_text(int i, std::string_view v) override { s_.bind(i, std::string(v)); }
  void bind_blob(int i, std::string_view bytes) override {
    // A null pointer would bind NULL, not an empty blob.
    static constexpr char kEmpty = 0;
    s_.bind(i, bytes.empty() ? &kEmpty : bytes.data(), static_cast<int>(bytes.size()));
  }
  bool step() override { return s_.executeStep(); }
  int exec() override { return s_.exec(); }
  void reset() noexcept override { s_.tryReset(); }

  bool is_null(int col) override { return s_.getColumn(col).isNull(); }
  int64_t int_at(int col) override { return s_.getColumn(col).getInt64(); }
  double real_at(int col) override { return s_.getColumn(col).getDouble(); }
  std::string_view text_at(int col) override {
    auto c = s_.getColumn(col);
    const auto* bytes = static_cast<const char*>(c.getBlob());
    return bytes ? std::string_view(bytes, static_cast<std::size_t>(c.getBytes()))
                 : std::string_view();
  }

 private:
  SQLite::Statement s_;
};

class SqliteConnection final : public sql::Connection {
 public:
  explicit SqliteConnection(SQLite::Database db) : db_(std::move(db)) {}

  sql::Dialect dialect() const override { return sql::Dialect::sqlite; }
  sql::Statement& statement(const char* sql) override {
    auto& slot = statements_[sql];
    if (!slot) slot = std::make_unique<SqliteStatement>(db_, sql);
    return *slot;
  }
  std::unique_ptr<sql::Statement> prepare(const std::string& sql) override {
    return std::make_unique<SqliteStatement>(db_, sql.c_str());
  }

  // Transaction control, prepared once like the rest (sqlite3_exec would
  // prepare them again for every write).
  void begin_write() override { run("BEGIN IMMEDIATE"); }
  void begin_read() override { run("BEGIN DEFERRED"); }
  void commit() override { run("COMMIT"); }
  void rollback() override { run("ROLLBACK"); }
  void savepoint() override { run("SAVEPOINT jobhost_write"); }
  void release() override { run("RELEASE jobhost_write"); }
  void rollback_to() override { run("ROLLBACK TO jobhost_write"); }
  bool in_transaction() override { return sqlite3_get_autocommit(db_.getHandle()) == 0; }
  bool aborted() override { return false; }
  bool read_only() override { return sqlite3_db_readonly(db_.getHandle(), "main") == 1; }

  void checkpoint() override {
    db_.check(sqlite3_wal_checkpoint_v2(db_.getHandle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                        nullptr, nullptr));
  }

  std::string explain(const std::exception& e) override { return explain_exception(e); }

  static std::string explain_exception(const std::exception& e) {
    const auto* failure = dynamic_cast<const SQLite::Exception*>(&e);
    if (!failure) return e.what();
    std::string explanation =
        explain_sqlite_error(failure->getExtendedErrorCode(), failure->getErrorStr());
    if ((failure->getErrorCode() & 0xff) == SQLITE_BUSY) {
      explanation += fmt::format(" (waited {} ms)", kBusyTimeout.count());
    }
    return explanation;
  }

 private:
  void run(const char* sql) {
    auto& s = statement(sql);
    s.reset();
    s.exec();
    s.reset();
  }

  SQLite::Database db_;
  // Declared after db_: statements are finalized before the connection closes.
  std::unordered_map<const char*, std::unique_ptr<SqliteStatement>> statements_;
};

int pragma_int(SQLite::Database& db, const char* pragma) {
  return db.execAndGet(fmt::format("PRAGMA {}", pragma)).getInt();
}

// Applies the migrations newer than the file's user_version, all in one
// IMMEDIATE transaction (a concurrent opener waits, then sees them done).
Result<void> migrate(SQLite::Database& db, const std::string& path) {
  SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
  int version = pragma_int(db, "user_version");
  if (version == 0 && db.execAndGet("SELECT count(*) FROM sqlite_schema").getInt() > 0) {
    return fail(
        fmt::format("{}: not a jobhost ledger (the file holds another application's tables): point "
                    "state_dir at another directory",
                    path));
  }
  for (const auto& m : migrations()) {
    if (m.version <= version) continue;
    db.exec(m.sql);
    db.exec(fmt::format("PRAGMA user_version = {}", m.version));
  }
  db.exec(fmt::format("PRAGMA application_id = {}", kApplicationId));
  tx.commit();
  return {};
}

std::unique_ptr<Store> make_store(const std::string& name, SQLite::Database db,
                                  const std::string& host) {
  return make_sql_store(name, std::make_unique<SqliteConnection>(std::move(db)), host);
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::filesystem::path& path,
                                                 config::Durability durability, Access access,
                                                 const std::string& host) {
  const std::string name = path.string();
  const bool writable = access == Access::read_write;
  try {
    if (!writable && !std::filesystem::exists(path)) {
      return fail(
          fmt::format("{}: no ledger here yet: check state_dir, or start the daemon once", name));
    }
    SQLite::Database db(
        path, writable ? SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE : SQLite::OPEN_READONLY,
        static_cast<int>(kBusyTimeout.count()));
    // SQLite silently falls back to read-only when the file is not writable.
    if (writable && sqlite3_db_readonly(db.getHandle(), "main") == 1) {
      return fail(fmt::format("{}: cannot open the ledger for writing: {}", name,
                              explain_sqlite_error(SQLITE_READONLY, "")));
    }
    const int application_id = pragma_int(db, "application_id");
    if (application_id != 0 && application_id != kApplicationId) {
      return fail(fmt::format(
          "{}: not a jobhost ledger (application_id {:#x}): point state_dir at another directory",
          name, static_cast<unsigned>(application_id)));
    }
    const int known = current_schema_version();
    int version = pragma_int(db, "user_version");
    if (version > known) {
      return fail(fmt::format(
          "{}: the ledger has schema version {}, but this jobhost knows only up to {}: it was "
          "written by a newer jobhost; run that version, or point state_dir elsewhere",
          name, version, known));
    }
    db.exec("PRAGMA foreign_keys = ON");
    if (!writable) {
      if (version < known) {
        return fail(fmt::format(
            "{}: the ledger has schema version {}, older than this jobhost's {}: start the daemon "
            "(jobhost run) once to upgrade it",
            name, version, known));
      }
      return make_store(name, std::move(db), host);
    }
    const auto mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") {
      return fail(fmt::format(
          "{}: cannot switch the ledger to WAL mode (got \"{}\"): put state_dir on a local file "
          "system",
          name, mode));
    }
    db.exec(durability == config::Durability::full ? "PRAGMA synchronous = FULL"
                                                   : "PRAGMA synchronous = NORMAL");
    if (version < known) {
      if (auto migrated = migrate(db, name); !migrated) return std::unexpected(migrated.error());
    }
    return make_store(name, std::move(db), host);
  } catch (const std::exception& e) {
    return fail(fmt::format("{}: cannot open the ledger: {}", name,
                            SqliteConnection::explain_exception(e)));
  }
}

}  // namespace jobhost::ledger
