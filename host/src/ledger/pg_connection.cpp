// The PostgreSQL ledger: sql::Connection over libpq, and open_pg_store
// (connection, schema check, migrations under an advisory lock).
#include <fmt/format.h>
#include <libpq-fe.h>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ledger/pg_store.h"
#include "ledger/schema.h"
#include "ledger/sql_store.h"

namespace jobhost::ledger {
namespace {

// An error of the server or of libpq: SQLSTATE (empty when libpq had no
// answer from a server: a connection that failed or was lost) and message.
struct PgError : std::runtime_error {
  PgError(std::string state, const std::string& message)
      : std::runtime_error(message), sqlstate(std::move(state)) {}
  std::string sqlstate;
};

constexpr unsigned kByteaOid = 17;
// How long a statement's answer is waited for. Past it the connection is
// dropped (the server rolls its transaction back) and the call fails: a
// server stopped or hung (SIGSTOP, a frozen VM), whose kernel still
// acknowledges and answers keepalives, would otherwise hold the calling
// thread for ever. Above lock_timeout (5 s): a statement waiting on a lock
// fails on its own first.
constexpr std::chrono::milliseconds kAnswerTimeout{10'000};

// How long a COMMIT whose answer was lost is asked after (txid_status) before
// it is taken as not done; each try may add a connect_timeout (5 s).
constexpr std::chrono::milliseconds kResolveTime{5'000};

// The key of the advisory lock migrations hold ("JBHL").
constexpr int64_t kMigrationLock = kApplicationId;

// libpq's message without its trailing newline, on one line.
std::string one_line(const char* message) {
  std::string text = message ? message : "";
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// Text as PostgreSQL's UTF-8 text takes it: invalid sequences and NUL bytes
// (SQLite keeps any bytes; a plugin's message may hold them) become U+FFFD.
std::string_view valid_text(std::string_view in, std::string& buffer) {
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  // The length of the valid sequence at i, or 0.
  const auto sequence = [&](std::size_t i) -> std::size_t {
    const unsigned c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || i + len > n) return 0;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
    }
    if (c == 0xE0 && s[i + 1] < 0xA0) return 0;   // overlong
    if (c == 0xED && s[i + 1] >= 0xA0) return 0;  // surrogate
    if (c == 0xF0 && s[i + 1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && s[i + 1] >= 0x90) return 0;  // above U+10FFFF
    return len;
  };
  std::size_t i = 0;
  while (i < n) {
    const std::size_t len = sequence(i);
    if (len == 0) break;
    i += len;
  }
  if (i == n) return in;
  buffer.assign(in.substr(0, i));
  while (i < n) {
    const std::size_t len = sequence(i);
    if (len == 0) {
      buffer += "\xEF\xBF\xBD";
      ++i;
    } else {
      buffer.append(in.substr(i, len));
      i += len;
    }
  }
  return buffer;
}

// The store's SQL (SQLite syntax) with its `?` and `?N` parameters numbered
// `$N` as PostgreSQL wants them, by SQLite's rule: a bare `?` takes the
// number after the largest used so far. `count` gets the largest.
std::string number_parameters(std::string_view sql, int& count) {
  std::string out;
  out.reserve(sql.size() + 16);
  count = 0;
  char quote = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote) {
      out += c;
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    std::size_t j = i + 1;
    while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') ++j;
    int number = count + 1;
    if (j > i + 1) std::from_chars(sql.data() + i + 1, sql.data() + j, number);
    count = std::max(count, number);
    out += '$';
    out += std::to_string(number);
    i = j - 1;
  }
  return out;
}

class PgConnection;

class PgStatement final : public sql::Statement {
 public:
  // `name` empty: run unprepared (a statement made for one use).
  PgStatement(PgConnection& db, std::string name, std::string_view sql)
      : db_(db), name_(std::move(name)), sql_(number_parameters(sql, count_)) {
    values_.resize(static_cast<std::size_t>(count_));
    binary_.resize(static_cast<std::size_t>(count_));
  }
  ~PgStatement() override { clear(); }

  void bind_null(int i) override { slot(i).reset(); }
  void bind_int(int i, int64_t v) override { slot(i) = std::to_string(v); }
  void bind_real(int i, double v) override { slot(i) = fmt::format("{}", v); }
  void bind_text(int i, std::string_view v) override {
    std::string buffer;
    slot(i) = std::string(valid_text(v, buffer));
  }
  void bind_blob(int i, std::string_view bytes) override {
    slot(i) = std::string(bytes);
    binary_[static_cast<std::size_t>(i - 1)] = 1;
  }

  bool step() override {
    if (!result_) run();
    return ++row_ < PQntuples(result_);
  }
  int exec() override {
    run();
    const char* changed = PQcmdTuples(result_);
    return changed && *changed ? std::atoi(changed) : 0;
  }
  void reset() noexcept override {
    clear();
    std::fill(binary_.begin(), binary_.end(), 0);
  }

  bool is_null(int col) override { return PQgetisnull(result_, row(), col) == 1; }
  int64_t int_at(int col) override {
    const char* text = PQgetvalue(result_, row(), col);
    int64_t v = 0;
    const auto end = text + std::char_traits<char>::length(text);
    if (std::from_chars(text, end, v).ec != std::errc{}) {
      throw sql::BadRow(fmt::format("not an integer: \"{}\"", text));
    }
    return v;
  }
  double real_at(int col) override { return std::strtod(PQgetvalue(result_, row(), col), nullptr); }
  std::string_view text_at(int col) override {
    const char* text = PQgetvalue(result_, row(), col);
    const auto length = static_cast<std::size_t>(PQgetlength(result_, row(), col));
    if (PQftype(result_, col) != kByteaOid) return std::string_view(text, length);
    std::size_t size = 0;
    unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &size);
    if (!bytes) throw sql::BadRow("unreadable bytes");
    bytes_.assign(reinterpret_cast<const char*>(bytes), size);
    PQfreemem(bytes);
    return bytes_;
  }

  const std::string& name() const { return name_; }
  const std::string& sql() const { return sql_; }
  int count() const { return count_; }

 private:
  std::optional<std::string>& slot(int i) {
    if (i < 1 || i > count_) {
      throw PgError("", fmt::format("parameter {} of {} bound ({}): a bug", i, count_, sql_));
    }
    return values_[static_cast<std::size_t>(i - 1)];
  }
  int row() const { return row_ < 0 ? 0 : row_; }
  void clear() noexcept {
    if (result_) PQclear(result_);
    result_ = nullptr;
    row_ = -1;
  }
  void run();

  PgConnection& db_;
  std::string name_;
  int count_ = 0;
  std::string sql_;
  std::vector<std::optional<std::string>> values_;
  std::vector<int> binary_;
  PGresult* result_ = nullptr;
  int row_ = -1;
  std::string bytes_;  // the last bytea column read
};

class PgConnection final : public sql::Connection {
 public:
  PgConnection(PGconn* conn, bool read_only) : conn_(conn), read_only_(read_only) {}
  ~PgConnection() override {
    statements_.clear();
    PQfinish(conn_);
  }

  sql::Dialect dialect() const override { return sql::Dialect::postgresql; }
  sql::Statement& statement(const char* sql) override {
    auto& slot = statements_[sql];
    if (!slot) {
      slot = std::make_unique<PgStatement>(*this, fmt::format("jh{}", statements_.size()), sql);
    }
    return *slot;
  }
  std::unique_ptr<sql::Statement> prepare(const std::string& sql) override {
    return std::make_unique<PgStatement>(*this, std::string(), sql);
  }

  // The transaction's id comes back with BEGIN, in the same round trip:
  // should the COMMIT's answer be lost, commit() asks whether it went through.
  void begin_write() override {
    xid_.clear();
    begin("BEGIN; SELECT txid_current()");
    xid_ = last_value_;
  }
  void begin_read() override {
    xid_.clear();
    begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  // A COMMIT of an aborted transaction answers "ROLLBACK": nothing was kept.
  void commit() override {
    const bool failed = aborted();
    try {
      finish("COMMIT");
    } catch (const PgError& e) {
      // No answer (a timeout, a lost connection): the server may have
      // committed. Claims written again would then find their slots taken
      // by themselves, and their runs would never start.
      if (failed || xid_.empty() || !(e.sqlstate.empty() || e.sqlstate.starts_with("08"))) throw;
      if (committed_after_all()) return;
      throw PgError(e.sqlstate, std::string(e.what()) +
                                    " (whether the COMMIT went through could not be learnt)");
    }
    if (failed || last_status_ == "ROLLBACK") {
      throw PgError("40000", "the transaction was rolled back: a statement in it had failed");
    }
  }
  void rollback() override { finish("ROLLBACK"); }
  void savepoint() override { command("SAVEPOINT jobhost_write"); }
  void release() override { command("RELEASE jobhost_write"); }
  void rollback_to() override { command("ROLLBACK TO jobhost_write"); }
  bool in_transaction() override {
    const auto status = PQtransactionStatus(conn_);
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
  }
  bool aborted() override { return PQtransactionStatus(conn_) == PQTRANS_INERROR; }
  bool read_only() override { return read_only_; }
  void checkpoint() override {}

  std::string explain(const std::exception& e) override { return explain_exception(e); }

  static std::string explain_exception(const std::exception& e) {
    const auto* failure = dynamic_cast<const PgError*>(&e);
    if (!failure) return e.what();
    const std::string& state = failure->sqlstate;
    const std::string message = failure->what();
    const auto is = [&](std::string_view prefix) { return state.starts_with(prefix); };
    if (state.empty() || is("08")) {
      return message +
             ": cannot reach the PostgreSQL server: check [store] url, that the server runs and "
             "that it accepts connections from this host";
    }
    if (state == "53100") return message + ": the database server's disk is full: free space";
    if (is("53")) return message + ": the database server is out of resources";
    if (state == "25006") {
      return message +
             ": the database refuses writes (a standby, or a read-only session): point "
             "[store] url at the primary";
    }
    if (is("28")) {
      return message +
             ": check the user and password ([store] url, or ~/.pgpass) and the "
             "server's pg_hba.conf";
    }
    if (state == "3D000") {
      return message + ": create the database (createdb), or fix the name in [store] url";
    }
    if (state == "42501") return message + ": grant this database user the rights it needs";
    if (is("57P")) return message + ": the server is shutting down or restarting";
    return message;
  }

  // Runs `statement` (its values bound): prepared once per connection when
  // it has a name.
  PGresult* execute(const PgStatement& statement, const std::vector<const char*>& values,
                    const std::vector<int>& lengths, const std::vector<int>& formats) {
    ensure_connected();
    if (!statement.name().empty() && !prepared_.contains(statement.name())) {
      PQclear(answer(PQsendPrepare(conn_, statement.name().c_str(), statement.sql().c_str(),
                                   statement.count(), nullptr)));
      prepared_.insert(statement.name());
    }
    if (statement.name().empty()) {
      return answer(PQsendQueryParams(conn_, statement.sql().c_str(), statement.count(), nullptr,
                                      values.data(), lengths.data(), formats.data(), 0));
    }
    return answer(PQsendQueryPrepared(conn_, statement.name().c_str(), statement.count(),
                                      values.data(), lengths.data(), formats.data(), 0));
  }

  // The answer of what PQsend*() sent (`sent`: its return), waited for at
  // most `timeout`; checked as check() does.
  PGresult* answer(int sent, std::chrono::milliseconds timeout = kAnswerTimeout) {
    if (!sent) return check(nullptr);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    PGresult* last = nullptr;
    for (;;) {
      while (PQisBusy(conn_)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          if (last) PQclear(last);
          // The connection goes: the server ends the session and its
          // transaction; the next call outside a transaction connects again.
          ::shutdown(PQsocket(conn_), SHUT_RDWR);
          PQconsumeInput(conn_);
          while (PGresult* r = PQgetResult(conn_)) PQclear(r);
          if (in_use_ && !in_transaction()) in_use_ = false;
          throw PgError("", fmt::format("the database server did not answer within {} s",
                                        timeout.count() / 1000));
        }
        pollfd ready{PQsocket(conn_), POLLIN, 0};
        if (::poll(&ready, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
          deadline = {};  // cannot wait: given up as a timeout (the loop's next turn)
          continue;
        }
        if (!PQconsumeInput(conn_)) break;  // the connection failed: PQgetResult says so
      }
      PGresult* result = PQgetResult(conn_);
      if (!result) break;
      // One result per statement sent; an error is the last one.
      if (last) PQclear(last);
      last = result;
    }
    return check(last);
  }

  // Opens the connection; throws PgError.
  static PGconn* connect(const std::string& url) {
    // Defaults first: what the url says wins (expand_dbname). Keepalives
    // and a TCP user timeout bound how long a call waits on a server that
    // vanished without closing the connection (a partition): about 10 s.
    // The server's side of it: a session whose host stalls in a
    // transaction (paused, cut off) must not hold the other hosts' claims
    // for more than a few seconds: its transaction is ended, a lock waited
    // for longer is an error (the write is tried again), and the server
    // probes a silent client too.
    const char* keywords[] = {"connect_timeout",
                              "application_name",
                              "keepalives",
                              "keepalives_idle",
                              "keepalives_interval",
                              "keepalives_count",
                              "tcp_user_timeout",
                              "options",
                              "dbname",
                              nullptr};
    const char* values[] = {"5",
                            "jobhost",
                            "1",
                            "5",
                            "2",
                            "2",
                            "5000",
                            "-c idle_in_transaction_session_timeout=2000 -c lock_timeout=5000 "
                            "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 "
                            "-c tcp_keepalives_count=2",
                            url.c_str(),
                            nullptr};
    PGconn* conn = PQconnectdbParams(keywords, values, 1);
    if (!conn) throw PgError("", "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
      const std::string message = one_line(PQerrorMessage(conn));
      PQfinish(conn);
      throw PgError("", message);
    }
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    return conn;
  }

  // Runs `sql` with no parameters; throws PgError. Its last statement's
  // status and first value are kept (last_status_, last_value_).
  void command(const char* sql) {
    ensure_connected();
    PGresult* result = answer(PQsendQuery(conn_, sql));
    last_status_ = PQcmdStatus(result);
    last_value_ = PQntuples(result) > 0 ? PQgetvalue(result, 0, 0) : "";
    PQclear(result);
  }

 private:
  void begin(const char* sql) {
    // A transaction the connection's loss ended is over: a new one may
    // connect again first.
    in_use_ = false;
    command(sql);
    in_use_ = true;
  }
  void finish(const char* sql) {
    in_use_ = false;
    command(sql);
  }

  // After a COMMIT whose answer was lost: a new session asks the server
  // whether the transaction xid_ committed, for about kResolveTime (it stays
  // "in progress" until the old session's end reaches the server). False
  // when it did not, or when the server cannot be asked.
  bool committed_after_all() {
    const std::string xid = std::exchange(xid_, {});
    const auto deadline = std::chrono::steady_clock::now() + kResolveTime;
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        if (PQstatus(conn_) == CONNECTION_OK) {
          ::shutdown(PQsocket(conn_), SHUT_RDWR);  // the session that sent the COMMIT goes
        }
        PQreset(conn_);
        prepared_.clear();
        if (PQstatus(conn_) != CONNECTION_OK) throw PgError("", one_line(PQerrorMessage(conn_)));
        const char* values[] = {xid.c_str()};
        PGresult* result = answer(PQsendQueryParams(conn_, "SELECT txid_status($1::bigint)", 1,
                                                    nullptr, values, nullptr, nullptr, 0),
                                  kResolveTime);
        const std::string status = PQgetisnull(result, 0, 0) ? "" : PQgetvalue(result, 0, 0);
        PQclear(result);
        if (status == "committed") return true;
        if (status != "in progress") return false;  // aborted (or unknown to the server)
      } catch (const PgError&) {
        // Not reachable yet: try again until the deadline.
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // A connection lost outside a transaction is made again (a restarted
  // server); inside one, the transaction is gone and its statements fail.
  void ensure_connected() {
    if (PQstatus(conn_) == CONNECTION_OK) return;
    if (in_use_ && !in_transaction()) {
      throw PgError("08006", "the connection to the server was lost during a transaction");
    }
    PQreset(conn_);
    prepared_.clear();
    if (PQstatus(conn_) != CONNECTION_OK) throw PgError("", one_line(PQerrorMessage(conn_)));
    if (read_only_) {
      PQclear(answer(PQsendQuery(conn_, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")));
    }
  }

  // The result if it succeeded; else PgError (the result freed).
  PGresult* check(PGresult* result) {
    const auto status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
    std::string state, message;
    if (result) {
      const char* code = PQresultErrorField(result, PG_DIAG_SQLSTATE);
      state = code ? code : "";
      message = one_line(PQresultErrorMessage(result));
      PQclear(result);
    }
    if (message.empty()) message = one_line(PQerrorMessage(conn_));
    if (PQstatus(conn_) != CONNECTION_OK) state.clear();
    if (in_use_ && !in_transaction()) in_use_ = false;
    throw PgError(state, message);
  }

  PGconn* conn_;
  bool read_only_;
  bool in_use_ = false;  // between begin_*() and commit()/rollback()
  std::unordered_map<const char*, std::unique_ptr<PgStatement>> statements_;
  std::unordered_set<std::string> prepared_;  // on this connection
  std::string last_status_;                   // of the last command(): "COMMIT", "ROLLBACK"
  std::string last_value_;                    // of the last command(): its first value
  std::string xid_;  // of the write transaction open (begin_write), for commit()
};

void PgStatement::run() {
  clear();
  std::vector<const char*> values(values_.size());
  std::vector<int> lengths(values_.size());
  for (std::size_t i = 0; i < values_.size(); ++i) {
    if (values_[i]) {
      values[i] = values_[i]->data();
      lengths[i] = static_cast<int>(values_[i]->size());
    }
  }
  result_ = db_.execute(*this, values, lengths, binary_);
}

// The database as messages name it: postgresql://user@host:port/dbname,
// never the password.
std::string display_name(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (!options) {
    std::string message = one_line(error);
    PQfreemem(error);
    return fmt::format("[store] url ({})", message);
  }
  std::unordered_map<std::string, std::string> found;
  for (auto* o = options; o->keyword; ++o) {
    if (o->val) found[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  const auto get = [&](const char* key, const char* fallback) {
    auto it = found.find(key);
    return it == found.end() || it->second.empty() ? std::string(fallback) : it->second;
  };
  std::string user = get("user", "");
  return fmt::format("postgresql://{}{}{}:{}/{}", user, user.empty() ? "" : "@",
                     get("host", "localhost"), get("port", "5432"), get("dbname", user.c_str()));
}

// Applies the migrations newer than the database's version in one
// transaction, holding an advisory lock, reading the version under it: hosts
// starting together migrate once.
void migrate(PgConnection& db) {
  db.begin_write();
  db.command(fmt::format("SELECT pg_advisory_xact_lock({})", kMigrationLock).c_str());
  db.command("CREATE TABLE IF NOT EXISTS jobhost_schema (version integer NOT NULL)");
  db.command(
      "INSERT INTO jobhost_schema (version) SELECT 0 WHERE NOT EXISTS "
      "(SELECT 1 FROM jobhost_schema)");
  auto& read = db.statement("SELECT version FROM jobhost_schema");
  read.reset();
  const int version = read.step() ? static_cast<int>(read.int_at(0)) : 0;
  read.reset();
  for (const auto& m : pg_migrations()) {
    if (m.version <= version) continue;
    db.command(m.sql);
    db.command(fmt::format("UPDATE jobhost_schema SET version = {}", m.version).c_str());
  }
  db.commit();
}

}  // namespace

Result<std::unique_ptr<Store>> open_pg_store(const std::string& url, Access access,
                                             const std::string& host) {
  const std::string name = display_name(url);
  try {
    auto db =
        std::make_unique<PgConnection>(PgConnection::connect(url), access == Access::read_only);
    // The version, read under the migration lock's protection by reading
    // after any migration in progress commits.
    auto version_of = [&]() -> std::optional<int> {
      db->begin_read();
      auto& exists = db->statement(
          "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
          "AND table_name = 'jobhost_schema'");
      exists.reset();
      const bool has_schema = exists.step() && exists.int_at(0) > 0;
      exists.reset();
      std::optional<int> version;
      if (has_schema) {
        auto& read = db->statement("SELECT version FROM jobhost_schema");
        read.reset();
        version = read.step() ? static_cast<int>(read.int_at(0)) : 0;
        read.reset();
      } else {
        auto& tables = db->statement(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
            "current_schema()");
        tables.reset();
        if (tables.step() && tables.int_at(0) > 0) version = -1;  // another application's
        tables.reset();
      }
      db->commit();
      return version;
    };
    auto version = version_of();
    if (version == -1) {
      return fail(fmt::format(
          "{}: not a jobhost ledger (the database holds another application's tables): point "
          "[store] url at a database of its own",
          name));
    }
    const int known = current_pg_schema_version();
    const int current = version.value_or(0);
    if (current > known) {
      return fail(fmt::format(
          "{}: the ledger has schema version {}, but this jobhost knows only up to {}: it was "
          "written by a newer jobhost; run that version, or point [store] url elsewhere",
          name, current, known));
    }
    if (access == Access::read_only) {
      if (current < known) {
        return fail(fmt::format(
            "{}: the ledger has schema version {}, older than this jobhost's {}: start the daemon "
            "(jobhost run) once to upgrade it",
            name, current, known));
      }
      db->command("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
    } else if (current < known) {
      migrate(*db);
    }
    return make_sql_store(name, std::move(db), host);
  } catch (const std::exception& e) {
    return fail(
        fmt::format("{}: cannot open the ledger: {}", name, PgConnection::explain_exception(e)));
  }
}

}  // namespace jobhost::ledger
