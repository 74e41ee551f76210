// Prometheus metrics of the daemon (docs/observability.md, "Metrics"). An
// engine::Observer that counts runs, skips, retries, resources and plugin
// metrics as they happen, plus render(): the text exposition format
// (version 0.0.4) of everything, with the gauges that are engine state
// (queue, runs in flight, next fires) read from the engine at that moment.
// Single-threaded, like the engine: every call on the loop's thread.
//
// Cardinality: per-job series are rendered while the config has at most
// config::kPerJobMetricsAuto jobs, or always / never when [http]
// per_job_metrics is true / false; aggregate series always. Per-job state is
// kept only while per-job series are rendered, and only for the jobs that
// have had a run or skip since (or a gauge from the ledger): when they are
// off, a job costs the metrics nothing; when a reload turns them on, they
// start from the ledger's gauges (set_job_gauges) and from zero counts.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.h"
#include "common/time.h"
#include "engine/engine.h"
#include "engine/observer.h"
#include "ledger/records.h"
#include "observe/http.h"

namespace jobhost::observe {

// Bucket upper bounds (seconds) of the histograms; +Inf is implied.
inline constexpr std::array<double, 14> kLatenessBuckets = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
inline constexpr std::array<double, 15> kDurationBuckets = {
    0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600};
inline constexpr std::array<double, 11> kLedgerWriteBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};

// A Prometheus histogram over fixed bounds: per-bucket counts (rendered
// cumulative), the count and the sum of observations.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds)
      : bounds_(bounds), counts_(bounds.size() + 1) {}
  void observe(double value);
  std::span<const double> bounds() const { return bounds_; }
  // Observations <= bounds()[i] (i < bounds().size()), or all of them.
  uint64_t cumulative(std::size_t i) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::span<const double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = above every bound
  uint64_t count_ = 0;
  double sum_ = 0;
};

// The fixed set of skip reasons, from the engine's free-text reason.
enum class SkipReason {
  concurrency,
  replaced,
  queue_full,
  misfire,
  blocked,
  paused,
  shutdown,
  other
};
inline constexpr std::array<std::string_view, 8> kSkipReasonNames = {
    "concurrency", "replaced", "queue_full", "misfire", "blocked", "paused", "shutdown", "other"};
SkipReason classify_skip(std::string_view reason);

// Ledger writes timed by observe::TimedStore, by operation.
// `commit`: the commit of a write group (Store::commit_group); the writes of
// a group are timed without it.
enum class LedgerOp { claim, finish, skip, heartbeat, commit, other };
inline constexpr std::array<std::string_view, 6> kLedgerOpNames = {"claim",     "finish", "skip",
                                                                   "heartbeat", "commit", "other"};

// A label value as the text format wants it: invalid UTF-8 replaced by
// U+FFFD, then backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);

class Metrics final : public engine::Observer {
 public:
  // Most plugin metric series kept per job, and in all (new names beyond
  // are dropped and counted in jobhost_plugin_metrics_dropped_total).
  static constexpr std::size_t kMaxPluginMetricsPerJob = 64;
  static constexpr std::size_t kMaxPluginMetrics = 10000;

  // What a job's gauges that survive restarts start from: its consecutive
  // failures and when its latest run started, from the ledger.
  struct JobGauges {
    std::string job;
    int consecutive_failures = 0;
    std::optional<TimePoint> last_run;
  };

  // Several hosts on one ledger (docs/cluster.md), as of the last heartbeat.
  struct ClusterFigures {
    int live_hosts = 0;
    int hosts_with_other_definitions = 0;  // than most hosts'
    int plugins_built_differently = 0;     // across the live hosts
  };

  struct Options {
    std::string version;  // jobhost_build_info{version}
    // Scrape-time sources; unset ones are not rendered.
    const engine::Engine* engine = nullptr;  // queue, in flight, next fires, jobs, plugins
    std::function<uint64_t()> fork_server_restarts;
    std::function<ClusterFigures()> cluster;  // on a shared ledger only
    // Clock of the *_timestamp_seconds gauges; defaults to the wall clock.
    std::function<TimePoint()> clock;
  };
  using GaugeSource = std::function<std::vector<JobGauges>()>;
  explicit Metrics(Options options);
  // The engine read at scrape time, when it is made after the Metrics (the
  // daemon: the engine writes through a TimedStore that needs the Metrics).
  void set_engine(const engine::Engine* engine);
  // Read when per-job series begin (at set_engine, or at the first run or
  // skip without an engine, if they are on; at a reload that turns them on):
  // the jobs with a gauge to start from. Unset: every job starts from nothing.
  // Set it before set_engine.
  void set_job_gauges(GaugeSource source) { job_gauges_ = std::move(source); }

  // engine::Observer
  void on_run_started(const ledger::RunStart& run, Duration lateness) override;
  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport& report) override;
  void on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) override;
  void on_skipped(const ledger::SkipRecord& skip) override;
  void on_config_applied(const config::Config& config) override;

  // From the reloader (reload::Reloader::on_result): kind "plugin" or
  // "config", result "applied" or "rejected". An applied config is a new
  // config generation.
  void note_reload(std::string_view kind, std::string_view result);
  // jobhost_job_paused of a job the engine does not list (with an engine,
  // its figures say which jobs are paused).
  void set_paused(std::string_view job, bool paused);
  // One ledger write took `seconds` (observe::TimedStore).
  void observe_ledger_write(LedgerOp op, double seconds);

  // Whether per-job series are rendered now (the cardinality rule).
  bool per_job_enabled() const;
  // The jobs whose per-job state is kept now (0 while per-job series are off).
  std::size_t jobs_kept() const { return jobs_.size(); }
  // The whole scrape, in the text exposition format.
  std::string render() const;

 private:
  struct JobSeries {
    std::array<uint64_t, kOutcomeNames.size()> runs{};
    std::array<uint64_t, kSkipReasonNames.size()> skips{};
    uint64_t retries = 0;
    int consecutive_failures = 0;
    std::optional<TimePoint> last_run, last_success;
    Histogram duration{kDurationBuckets};
    Histogram lateness{kLatenessBuckets};
    double cpu_seconds = 0;
    std::optional<uint64_t> last_memory_peak;  // bytes, of the last run that had one
    uint64_t max_memory_peak = 0;
    bool paused = false;
    std::map<std::string, double, std::less<>> plugin_metrics;  // name -> last value
  };
  // The job's series, made if needed; null while per-job series are off.
  JobSeries* job(std::string_view name);
  // Starts or drops the per-job state when the cardinality rule changed.
  void follow_per_job();
  void count_run(JobSeries* series, Outcome outcome, const ledger::RunEnd& end);
  TimePoint now() const { return options_.clock ? options_.clock() : wall_now(); }

  Options options_;
  // Whether per-job state is kept (nullopt: not decided yet). Without an
  // engine it always is: render() decides by the jobs seen.
  std::optional<bool> keeping_;
  GaugeSource job_gauges_;
  std::map<std::string, JobSeries, std::less<>> jobs_;
  // Aggregates over every job (rendered whatever the cardinality rule).
  std::array<uint64_t, kOutcomeNames.size()> runs_{};
  std::array<uint64_t, kSkipReasonNames.size()> skips_{};
  uint64_t retries_ = 0;
  double cpu_seconds_ = 0;
  Histogram duration_{kDurationBuckets};
  Histogram lateness_{kLatenessBuckets};
  std::array<Histogram, kLedgerOpNames.size()> ledger_writes_{
      Histogram{kLedgerWriteBuckets}, Histogram{kLedgerWriteBuckets},
      Histogram{kLedgerWriteBuckets}, Histogram{kLedgerWriteBuckets},
      Histogram{kLedgerWriteBuckets}, Histogram{kLedgerWriteBuckets}};
  std::size_t plugin_metric_series_ = 0;
  uint64_t plugin_metrics_dropped_ = 0;
  // kind (plugin, config) x result (applied, rejected)
  std::array<std::array<uint64_t, 2>, 2> reloads_{};
  uint64_t config_generation_ = 1;  // the config the daemon started with
  std::optional<TimePoint> last_config_reload_;
  TimePoint started_;
};

// GET /metrics: metrics.render() as text/plain; version=0.0.4. `metrics`
// must outlive the router.
void add_metrics_route(Router& router, const Metrics& metrics);

}  // namespace jobhost::observe
