#include "ledger/schema.h"

#include <array>

namespace jobhost::ledger {
namespace {

// Times are INTEGER milliseconds since the Unix epoch, UTC.
constexpr const char* kVersion1 = R"sql(
CREATE TABLE jobs (
  name                 TEXT PRIMARY KEY NOT NULL,
  definition_hash      TEXT,
  last_fire            INTEGER,
  next_fire            INTEGER,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  updated_at           INTEGER NOT NULL
) STRICT;

CREATE TABLE slots (
  job           TEXT NOT NULL REFERENCES jobs (name),
  scheduled_for INTEGER NOT NULL,
  trigger       TEXT NOT NULL,
  trace_id      TEXT NOT NULL,
  claimed_at    INTEGER NOT NULL,
  PRIMARY KEY (job, scheduled_for)
) STRICT, WITHOUT ROWID;

CREATE TABLE runs (
  run_id          TEXT PRIMARY KEY NOT NULL,
  job             TEXT NOT NULL,
  scheduled_for   INTEGER NOT NULL,
  attempt         INTEGER NOT NULL CHECK (attempt >= 1),
  trace_id        TEXT NOT NULL,
  trigger         TEXT NOT NULL,
  started_at      INTEGER NOT NULL,
  finished_at     INTEGER,
  outcome         TEXT,
  exit_code       INTEGER,
  signal          TEXT,
  duration_ms     INTEGER,
  plugin          TEXT,
  plugin_version  TEXT,
  plugin_sha256   TEXT,
  definition_hash TEXT,
  message         TEXT NOT NULL DEFAULT '',
  output_tail     BLOB NOT NULL DEFAULT x'',
  last_heartbeat  INTEGER,
  progress        REAL,
  replay_of       TEXT,
  host_pid        INTEGER NOT NULL,
  UNIQUE (job, scheduled_for, attempt),
  FOREIGN KEY (job, scheduled_for) REFERENCES slots (job, scheduled_for) ON DELETE CASCADE,
  CHECK ((finished_at IS NULL) = (outcome IS NULL))
) STRICT;
CREATE INDEX runs_by_job_started ON runs (job, started_at, run_id);
CREATE INDEX runs_by_started ON runs (started_at, run_id);
CREATE INDEX runs_open ON runs (job) WHERE finished_at IS NULL;

CREATE TABLE pending_retries (
  job           TEXT NOT NULL,
  scheduled_for INTEGER NOT NULL,
  next_attempt  INTEGER NOT NULL CHECK (next_attempt >= 2),
  due_at        INTEGER NOT NULL,
  trace_id      TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (job, scheduled_for),
  FOREIGN KEY (job, scheduled_for) REFERENCES slots (job, scheduled_for) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX pending_retries_by_due ON pending_retries (due_at);

CREATE TABLE events (
  id     INTEGER PRIMARY KEY,
  at     INTEGER NOT NULL,
  kind   TEXT NOT NULL,
  job    TEXT,
  run_id TEXT,
  detail TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX events_by_job ON events (job, id);
CREATE INDEX events_by_run ON events (run_id);
CREATE INDEX events_by_at ON events (at);
)sql";

// Settings of this host that must survive restarts, one row each: the
// jitter seed (Store::jitter_seed).
constexpr const char* kVersion2 = R"sql(
CREATE TABLE host_settings (
  name  TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql";

// Version 3: the operator surface (issue 12). Each feature adds its block.
constexpr const char* kVersion3 = R"sql(
-- Run resources and plugin metrics (observe/metrics.h, docs/running.md):
-- CPU seconds and peak memory of the run, and the last value of each
-- metric() name. run_metrics rows go with their run (retention deletes runs).
ALTER TABLE runs ADD COLUMN cpu_seconds REAL;
ALTER TABLE runs ADD COLUMN max_rss_bytes INTEGER;
CREATE TABLE run_metrics (
  run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
  name   TEXT NOT NULL,
  value  REAL NOT NULL,
  PRIMARY KEY (run_id, name)
) STRICT, WITHOUT ROWID;

-- JSON API, pause/resume: a paused job's fires are recorded skipped "paused";
-- set while paused, with who paused it ("uid 1000", "http token 127.0.0.1:5000").
ALTER TABLE jobs ADD COLUMN paused_at INTEGER;
ALTER TABLE jobs ADD COLUMN paused_by TEXT;

-- Alerts (observe/alerts.h): per job and alert kind ('failing' for
-- alert_after, 'silent' for expect_success_within) whether it is firing,
-- since when, when its notice was sent, and the counters it is decided by.
-- `pending` is 1 while the notice of the last change (alert or recovery)
-- has not been delivered to every notifier: a restart sends it again.
CREATE TABLE alert_state (
  job           TEXT NOT NULL,
  kind          TEXT NOT NULL,
  firing        INTEGER NOT NULL DEFAULT 0,
  since         INTEGER,
  notified_at   INTEGER,
  failed_fires  INTEGER NOT NULL DEFAULT 0,
  window_start  INTEGER,
  pending       INTEGER NOT NULL DEFAULT 0,
  message       TEXT NOT NULL DEFAULT '',
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (job, kind)
) STRICT, WITHOUT ROWID;
)sql";

// Version 4: runs_by_job_started also holds each run's outcome and duration,
// so that a job's stats window (its last 100 finished, not skipped runs:
// `status`, the JSON API) is read from the index alone, a few pages per job,
// instead of one table row per run, scattered over the file (a ledger of 10
// million runs: 100,000 row reads for `status` of 1,000 jobs). Rebuilt from
// the runs once, at the first open by this version (about 20 s for 10
// million runs, bench/ledger_scale).
constexpr const char* kVersion4 = R"sql(
DROP INDEX runs_by_job_started;
CREATE INDEX runs_by_job_started ON runs (job, started_at, run_id, outcome, duration_ms);
)sql";

// Version 5, parking (engine: runs claimed and forked ahead of their
// instant, docs/running.md): a row per claimed run whose process waits for
// its instant, with its job's last fire before the claim. Deleted when the
// run is released (or ends); a row still here at the next start is a run
// that never began: its claim is undone (Store::close_orphaned_runs), so
// that its slot is handled like a missed fire.
constexpr const char* kVersion5 = R"sql(
CREATE TABLE parked_runs (
  run_id          TEXT PRIMARY KEY NOT NULL,
  job             TEXT NOT NULL,
  prior_last_fire INTEGER
) STRICT, WITHOUT ROWID;
)sql";

// Version 6, several hosts (docs/cluster.md): each run records the host
// that claimed it ([host] id), NULL for the runs before.
constexpr const char* kVersion6 = R"sql(
ALTER TABLE runs ADD COLUMN host TEXT;
CREATE INDEX runs_open_by_host ON runs (host) WHERE finished_at IS NULL;

-- The hosts sharing the ledger and their leases (docs/cluster.md): each
-- daemon start is an incarnation, renewing heartbeat_at and lease_until
-- while it lives. Once lease_until has passed, another host closes the
-- host's open runs and sets taken_over_at and taken_over_by.
CREATE TABLE hosts (
  id            TEXT PRIMARY KEY NOT NULL,
  incarnation   TEXT NOT NULL,
  pid           INTEGER NOT NULL,
  version       TEXT NOT NULL,
  started_at    INTEGER NOT NULL,
  heartbeat_at  INTEGER NOT NULL,
  lease_until   INTEGER NOT NULL,
  taken_over_at INTEGER,
  taken_over_by TEXT
) STRICT, WITHOUT ROWID;
)sql";

// Version 7, skew between hosts (docs/cluster.md): each host's digest of
// its job definitions and its plugins' builds (a JSON object, plugin name to
// sha256), written with its lease.
constexpr const char* kVersion7 = R"sql(
ALTER TABLE hosts ADD COLUMN definitions TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN plugins TEXT NOT NULL DEFAULT '{}';
)sql";

// Version 8, triggers with payloads (ABI 1.1): the payload of a slot's
// trigger (JSON: a webhook's body, a file batch, a chain's upstream run),
// which every attempt and a replay get.
constexpr const char* kVersion8 = R"sql(
ALTER TABLE slots ADD COLUMN event TEXT;
)sql";

constexpr std::array<Migration, 8> kMigrations = {{
    {1, kVersion1},
    {2, kVersion2},
    {3, kVersion3},
    {4, kVersion4},
    {5, kVersion5},
    {6, kVersion6},
    {7, kVersion7},
    {8, kVersion8},
}};

// PostgreSQL (pg_store.h) numbers its own versions, in the table
// jobhost_schema (one row). Version 1 is SQLite's version 6 in PostgreSQL's
// types: times are BIGINT milliseconds since the Unix epoch, UTC; output
// tails are bytea; event ids come from an identity column.
constexpr const char* kPgVersion1 = R"sql(
CREATE TABLE jobs (
  name                 TEXT PRIMARY KEY NOT NULL,
  definition_hash      TEXT,
  last_fire            BIGINT,
  next_fire            BIGINT,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  updated_at           BIGINT NOT NULL,
  paused_at            BIGINT,
  paused_by            TEXT
);

CREATE TABLE slots (
  job           TEXT NOT NULL REFERENCES jobs (name),
  scheduled_for BIGINT NOT NULL,
  trigger       TEXT NOT NULL,
  trace_id      TEXT NOT NULL,
  claimed_at    BIGINT NOT NULL,
  PRIMARY KEY (job, scheduled_for)
);

CREATE TABLE runs (
  run_id          TEXT PRIMARY KEY NOT NULL,
  job             TEXT NOT NULL,
  scheduled_for   BIGINT NOT NULL,
  attempt         INTEGER NOT NULL CHECK (attempt >= 1),
  trace_id        TEXT NOT NULL,
  trigger         TEXT NOT NULL,
  started_at      BIGINT NOT NULL,
  finished_at     BIGINT,
  outcome         TEXT,
  exit_code       INTEGER,
  signal          TEXT,
  duration_ms     BIGINT,
  plugin          TEXT,
  plugin_version  TEXT,
  plugin_sha256   TEXT,
  definition_hash TEXT,
  message         TEXT NOT NULL DEFAULT '',
  output_tail     BYTEA NOT NULL DEFAULT '',
  last_heartbeat  BIGINT,
  progress        DOUBLE PRECISION,
  replay_of       TEXT,
  host_pid        BIGINT NOT NULL,
  cpu_seconds     DOUBLE PRECISION,
  max_rss_bytes   BIGINT,
  host            TEXT,
  UNIQUE (job, scheduled_for, attempt),
  FOREIGN KEY (job, scheduled_for) REFERENCES slots (job, scheduled_for) ON DELETE CASCADE,
  CHECK ((finished_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX runs_by_job_started ON runs (job, started_at, run_id) INCLUDE (outcome, duration_ms);
CREATE INDEX runs_by_started ON runs (started_at, run_id);
CREATE INDEX runs_open ON runs (job) WHERE finished_at IS NULL;
CREATE INDEX runs_open_by_host ON runs (host) WHERE finished_at IS NULL;

CREATE TABLE pending_retries (
  job           TEXT NOT NULL,
  scheduled_for BIGINT NOT NULL,
  next_attempt  INTEGER NOT NULL CHECK (next_attempt >= 2),
  due_at        BIGINT NOT NULL,
  trace_id      TEXT NOT NULL,
  created_at    BIGINT NOT NULL,
  PRIMARY KEY (job, scheduled_for),
  FOREIGN KEY (job, scheduled_for) REFERENCES slots (job, scheduled_for) ON DELETE CASCADE
);
CREATE INDEX pending_retries_by_due ON pending_retries (due_at);

CREATE TABLE events (
  id     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  at     BIGINT NOT NULL,
  kind   TEXT NOT NULL,
  job    TEXT,
  run_id TEXT,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_job ON events (job, id);
CREATE INDEX events_by_run ON events (run_id);
CREATE INDEX events_by_at ON events (at);

CREATE TABLE host_settings (
  name  TEXT PRIMARY KEY NOT NULL,
  value BIGINT NOT NULL
);

CREATE TABLE run_metrics (
  run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
  name   TEXT NOT NULL,
  value  DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (run_id, name)
);

CREATE TABLE alert_state (
  job           TEXT NOT NULL,
  kind          TEXT NOT NULL,
  firing        INTEGER NOT NULL DEFAULT 0,
  since         BIGINT,
  notified_at   BIGINT,
  failed_fires  INTEGER NOT NULL DEFAULT 0,
  window_start  BIGINT,
  pending       INTEGER NOT NULL DEFAULT 0,
  message       TEXT NOT NULL DEFAULT '',
  updated_at    BIGINT NOT NULL,
  PRIMARY KEY (job, kind)
);

CREATE TABLE parked_runs (
  run_id          TEXT PRIMARY KEY NOT NULL,
  job             TEXT NOT NULL,
  prior_last_fire BIGINT
);

-- The hosts sharing the ledger and their leases (docs/cluster.md): each
-- daemon start is an incarnation, renewing heartbeat_at and lease_until
-- while it lives. Once lease_until has passed, another host closes the
-- host's open runs and sets taken_over_at and taken_over_by.
CREATE TABLE hosts (
  id            TEXT PRIMARY KEY NOT NULL,
  incarnation   TEXT NOT NULL,
  pid           BIGINT NOT NULL,
  version       TEXT NOT NULL,
  started_at    BIGINT NOT NULL,
  heartbeat_at  BIGINT NOT NULL,
  lease_until   BIGINT NOT NULL,
  taken_over_at BIGINT,
  taken_over_by TEXT
);
)sql";

// Versions 2 and 3 are SQLite's versions 7 and 8.
constexpr std::array<Migration, 3> kPgMigrations = {{
    {1, kPgVersion1},
    {2, kVersion7},
    {3, kVersion8},
}};

}  // namespace

std::span<const Migration> pg_migrations() {
  return kPgMigrations;
}

int current_pg_schema_version() {
  return kPgMigrations.back().version;
}

std::span<const Migration> migrations() {
  return kMigrations;
}

int current_schema_version() {
  return kMigrations.back().version;
}

}  // namespace jobhost::ledger
