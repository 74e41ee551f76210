// The ledger's records: what a Store takes and returns. Plain structs; times
// are UTC milliseconds (common/time.h). See docs/ledger.md for the columns.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.h"
#include "common/time.h"

namespace jobhost::ledger {

// Why a run exists. The names are a contract (ledger, history --json).
enum class Trigger {
  schedule,  // the job's schedule fired on time
  manual,    // `jobhost trigger` or `run-once`: a slot of its own at "now"
  retry,     // attempt n > 1 of an earlier fire
  catchup,   // a fire missed while the host was down, run by the misfire policy
  replay,    // `jobhost replay RUN_ID`
  reboot,    // `@reboot` at host start
  file,      // a file trigger's debounced batch (watch = { ... })
  webhook,   // POST /api/v1/jobs/{name}/trigger with a body (its payload)
  chain,     // an upstream job's end (on_success, on_failure, on_done)
};

std::string_view to_string(Trigger trigger);
std::optional<Trigger> trigger_from_string(std::string_view text);

// "2026-11-29T08:00:00.123Z": RFC 3339 in UTC with milliseconds.
std::string format_utc(TimePoint at);

// Everything known when a run starts. The caller makes run_id and trace_id
// (ledger/ids.h); every attempt of one fire carries the fire's trace_id.
struct RunStart {
  std::string run_id;
  std::string job;
  TimePoint scheduled_for;  // the slot: the instant the fire was due
  int attempt = 1;          // 1 claims the slot; n > 1 is a retry of a claimed slot
  std::string trace_id;
  Trigger trigger = Trigger::schedule;
  TimePoint started_at;
  std::optional<std::string> plugin;  // descriptor name
  std::optional<std::string> plugin_version;
  std::optional<std::string> plugin_sha256;  // of the shadow copy the run loads
  std::optional<std::string> definition_hash;
  std::optional<std::string> replay_of;  // run id this run replays
  int64_t host_pid = 0;                  // the daemon's pid (getpid())
  // The trigger's payload (JSON; the slot keeps it for every attempt), if any.
  std::optional<std::string> event;
  // Claimed ahead of its instant, its process parked (engine parking): the
  // claim also marks the run as not begun, until Store::release_parked.
  bool parked = false;
};

// How a run ended.
struct RunEnd {
  std::string run_id;
  TimePoint finished_at;
  Outcome outcome = Outcome::succeeded;
  std::optional<int> exit_code{};
  std::optional<std::string> signal{};  // "SIGSEGV"
  std::optional<Duration> duration{};   // measured by the caller (steady clock)
  std::string message{};
  std::string output_tail{};  // bounded tail of stdout+stderr; may be any bytes
  // When set, attempt+1 of the same slot is scheduled for this instant in the
  // same transaction, so a crash cannot lose the retry.
  std::optional<TimePoint> retry_at{};
  // Resources of the run (docs/running.md says what each covers in each
  // isolation mode): CPU seconds (user + system), peak memory in bytes.
  std::optional<double> cpu_seconds{};
  std::optional<uint64_t> max_rss_bytes{};
  // The last value of each metric() name. Hostile: the store keeps only
  // storable_metric() entries, at most kMaxRunMetrics of them.
  std::map<std::string, double> metrics{};
};

// Bounds on a run's plugin metrics as the ledger keeps them.
inline constexpr std::size_t kMaxRunMetrics = 256;
inline constexpr std::size_t kMaxMetricNameBytes = 128;
// A name of 1..kMaxMetricNameBytes bytes and a finite value (NaN and
// infinities have no place in SQLite REAL NOT NULL nor in JSON).
bool storable_metric(std::string_view name, double value);

// A slot that is recorded as skipped instead of run (concurrency or misfire
// policy). It becomes a finished run row with outcome skipped.
struct SkipRecord {
  std::string run_id;
  std::string trace_id;
  std::string job;
  TimePoint scheduled_for;
  Trigger trigger = Trigger::schedule;
  std::string reason;  // stored as the run's message, e.g. "missed"
  TimePoint at;        // when it was decided
  std::optional<std::string> definition_hash;
  int64_t host_pid = 0;
};

// The claim of a parked run that never began, to undo (Store::unclaim_parked).
struct Unclaim {
  std::string run_id;
  std::string why;  // for the `unclaimed` event: "the job was paused", ...
  TimePoint at;
};

// One row of `runs`, every column.
struct RunRecord {
  std::string run_id;
  std::string job;
  TimePoint scheduled_for;
  int attempt = 1;
  std::string trace_id;
  Trigger trigger = Trigger::schedule;
  TimePoint started_at;
  std::optional<TimePoint> finished_at;  // nullopt while running
  std::optional<Outcome> outcome;        // nullopt while running
  std::optional<int> exit_code;
  std::optional<std::string> signal;
  std::optional<Duration> duration;
  std::optional<std::string> plugin;
  std::optional<std::string> plugin_version;
  std::optional<std::string> plugin_sha256;
  std::optional<std::string> definition_hash;
  std::string message;
  std::string output_tail;
  std::optional<TimePoint> last_heartbeat;
  std::optional<double> progress;
  std::optional<std::string> replay_of;
  int64_t host_pid = 0;
  std::optional<double> cpu_seconds;      // unknown for runs before schema 3, skips, unstarted
  std::optional<uint64_t> max_rss_bytes;  // likewise
  std::map<std::string, double> metrics;  // the run's plugin metrics, by name
  // The host that claimed it ([host] id); unknown for runs before SQLite
  // schema 6.
  std::optional<std::string> host;
  // Its slot's trigger payload (JSON), read by get_run only.
  std::optional<std::string> event;

  bool running() const { return !finished_at.has_value(); }
};

// What `status` shows for one job. Windowed figures cover the last
// kStatsWindow finished runs that were not skipped.
struct JobStats {
  std::string job;
  std::optional<std::string> definition_hash;
  std::optional<TimePoint> last_fire;  // latest schedule/catchup slot claimed
  std::optional<TimePoint> next_fire;  // as last told by upsert_job
  int consecutive_failures = 0;
  std::optional<Outcome> last_outcome;    // latest finished, non-skipped run
  std::optional<TimePoint> last_started;  // latest non-skipped run, running or not
  int window_runs = 0;                    // finished non-skipped runs counted (<= 100)
  std::optional<double> success_rate;     // succeeded / window_runs; nullopt if 0
  std::optional<Duration> mean_duration;  // over window runs with a known duration
  std::optional<Duration> p50_duration;   // median of those durations (nearest rank)
  std::optional<Duration> p95_duration;   // their 95th percentile (nearest rank)
  int runs_in_flight = 0;
  // Set while the job is paused (Store::set_paused): when, and who did it.
  std::optional<TimePoint> paused_at;
  std::optional<std::string> paused_by;
};
inline constexpr int kStatsWindow = 100;

// A job's row as the engine reads it at start (Store::job_marks).
struct JobMark {
  std::string job;
  std::optional<std::string> definition_hash;
  std::optional<TimePoint> last_fire;  // what claims advanced
  std::optional<TimePoint> next_fire;
};

// One entry of the audit trail. Kinds written by the ledger itself: started,
// finished, skipped, retried, interrupted. Others (fired, reloaded,
// rejected_plugin, config_rejected, ...) come from add_event().
struct Event {
  int64_t id = 0;  // assigned by the store
  TimePoint at;
  std::string kind;
  std::optional<std::string> job;
  std::optional<std::string> run_id;
  std::string detail;  // free text or JSON
};

// A retry waiting for its time: attempt `next_attempt` of slot
// (job, scheduled_for). At most one per slot.
struct PendingRetry {
  std::string job;
  TimePoint scheduled_for;
  int next_attempt = 2;
  TimePoint due_at;
  std::string trace_id;
  std::optional<std::string> event;  // the slot's payload
};

// The alert state of one (job, kind), as Store::alert_states returns it.
// kind is "failing" (alert_after) or "silent" (expect_success_within).
struct AlertRecord {
  std::string job;
  std::string kind;
  bool firing = false;
  std::optional<TimePoint> since;         // when it began firing; nullopt when not firing
  std::optional<TimePoint> notified_at;   // when its last notice (alert or recovery) was decided
  int failed_fires = 0;                   // failing: consecutive failed fires counted
  std::optional<TimePoint> window_start;  // silent: last success, or when first seen
  bool pending = false;                   // the last notice is not delivered to every notifier yet
  std::string message;                    // the last notice's message
};

// A host sharing the ledger, as its row in `hosts` (docs/cluster.md).
struct HostRecord {
  std::string id;           // [host] id
  std::string incarnation;  // one per daemon start
  int64_t pid = 0;
  std::string version;  // jobhost's
  TimePoint started_at;
  TimePoint heartbeat_at;  // its last renewal, by its clock
  TimePoint lease_until;   // after this, another host takes its runs over
  std::optional<TimePoint> taken_over_at;
  std::optional<std::string> taken_over_by;
  // What it runs (skew: docs/cluster.md): a digest of its jobs' definition
  // hashes (definitions_digest), and each plugin's build, name to sha256.
  std::string definitions;
  std::map<std::string, std::string> plugins;
};

// The digest of a host's job definitions: sha256 over each (name,
// definition_hash), in name order. Two hosts with the same jobs, defined
// alike, have the same digest.
std::string definitions_digest(std::span<const std::pair<std::string, std::string>> jobs);

// Where the live hosts (lease held, not taken over) differ: hosts whose
// definitions differ from most hosts' (or that wrote none: an older
// jobhost), and plugins built differently.
struct Skew {
  std::string definitions;                     // most hosts' digest ("" with no host)
  std::vector<std::string> other_definitions;  // hosts with another digest
  // plugin -> sha256 -> hosts, for plugins with more than one build.
  std::map<std::string, std::map<std::string, std::vector<std::string>>> plugins;
  bool any() const { return !other_definitions.empty() || !plugins.empty(); }
  bool operator==(const Skew&) const = default;
};
Skew skew_of(std::span<const HostRecord> hosts, TimePoint now);
nlohmann::json to_json(const Skew& skew);

// What Store::take_over_expired did.
struct Takeover {
  std::vector<RunRecord> closed;  // open runs closed as interrupted, oldest first
  // Slots whose parked claims were undone (their processes never began):
  // free again, each (job, scheduled_for), for the taker to fire.
  std::vector<std::pair<std::string, TimePoint>> freed;
};

// What Store::renew_lease found.
enum class Lease {
  renewed,  // the lease is this incarnation's until lease_until
  lost,     // another host took this incarnation's runs over, or a newer
            // incarnation holds the id: its runs are not its own any more
};

// What one retention batch deleted (Store::prune, Store::prune_excess).
struct Pruned {
  int runs = 0;
  int events = 0;  // not counting the events of the deleted runs
};

// One run of a job's stats window (Store::window_runs).
struct WindowRun {
  std::string run_id;
  TimePoint started_at;
  Outcome outcome = Outcome::succeeded;
  std::optional<Duration> duration;
};

// Where a page of runs (newest first) ended: the next page starts strictly
// after this run in (started_at DESC, run_id DESC) order.
struct RunCursor {
  TimePoint started_at;
  std::string run_id;
};

// Which runs Store::query_runs returns. Every filter is optional; since and
// until bound started_at (since <= started_at < until).
struct RunQuery {
  std::optional<std::string> job{};
  std::optional<Outcome> outcome{};
  bool running_only = false;  // runs not finished yet (outcome is then ignored)
  std::optional<Trigger> trigger{};
  std::optional<TimePoint> since{};
  std::optional<TimePoint> until{};
  std::optional<RunCursor> after{};
  int limit = 50;  // > 0
};

// Finished, not skipped runs that started in a window (Store::run_summary):
// how many, how many counted as failures (failed, timed_out, stalled,
// crashed, limit_exceeded, as consecutive_failures counts them), and their
// mean duration (nullopt when none has one).
struct RunSummary {
  int runs = 0;
  int failed = 0;
  std::optional<Duration> mean_duration;
};

// The finished, not skipped runs that started in one UTC minute
// (Store::run_minutes): the sums behind RunSummary, so that minutes add up.
struct RunMinute {
  int64_t minute = 0;  // started_at in whole minutes since the epoch
  int runs = 0;
  int failed = 0;
  int64_t duration_ms = 0;  // summed over the runs with a known duration
  int with_duration = 0;
};

// The nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending,
// not empty).
Duration percentile(const std::vector<Duration>& sorted, int p);

// nlohmann's conversion (`nlohmann::json j = record;`): the `history --json`
// object. Times are RFC 3339 UTC strings (format_utc), unknown values are
// null, invalid UTF-8 in texts is replaced by U+FFFD. output_tail is left out
// (it can be large); read it from the record.
void to_json(nlohmann::json& out, const RunRecord& run);
// The `status --json` object for one job.
void to_json(nlohmann::json& out, const JobStats& stats);
void to_json(nlohmann::json& out, const Event& event);

}  // namespace jobhost::ledger
