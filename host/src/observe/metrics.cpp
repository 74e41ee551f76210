#include "observe/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace jobhost::observe {
namespace {

double seconds_of(Duration d) {
  return std::chrono::duration<double>(d).count();
}

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// The text format, appended to one string.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // our own texts: no backslash or newline to escape
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // name{labels} value: `labels` is preformatted (`job_name="x",outcome="y"`) or empty.
  void sample(std::string_view name, std::string_view labels, uint64_t value) {
    head(name, labels);
    out_ += fmt::format_int(value).c_str();
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    head(name, labels);
    number(value);
    out_ += '\n';
  }
  void timestamp(std::string_view name, std::string_view labels, TimePoint at) {
    head(name, labels);
    fmt::format_to(std::back_inserter(out_), "{:.3f}\n",
                   static_cast<double>(at.time_since_epoch().count()) / 1000.0);
  }
  // The _bucket, _sum and _count samples of `h` (the family is written by the caller).
  void histogram(std::string_view name, std::string_view labels, const Histogram& h,
                 std::span<const std::string> le_labels) {
    const auto bounds = h.bounds();
    for (std::size_t i = 0; i <= bounds.size(); ++i) {
      out_ += name;
      out_ += "_bucket{";
      if (!labels.empty()) {
        out_ += labels;
        out_ += ',';
      }
      out_ += le_labels[i];
      out_ += "} ";
      out_ += fmt::format_int(h.cumulative(i)).c_str();
      out_ += '\n';
    }
    out_ += name;
    out_ += "_sum";
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    number(h.sum());
    out_ += '\n';
    out_ += name;
    out_ += "_count";
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += fmt::format_int(h.count()).c_str();
    out_ += '\n';
  }

 private:
  void head(std::string_view name, std::string_view labels) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
  }
  void number(double v) {
    if (std::isnan(v)) {
      out_ += "NaN";
    } else if (std::isinf(v)) {
      out_ += v > 0 ? "+Inf" : "-Inf";
    } else {
      fmt::format_to(std::back_inserter(out_), "{}", v);
    }
  }

  std::string& out_;
};

// `le="0.005"` ... `le="+Inf"` for a histogram's bounds.
std::vector<std::string> le_labels(std::span<const double> bounds) {
  std::vector<std::string> out;
  for (double b : bounds) out.push_back(fmt::format("le=\"{}\"", b));
  out.emplace_back("le=\"+Inf\"");
  return out;
}

std::string label(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  out += escape_label_value(value);
  out += '"';
  return out;
}

}  // namespace

void Histogram::observe(double value) {
  if (std::isnan(value)) return;
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++counts_[static_cast<std::size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += value;
}

uint64_t Histogram::cumulative(std::size_t i) const {
  uint64_t total = 0;
  for (std::size_t k = 0; k <= i && k < counts_.size(); ++k) total += counts_[k];
  return total;
}

SkipReason classify_skip(std::string_view reason) {
  if (reason.find("concurrency = forbid") != std::string_view::npos) return SkipReason::concurrency;
  if (reason.starts_with("replaced")) return SkipReason::replaced;
  if (reason.starts_with("dispatch queue full")) return SkipReason::queue_full;
  if (reason.starts_with("missed")) return SkipReason::misfire;
  if (reason.starts_with("blocked")) return SkipReason::blocked;
  if (reason.starts_with("paused") || reason.find("is paused") != std::string_view::npos) {
    return SkipReason::paused;
  }
  if (reason.find("shut down") != std::string_view::npos ||
      reason.find("shutting down") != std::string_view::npos) {
    return SkipReason::shutdown;
  }
  return SkipReason::other;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t n = utf8_sequence(value, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    if (n == 1) {
      switch (value[i]) {
        case '\\':
          out += "\\\\";
          break;
        case '"':
          out += "\\\"";
          break;
        case '\n':
          out += "\\n";
          break;
        default:
          out += value[i];
      }
    } else {
      out.append(value.substr(i, n));
    }
    i += n;
  }
  return out;
}

Metrics::Metrics(Options options) : options_(std::move(options)), started_(now()) {
  // Without an engine yet (the daemon sets it later), decided at the first use.
  if (options_.engine) follow_per_job();
}

void Metrics::set_engine(const engine::Engine* engine) {
  options_.engine = engine;
  follow_per_job();
}

void Metrics::follow_per_job() {
  const bool keep = !options_.engine || per_job_enabled();
  if (keeping_ == keep) return;
  keeping_ = keep;
  jobs_.clear();
  plugin_metric_series_ = 0;
  if (!keep || !job_gauges_) return;
  for (auto& g : job_gauges_()) {
    JobSeries& series = jobs_[std::move(g.job)];
    series.consecutive_failures = g.consecutive_failures;
    series.last_run = g.last_run;
  }
}

Metrics::JobSeries* Metrics::job(std::string_view name) {
  if (!keeping_) follow_per_job();
  if (!*keeping_) return nullptr;
  auto it = jobs_.find(name);
  if (it == jobs_.end()) it = jobs_.emplace(std::string(name), JobSeries{}).first;
  return &it->second;
}

void Metrics::on_config_applied(const config::Config&) {
  follow_per_job();
}

void Metrics::on_run_started(const ledger::RunStart& run, Duration lateness) {
  const double late = std::max(0.0, seconds_of(lateness));
  lateness_.observe(late);
  if (JobSeries* series = job(run.job)) {
    series->last_run = run.started_at;
    series->lateness.observe(late);
  }
}

void Metrics::count_run(JobSeries* series, Outcome outcome, const ledger::RunEnd& end) {
  const auto i = static_cast<std::size_t>(outcome);
  ++runs_[i];
  if (end.retry_at) ++retries_;
  if (!series) return;
  ++series->runs[i];
  if (outcome == Outcome::succeeded) {
    series->consecutive_failures = 0;
    series->last_success = end.finished_at;
  } else if (counts_as_failure(outcome)) {
    ++series->consecutive_failures;
  }
  if (end.retry_at) ++series->retries;
}

void Metrics::on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                              const exec::RunReport& /*report*/) {
  JobSeries* series = job(run.job);
  count_run(series, end.outcome, end);
  if (end.duration) {
    const double d = std::max(0.0, seconds_of(*end.duration));
    duration_.observe(d);
    if (series) series->duration.observe(d);
  }
  if (end.cpu_seconds && std::isfinite(*end.cpu_seconds) && *end.cpu_seconds >= 0) {
    cpu_seconds_ += *end.cpu_seconds;
    if (series) series->cpu_seconds += *end.cpu_seconds;
  }
  if (!series) return;
  if (end.max_rss_bytes) {
    series->last_memory_peak = *end.max_rss_bytes;
    series->max_memory_peak = std::max(series->max_memory_peak, *end.max_rss_bytes);
  }
  for (const auto& [name, value] : end.metrics) {
    if (!ledger::storable_metric(name, value)) continue;
    if (auto it = series->plugin_metrics.find(name); it != series->plugin_metrics.end()) {
      it->second = value;
    } else if (series->plugin_metrics.size() < kMaxPluginMetricsPerJob &&
               plugin_metric_series_ < kMaxPluginMetrics) {
      series->plugin_metrics.emplace(name, value);
      ++plugin_metric_series_;
    } else {
      ++plugin_metrics_dropped_;
    }
  }
}

void Metrics::on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) {
  count_run(job(run.job), end.outcome, end);
}

void Metrics::on_skipped(const ledger::SkipRecord& skip) {
  const auto outcome = static_cast<std::size_t>(Outcome::skipped);
  const auto reason = static_cast<std::size_t>(classify_skip(skip.reason));
  ++runs_[outcome];
  ++skips_[reason];
  if (JobSeries* series = job(skip.job)) {
    ++series->runs[outcome];
    ++series->skips[reason];
  }
}

void Metrics::note_reload(std::string_view kind, std::string_view result) {
  const std::size_t k = kind == "config" ? 1 : 0;
  const std::size_t r = result == "rejected" ? 1 : 0;
  ++reloads_[k][r];
  if (k == 1 && r == 0) {
    ++config_generation_;
    last_config_reload_ = now();
  }
}

void Metrics::set_paused(std::string_view name, bool paused) {
  if (JobSeries* series = job(name)) series->paused = paused;
}

void Metrics::observe_ledger_write(LedgerOp op, double seconds) {
  ledger_writes_[static_cast<std::size_t>(op)].observe(std::max(0.0, seconds));
}

bool Metrics::per_job_enabled() const {
  std::optional<bool> setting;
  std::size_t jobs = jobs_.size();
  if (options_.engine) {
    setting = options_.engine->config().http.per_job_metrics;
    jobs = options_.engine->config().jobs.size();
  }
  if (setting) return *setting;
  return jobs <= config::kPerJobMetricsAuto;
}

std::string Metrics::render() const {
  static const std::vector<std::string> kLatenessLe = le_labels(kLatenessBuckets);
  static const std::vector<std::string> kDurationLe = le_labels(kDurationBuckets);
  static const std::vector<std::string> kLedgerLe = le_labels(kLedgerWriteBuckets);

  std::optional<engine::Engine::Figures> figures;
  if (options_.engine) figures = options_.engine->figures();
  const bool per_job = per_job_enabled();

  // The jobs rendered: the engine's config (a removed job's series go), or
  // every job seen when there is no engine.
  struct Row {
    const JobSeries* series;  // null: no run or skip seen yet
    const engine::Engine::JobFigures* figures;
    std::string label;  // job_name="..."
  };
  std::vector<Row> rows;
  if (per_job) {
    if (figures) {
      rows.reserve(figures->jobs.size());
      for (const auto& f : figures->jobs) {
        auto it = jobs_.find(f.job);
        rows.push_back({it == jobs_.end() ? nullptr : &it->second, &f, label("job_name", f.job)});
      }
    } else {
      rows.reserve(jobs_.size());
      for (const auto& [name, series] : jobs_)
        rows.push_back({&series, nullptr, label("job_name", name)});
    }
  }
  static const JobSeries kEmpty{};

  std::string out;
  out.reserve(4096 + rows.size() * 6000);
  Writer w(out);

  // ---- daemon ----
  w.family("jobhost_build_info", "gauge", "Always 1; the version of this jobhost as a label.");
  w.sample("jobhost_build_info", label("version", options_.version), uint64_t{1});
  w.family("jobhost_up", "gauge", "1 while the daemon serves metrics.");
  w.sample("jobhost_up", "", uint64_t{1});
  w.family("jobhost_start_timestamp_seconds", "gauge", "When the daemon started (Unix time).");
  w.timestamp("jobhost_start_timestamp_seconds", "", started_);
  if (options_.engine) {
    const auto& plugins = options_.engine->plugins();
    w.family("jobhost_plugins", "gauge",
             "Plugin files in plugin_dir by state: accepted (in service) or rejected.");
    w.sample("jobhost_plugins", "state=\"accepted\"", uint64_t{plugins.accepted.size()});
    w.sample("jobhost_plugins", "state=\"rejected\"", uint64_t{plugins.rejected.size()});
    w.family("jobhost_jobs", "gauge", "Jobs in the running config.");
    w.sample("jobhost_jobs", "", uint64_t{options_.engine->config().jobs.size()});
  }
  w.family("jobhost_reloads_total", "counter",
           "Reload results: kind plugin (a build put in or out of service, or a file rejected) "
           "or config; result applied or rejected.");
  for (std::size_t k = 0; k < 2; ++k) {
    for (std::size_t r = 0; r < 2; ++r) {
      w.sample("jobhost_reloads_total",
               fmt::format("kind=\"{}\",result=\"{}\"", k == 1 ? "config" : "plugin",
                           r == 1 ? "rejected" : "applied"),
               reloads_[k][r]);
    }
  }
  w.family("jobhost_config_generation", "gauge",
           "1 for the config the daemon started with, +1 for each config reload applied.");
  w.sample("jobhost_config_generation", "", config_generation_);
  if (last_config_reload_) {
    w.family("jobhost_config_last_reload_timestamp_seconds", "gauge",
             "When a config reload was last applied (Unix time).");
    w.timestamp("jobhost_config_last_reload_timestamp_seconds", "", *last_config_reload_);
  }
  w.family("jobhost_per_job_series", "gauge",
           "1 when per-job series are rendered ([http] per_job_metrics, or at most 1000 jobs).");
  w.sample("jobhost_per_job_series", "", uint64_t{per_job ? 1u : 0u});
  if (figures) {
    w.family("jobhost_queue_depth", "gauge", "Fires due and waiting for a run slot.");
    w.sample("jobhost_queue_depth", "", uint64_t{figures->queued});
    w.family("jobhost_queue_capacity", "gauge",
             "Most fires that may wait for a run slot; more are skipped (queue_full).");
    w.sample("jobhost_queue_capacity", "", uint64_t{engine::kMaxReady});
    w.family("jobhost_runs_in_flight", "gauge", "Runs started and not finished.");
    w.sample("jobhost_runs_in_flight", "", uint64_t{figures->in_flight});
    w.family("jobhost_pending_retries", "gauge", "Retries planned and not started yet.");
    w.sample("jobhost_pending_retries", "", uint64_t{figures->pending_retries});
    w.family("jobhost_ledger_backlog", "gauge",
             "Records kept in memory while the ledger refuses writes.");
    w.sample("jobhost_ledger_backlog", "", uint64_t{figures->ledger_backlog});
    if (!figures->groups.empty()) {
      w.family("jobhost_group_runs_in_flight", "gauge",
               "Runs in flight of the jobs of each [groups.NAME].");
      for (const auto& g : figures->groups) {
        w.sample("jobhost_group_runs_in_flight", label("group", g.name), uint64_t{g.running});
      }
      w.family("jobhost_group_max_concurrency", "gauge", "Each [groups.NAME]'s max_concurrency.");
      for (const auto& g : figures->groups) {
        w.sample("jobhost_group_max_concurrency", label("group", g.name),
                 static_cast<uint64_t>(g.max_concurrency));
      }
      w.family("jobhost_group_waiting", "gauge",
               "Fires due and waiting because their [groups.NAME] is full.");
      for (const auto& g : figures->groups) {
        w.sample("jobhost_group_waiting", label("group", g.name), uint64_t{g.waiting});
      }
    }
  }
  w.family("jobhost_ledger_write_seconds", "histogram",
           "Time of each ledger write transaction, by operation.");
  for (std::size_t i = 0; i < kLedgerOpNames.size(); ++i) {
    w.histogram("jobhost_ledger_write_seconds", label("op", kLedgerOpNames[i]), ledger_writes_[i],
                kLedgerLe);
  }
  if (options_.fork_server_restarts) {
    w.family("jobhost_fork_server_restarts_total", "counter",
             "Fork servers started to replace one that died or retired.");
    w.sample("jobhost_fork_server_restarts_total", "", options_.fork_server_restarts());
  }
  if (options_.cluster) {
    const ClusterFigures cluster = options_.cluster();
    w.family("jobhost_cluster_hosts", "gauge",
             "Hosts holding a lease on the shared ledger, as of this host's last heartbeat.");
    w.sample("jobhost_cluster_hosts", "", static_cast<uint64_t>(cluster.live_hosts));
    w.family("jobhost_cluster_skew", "gauge",
             "Live hosts whose job definitions differ from most hosts' (kind=definitions); "
             "plugins built differently across the live hosts (kind=plugins).");
    w.sample("jobhost_cluster_skew", label("kind", "definitions"),
             static_cast<uint64_t>(cluster.hosts_with_other_definitions));
    w.sample("jobhost_cluster_skew", label("kind", "plugins"),
             static_cast<uint64_t>(cluster.plugins_built_differently));
  }
  w.family("jobhost_plugin_metrics_dropped_total", "counter",
           "Plugin metric values not exported: a new name beyond 64 per job or 10000 in all.");
  w.sample("jobhost_plugin_metrics_dropped_total", "", plugin_metrics_dropped_);

  // ---- every job together ----
  w.family("jobhost_runs_total", "counter",
           "Runs recorded, by outcome (skipped fires included, as in the ledger).");
  for (std::size_t i = 0; i < kOutcomeNames.size(); ++i) {
    w.sample("jobhost_runs_total", label("outcome", kOutcomeNames[i]), runs_[i]);
  }
  w.family("jobhost_skipped_fires_total", "counter", "Fires recorded as skipped, by reason.");
  for (std::size_t i = 0; i < kSkipReasonNames.size(); ++i) {
    w.sample("jobhost_skipped_fires_total", label("reason", kSkipReasonNames[i]), skips_[i]);
  }
  w.family("jobhost_retries_total", "counter", "Retries scheduled after a failed attempt.");
  w.sample("jobhost_retries_total", "", retries_);
  w.family("jobhost_run_duration_seconds", "histogram", "Duration of finished runs.");
  w.histogram("jobhost_run_duration_seconds", "", duration_, kDurationLe);
  w.family("jobhost_fire_lateness_seconds", "histogram",
           "A run's start minus the instant its fire was due (jitter excluded).");
  w.histogram("jobhost_fire_lateness_seconds", "", lateness_, kLatenessLe);
  w.family("jobhost_cpu_seconds_total", "counter", "CPU time (user + system) of finished runs.");
  w.sample("jobhost_cpu_seconds_total", "", cpu_seconds_);

  if (rows.empty()) return out;

  // ---- per job ----
  auto series = [](const Row& r) -> const JobSeries& { return r.series ? *r.series : kEmpty; };
  std::string labels;
  w.family("jobhost_job_runs_total", "counter",
           "Runs of the job recorded, by outcome (skipped fires included, as in the ledger).");
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < kOutcomeNames.size(); ++i) {
      labels = r.label;
      labels += ",outcome=\"";
      labels += kOutcomeNames[i];
      labels += '"';
      w.sample("jobhost_job_runs_total", labels, series(r).runs[i]);
    }
  }
  w.family("jobhost_job_skipped_fires_total", "counter",
           "Fires of the job recorded as skipped, by reason.");
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < kSkipReasonNames.size(); ++i) {
      labels = r.label;
      labels += ",reason=\"";
      labels += kSkipReasonNames[i];
      labels += '"';
      w.sample("jobhost_job_skipped_fires_total", labels, series(r).skips[i]);
    }
  }
  w.family("jobhost_job_retries_total", "counter", "Retries of the job scheduled.");
  for (const auto& r : rows) w.sample("jobhost_job_retries_total", r.label, series(r).retries);
  w.family("jobhost_job_consecutive_failures", "gauge",
           "Failed runs of the job since its last success (as the ledger counts them).");
  for (const auto& r : rows) {
    w.sample("jobhost_job_consecutive_failures", r.label,
             uint64_t{static_cast<uint64_t>(std::max(0, series(r).consecutive_failures))});
  }
  if (figures) {
    w.family("jobhost_job_runs_in_flight", "gauge", "Runs of the job started and not finished.");
    for (const auto& r : rows) {
      w.sample("jobhost_job_runs_in_flight", r.label, uint64_t{r.figures->in_flight});
    }
    w.family("jobhost_job_next_fire_timestamp_seconds", "gauge",
             "When the job's next planned fire is due (Unix time); absent when none is planned.");
    for (const auto& r : rows) {
      if (r.figures->next_fire) {
        w.timestamp("jobhost_job_next_fire_timestamp_seconds", r.label, *r.figures->next_fire);
      }
    }
  }
  w.family("jobhost_job_last_run_timestamp_seconds", "gauge",
           "When the job's latest run started (Unix time).");
  for (const auto& r : rows) {
    if (series(r).last_run) {
      w.timestamp("jobhost_job_last_run_timestamp_seconds", r.label, *series(r).last_run);
    }
  }
  w.family("jobhost_job_last_success_timestamp_seconds", "gauge",
           "When the job's latest succeeded run finished (Unix time), since the daemon started.");
  for (const auto& r : rows) {
    if (series(r).last_success) {
      w.timestamp("jobhost_job_last_success_timestamp_seconds", r.label, *series(r).last_success);
    }
  }
  w.family("jobhost_job_paused", "gauge", "1 while the job is paused.");
  for (const auto& r : rows) {
    const bool paused = r.figures ? r.figures->paused : series(r).paused;
    w.sample("jobhost_job_paused", r.label, uint64_t{paused ? 1u : 0u});
  }
  w.family("jobhost_job_run_duration_seconds", "histogram", "Duration of the job's finished runs.");
  for (const auto& r : rows) {
    w.histogram("jobhost_job_run_duration_seconds", r.label, series(r).duration, kDurationLe);
  }
  w.family("jobhost_job_fire_lateness_seconds", "histogram",
           "A run's start minus the instant its fire was due (jitter excluded), per job.");
  for (const auto& r : rows) {
    w.histogram("jobhost_job_fire_lateness_seconds", r.label, series(r).lateness, kLatenessLe);
  }
  w.family("jobhost_job_cpu_seconds_total", "counter",
           "CPU time (user + system) of the job's finished runs (docs/running.md).");
  for (const auto& r : rows)
    w.sample("jobhost_job_cpu_seconds_total", r.label, series(r).cpu_seconds);
  w.family("jobhost_job_memory_peak_bytes", "gauge",
           "Peak memory of the job's latest run that reported one (docs/running.md).");
  for (const auto& r : rows) {
    if (series(r).last_memory_peak) {
      w.sample("jobhost_job_memory_peak_bytes", r.label, *series(r).last_memory_peak);
    }
  }
  w.family("jobhost_job_memory_peak_max_bytes", "gauge",
           "Largest peak memory of the job's runs since the daemon started.");
  for (const auto& r : rows) {
    if (series(r).last_memory_peak) {
      w.sample("jobhost_job_memory_peak_max_bytes", r.label, series(r).max_memory_peak);
    }
  }
  w.family("jobhost_job_plugin_metric", "gauge",
           "The last value the job's plugin gave to metric(name, value).");
  for (const auto& r : rows) {
    for (const auto& [name, value] : series(r).plugin_metrics) {
      labels = r.label;
      labels += ',';
      labels += label("name", name);
      w.sample("jobhost_job_plugin_metric", labels, value);
    }
  }
  return out;
}

void add_metrics_route(Router& router, const Metrics& metrics) {
  router.add("GET", "/metrics", [&metrics](const Request&, const Respond& respond) {
    respond(Response::text(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8"));
  });
}

}  // namespace jobhost::observe
