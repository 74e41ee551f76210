// Internal: what the ledger's store (sql_store.cpp) needs of a database, so
// that one store serves SQLite and PostgreSQL. The store's statements are
// written once, in SQLite's syntax with `?` and `?N` parameters; the
// PostgreSQL connection numbers them `$N`. Where the two dialects differ the
// store asks dialect() and picks the statement.
//
// Every method may throw (the backend's library exception or BadRow); the
// store catches at its edge and asks explain() for words a user can act on.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace jobhost::ledger::sql {

enum class Dialect { sqlite, postgresql };

// One statement: parameters bound by position from 1, rows stepped, columns
// read by position from 0. reset() ends its use (no read transaction stays
// open for it) and is called before it is bound again.
class Statement {
 public:
  virtual ~Statement() = default;
  virtual void bind_null(int i) = 0;
  virtual void bind_int(int i, int64_t v) = 0;
  virtual void bind_real(int i, double v) = 0;
  virtual void bind_text(int i, std::string_view v) = 0;
  virtual void bind_blob(int i, std::string_view bytes) = 0;
  // The next row; false once there is none.
  virtual bool step() = 0;
  // Runs it to the end: the number of rows it changed.
  virtual int exec() = 0;
  virtual void reset() noexcept = 0;

  virtual bool is_null(int col) = 0;
  virtual int64_t int_at(int col) = 0;
  virtual double real_at(int col) = 0;
  // Text or blob bytes (empty when NULL), valid until the next step.
  virtual std::string_view text_at(int col) = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Dialect dialect() const = 0;
  // The statement for `sql`, made once and reused: `sql` is one of the
  // store's constants and its address is the key.
  virtual Statement& statement(const char* sql) = 0;
  // A statement made for one use (SQL built at run time).
  virtual std::unique_ptr<Statement> prepare(const std::string& sql) = 0;

  // Transactions. begin_write() takes the write lock at once where the
  // database has one (SQLite's BEGIN IMMEDIATE); begin_read() sees every
  // table as of one instant.
  virtual void begin_write() = 0;
  virtual void begin_read() = 0;
  virtual void commit() = 0;
  virtual void rollback() = 0;
  virtual void savepoint() = 0;
  virtual void release() = 0;
  virtual void rollback_to() = 0;
  // A transaction is open (false once an error undid it, or the connection
  // to a server was lost).
  virtual bool in_transaction() = 0;
  // The open transaction failed and only a rollback (to a savepoint) can go
  // on (PostgreSQL after a failed statement; never SQLite, whose failed
  // statement undoes only itself or the whole transaction).
  virtual bool aborted() = 0;
  // The database refuses every write (a read-only file or session).
  virtual bool read_only() = 0;
  // Housekeeping for idle moments (Store::checkpoint); may do nothing.
  virtual void checkpoint() = 0;

  // "<what went wrong>: <what to do>" for an exception one of the methods
  // above threw.
  virtual std::string explain(const std::exception& e) = 0;
};

// Thrown for rows this build cannot read; the store makes it an Error.
struct BadRow : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace jobhost::ledger::sql
