#include "ledger/sql_store.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>
#include <utility>

#include "ledger/connection.h"
#include "ledger/sqlite_store.h"

namespace jobhost::ledger {
namespace {

using nlohmann::json;

int64_t to_ms(TimePoint t) {
  return t.time_since_epoch().count();
}
TimePoint from_ms(int64_t ms) {
  return TimePoint(Duration(ms));
}

constexpr std::optional<double> kNoDouble;

bool advances_last_fire(Trigger t) {
  return t == Trigger::schedule || t == Trigger::catchup;
}

// ---- binding ---------------------------------------------------------------

using sql::BadRow;

void bind_one(sql::Statement& s, int i, std::nullptr_t) {
  s.bind_null(i);
}
void bind_one(sql::Statement& s, int i, int v) {
  s.bind_int(i, v);
}
void bind_one(sql::Statement& s, int i, int64_t v) {
  s.bind_int(i, v);
}
void bind_one(sql::Statement& s, int i, double v) {
  s.bind_real(i, v);
}
void bind_one(sql::Statement& s, int i, std::string_view v) {
  s.bind_text(i, v);
}
void bind_one(sql::Statement& s, int i, const std::string& v) {
  s.bind_text(i, v);
}
void bind_one(sql::Statement& s, int i, const char* v) {
  s.bind_text(i, v);
}
void bind_one(sql::Statement& s, int i, TimePoint v) {
  s.bind_int(i, to_ms(v));
}
void bind_one(sql::Statement& s, int i, Duration v) {
  s.bind_int(i, static_cast<int64_t>(v.count()));
}
template <class T>
void bind_one(sql::Statement& s, int i, const std::optional<T>& v) {
  if (v) {
    bind_one(s, i, *v);
  } else {
    s.bind_null(i);
  }
}

// Bytes that must stay bytes (output tails).
struct Blob {
  std::string_view bytes;
};
void bind_one(sql::Statement& s, int i, Blob v) {
  s.bind_blob(i, v.bytes);
}

// One column of the current row.
class Column {
 public:
  Column(sql::Statement& s, int i) : s_(s), i_(i) {}
  bool is_null() { return s_.is_null(i_); }
  int64_t as_int64() { return s_.int_at(i_); }
  int as_int() { return static_cast<int>(s_.int_at(i_)); }
  double as_double() { return s_.real_at(i_); }
  std::string as_string() { return std::string(s_.text_at(i_)); }

 private:
  sql::Statement& s_;
  int i_;
};

// A statement in use: binds in order, resets when the scope ends so that no
// statement keeps a read transaction open.
class Query {
 public:
  template <class... Args>
  explicit Query(sql::Statement& statement, const Args&... args) : s_(statement) {
    s_.reset();
    int i = 0;
    (bind_one(s_, ++i, args), ...);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query() { s_.reset(); }

  bool step() { return s_.step(); }
  int exec() { return s_.exec(); }
  Column col(int i) { return Column(s_, i); }

  std::optional<int64_t> opt_int(int i) {
    return s_.is_null(i) ? std::nullopt : std::optional<int64_t>(s_.int_at(i));
  }
  std::optional<TimePoint> opt_time(int i) {
    auto v = opt_int(i);
    return v ? std::optional<TimePoint>(from_ms(*v)) : std::nullopt;
  }
  // The text of column i (empty if NULL), valid until the next step: no
  // string made.
  std::string_view text_view(int i) { return s_.text_at(i); }
  std::optional<std::string> opt_text(int i) {
    return s_.is_null(i) ? std::nullopt : std::optional<std::string>(s_.text_at(i));
  }

 private:
  sql::Statement& s_;
};

// ---- SQL -------------------------------------------------------------------

#define JOBHOST_RUN_COLUMNS                                                                    \
  "run_id, job, scheduled_for, attempt, trace_id, trigger, started_at, finished_at, outcome, " \
  "exit_code, signal, duration_ms, plugin, plugin_version, plugin_sha256, definition_hash, "   \
  "message, output_tail, last_heartbeat, progress, replay_of, host_pid, cpu_seconds, "         \
  "max_rss_bytes, host"

constexpr const char* kEnsureJob =
    "INSERT INTO jobs (name, definition_hash, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO NOTHING";
constexpr const char* kUpsertJob =
    "INSERT INTO jobs (name, definition_hash, next_fire, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET definition_hash = excluded.definition_hash, "
    "next_fire = excluded.next_fire, updated_at = excluded.updated_at";
constexpr const char* kAdvanceLastFire =
    "UPDATE jobs SET last_fire = CASE WHEN last_fire > ?1 THEN last_fire ELSE ?1 END, "
    "updated_at = ?2 "
    "WHERE name = ?3";
constexpr const char* kClaimSlot =
    "INSERT INTO slots (job, scheduled_for, trigger, trace_id, claimed_at, event) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job, scheduled_for) DO NOTHING";
constexpr const char* kSlotEvent = "SELECT event FROM slots WHERE job = ? AND scheduled_for = ?";
constexpr const char* kSlotTrace = "SELECT trace_id FROM slots WHERE job = ? AND scheduled_for = ?";
constexpr const char* kAttemptExists =
    "SELECT 1 FROM runs WHERE job = ? AND scheduled_for = ? AND attempt = ?";
constexpr const char* kConsumeRetry =
    "DELETE FROM pending_retries WHERE job = ? AND scheduled_for = ? AND next_attempt <= ?";
constexpr const char* kInsertRun =
    "INSERT INTO runs (" JOBHOST_RUN_COLUMNS
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job, scheduled_for, attempt) DO NOTHING";
constexpr const char* kParkRun =
    "INSERT INTO parked_runs (run_id, job, prior_last_fire) "
    "VALUES (?1, ?2, (SELECT last_fire FROM jobs WHERE name = ?2))";
constexpr const char* kReleaseParked = "DELETE FROM parked_runs WHERE run_id = ?";
// The "started" event of a parked run that ended before its instant moves
// back with its started_at (kFinishRun).
constexpr const char* kParkedStartedEvent =
    "UPDATE events SET at = CASE WHEN at < ?1 THEN at ELSE ?1 END "
    "WHERE run_id = ?2 AND kind = 'started'";
constexpr const char* kTakeParked =
    "DELETE FROM parked_runs WHERE run_id = ? RETURNING job, prior_last_fire";
constexpr const char* kParkedIds = "SELECT run_id FROM parked_runs ORDER BY run_id";
constexpr const char* kDeleteUnfinishedRun =
    "DELETE FROM runs WHERE run_id = ? AND finished_at IS NULL "
    "RETURNING run_id, job, scheduled_for";
// The job's last fire goes back to before the claim, and its next fire (the
// one a never-fired job's misfires are found from) to the unclaimed slot.
constexpr const char* kRestoreLastFire =
    "UPDATE jobs SET last_fire = ?1, "
    "next_fire = CASE WHEN next_fire < ?4 THEN next_fire ELSE ?4 END, "
    "updated_at = ?2 WHERE name = ?3 AND last_fire = ?4";
constexpr const char* kRunForFinish =
    "SELECT job, scheduled_for, attempt, trace_id, finished_at FROM runs WHERE run_id = ?";
// A run still parked ended before its instant (its process died while it
// waited): it started when it ended, not at the instant it was claimed for.
constexpr const char* kFinishRun =
    "UPDATE runs SET started_at = CASE WHEN run_id IN (SELECT run_id FROM parked_runs) "
    "AND started_at > ?1 THEN ?1 ELSE started_at END, "
    "finished_at = ?1, outcome = ?, exit_code = ?, signal = ?, duration_ms = ?, "
    "message = ?, output_tail = ?, cpu_seconds = ?, max_rss_bytes = ? WHERE run_id = ? AND "
    "finished_at IS NULL";
constexpr const char* kInsertMetric =
    "INSERT INTO run_metrics (run_id, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value";
constexpr const char* kRunMetrics = "SELECT name, value FROM run_metrics WHERE run_id = ?";
constexpr const char* kResetFailures =
    "UPDATE jobs SET consecutive_failures = 0, updated_at = ? WHERE name = ?";
constexpr const char* kCountFailure =
    "UPDATE jobs SET consecutive_failures = consecutive_failures + 1, updated_at = ? "
    "WHERE name = ?";
constexpr const char* kJobDefinition = "SELECT definition_hash FROM jobs WHERE name = ?";
constexpr const char* kHeartbeat =
    "UPDATE runs SET last_heartbeat = ?, progress = coalesce(?, progress) "
    "WHERE run_id = ? AND finished_at IS NULL";
// Runs parked ahead of their instant (parked_runs) are not runs yet: reads
// of runs leave them out until they are released (or end, or are undone).
#define JOBHOST_NOT_PARKED(run_id) " " run_id " NOT IN (SELECT run_id FROM parked_runs) "

// Through the partial index runs_open, which holds only the runs in flight:
// left to itself the planner walks runs_by_started to save the sort, which
// reads every run of the ledger (seconds at 10 million runs, for `status`
// and at each daemon start).
#define JOBHOST_OPEN_RUNS(indexed_by)                    \
  "SELECT " JOBHOST_RUN_COLUMNS " FROM runs " indexed_by \
  " WHERE finished_at IS NULL "                          \
  "AND" JOBHOST_NOT_PARKED("run_id") "ORDER BY started_at, run_id"
constexpr const char* kOpenRuns = JOBHOST_OPEN_RUNS("INDEXED BY runs_open");
// PostgreSQL plans it from the partial index by itself.
constexpr const char* kOpenRunsPg = JOBHOST_OPEN_RUNS("");
// Several hosts share a PostgreSQL ledger: the runs one host left open
// (?1: its id), closed by itself at its start or by the host that takes it
// over.
constexpr const char* kHostParkedIds =
    "SELECT p.run_id FROM parked_runs p JOIN runs r ON r.run_id = p.run_id "
    "WHERE r.host IS NOT DISTINCT FROM ?1 ORDER BY p.run_id";
constexpr const char* kHostOpenRuns =
    "SELECT " JOBHOST_RUN_COLUMNS
    " FROM runs WHERE finished_at IS NULL AND host IS NOT DISTINCT "
    "FROM ?1 AND" JOBHOST_NOT_PARKED("run_id") "ORDER BY started_at, run_id";
// PostgreSQL: the rows locked, so that a run another connection finishes
// meanwhile is either finished first (and left out) or waits for the close.
constexpr const char* kHostOpenRunsPg =
    "SELECT " JOBHOST_RUN_COLUMNS
    " FROM runs WHERE finished_at IS NULL AND host IS NOT DISTINCT "
    "FROM ?1 AND" JOBHOST_NOT_PARKED("run_id") "ORDER BY started_at, run_id FOR UPDATE";
constexpr const char* kInterruptHostOpenRuns =
    "UPDATE runs SET finished_at = ?, outcome = 'interrupted', message = ? "
    "WHERE finished_at IS NULL AND host IS NOT DISTINCT FROM ?";
// Leases (Store::renew_lease and the rest).
#define JOBHOST_HOST_COLUMNS                                                              \
  "id, incarnation, pid, version, started_at, heartbeat_at, lease_until, taken_over_at, " \
  "taken_over_by, definitions, plugins"
constexpr const char* kHostRow =
    "SELECT incarnation, started_at, taken_over_at, lease_until FROM hosts WHERE id = ?";
constexpr const char* kHostRowPg =
    "SELECT incarnation, started_at, taken_over_at, lease_until FROM hosts WHERE id = ? "
    "FOR UPDATE";
constexpr const char* kRegisterHost =
    "INSERT INTO hosts (id, incarnation, pid, version, started_at, heartbeat_at, lease_until, "
    "definitions, plugins) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "incarnation = excluded.incarnation, pid = excluded.pid, version = excluded.version, "
    "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
    "lease_until = excluded.lease_until, taken_over_at = NULL, taken_over_by = NULL, "
    "definitions = excluded.definitions, plugins = excluded.plugins";
constexpr const char* kRenewHost =
    "UPDATE hosts SET heartbeat_at = ?, lease_until = ?, definitions = ?, plugins = ? "
    "WHERE id = ? AND incarnation = ?";
constexpr const char* kEndLease =
    "UPDATE hosts SET lease_until = ?1, taken_over_at = ?1, taken_over_by = id "
    "WHERE id = ?2 AND incarnation = ?3 AND taken_over_at IS NULL";
constexpr const char* kHosts = "SELECT " JOBHOST_HOST_COLUMNS " FROM hosts ORDER BY id";
// PostgreSQL locks the rows, skipping those another host holds: that host is
// taking them over.
constexpr const char* kExpiredHosts =
    "SELECT id FROM hosts WHERE lease_until < ?1 AND taken_over_at IS NULL AND id <> ?2 "
    "ORDER BY id";
constexpr const char* kExpiredHostsPg =
    "SELECT id FROM hosts WHERE lease_until < ?1 AND taken_over_at IS NULL AND id <> ?2 "
    "ORDER BY id FOR UPDATE SKIP LOCKED";
constexpr const char* kMarkTakenOver =
    "UPDATE hosts SET taken_over_at = ?1, taken_over_by = ?2 WHERE id = ?3 "
    "AND taken_over_at IS NULL";
constexpr const char* kInterruptOpenRuns =
    "UPDATE runs SET finished_at = ?, outcome = 'interrupted', message = ? "
    "WHERE finished_at IS NULL";
constexpr const char* kHistoryAll =
    "SELECT " JOBHOST_RUN_COLUMNS
    " FROM runs WHERE" JOBHOST_NOT_PARKED("run_id") "ORDER BY started_at DESC, run_id DESC LIMIT ?";
constexpr const char* kHistoryJob =
    "SELECT " JOBHOST_RUN_COLUMNS " FROM runs WHERE job = ? AND" JOBHOST_NOT_PARKED(
        "run_id") "ORDER BY started_at DESC, run_id DESC LIMIT ?";
constexpr const char* kGetRun =
    "SELECT " JOBHOST_RUN_COLUMNS " FROM runs WHERE run_id = ?1 AND" JOBHOST_NOT_PARKED("?1");
constexpr const char* kJobRow =
    "SELECT definition_hash, last_fire, next_fire, consecutive_failures, paused_at, paused_by "
    "FROM jobs WHERE name = ?";
// A job's stats window: its finished, not skipped runs, newest first. A
// finished run is one with an outcome (a CHECK ties finished_at to it), so
// the condition is on outcome alone and the window is read from
// runs_by_job_started, which holds outcome and duration_ms (schema version
// 4), without a table row per run.
#define JOBHOST_WINDOW_OF(job)     \
  "FROM runs r WHERE r.job = " job \
  " AND r.outcome <> 'skipped' "   \
  "ORDER BY r.started_at DESC, r.run_id DESC"
// Every job's figures in one statement (job_summaries): per job, index
// searches on runs_by_job_started and runs_open only (a window function over
// all runs sorts them: 3x slower at 10,000 jobs, bench/api). The window's
// count and successes come packed as "count successes".
constexpr const char* kJobSummaries =
    "SELECT j.name, j.definition_hash, j.last_fire, j.next_fire, j.consecutive_failures, "
    "j.paused_at, j.paused_by, "
    "(SELECT count(*) || ' ' || coalesce(sum(CASE WHEN w.outcome = 'succeeded' THEN 1 ELSE 0 END), 0) "
    "FROM (SELECT r.outcome "
    JOBHOST_WINDOW_OF("j.name") " LIMIT ?1) w), "
    "(SELECT r.outcome " JOBHOST_WINDOW_OF("j.name") " LIMIT 1), "
    "(SELECT r.started_at FROM runs r WHERE r.job = j.name AND "
    "(r.outcome IS NULL OR r.outcome <> 'skipped') AND" JOBHOST_NOT_PARKED("r.run_id")
    "ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1), "
    "(SELECT count(*) FROM runs r WHERE r.job = j.name AND r.finished_at IS NULL AND"
    JOBHOST_NOT_PARKED("r.run_id") ") "
    "FROM jobs j ORDER BY j.name";
// ?1: a JSON array of job names.
constexpr const char* kWindowRuns =
    "SELECT j.value, r.run_id, r.started_at, r.outcome, r.duration_ms FROM json_each(?1) j "
    "JOIN runs r ON r.run_id IN (SELECT r.run_id " JOBHOST_WINDOW_OF("j.value") " LIMIT ?2) "
    "ORDER BY j.key, r.started_at DESC, r.run_id DESC";
constexpr const char* kWindowRunsPg =
    "SELECT j.value, r.run_id, r.started_at, r.outcome, r.duration_ms "
    "FROM json_array_elements_text(?1::json) WITH ORDINALITY AS j (value, key) "
    "JOIN runs r ON r.run_id IN (SELECT r.run_id " JOBHOST_WINDOW_OF("j.value") " LIMIT ?2) "
    "ORDER BY j.key, r.started_at DESC, r.run_id DESC";
// ?1: a JSON array of job names. Their rows locked in one order, first in
// a write group: two hosts' groups touching the same jobs in different
// orders then wait for each other instead of deadlocking.
constexpr const char* kLockJobsPg =
    "SELECT name FROM jobs WHERE name IN (SELECT value FROM json_array_elements_text(?1::json)) "
    "ORDER BY name FOR UPDATE";
// Retention's turn among the hosts sharing a PostgreSQL ledger: one prunes
// at a time (the lock ends with the batch's transaction).
constexpr const char* kPruneTurnPg =
    "SELECT CASE WHEN pg_try_advisory_xact_lock(7452011) THEN 1 ELSE 0 END";
// Dashboard: the header's last-hour tiles.
constexpr const char* kRunSummary =
    "SELECT outcome, count(*), sum(duration_ms), count(duration_ms) FROM runs "
    "WHERE started_at >= ? AND finished_at IS NOT NULL AND outcome <> 'skipped' "
    "GROUP BY outcome";
constexpr const char* kRunMinutes =
    "SELECT started_at / 60000, outcome, count(*), sum(duration_ms), count(duration_ms) FROM runs "
    "WHERE started_at >= ? AND finished_at IS NOT NULL AND outcome <> 'skipped' "
    "GROUP BY 1, 2 ORDER BY 1";
constexpr const char* kSlotRuns =
    "SELECT " JOBHOST_RUN_COLUMNS
    " FROM runs WHERE job = ? AND scheduled_for = ? AND" JOBHOST_NOT_PARKED(
        "run_id") "ORDER BY attempt";
constexpr const char* kPausedAt = "SELECT paused_at FROM jobs WHERE name = ?";
constexpr const char* kSetPaused =
    "UPDATE jobs SET paused_at = ?, paused_by = ?, updated_at = ? WHERE name = ?";
constexpr const char* kPausedJobs =
    "SELECT name, paused_at, paused_by FROM jobs WHERE paused_at IS NOT NULL ORDER BY name";
constexpr const char* kEventsAfter =
    "SELECT id, at, kind, job, run_id, detail FROM events WHERE id > ? ORDER BY id LIMIT ?";
constexpr const char* kRunEvents =
    "SELECT id, at, kind, job, run_id, detail FROM events WHERE run_id = ? ORDER BY id LIMIT ?";
constexpr const char* kSelectStatsWindow =
    "SELECT r.outcome, r.duration_ms " JOBHOST_WINDOW_OF("?1") " LIMIT ?2";
constexpr const char* kLastStarted =
    "SELECT started_at FROM runs WHERE job = ? AND (outcome IS NULL OR outcome <> 'skipped') "
    "AND" JOBHOST_NOT_PARKED("run_id") "ORDER BY started_at DESC, run_id DESC LIMIT 1";
constexpr const char* kInFlight =
    "SELECT count(*) FROM runs WHERE job = ? AND finished_at IS NULL "
    "AND" JOBHOST_NOT_PARKED("run_id");
constexpr const char* kJobNames = "SELECT name FROM jobs ORDER BY name";
constexpr const char* kJitterSeed = "SELECT value FROM host_settings WHERE name = 'jitter_seed'";
constexpr const char* kInsertJitterSeed =
    "INSERT INTO host_settings (name, value) VALUES ('jitter_seed', ?) "
    "ON CONFLICT (name) DO NOTHING";
constexpr const char* kWriteProbe =
    "INSERT INTO host_settings (name, value) VALUES ('write_probe', ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value";
constexpr const char* kLastFire = "SELECT last_fire FROM jobs WHERE name = ?";
#define JOBHOST_LAST_CLAIMED                                                             \
  "SELECT MAX(scheduled_for) FROM runs WHERE job = ?1 AND trigger = ?2 AND attempt = 1 " \
  "AND (outcome IS NULL OR outcome <> 'skipped')"
constexpr const char* kLastClaimed = JOBHOST_LAST_CLAIMED;
constexpr const char* kLastClaimedPg = JOBHOST_LAST_CLAIMED " AND host IS NOT DISTINCT FROM ?3";
constexpr const char* kJobMarks =
    "SELECT name, definition_hash, last_fire, next_fire FROM jobs ORDER BY name";
constexpr const char* kInsertEvent =
    "INSERT INTO events (at, kind, job, run_id, detail) VALUES (?, ?, ?, ?, ?)";
constexpr const char* kEventsAll =
    "SELECT id, at, kind, job, run_id, detail FROM events ORDER BY id DESC LIMIT ?";
constexpr const char* kEventsJob =
    "SELECT id, at, kind, job, run_id, detail FROM events WHERE job = ? "
    "ORDER BY id DESC LIMIT ?";
constexpr const char* kUpsertRetry =
    "INSERT INTO pending_retries (job, scheduled_for, next_attempt, due_at, trace_id, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job, scheduled_for) DO UPDATE SET "
    "next_attempt = excluded.next_attempt, due_at = excluded.due_at, "
    "trace_id = excluded.trace_id, created_at = excluded.created_at";
constexpr const char* kPendingRetries =
    "SELECT r.job, r.scheduled_for, r.next_attempt, r.due_at, r.trace_id, s.event "
    "FROM pending_retries r JOIN slots s ON s.job = r.job AND s.scheduled_for = r.scheduled_for "
    "ORDER BY r.due_at, r.job, r.scheduled_for";
constexpr const char* kRemoveRetry =
    "DELETE FROM pending_retries WHERE job = ? AND scheduled_for = ?";
constexpr const char* kAlertStates =
    "SELECT job, kind, firing, since, notified_at, failed_fires, window_start, pending, message "
    "FROM alert_state ORDER BY job, kind";
constexpr const char* kSaveAlertState =
    "INSERT INTO alert_state (job, kind, firing, since, notified_at, failed_fires, window_start, "
    "pending, message, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job, kind) DO UPDATE SET firing = excluded.firing, since = excluded.since, "
    "notified_at = excluded.notified_at, failed_fires = excluded.failed_fires, "
    "window_start = excluded.window_start, pending = excluded.pending, "
    "message = excluded.message, updated_at = excluded.updated_at";
// Walks runs_by_job_started from the newest run back to the first success:
// no index of its own, which every run's write would pay for. Read once per
// job when alerts first see it (observe/alerts.h).
constexpr const char* kLastSuccess =
    "SELECT finished_at FROM runs WHERE job = ? AND outcome = 'succeeded' "
    "ORDER BY started_at DESC LIMIT 1";
constexpr const char* kFirstRun = "SELECT min(started_at) FROM runs WHERE job = ?";
// A job's newest slot keeps its runs (alias r): `status` still shows the
// job's latest outcome however old it is.
#define JOBHOST_NOT_NEWEST_SLOT \
  "r.scheduled_for < (SELECT max(s.scheduled_for) FROM slots s WHERE s.job = r.job)"
constexpr const char* kPruneRuns =
    "DELETE FROM runs WHERE run_id IN (SELECT r.run_id FROM runs r "
    "WHERE r.finished_at IS NOT NULL AND r.started_at < ?1 AND " JOBHOST_NOT_NEWEST_SLOT
    " ORDER BY r.started_at LIMIT ?2) RETURNING run_id, job, scheduled_for";
// The job's runs after its newest `keep` (OFFSET), finished, oldest first.
constexpr const char* kPruneExcess =
    "DELETE FROM runs WHERE run_id IN (SELECT r.run_id FROM "
    "(SELECT run_id, job, scheduled_for, started_at, finished_at FROM runs WHERE job = ?1 "
    "ORDER BY started_at DESC, run_id DESC LIMIT 9223372036854775807 OFFSET ?2) r "
    "WHERE r.finished_at IS NOT NULL AND " JOBHOST_NOT_NEWEST_SLOT
    " ORDER BY r.started_at LIMIT ?3) RETURNING run_id, job, scheduled_for";
constexpr const char* kPruneRunEvents = "DELETE FROM events WHERE run_id = ?";
constexpr const char* kPruneSlot =
    "DELETE FROM slots WHERE job = ?1 AND scheduled_for = ?2 "
    "AND NOT EXISTS (SELECT 1 FROM runs WHERE job = ?1 AND scheduled_for = ?2) "
    "AND NOT EXISTS (SELECT 1 FROM pending_retries WHERE job = ?1 AND scheduled_for = ?2)";
constexpr const char* kPruneOldEvents =
    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? ORDER BY at LIMIT ?)";

// ---- the store -------------------------------------------------------------

class SqlStore final : public Store {
 public:
  SqlStore(std::string name, std::unique_ptr<sql::Connection> db, std::string host)
      : path_(std::move(name)), db_(std::move(db)) {
    if (!host.empty()) host_ = std::move(host);
  }

  Result<bool> claim_and_start(const RunStart& run) override {
    const auto what = fmt::format("cannot record the start of run {} (job {}, attempt {})",
                                  run.run_id, run.job, run.attempt);
    if (run.run_id.empty() || run.trace_id.empty() || run.job.empty()) {
      return fail(fmt::format("{}: {}: run id, trace id and job must not be empty", path_, what));
    }
    if (run.attempt < 1) {
      return fail(fmt::format("{}: {}: attempts count from 1", path_, what));
    }
    return write_guarded(what, [&]() -> Result<bool> {
      WriteScope tx(*this);
      Query(statement(kEnsureJob), run.job, run.definition_hash, run.started_at).exec();
      // Before claim_slot moves the job's last fire: the mark keeps the old
      // one. A claim that fails rolls it back with the rest.
      if (run.parked) Query(statement(kParkRun), run.run_id, run.job).exec();
      if (run.attempt == 1) {
        if (!claim_slot(run.job, run.scheduled_for, run.trigger, run.trace_id, run.started_at,
                        run.event)) {
          return false;
        }
      } else {
        auto trace = slot_trace(run.job, run.scheduled_for);
        if (!trace) {
          return fail(fmt::format("{}: {}: slot {} was never claimed (attempt 1 comes first)",
                                  path_, what, format_utc(run.scheduled_for)));
        }
        if (*trace != run.trace_id) {
          return fail(fmt::format("{}: {}: trace id {} differs from the slot's {}", path_, what,
                                  run.trace_id, *trace));
        }
        Query exists(statement(kAttemptExists), run.job, run.scheduled_for, run.attempt);
        if (exists.step()) return false;
        Query(statement(kConsumeRetry), run.job, run.scheduled_for, run.attempt).exec();
      }
      // Another host may have inserted the attempt since the check above
      // (a PostgreSQL store): the unique key decides, and nothing is kept.
      if (Query(statement(kInsertRun), run.run_id, run.job, run.scheduled_for, run.attempt,
                run.trace_id, to_string(run.trigger), run.started_at, nullptr, nullptr, nullptr,
                nullptr, nullptr, run.plugin, run.plugin_version, run.plugin_sha256,
                run.definition_hash, "", Blob{}, nullptr, nullptr, run.replay_of, run.host_pid,
                nullptr, nullptr, host_)
              .exec() == 0) {
        return false;
      }
      insert_event(run.started_at, "started", run.job, run.run_id,
                   json{{"trigger", to_string(run.trigger)},
                        {"attempt", run.attempt},
                        {"scheduled_for", format_utc(run.scheduled_for)},
                        {"trace_id", run.trace_id}}
                       .dump());
      tx.commit();
      return true;
    });
  }

  Result<bool> finish_run(const RunEnd& end) override {
    const auto what = fmt::format("cannot record the end of run {}", end.run_id);
    return write_guarded(what, [&]() -> Result<bool> {
      WriteScope tx(*this);
      std::string job, trace_id;
      TimePoint scheduled_for;
      int attempt = 0;
      {
        Query q(statement(kRunForFinish), end.run_id);
        if (!q.step()) return fail(fmt::format("{}: {}: no such run", path_, what));
        if (!q.col(4).is_null()) return false;  // already finished: idempotent
        job = q.col(0).as_string();
        scheduled_for = from_ms(q.col(1).as_int64());
        attempt = q.col(2).as_int();
        trace_id = q.col(3).as_string();
      }
      const bool cpu_known =
          end.cpu_seconds && std::isfinite(*end.cpu_seconds) && *end.cpu_seconds >= 0;
      const std::optional<double>& cpu = cpu_known ? end.cpu_seconds : kNoDouble;
      // SQLite integers are signed 64-bit: clamp a (hostile) huge figure.
      std::optional<int64_t> rss;
      if (end.max_rss_bytes) {
        rss = static_cast<int64_t>(
            std::min<uint64_t>(*end.max_rss_bytes, std::numeric_limits<int64_t>::max()));
      }
      // Still open: another host may have closed it since the read above
      // (a takeover, on PostgreSQL at READ COMMITTED); then nothing changes.
      if (Query(statement(kFinishRun), end.finished_at, to_string(end.outcome), end.exit_code,
                end.signal, end.duration, end.message, Blob{end.output_tail}, cpu, rss, end.run_id)
              .exec() == 0) {
        return false;
      }
      // A parked run that ended before its release (its process died).
      if (Query(statement(kReleaseParked), end.run_id).exec() > 0) {
        Query(statement(kParkedStartedEvent), end.finished_at, end.run_id).exec();
      }
      std::size_t stored = 0;
      for (const auto& [name, value] : end.metrics) {
        if (stored == kMaxRunMetrics) break;
        if (!storable_metric(name, value)) continue;
        Query(statement(kInsertMetric), end.run_id, name, value).exec();
        ++stored;
      }
      if (end.outcome == Outcome::succeeded) {
        Query(statement(kResetFailures), end.finished_at, job).exec();
      } else if (counts_as_failure(end.outcome)) {
        Query(statement(kCountFailure), end.finished_at, job).exec();
      }
      json detail{{"outcome", to_string(end.outcome)}, {"attempt", attempt}};
      if (end.exit_code) detail["exit_code"] = *end.exit_code;
      if (end.signal) detail["signal"] = *end.signal;
      if (end.duration) detail["duration_ms"] = end.duration->count();
      insert_event(end.finished_at, "finished", job, end.run_id,
                   detail.dump(-1, ' ', false, json::error_handler_t::replace));
      if (end.retry_at) {
        upsert_retry(
            PendingRetry{job, scheduled_for, attempt + 1, *end.retry_at, trace_id, std::nullopt},
            end.finished_at, end.run_id);
      }
      tx.commit();
      return true;
    });
  }

  Result<bool> record_skipped(const SkipRecord& skip) override {
    const auto what = fmt::format("cannot record the skipped fire of job {} at {}", skip.job,
                                  format_utc(skip.scheduled_for));
    if (skip.run_id.empty() || skip.trace_id.empty() || skip.job.empty()) {
      return fail(fmt::format("{}: {}: run id, trace id and job must not be empty", path_, what));
    }
    return write_guarded(what, [&]() -> Result<bool> {
      WriteScope tx(*this);
      Query(statement(kEnsureJob), skip.job, skip.definition_hash, skip.at).exec();
      if (!claim_slot(skip.job, skip.scheduled_for, skip.trigger, skip.trace_id, skip.at)) {
        return false;
      }
      auto definition = skip.definition_hash;
      if (!definition) {
        Query q(statement(kJobDefinition), skip.job);
        if (q.step()) definition = q.opt_text(0);
      }
      Query(statement(kInsertRun), skip.run_id, skip.job, skip.scheduled_for, 1, skip.trace_id,
            to_string(skip.trigger), skip.at, skip.at, to_string(Outcome::skipped), nullptr,
            nullptr, Duration{0}, nullptr, nullptr, nullptr, definition, skip.reason, Blob{},
            nullptr, nullptr, nullptr, skip.host_pid, nullptr, nullptr, host_)
          .exec();
      insert_event(skip.at, "skipped", skip.job, skip.run_id,
                   json{{"trigger", to_string(skip.trigger)},
                        {"scheduled_for", format_utc(skip.scheduled_for)},
                        {"reason", skip.reason}}
                       .dump(-1, ' ', false, json::error_handler_t::replace));
      tx.commit();
      return true;
    });
  }

  Result<bool> heartbeat(std::string_view run_id, TimePoint at,
                         std::optional<double> progress) override {
    return write_guarded(fmt::format("cannot record a heartbeat of run {}", run_id),
                         [&]() -> Result<bool> {
                           return Query(statement(kHeartbeat), at, progress, run_id).exec() > 0;
                         });
  }

  Result<void> release_parked(std::span<const std::string> run_ids) override {
    return write_guarded(
        fmt::format("cannot record the release of {} parked run(s)", run_ids.size()),
        [&]() -> Result<void> {
          WriteScope tx(*this);
          for (const auto& id : run_ids) Query(statement(kReleaseParked), id).exec();
          tx.commit();
          return {};
        });
  }

  Result<bool> unclaim_parked(const Unclaim& unclaim) override {
    return write_guarded(fmt::format("cannot undo the claim of parked run {}", unclaim.run_id),
                         [&]() -> Result<bool> {
                           WriteScope tx(*this);
                           if (!undo_parked_claim(unclaim)) return false;
                           tx.commit();
                           return true;
                         });
  }

  Result<Takeover> close_orphaned_runs(TimePoint now, std::string_view message) override {
    return write_guarded("cannot close the runs left open by a previous host",
                         [&]() -> Result<Takeover> {
                           WriteScope tx(*this);
                           // SQLite: one host per file (the state_dir lock),
                           // every open run is its. PostgreSQL: only this host's.
                           Takeover out;
                           out.closed = close_open_runs(db_->dialect() == sql::Dialect::postgresql,
                                                        host_, now, message, &out.freed);
                           tx.commit();
                           return out;
                         });
  }

  Result<Lease> renew_lease(const HostRecord& me) override {
    return write_guarded(
        fmt::format("cannot renew the lease of host {}", me.id), [&]() -> Result<Lease> {
          const std::string plugins =
              json(me.plugins).dump(-1, ' ', false, json::error_handler_t::replace);
          WriteScope tx(*this);
          bool known = false;
          {
            Query q(statement(kHostRow, kHostRowPg), me.id);
            if (q.step()) {
              known = q.text_view(0) == me.incarnation;
              if (known && !q.col(2).is_null()) return Lease::lost;  // taken over
              // Another incarnation of the id, still holding its lease: the
              // newer one wins (one that ended or ran out is replaced,
              // whatever the clocks say).
              const bool holding =
                  q.col(2).is_null() && from_ms(q.col(3).as_int64()) >= me.heartbeat_at;
              if (!known && holding && from_ms(q.col(1).as_int64()) > me.started_at) {
                return Lease::lost;
              }
            }
          }
          if (known) {
            Query(statement(kRenewHost), me.heartbeat_at, me.lease_until, me.definitions, plugins,
                  me.id, me.incarnation)
                .exec();
          } else {
            Query(statement(kRegisterHost), me.id, me.incarnation, me.pid, me.version,
                  me.started_at, me.heartbeat_at, me.lease_until, me.definitions, plugins)
                .exec();
          }
          tx.commit();
          return Lease::renewed;
        });
  }

  Result<void> end_lease(std::string_view id, std::string_view incarnation,
                         TimePoint now) override {
    return write_guarded(fmt::format("cannot end the lease of host {}", id), [&]() -> Result<void> {
      Query(statement(kEndLease), now, id, incarnation).exec();
      return {};
    });
  }

  Result<std::vector<HostRecord>> hosts() override {
    return guarded("cannot read the hosts", [&]() -> Result<std::vector<HostRecord>> {
      std::vector<HostRecord> out;
      for (Query q(statement(kHosts)); q.step();) {
        HostRecord h;
        h.id = q.col(0).as_string();
        h.incarnation = q.col(1).as_string();
        h.pid = q.col(2).as_int64();
        h.version = q.col(3).as_string();
        h.started_at = from_ms(q.col(4).as_int64());
        h.heartbeat_at = from_ms(q.col(5).as_int64());
        h.lease_until = from_ms(q.col(6).as_int64());
        h.taken_over_at = q.opt_time(7);
        h.taken_over_by = q.opt_text(8);
        h.definitions = q.col(9).as_string();
        // Written by jobhost as a JSON object; anything else reads as none.
        const auto plugins = json::parse(q.col(10).as_string(), nullptr, false);
        if (plugins.is_object()) {
          for (const auto& [name, sha] : plugins.items()) {
            if (sha.is_string()) h.plugins[name] = sha.get<std::string>();
          }
        }
        out.push_back(std::move(h));
      }
      return out;
    });
  }

  Result<Takeover> take_over_expired(std::string_view by, TimePoint now,
                                     std::string_view message) override {
    return write_guarded(
        "cannot take over the runs of hosts whose lease ran out", [&]() -> Result<Takeover> {
          WriteScope tx(*this);
          std::vector<std::string> expired;
          for (Query q(statement(kExpiredHosts, kExpiredHostsPg), now, by); q.step();) {
            expired.push_back(q.col(0).as_string());
          }
          Takeover out;
          for (const auto& id : expired) {
            auto runs = close_open_runs(true, id, now, message, &out.freed);
            Query(statement(kMarkTakenOver), now, by, id).exec();
            out.closed.insert(out.closed.end(), std::make_move_iterator(runs.begin()),
                              std::make_move_iterator(runs.end()));
          }
          tx.commit();
          std::stable_sort(out.closed.begin(), out.closed.end(), [](const auto& x, const auto& y) {
            return std::tie(x.started_at, x.run_id) < std::tie(y.started_at, y.run_id);
          });
          return out;
        });
  }

  Result<std::vector<RunRecord>> history(std::optional<std::string_view> job, int limit) override {
    if (limit <= 0) return fail(fmt::format("history: limit must be positive, not {}", limit));
    return guarded("cannot read the run history", [&]() -> Result<std::vector<RunRecord>> {
      if (job) return read_runs(Query(statement(kHistoryJob), *job, limit));
      return read_runs(Query(statement(kHistoryAll), limit));
    });
  }

  Result<std::optional<RunRecord>> get_run(std::string_view run_id) override {
    return guarded(fmt::format("cannot read run {}", run_id),
                   [&]() -> Result<std::optional<RunRecord>> {
                     auto runs = read_runs(Query(statement(kGetRun), run_id));
                     if (runs.empty()) return std::nullopt;
                     RunRecord& run = runs.front();
                     Query slot(statement(kSlotEvent), run.job, run.scheduled_for);
                     if (slot.step()) run.event = slot.opt_text(0);
                     return std::move(run);
                   });
  }

  Result<std::vector<RunRecord>> running_runs() override {
    return guarded("cannot read the running runs", [&]() -> Result<std::vector<RunRecord>> {
      return read_runs(Query(statement(kOpenRuns, kOpenRunsPg)));
    });
  }

  Result<JobStats> job_stats(std::string_view job) override {
    return guarded(fmt::format("cannot read the status of job {}", job),
                   [&]() -> Result<JobStats> { return read_stats(job); });
  }

  Result<std::vector<JobStats>> all_job_stats() override {
    return guarded("cannot read the status of the jobs", [&]() -> Result<std::vector<JobStats>> {
      // One read transaction, so that all jobs are seen at the same instant
      // (inside a write group, the group's transaction is that one).
      std::optional<ReadScope> tx;
      if (!group_) tx.emplace(*db_);
      std::vector<std::string> names;
      {
        Query q(statement(kJobNames));
        while (q.step()) names.push_back(q.col(0).as_string());
      }
      std::vector<JobStats> all;
      all.reserve(names.size());
      for (const auto& name : names) all.push_back(read_stats(name));
      if (tx) tx->commit();
      return all;
    });
  }

  Result<std::vector<JobStats>> job_stats_of(const std::vector<std::string>& jobs) override {
    return guarded("cannot read the status of the jobs", [&]() -> Result<std::vector<JobStats>> {
      // One read transaction: every job as of the same instant, and one
      // snapshot instead of one per statement.
      std::optional<ReadScope> tx;
      if (!group_) tx.emplace(*db_);
      std::vector<JobStats> out;
      out.reserve(jobs.size());
      for (const auto& job : jobs) out.push_back(read_stats(job));
      if (tx) tx->commit();
      return out;
    });
  }

  Result<std::vector<JobStats>> job_summaries() override {
    return guarded("cannot read the status of the jobs", [&]() -> Result<std::vector<JobStats>> {
      std::vector<JobStats> out;
      Query q(statement(kJobSummaries), kStatsWindow);
      while (q.step()) {
        JobStats s;
        s.job = q.col(0).as_string();
        s.definition_hash = q.opt_text(1);
        s.last_fire = q.opt_time(2);
        s.next_fire = q.opt_time(3);
        s.consecutive_failures = q.col(4).as_int();
        s.paused_at = q.opt_time(5);
        s.paused_by = q.opt_text(6);
        const std::string window = q.col(7).as_string();  // "count successes"
        int succeeded = 0;
        if (std::sscanf(window.c_str(), "%d %d", &s.window_runs, &succeeded) != 2) {
          throw BadRow(fmt::format("job {}: unreadable window figures \"{}\"", s.job, window));
        }
        if (s.window_runs > 0) s.success_rate = static_cast<double>(succeeded) / s.window_runs;
        if (auto outcome = q.opt_text(8)) s.last_outcome = outcome_from_string(*outcome);
        s.last_started = q.opt_time(9);
        s.runs_in_flight = q.col(10).as_int();
        out.push_back(std::move(s));
      }
      return out;
    });
  }

  Result<std::vector<std::pair<std::string, std::vector<WindowRun>>>> window_runs(
      const std::vector<std::string>& jobs) override {
    using Out = std::vector<std::pair<std::string, std::vector<WindowRun>>>;
    return guarded("cannot read the recent runs", [&]() -> Result<Out> {
      Out out;
      Query q(statement(kWindowRuns, kWindowRunsPg),
              json(jobs).dump(-1, ' ', false, json::error_handler_t::replace), kStatsWindow);
      while (q.step()) {
        auto job = q.col(0).as_string();
        if (out.empty() || out.back().first != job) out.emplace_back(job, std::vector<WindowRun>{});
        WindowRun run;
        run.run_id = q.col(1).as_string();
        run.started_at = from_ms(q.col(2).as_int64());
        auto outcome = outcome_from_string(q.col(3).as_string());
        if (!outcome) throw BadRow(fmt::format("run {} has an unknown outcome", run.run_id));
        run.outcome = *outcome;
        if (auto ms = q.opt_int(4)) run.duration = Duration(*ms);
        out.back().second.push_back(std::move(run));
      }
      return out;
    });
  }

  Result<RunSummary> run_summary(TimePoint since) override {
    return guarded("cannot summarise the recent runs", [&]() -> Result<RunSummary> {
      RunSummary out;
      int64_t total_ms = 0, with_duration = 0;
      Query q(statement(kRunSummary), since);
      while (q.step()) {
        const auto outcome = outcome_from_string(q.col(0).as_string());
        const int count = q.col(1).as_int();
        out.runs += count;
        if (outcome && counts_as_failure(*outcome)) out.failed += count;
        total_ms += q.opt_int(2).value_or(0);
        with_duration += q.col(3).as_int64();
      }
      if (with_duration > 0) out.mean_duration = Duration(total_ms / with_duration);
      return out;
    });
  }

  Result<std::vector<RunMinute>> run_minutes(TimePoint since) override {
    return guarded("cannot summarise the recent runs", [&]() -> Result<std::vector<RunMinute>> {
      std::vector<RunMinute> out;
      Query q(statement(kRunMinutes), since);
      while (q.step()) {
        const int64_t minute = q.col(0).as_int64();
        if (out.empty() || out.back().minute != minute) out.push_back(RunMinute{minute});
        RunMinute& m = out.back();
        const auto outcome = outcome_from_string(q.col(1).as_string());
        const int count = q.col(2).as_int();
        m.runs += count;
        if (outcome && counts_as_failure(*outcome)) m.failed += count;
        m.duration_ms += q.opt_int(3).value_or(0);
        m.with_duration += q.col(4).as_int();
      }
      return out;
    });
  }

  Result<std::vector<RunRecord>> query_runs(const RunQuery& query) override {
    if (query.limit <= 0) {
      return fail(fmt::format("query_runs: limit must be positive, not {}", query.limit));
    }
    return guarded("cannot read the runs", [&]() -> Result<std::vector<RunRecord>> {
      auto made = db_->prepare(runs_query_sql(query));
      sql::Statement& statement = *made;
      int i = 0;
      if (query.job) bind_one(statement, ++i, *query.job);
      if (!query.running_only && query.outcome) {
        bind_one(statement, ++i, std::string(to_string(*query.outcome)));
      }
      if (query.trigger) bind_one(statement, ++i, std::string(to_string(*query.trigger)));
      if (query.since) bind_one(statement, ++i, *query.since);
      if (query.until) bind_one(statement, ++i, *query.until);
      if (query.after) {
        bind_one(statement, ++i, query.after->started_at);
        bind_one(statement, ++i, query.after->run_id);
      }
      bind_one(statement, ++i, query.limit);
      return read_runs(Query(statement));
    });
  }

  Result<std::vector<RunRecord>> slot_runs(std::string_view job, TimePoint scheduled_for) override {
    return guarded(fmt::format("cannot read the attempts of job {}", job),
                   [&]() -> Result<std::vector<RunRecord>> {
                     return read_runs(Query(statement(kSlotRuns), job, scheduled_for));
                   });
  }

  Result<bool> set_paused(std::string_view job, bool paused, std::string_view by,
                          TimePoint at) override {
    return write_guarded(
        fmt::format("cannot {} job {}", paused ? "pause" : "resume", job), [&]() -> Result<bool> {
          WriteScope tx(*this);
          Query(statement(kEnsureJob), job, nullptr, at).exec();
          bool was_paused = false;
          {
            Query q(statement(kPausedAt), job);
            was_paused = q.step() && !q.col(0).is_null();
          }
          if (was_paused == paused) return false;
          Query(statement(kSetPaused), paused ? std::optional(at) : std::nullopt,
                paused ? std::optional(std::string(by)) : std::nullopt, at, job)
              .exec();
          Query(statement(kInsertEvent), at, paused ? "paused" : "resumed", job,
                std::optional<std::string>(),
                json{{"by", by}}.dump(-1, ' ', false, json::error_handler_t::replace))
              .exec();
          tx.commit();
          return true;
        });
  }

  Result<std::vector<JobStats>> paused_jobs() override {
    return guarded("cannot read the paused jobs", [&]() -> Result<std::vector<JobStats>> {
      std::vector<JobStats> out;
      Query q(statement(kPausedJobs));
      while (q.step()) {
        JobStats s;
        s.job = q.col(0).as_string();
        s.paused_at = q.opt_time(1);
        s.paused_by = q.opt_text(2);
        out.push_back(std::move(s));
      }
      return out;
    });
  }

  Result<std::vector<Event>> events_after(int64_t after_id, int limit) override {
    if (limit <= 0) return fail(fmt::format("events: limit must be positive, not {}", limit));
    return guarded("cannot read the events", [&]() -> Result<std::vector<Event>> {
      return read_events(Query(statement(kEventsAfter), after_id, limit));
    });
  }

  Result<std::vector<Event>> run_events(std::string_view run_id, int limit) override {
    if (limit <= 0) return fail(fmt::format("events: limit must be positive, not {}", limit));
    return guarded(fmt::format("cannot read the events of run {}", run_id),
                   [&]() -> Result<std::vector<Event>> {
                     return read_events(Query(statement(kRunEvents), run_id, limit));
                   });
  }

  Result<std::optional<TimePoint>> last_fire(std::string_view job) override {
    return guarded(fmt::format("cannot read the last fire of job {}", job),
                   [&]() -> Result<std::optional<TimePoint>> {
                     Query q(statement(kLastFire), job);
                     if (!q.step()) return std::nullopt;
                     return q.opt_time(0);
                   });
  }

  Result<std::optional<TimePoint>> last_claimed(std::string_view job, Trigger trigger) override {
    return guarded(fmt::format("cannot read the last {} fire of job {}", to_string(trigger), job),
                   [&]() -> Result<std::optional<TimePoint>> {
                     const std::string kind(to_string(trigger));
                     if (db_->dialect() == sql::Dialect::postgresql) {
                       Query q(statement(kLastClaimedPg), job, kind, host_);
                       return q.step() ? q.opt_time(0) : std::nullopt;
                     }
                     Query q(statement(kLastClaimed), job, kind);
                     return q.step() ? q.opt_time(0) : std::nullopt;
                   });
  }

  Result<void> upsert_job(std::string_view job, std::string_view definition_hash,
                          std::optional<TimePoint> next_fire, TimePoint now) override {
    return write_guarded(fmt::format("cannot record job {}", job), [&]() -> Result<void> {
      Query(statement(kUpsertJob), job, definition_hash, next_fire, now).exec();
      return {};
    });
  }

  Result<void> lock_jobs(std::span<const std::string> jobs) override {
    if (db_->dialect() != sql::Dialect::postgresql || jobs.empty()) return {};
    return write_guarded("cannot lock the jobs' rows", [&]() -> Result<void> {
      std::vector<std::string> names(jobs.begin(), jobs.end());
      Query q(statement(kLockJobsPg),
              json(names).dump(-1, ' ', false, json::error_handler_t::replace));
      while (q.step()) {
      }
      return {};
    });
  }

  Result<std::vector<JobMark>> job_marks() override {
    return guarded("cannot read the jobs", [&]() -> Result<std::vector<JobMark>> {
      std::vector<JobMark> out;
      Query q(statement(kJobMarks));
      while (q.step()) {
        out.push_back(JobMark{q.col(0).as_string(), q.opt_text(1), q.opt_time(2), q.opt_time(3)});
      }
      return out;
    });
  }

  Result<void> add_event(const Event& event) override {
    return write_guarded(fmt::format("cannot record a {} event", event.kind),
                         [&]() -> Result<void> {
                           Query(statement(kInsertEvent), event.at, event.kind, event.job,
                                 event.run_id, event.detail)
                               .exec();
                           return {};
                         });
  }

  Result<std::vector<Event>> events(std::optional<std::string_view> job, int limit) override {
    if (limit <= 0) return fail(fmt::format("events: limit must be positive, not {}", limit));
    return guarded("cannot read the events", [&]() -> Result<std::vector<Event>> {
      auto read = [](Query q) {
        std::vector<Event> out;
        while (q.step()) {
          out.push_back(Event{q.col(0).as_int64(), from_ms(q.col(1).as_int64()),
                              q.col(2).as_string(), q.opt_text(3), q.opt_text(4),
                              q.col(5).as_string()});
        }
        return out;
      };
      if (job) return read(Query(statement(kEventsJob), *job, limit));
      return read(Query(statement(kEventsAll), limit));
    });
  }

  Result<void> schedule_retry(const PendingRetry& retry, TimePoint now) override {
    const auto what = fmt::format("cannot schedule attempt {} of job {} at {}", retry.next_attempt,
                                  retry.job, format_utc(retry.scheduled_for));
    if (retry.next_attempt < 2) {
      return fail(fmt::format("{}: {}: a retry is attempt 2 or later", path_, what));
    }
    return write_guarded(what, [&]() -> Result<void> {
      WriteScope tx(*this);
      if (!slot_trace(retry.job, retry.scheduled_for)) {
        return fail(fmt::format("{}: {}: the slot was never claimed", path_, what));
      }
      upsert_retry(retry, now, std::nullopt);
      tx.commit();
      return {};
    });
  }

  Result<std::vector<PendingRetry>> pending_retries() override {
    return guarded("cannot read the pending retries", [&]() -> Result<std::vector<PendingRetry>> {
      std::vector<PendingRetry> out;
      Query q(statement(kPendingRetries));
      while (q.step()) {
        out.push_back(PendingRetry{q.col(0).as_string(), from_ms(q.col(1).as_int64()),
                                   q.col(2).as_int(), from_ms(q.col(3).as_int64()),
                                   q.col(4).as_string(), q.opt_text(5)});
      }
      return out;
    });
  }

  Result<bool> remove_retry(std::string_view job, TimePoint scheduled_for) override {
    return write_guarded(fmt::format("cannot remove the pending retry of job {}", job),
                         [&]() -> Result<bool> {
                           return Query(statement(kRemoveRetry), job, scheduled_for).exec() > 0;
                         });
  }

  Result<Pruned> prune(TimePoint before, int max_rows) override {
    if (max_rows <= 0)
      return fail(fmt::format("prune: max_rows must be positive, not {}", max_rows));
    return write_guarded("cannot prune old runs", [&]() -> Result<Pruned> {
      WriteScope tx(*this);
      if (!prune_turn()) return other_host_prunes();
      Pruned pruned;
      pruned.runs = delete_runs(Query(statement(kPruneRuns), before, max_rows));
      pruned.events = Query(statement(kPruneOldEvents), before, max_rows).exec();
      tx.commit();
      return pruned;
    });
  }

  Result<int> prune_excess(std::string_view job, int keep, int max_rows) override {
    if (keep < 0 || max_rows <= 0) {
      return fail(
          fmt::format("prune_excess: keep must not be negative ({}) and max_rows must be "
                      "positive ({})",
                      keep, max_rows));
    }
    return write_guarded(fmt::format("cannot prune the runs of job {}", job), [&]() -> Result<int> {
      WriteScope tx(*this);
      if (!prune_turn()) return other_host_prunes();
      int deleted = delete_runs(Query(statement(kPruneExcess), job, keep, max_rows));
      tx.commit();
      return deleted;
    });
  }

  Result<uint64_t> jitter_seed() override {
    return write_guarded("cannot read or create the jitter seed", [&]() -> Result<uint64_t> {
      {
        Query q(statement(kJitterSeed));
        if (q.step()) return static_cast<uint64_t>(q.col(0).as_int64());
      }
      std::random_device entropy;
      const uint64_t seed = (static_cast<uint64_t>(entropy()) << 32) | entropy();
      WriteScope tx(*this);
      // Another opener may have made it meanwhile: its seed wins.
      Query(statement(kInsertJitterSeed), static_cast<int64_t>(seed)).exec();
      uint64_t stored = 0;
      {
        Query q(statement(kJitterSeed));
        if (!q.step()) return fail(fmt::format("{}: the jitter seed was not stored", path_));
        stored = static_cast<uint64_t>(q.col(0).as_int64());
      }
      tx.commit();
      return stored;
    });
  }

  Result<std::vector<AlertRecord>> alert_states() override {
    return guarded("cannot read the alert states", [&]() -> Result<std::vector<AlertRecord>> {
      std::vector<AlertRecord> out;
      Query q(statement(kAlertStates));
      while (q.step()) {
        AlertRecord r;
        r.job = q.col(0).as_string();
        r.kind = q.col(1).as_string();
        r.firing = q.col(2).as_int() != 0;
        r.since = q.opt_time(3);
        r.notified_at = q.opt_time(4);
        r.failed_fires = q.col(5).as_int();
        r.window_start = q.opt_time(6);
        r.pending = q.col(7).as_int() != 0;
        r.message = q.col(8).as_string();
        out.push_back(std::move(r));
      }
      return out;
    });
  }

  Result<void> save_alert_state(const AlertRecord& state, TimePoint now,
                                const std::optional<Event>& event) override {
    return write_guarded(
        fmt::format("cannot record the {} alert state of job {}", state.kind, state.job),
        [&]() -> Result<void> {
          WriteScope tx(*this);
          Query(statement(kSaveAlertState), state.job, state.kind, state.firing ? 1 : 0,
                state.since, state.notified_at, state.failed_fires, state.window_start,
                state.pending ? 1 : 0, state.message, now)
              .exec();
          if (event) {
            Query(statement(kInsertEvent), event->at, event->kind, event->job, event->run_id,
                  event->detail)
                .exec();
          }
          tx.commit();
          return {};
        });
  }

  Result<SuccessBounds> success_bounds(std::string_view job) override {
    return guarded(fmt::format("cannot read the last success of job {}", job),
                   [&]() -> Result<SuccessBounds> {
                     SuccessBounds bounds;
                     {
                       Query q(statement(kLastSuccess), job);
                       if (q.step()) bounds.last_success = q.opt_time(0);
                     }
                     {
                       Query q(statement(kFirstRun), job);
                       if (q.step()) bounds.first_run = q.opt_time(0);
                     }
                     return bounds;
                   });
  }

  Result<void> probe_writable(TimePoint now) override {
    return write_guarded("cannot write to the ledger", [&]() -> Result<void> {
      WriteScope tx(*this);
      Query(statement(kWriteProbe), now).exec();
      tx.commit();
      return {};
    });
  }

  Result<void> begin_group() override {
    if (group_) return fail(fmt::format("{}: a group of writes is already open", path_));
    return guarded("cannot begin a group of writes", [&]() -> Result<void> {
      if (db_->read_only()) {
        return fail(
            fmt::format("{}: cannot begin a group of writes: the ledger is read-only", path_));
      }
      db_->begin_write();
      group_.emplace();
      return {};
    });
  }

  Result<void> commit_group() override {
    if (!group_) return {};
    const Group group = std::exchange(group_, std::nullopt).value();
    const auto what = fmt::format("cannot commit a group of {} write(s)", group.writes);
    Result<void> committed = group.undone
                                 ? fail(fmt::format("{}: {}: {}", path_, what, *group.undone))
                                 : guarded(what, [&]() -> Result<void> {
                                     db_->commit();
                                     return {};
                                   });
    // A failed COMMIT may leave the transaction open: none of it is kept.
    if (!committed && db_->in_transaction()) {
      try {
        db_->rollback();
      } catch (const std::exception&) {
        // Closing the connection rolls it back.
      }
    }
    return committed;
  }

  Result<void> checkpoint() override {
    return guarded("cannot checkpoint the write-ahead log", [&]() -> Result<void> {
      db_->checkpoint();
      return {};
    });
  }

 private:
  // In a write transaction: this host's turn to prune (always, on SQLite).
  bool prune_turn() {
    if (db_->dialect() != sql::Dialect::postgresql) return true;
    Query q(statement(kPruneTurnPg));
    return q.step() && q.col(0).as_int64() != 0;
  }
  std::unexpected<Error> other_host_prunes() const {
    return fail(Error::Kind::busy,
                fmt::format("{}: another host sharing the ledger is pruning it", path_));
  }

  // Runs `body`; a library exception becomes "<file>: <what>: <explanation>".
  template <class F>
  auto guarded(std::string_view what, F&& body) -> decltype(body()) {
    try {
      return body();
    } catch (const std::exception& e) {
      return fail(fmt::format("{}: {}: {}", path_, what, db_->explain(e)));
    }
  }

  // guarded() for a write operation. Inside a group, a write after one
  // whose error undid the group's transaction fails without touching the
  // file (it would otherwise run on its own, outside the group).
  template <class F>
  auto write_guarded(std::string_view what, F&& body) -> decltype(body()) {
    if (group_ && !group_->undone && !db_->in_transaction()) {
      group_->undone = "an earlier error undid the group's transaction";
    }
    if (group_ && group_->undone) {
      return fail(fmt::format("{}: {}: {}", path_, what, *group_->undone));
    }
    auto result = guarded(what, std::forward<F>(body));
    if (group_) {
      ++group_->writes;
      // PostgreSQL: a failed statement outside a savepoint aborts the
      // whole transaction, which stays open until rolled back.
      if (!result && !group_->undone && (!db_->in_transaction() || db_->aborted())) {
        group_->undone =
            "an earlier write of the group failed and undid the group: " + result.error().message;
      }
    }
    return result;
  }

  // The transaction of one write operation: BEGIN IMMEDIATE ... COMMIT on
  // its own, a savepoint inside an open group. Rolled back unless committed.
  class WriteScope {
   public:
    explicit WriteScope(SqlStore& store) : db_(*store.db_), in_group_(store.group_.has_value()) {
      if (in_group_) {
        db_.savepoint();
      } else {
        db_.begin_write();
      }
    }
    WriteScope(const WriteScope&) = delete;
    WriteScope& operator=(const WriteScope&) = delete;
    ~WriteScope() {
      // Some errors (disk full, I/O) already undid the whole transaction.
      if (done_ || !db_.in_transaction()) return;
      try {
        if (in_group_) {
          db_.rollback_to();
          db_.release();
        } else {
          db_.rollback();
        }
      } catch (const std::exception&) {
        // Nothing more to do here: the caller returns the first error.
      }
    }
    void commit() {
      if (in_group_) {
        db_.release();
      } else {
        db_.commit();
      }
      done_ = true;
    }

   private:
    sql::Connection& db_;
    bool in_group_;
    bool done_ = false;
  };

  // A read transaction: every statement in it sees one instant. Ended
  // (rolled back: it wrote nothing) unless committed.
  class ReadScope {
   public:
    explicit ReadScope(sql::Connection& db) : db_(db) { db_.begin_read(); }
    ReadScope(const ReadScope&) = delete;
    ReadScope& operator=(const ReadScope&) = delete;
    ~ReadScope() {
      if (done_ || !db_.in_transaction()) return;
      try {
        db_.rollback();
      } catch (const std::exception&) {
        // The caller returns the first error.
      }
    }
    void commit() {
      db_.commit();
      done_ = true;
    }

   private:
    sql::Connection& db_;
    bool done_ = false;
  };

  // The prepared statement for `sql` (one of the constants above), reused.
  sql::Statement& statement(const char* sql) { return db_->statement(sql); }
  // The statement of this store's dialect.
  sql::Statement& statement(const char* sqlite, const char* postgresql) {
    return db_->statement(db_->dialect() == sql::Dialect::postgresql ? postgresql : sqlite);
  }

  // The exactly-once guard, inside the caller's transaction: claims slot
  // (job, scheduled_for) and advances the job's last fire for triggers that
  // count. False, changing nothing, when the slot was already claimed.
  bool claim_slot(const std::string& job, TimePoint scheduled_for, Trigger trigger,
                  const std::string& trace_id, TimePoint at,
                  const std::optional<std::string>& event = std::nullopt) {
    if (Query(statement(kClaimSlot), job, scheduled_for, to_string(trigger), trace_id, at, event)
            .exec() == 0) {
      return false;
    }
    if (advances_last_fire(trigger)) {
      Query(statement(kAdvanceLastFire), scheduled_for, at, job).exec();
    }
    return true;
  }

  // Inside the caller's transaction: undoes the parked claims and closes the
  // open runs (interrupted, `message`, an `interrupted` event each) of host
  // `host`, or of every host unless `of_host`. The runs closed, oldest first.
  // The slots of the parked claims undone go to `freed`, if given.
  std::vector<RunRecord> close_open_runs(
      bool of_host, const std::optional<std::string>& host, TimePoint now, std::string_view message,
      std::vector<std::pair<std::string, TimePoint>>* freed = nullptr) {
    std::vector<std::string> parked;
    for (Query q = of_host ? Query(statement(kHostParkedIds), host) : Query(statement(kParkedIds));
         q.step();) {
      parked.push_back(q.col(0).as_string());
    }
    for (const auto& id : parked) {
      undo_parked_claim(Unclaim{id, "the host stopped before the run's instant", now}, freed);
    }
    auto runs = of_host ? read_runs(Query(statement(kHostOpenRuns, kHostOpenRunsPg), host))
                        : read_runs(Query(statement(kOpenRuns, kOpenRunsPg)));
    if (runs.empty()) return runs;
    if (of_host) {
      Query(statement(kInterruptHostOpenRuns), now, message, host).exec();
    } else {
      Query(statement(kInterruptOpenRuns), now, message).exec();
    }
    for (auto& run : runs) {
      run.finished_at = now;
      run.outcome = Outcome::interrupted;
      run.message = std::string(message);
      insert_event(now, "interrupted", run.job, run.run_id, std::string(message));
      // Its retry gets the slot's payload, as the attempt closed here did.
      Query slot(statement(kSlotEvent), run.job, run.scheduled_for);
      if (slot.step()) run.event = slot.opt_text(0);
    }
    return runs;
  }

  // Steps `deleting` (a DELETE ... RETURNING run_id, job, scheduled_for of
  // runs), then deletes those runs' events and the slots they leave empty.
  // Inside the caller's transaction; returns how many runs went.
  int delete_runs(Query&& deleting) {
    struct Gone {
      std::string run_id, job;
      int64_t scheduled_for;
    };
    std::vector<Gone> gone;
    while (deleting.step()) {
      gone.push_back(
          {deleting.col(0).as_string(), deleting.col(1).as_string(), deleting.col(2).as_int64()});
    }
    for (const auto& g : gone) {
      Query(statement(kPruneRunEvents), g.run_id).exec();
      Query(statement(kPruneSlot), g.job, g.scheduled_for).exec();
    }
    return static_cast<int>(gone.size());
  }

  // Store::unclaim_parked inside the caller's transaction. False (nothing
  // changed) if the run is not parked.
  bool undo_parked_claim(const Unclaim& unclaim,
                         std::vector<std::pair<std::string, TimePoint>>* freed = nullptr) {
    std::string job;
    std::optional<TimePoint> prior;
    {
      Query q(statement(kTakeParked), unclaim.run_id);
      if (!q.step()) return false;
      job = q.col(0).as_string();
      prior = q.opt_time(1);
    }
    // The run row and its events, unless it ended meanwhile (then only the
    // mark goes: finish_run removes it too).
    std::optional<TimePoint> slot;
    {
      Query deleting(statement(kDeleteUnfinishedRun), unclaim.run_id);
      if (deleting.step()) slot = from_ms(deleting.col(2).as_int64());
    }
    if (!slot) return true;
    Query(statement(kPruneRunEvents), unclaim.run_id).exec();
    Query(statement(kPruneSlot), job, *slot).exec();
    Query(statement(kRestoreLastFire), prior, unclaim.at, job, *slot).exec();
    if (freed) freed->emplace_back(job, *slot);
    const json detail{
        {"run_id", unclaim.run_id}, {"scheduled_for", format_utc(*slot)}, {"why", unclaim.why}};
    Query(statement(kInsertEvent), unclaim.at, "unclaimed", job, std::optional<std::string>(),
          detail.dump())
        .exec();
    return true;
  }

  std::optional<std::string> slot_trace(const std::string& job, TimePoint scheduled_for) {
    Query q(statement(kSlotTrace), job, scheduled_for);
    if (!q.step()) return std::nullopt;
    return q.col(0).as_string();
  }

  void insert_event(TimePoint at, std::string_view kind, std::string_view job,
                    std::string_view run_id, const std::string& detail) {
    Query(statement(kInsertEvent), at, kind, job, run_id, detail).exec();
  }

  void upsert_retry(const PendingRetry& retry, TimePoint now,
                    std::optional<std::string_view> after_run) {
    Query(statement(kUpsertRetry), retry.job, retry.scheduled_for, retry.next_attempt, retry.due_at,
          retry.trace_id, now)
        .exec();
    json detail{{"next_attempt", retry.next_attempt},
                {"due_at", format_utc(retry.due_at)},
                {"scheduled_for", format_utc(retry.scheduled_for)},
                {"trace_id", retry.trace_id}};
    Query(statement(kInsertEvent), now, "retried", retry.job,
          after_run ? std::optional<std::string>(*after_run) : std::nullopt, detail.dump())
        .exec();
  }

  RunRecord read_run(Query& q) {
    RunRecord r;
    r.run_id = q.col(0).as_string();
    r.job = q.col(1).as_string();
    r.scheduled_for = from_ms(q.col(2).as_int64());
    r.attempt = q.col(3).as_int();
    r.trace_id = q.col(4).as_string();
    auto trigger = q.col(5).as_string();
    auto parsed_trigger = trigger_from_string(trigger);
    if (!parsed_trigger) {
      throw BadRow(fmt::format("run {} has unknown trigger \"{}\" (written by a newer jobhost?)",
                               r.run_id, trigger));
    }
    r.trigger = *parsed_trigger;
    r.started_at = from_ms(q.col(6).as_int64());
    r.finished_at = q.opt_time(7);
    if (auto outcome = q.opt_text(8)) {
      r.outcome = outcome_from_string(*outcome);
      if (!r.outcome) {
        throw BadRow(fmt::format("run {} has unknown outcome \"{}\" (written by a newer jobhost?)",
                                 r.run_id, *outcome));
      }
    }
    if (auto code = q.opt_int(9)) r.exit_code = static_cast<int>(*code);
    r.signal = q.opt_text(10);
    if (auto ms = q.opt_int(11)) r.duration = Duration(*ms);
    r.plugin = q.opt_text(12);
    r.plugin_version = q.opt_text(13);
    r.plugin_sha256 = q.opt_text(14);
    r.definition_hash = q.opt_text(15);
    r.message = q.col(16).as_string();
    r.output_tail = q.col(17).as_string();
    r.last_heartbeat = q.opt_time(18);
    if (!q.col(19).is_null()) r.progress = q.col(19).as_double();
    r.replay_of = q.opt_text(20);
    r.host_pid = q.col(21).as_int64();
    if (!q.col(22).is_null()) r.cpu_seconds = q.col(22).as_double();
    if (auto bytes = q.opt_int(23); bytes && *bytes >= 0) r.max_rss_bytes = *bytes;
    r.host = q.opt_text(24);
    return r;
  }

  static std::vector<Event> read_events(Query&& q) {
    std::vector<Event> out;
    while (q.step()) {
      out.push_back(Event{q.col(0).as_int64(), from_ms(q.col(1).as_int64()), q.col(2).as_string(),
                          q.opt_text(3), q.opt_text(4), q.col(5).as_string()});
    }
    return out;
  }

  // The runs `q` selects, each with its metrics (read once `q` is done,
  // so that only one statement steps at a time).
  std::vector<RunRecord> read_runs(Query&& q) {
    std::vector<RunRecord> out;
    while (q.step()) out.push_back(read_run(q));
    for (auto& run : out) {
      Query m(statement(kRunMetrics), run.run_id);
      while (m.step()) run.metrics[m.col(0).as_string()] = m.col(1).as_double();
    }
    return out;
  }

  JobStats read_stats(std::string_view job) {
    JobStats s;
    s.job = std::string(job);
    {
      Query q(statement(kJobRow), job);
      if (q.step()) {
        s.definition_hash = q.opt_text(0);
        s.last_fire = q.opt_time(1);
        s.next_fire = q.opt_time(2);
        s.consecutive_failures = q.col(3).as_int();
        s.paused_at = q.opt_time(4);
        s.paused_by = q.opt_text(5);
      }
    }
    {
      Query q(statement(kSelectStatsWindow), job, kStatsWindow);
      int succeeded = 0;
      int64_t total_ms = 0;
      std::vector<Duration> durations;
      durations.reserve(kStatsWindow);
      // Up to kStatsWindow rows a job, for every job of `status`: the
      // outcome is read without making a string.
      while (q.step()) {
        auto outcome = outcome_from_string(q.text_view(0));
        if (s.window_runs == 0) s.last_outcome = outcome;
        ++s.window_runs;
        if (outcome == Outcome::succeeded) ++succeeded;
        if (auto ms = q.opt_int(1)) {
          total_ms += *ms;
          durations.push_back(Duration(*ms));
        }
      }
      if (s.window_runs > 0) s.success_rate = static_cast<double>(succeeded) / s.window_runs;
      if (!durations.empty()) {
        s.mean_duration = Duration(total_ms / static_cast<int64_t>(durations.size()));
        std::sort(durations.begin(), durations.end());
        s.p50_duration = percentile(durations, 50);
        s.p95_duration = percentile(durations, 95);
      }
    }
    {
      Query q(statement(kLastStarted), job);
      if (q.step()) s.last_started = from_ms(q.col(0).as_int64());
    }
    {
      Query q(statement(kInFlight), job);
      if (q.step()) s.runs_in_flight = q.col(0).as_int();
    }
    return s;
  }

  // An open write group (begin_group): its transaction holds every write
  // until commit_group.
  struct Group {
    int writes = 0;
    std::optional<std::string> undone;  // why the transaction is gone, if it is
  };

  std::string path_;  // the file, or the server and database, for messages
  std::unique_ptr<sql::Connection> db_;
  std::optional<std::string> host_;  // recorded with each run it claims
  std::optional<Group> group_;
};

}  // namespace

std::string open_runs_sql() {
  return kOpenRuns;
}

std::string stats_window_sql() {
  return kSelectStatsWindow;
}

std::string runs_query_sql(const RunQuery& query) {
  std::string sql = "SELECT " JOBHOST_RUN_COLUMNS " FROM runs WHERE" JOBHOST_NOT_PARKED("run_id");
  if (query.job) sql += " AND job = ?";
  if (query.running_only) {
    sql += " AND finished_at IS NULL";
  } else if (query.outcome) {
    sql += " AND outcome = ?";
  }
  if (query.trigger) sql += " AND trigger = ?";
  if (query.since) sql += " AND started_at >= ?";
  if (query.until) sql += " AND started_at < ?";
  if (query.after) sql += " AND (started_at, run_id) < (?, ?)";
  sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?";
  return sql;
}

std::unique_ptr<Store> make_sql_store(std::string name, std::unique_ptr<sql::Connection> db,
                                      std::string host) {
  return std::make_unique<SqlStore>(std::move(name), std::move(db), std::move(host));
}

}  // namespace jobhost::ledger
