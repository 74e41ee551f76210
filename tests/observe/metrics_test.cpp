// observe::Metrics: the text exposition format of each family, label
// escaping, histograms, the cardinality rule, and a scrape after real engine
// runs of every outcome that promtool accepts and that agrees with the ledger.
#include "observe/metrics.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "../engine/engine_rig.h"
#include "support/skip.h"
#include "support/temp_dir.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

std::size_t count_prefix(const std::string& text, const std::string& prefix) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.starts_with(prefix)) ++n;
  }
  return n;
}

ledger::RunStart start_of(const std::string& job, int i = 0) {
  ledger::RunStart r;
  r.run_id = job + "-run-" + std::to_string(i);
  r.job = job;
  r.trace_id = "t";
  r.started_at = TimePoint(Duration(1'800'000'000'000 + i));
  r.scheduled_for = r.started_at;
  return r;
}

ledger::RunEnd end_of(const ledger::RunStart& run, Outcome outcome, Duration duration = 1500ms) {
  ledger::RunEnd e;
  e.run_id = run.run_id;
  e.outcome = outcome;
  e.finished_at = run.started_at + duration;
  e.duration = duration;
  return e;
}

ledger::SkipRecord skip_of(const std::string& job, const std::string& reason) {
  ledger::SkipRecord s;
  s.run_id = job + "-skip";
  s.job = job;
  s.reason = reason;
  return s;
}

Metrics::Options fixed_clock() {
  Metrics::Options o;
  o.version = "9.9.9";
  o.clock = [] { return TimePoint(Duration(1'800'000'000'000)); };
  return o;
}

// promtool check metrics on `text`; "" when it accepts it, else its output.
// nullopt when promtool is not installed.
std::optional<std::string> promtool_check(const std::string& text) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  TempDir dir;
  const auto file = dir.path() / "scrape.prom";
  const auto report = dir.path() / "promtool.out";
  std::ofstream(file) << text;
  const std::string cmd =
      "promtool check metrics < '" + file.string() + "' > '" + report.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(report);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (rc == 0) return std::string();
  return out.empty() ? std::string("promtool failed") : out;
}

}  // namespace

TEST_CASE("skip reasons map to a fixed set of labels", "[observe][metrics]") {
  struct Case {
    const char* reason;
    SkipReason expected;
  };
  const Case cases[] = {
      {"run 01J is still running (concurrency = forbid)", SkipReason::concurrency},
      {"the previous fire is still waiting to start (concurrency = forbid)",
       SkipReason::concurrency},
      {"replaced by a newer fire before it started", SkipReason::replaced},
      {"dispatch queue full (10000 fires waiting for max_concurrency = 4)", SkipReason::queue_full},
      {"missed: the host was not running (misfire = skip)", SkipReason::misfire},
      {"blocked: plugin \"x\" is not available", SkipReason::blocked},
      {"paused", SkipReason::paused},
      {"the job is paused", SkipReason::paused},
      {"the host shut down before it started", SkipReason::shutdown},
      {"the job was removed from the config before this fire started", SkipReason::other},
      {"", SkipReason::other},
  };
  for (const auto& c : cases) {
    INFO(c.reason);
    CHECK(classify_skip(c.reason) == c.expected);
  }
}

TEST_CASE("label values are escaped and made valid UTF-8", "[observe][metrics]") {
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"plain", "plain"},
      {"a\"b", "a\\\"b"},
      {"back\\slash", "back\\\\slash"},
      {"new\nline", "new\\nline"},
      {"tab\tok", "tab\tok"},
      {"caf\xc3\xa9", "caf\xc3\xa9"},
      {"bad\xff", "bad\xef\xbf\xbd"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                  // overlong '/'
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  // a surrogate
      {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},            // truncated sequence
      {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    CHECK(escape_label_value(c.in) == c.out);
  }
}

TEST_CASE("histograms: cumulative buckets, +Inf, _sum and _count", "[observe][metrics]") {
  Histogram h(kLatenessBuckets);
  for (double v : {0.0, 0.001, 0.002, 0.3, 0.3, 7.0, 1000.0}) h.observe(v);
  h.observe(std::numeric_limits<double>::quiet_NaN());  // ignored
  struct Case {
    double le;
    uint64_t cumulative;
  };
  const Case cases[] = {{0.001, 2}, {0.005, 3}, {0.25, 3}, {0.5, 5}, {5, 5}, {10, 6}, {60, 6}};
  for (const auto& c : cases) {
    const auto i =
        static_cast<std::size_t>(std::find(kLatenessBuckets.begin(), kLatenessBuckets.end(), c.le) -
                                 kLatenessBuckets.begin());
    INFO("le " << c.le);
    CHECK(h.cumulative(i) == c.cumulative);
  }
  CHECK(h.cumulative(kLatenessBuckets.size()) == 7);  // +Inf
  CHECK(h.count() == 7);
  CHECK(h.sum() == Approx(1007.603));

  Metrics m(fixed_clock());
  auto run = start_of("j");
  m.on_run_started(run, 500ms);
  m.on_run_started(run, 0ms);
  m.on_run_started(run, -5ms);  // a clock set back: counted as on time
  const std::string text = m.render();
  CHECK(has_line(text, "# TYPE jobhost_job_fire_lateness_seconds histogram"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_bucket{job_name=\"j\",le=\"0.001\"} 2"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_bucket{job_name=\"j\",le=\"0.005\"} 2"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_bucket{job_name=\"j\",le=\"0.25\"} 2"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_bucket{job_name=\"j\",le=\"0.5\"} 3"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_bucket{job_name=\"j\",le=\"+Inf\"} 3"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_sum{job_name=\"j\"} 0.5"));
  CHECK(has_line(text, "jobhost_job_fire_lateness_seconds_count{job_name=\"j\"} 3"));
  CHECK(has_line(text, "jobhost_fire_lateness_seconds_count 3"));
  CHECK(count_prefix(text, "jobhost_job_fire_lateness_seconds_bucket{job_name=\"j\"") ==
        kLatenessBuckets.size() + 1);
}

TEST_CASE("each family's text: HELP, TYPE and samples", "[observe][metrics]") {
  Metrics m(fixed_clock());
  auto a = start_of("alpha", 1);
  m.on_run_started(a, 20ms);
  auto end = end_of(a, Outcome::succeeded, 2s);
  end.cpu_seconds = 0.75;
  end.max_rss_bytes = 1048576;
  end.metrics = {{"rows", 42}, {"we\"ird\n", -1.5}, {"nan", std::nan("")}};
  m.on_run_finished(a, end, {});
  auto b = start_of("alpha", 2);
  auto failed = end_of(b, Outcome::failed);
  failed.retry_at = b.started_at + 10s;
  m.on_run_finished(b, failed, {});
  m.on_run_unstarted(start_of("beta"), end_of(start_of("beta"), Outcome::failed, 0ms));
  m.on_skipped(skip_of("beta", "run x is still running (concurrency = forbid)"));
  m.note_reload("config", "applied");
  m.note_reload("plugin", "rejected");
  m.set_paused("beta", true);
  m.observe_ledger_write(LedgerOp::finish, 0.002);

  const std::string text = m.render();
  INFO(text);
  struct Family {
    const char* name;
    const char* type;
  };
  const Family families[] = {
      {"jobhost_build_info", "gauge"},
      {"jobhost_up", "gauge"},
      {"jobhost_start_timestamp_seconds", "gauge"},
      {"jobhost_reloads_total", "counter"},
      {"jobhost_config_generation", "gauge"},
      {"jobhost_config_last_reload_timestamp_seconds", "gauge"},
      {"jobhost_per_job_series", "gauge"},
      {"jobhost_ledger_write_seconds", "histogram"},
      {"jobhost_plugin_metrics_dropped_total", "counter"},
      {"jobhost_runs_total", "counter"},
      {"jobhost_skipped_fires_total", "counter"},
      {"jobhost_retries_total", "counter"},
      {"jobhost_run_duration_seconds", "histogram"},
      {"jobhost_fire_lateness_seconds", "histogram"},
      {"jobhost_cpu_seconds_total", "counter"},
      {"jobhost_job_runs_total", "counter"},
      {"jobhost_job_skipped_fires_total", "counter"},
      {"jobhost_job_retries_total", "counter"},
      {"jobhost_job_consecutive_failures", "gauge"},
      {"jobhost_job_last_run_timestamp_seconds", "gauge"},
      {"jobhost_job_last_success_timestamp_seconds", "gauge"},
      {"jobhost_job_paused", "gauge"},
      {"jobhost_job_run_duration_seconds", "histogram"},
      {"jobhost_job_fire_lateness_seconds", "histogram"},
      {"jobhost_job_cpu_seconds_total", "counter"},
      {"jobhost_job_memory_peak_bytes", "gauge"},
      {"jobhost_job_memory_peak_max_bytes", "gauge"},
      {"jobhost_job_plugin_metric", "gauge"},
  };
  for (const auto& f : families) {
    INFO(f.name);
    CHECK(count_prefix(text, std::string("# HELP ") + f.name + " ") == 1);
    CHECK(has_line(text, std::string("# TYPE ") + f.name + " " + f.type));
  }
  const char* samples[] = {
      "jobhost_build_info{version=\"9.9.9\"} 1",
      "jobhost_up 1",
      "jobhost_start_timestamp_seconds 1800000000.000",
      "jobhost_reloads_total{kind=\"config\",result=\"applied\"} 1",
      "jobhost_reloads_total{kind=\"plugin\",result=\"rejected\"} 1",
      "jobhost_reloads_total{kind=\"plugin\",result=\"applied\"} 0",
      "jobhost_config_generation 2",
      "jobhost_config_last_reload_timestamp_seconds 1800000000.000",
      "jobhost_per_job_series 1",
      "jobhost_ledger_write_seconds_bucket{op=\"finish\",le=\"0.001\"} 0",
      "jobhost_ledger_write_seconds_bucket{op=\"finish\",le=\"0.0025\"} 1",
      "jobhost_ledger_write_seconds_count{op=\"claim\"} 0",
      "jobhost_runs_total{outcome=\"succeeded\"} 1",
      "jobhost_runs_total{outcome=\"failed\"} 2",
      "jobhost_runs_total{outcome=\"skipped\"} 1",
      "jobhost_runs_total{outcome=\"replaced\"} 0",
      "jobhost_skipped_fires_total{reason=\"concurrency\"} 1",
      "jobhost_skipped_fires_total{reason=\"other\"} 0",
      "jobhost_retries_total 1",
      "jobhost_run_duration_seconds_count 2",
      "jobhost_run_duration_seconds_sum 3.5",
      "jobhost_cpu_seconds_total 0.75",
      "jobhost_job_runs_total{job_name=\"alpha\",outcome=\"succeeded\"} 1",
      "jobhost_job_runs_total{job_name=\"alpha\",outcome=\"failed\"} 1",
      "jobhost_job_runs_total{job_name=\"beta\",outcome=\"failed\"} 1",
      "jobhost_job_runs_total{job_name=\"beta\",outcome=\"skipped\"} 1",
      "jobhost_job_skipped_fires_total{job_name=\"beta\",reason=\"concurrency\"} 1",
      "jobhost_job_retries_total{job_name=\"alpha\"} 1",
      "jobhost_job_consecutive_failures{job_name=\"alpha\"} 1",
      "jobhost_job_consecutive_failures{job_name=\"beta\"} 1",
      "jobhost_job_last_run_timestamp_seconds{job_name=\"alpha\"} 1800000000.001",
      "jobhost_job_last_success_timestamp_seconds{job_name=\"alpha\"} 1800000002.001",
      "jobhost_job_paused{job_name=\"alpha\"} 0",
      "jobhost_job_paused{job_name=\"beta\"} 1",
      "jobhost_job_run_duration_seconds_bucket{job_name=\"alpha\",le=\"1\"} 0",
      "jobhost_job_run_duration_seconds_bucket{job_name=\"alpha\",le=\"5\"} 2",
      "jobhost_job_cpu_seconds_total{job_name=\"alpha\"} 0.75",
      "jobhost_job_cpu_seconds_total{job_name=\"beta\"} 0",
      "jobhost_job_memory_peak_bytes{job_name=\"alpha\"} 1048576",
      "jobhost_job_memory_peak_max_bytes{job_name=\"alpha\"} 1048576",
      "jobhost_job_plugin_metric{job_name=\"alpha\",name=\"rows\"} 42",
      "jobhost_job_plugin_metric{job_name=\"alpha\",name=\"we\\\"ird\\n\"} -1.5",
  };
  for (const char* s : samples) {
    INFO(s);
    CHECK(has_line(text, s));
  }
  CHECK(text.find("name=\"nan\"") == std::string::npos);
  CHECK_FALSE(has_line(text, "jobhost_job_last_success_timestamp_seconds{job_name=\"beta\"}"));
  CHECK(text.find("jobhost_job_memory_peak_bytes{job_name=\"beta\"}") == std::string::npos);
  if (auto problems = promtool_check(text)) CHECK(*problems == "");
}

TEST_CASE("plugin metric series are bounded per job", "[observe][metrics]") {
  Metrics m(fixed_clock());
  auto run = start_of("many");
  auto end = end_of(run, Outcome::succeeded);
  for (std::size_t i = 0; i < Metrics::kMaxPluginMetricsPerJob + 10; ++i) {
    end.metrics["m" + std::to_string(1000 + i)] = static_cast<double>(i);
  }
  m.on_run_finished(run, end, {});
  const std::string text = m.render();
  CHECK(count_prefix(text, "jobhost_job_plugin_metric{") == Metrics::kMaxPluginMetricsPerJob);
  CHECK(has_line(text, "jobhost_plugin_metrics_dropped_total 10"));
}

TEST_CASE("per-job series: on up to 1000 jobs, off above, unless per_job_metrics says",
          "[observe][metrics]") {
  SECTION("without an engine: the jobs seen count") {
    for (std::size_t jobs : {std::size_t{1000}, std::size_t{1001}}) {
      Metrics m(fixed_clock());
      for (std::size_t i = 0; i < jobs; ++i) {
        m.on_skipped(skip_of("job" + std::to_string(i), "paused"));
      }
      const bool expected = jobs <= config::kPerJobMetricsAuto;
      INFO(jobs << " jobs");
      CHECK(m.per_job_enabled() == expected);
      const std::string text = m.render();
      CHECK((count_prefix(text, "jobhost_job_runs_total{") > 0) == expected);
      CHECK(has_line(text, "jobhost_runs_total{outcome=\"skipped\"} " + std::to_string(jobs)));
      CHECK(
          has_line(text, "jobhost_skipped_fires_total{reason=\"paused\"} " + std::to_string(jobs)));
    }
  }
  SECTION("with an engine: its config's jobs and [http] per_job_metrics") {
    std::string toml;
    for (int i = 0; i < 1001; ++i) {
      toml += "[jobs.j" + std::to_string(i) + "]\nplugin = \"noop\"\nschedule = \"@manual\"\n";
    }
    struct Case {
      std::optional<bool> setting;
      bool expected;
    };
    const Case cases[] = {{std::nullopt, false}, {true, true}, {false, false}};
    for (const auto& c : cases) {
      Rig rig(toml, Rig::Runs::fake);
      rig.config().http.per_job_metrics = c.setting;
      rig.start(at_utc(10, 0, 0));
      Metrics::Options o = fixed_clock();
      o.engine = &rig.engine();
      Metrics m(o);
      INFO("per_job_metrics " << (c.setting ? (*c.setting ? "true" : "false") : "unset"));
      CHECK(m.per_job_enabled() == c.expected);
      const std::string text = m.render();
      CHECK(count_prefix(text, "jobhost_job_runs_total{job_name=\"j1000\",") ==
            (c.expected ? kOutcomeNames.size() : 0));
      CHECK(has_line(text, "jobhost_jobs 1001"));
      CHECK(has_line(text, std::string("jobhost_per_job_series ") + (c.expected ? "1" : "0")));
    }
  }
  SECTION("per_job_metrics = false turns them off for a few jobs too") {
    Rig rig("[jobs.one]\nplugin = \"noop\"\nschedule = \"@manual\"\n", Rig::Runs::fake);
    rig.config().http.per_job_metrics = false;
    rig.start(at_utc(10, 0, 0));
    Metrics::Options o = fixed_clock();
    o.engine = &rig.engine();
    Metrics m(o);
    CHECK_FALSE(m.per_job_enabled());
    CHECK(count_prefix(m.render(), "jobhost_job_") == 0);
  }
}

// Per-job state costs nothing while per-job series are off; a reload that
// turns them on starts them from the ledger's gauges (the daemon's: the
// JobBook's figures) and from zero counts; one that turns them off drops it.
TEST_CASE("per-job state: kept only while per-job series are rendered", "[observe][metrics]") {
  std::string toml;
  for (int i = 0; i < 1001; ++i) {
    toml += "[jobs.j" + std::to_string(i) + "]\nplugin = \"noop\"\nschedule = \"@manual\"\n";
  }
  Rig rig(toml, Rig::Runs::fake);
  rig.start(at_utc(10, 0, 0));
  const TimePoint last_run = at_utc(9, 0, 0);
  int reads = 0;
  Metrics m(fixed_clock());
  m.set_job_gauges([&] {
    ++reads;
    return std::vector<Metrics::JobGauges>{{"j1", 3, last_run}, {"j2", 0, std::nullopt}};
  });
  m.set_engine(&rig.engine());
  rig.engine().add_observer(m);
  CHECK_FALSE(m.per_job_enabled());
  CHECK(reads == 0);

  auto run = start_of("j1");
  m.on_run_started(run, 20ms);
  m.on_run_finished(run, end_of(run, Outcome::failed), {});
  m.on_skipped(skip_of("j3", "paused"));
  m.set_paused("j4", true);
  CHECK(m.jobs_kept() == 0);
  std::string text = m.render();
  CHECK(count_prefix(text, "jobhost_job_") == 0);
  CHECK(has_line(text, "jobhost_runs_total{outcome=\"failed\"} 1"));
  CHECK(has_line(text, "jobhost_runs_total{outcome=\"skipped\"} 1"));
  CHECK(has_line(text, "jobhost_fire_lateness_seconds_count 1"));

  // A reload down to 1,000 jobs: on, from the gauges, counts from zero.
  config::Config fewer = rig.engine().config();
  fewer.jobs.pop_back();
  rig.engine().apply_config(fewer);
  CHECK(m.per_job_enabled());
  CHECK(reads == 1);
  CHECK(m.jobs_kept() == 2);
  text = m.render();
  CHECK(has_line(text, "jobhost_job_consecutive_failures{job_name=\"j1\"} 3"));
  CHECK(has_line(text, "jobhost_job_last_run_timestamp_seconds{job_name=\"j1\"} " +
                           std::to_string(last_run.time_since_epoch().count() / 1000) + ".000"));
  CHECK(has_line(text, "jobhost_job_runs_total{job_name=\"j1\",outcome=\"failed\"} 0"));
  CHECK(has_line(text, "jobhost_runs_total{outcome=\"failed\"} 1"));
  m.on_run_finished(run, end_of(run, Outcome::failed), {});
  text = m.render();
  CHECK(has_line(text, "jobhost_job_consecutive_failures{job_name=\"j1\"} 4"));
  CHECK(has_line(text, "jobhost_job_runs_total{job_name=\"j1\",outcome=\"failed\"} 1"));
  CHECK(has_line(text, "jobhost_runs_total{outcome=\"failed\"} 2"));

  // Back above 1,000: dropped.
  rig.engine().apply_config(rig.config());
  CHECK_FALSE(m.per_job_enabled());
  CHECK(m.jobs_kept() == 0);
  CHECK(count_prefix(m.render(), "jobhost_job_") == 0);
  CHECK(reads == 1);
}

TEST_CASE(
    "a scrape after engine runs of every outcome: promtool accepts it, counters equal "
    "the ledger's",
    "[observe][metrics][engine]") {
  // One job per outcome the fake executor reports, plus skips of several
  // reasons (forbid, replace, a missing plugin) and a retry.
  Rig rig(R"(
[jobs.ok]
plugin = "noop"
schedule = "*/10 * * * * *"

[jobs.flaky]
plugin = "noop"
schedule = "@manual"
retry = { max_attempts = 2, initial_delay = "1s" }

[jobs.forbid]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "forbid"

[jobs.swap]
plugin = "noop"
schedule = "* * * * * *"
concurrency = "replace"

[jobs.gone]
plugin = "missing"
schedule = "@manual"

[jobs.various]
plugin = "noop"
schedule = "@manual"
concurrency = "allow"
retry = { max_attempts = 1 }
)",
          Rig::Runs::fake, "max_concurrency = 64\n");
  auto& fake = rig.fake();
  fake.decorate = [](exec::RunReport& r) {
    r.retryable = r.outcome == Outcome::failed;
    r.cpu_seconds = 0.25;
    r.max_rss_bytes = 8 << 20;
    r.metrics = {{"rows", 7}, {"odd \"name\"\n\xff", 1}};
  };
  rig.start(at_utc(10, 0, 0, 500));  // nothing is due at once
  Metrics::Options o;
  o.version = "test";
  o.engine = &rig.engine();
  o.fork_server_restarts = [] { return uint64_t{0}; };
  Metrics metrics(o);
  rig.engine().add_observer(metrics);

  auto finish_all = [&](const std::string& job, Outcome outcome) {
    for (const auto& id : fake.running_ids()) {
      for (const auto& s : fake.started) {
        if (s.request.run_id == id && s.request.job == job) fake.finish(id, outcome);
      }
    }
    rig.settle();
  };
  // ok: 3 fires; forbid: one run, the other fires skipped; swap: each fire
  // replaces the run before it, which ends `replaced`.
  fake.obey_stop = false;
  rig.run_until(at_utc(10, 0, 30, 500));
  for (const auto& stopped : fake.stopped) {
    const auto running = fake.running_ids();
    if (stopped.reason == exec::StopReason::replace &&
        std::find(running.begin(), running.end(), stopped.run_id) != running.end()) {
      fake.finish(stopped.run_id, Outcome::replaced);
    }
  }
  rig.settle();
  fake.obey_stop = true;
  finish_all("swap", Outcome::succeeded);
  finish_all("ok", Outcome::succeeded);
  finish_all("forbid", Outcome::succeeded);
  REQUIRE(rig.engine().trigger("flaky"));
  rig.settle();
  finish_all("flaky", Outcome::failed);  // retried in 1 s
  rig.run_until(rig.now() + 2s);
  finish_all("flaky", Outcome::succeeded);
  REQUIRE(rig.engine().trigger("gone"));  // blocked: its plugin is missing
  rig.settle();
  for (Outcome outcome : {Outcome::failed, Outcome::timed_out, Outcome::stalled, Outcome::crashed,
                          Outcome::limit_exceeded}) {
    rig.set_now(rig.now() + 1ms);
    REQUIRE(rig.engine().trigger("various"));
    rig.settle();
    finish_all("various", outcome);
  }
  rig.set_now(rig.now() + 1ms);
  REQUIRE(rig.engine().trigger("various"));  // cancelled by an operator
  rig.settle();
  REQUIRE(rig.engine().cancel(fake.running_ids().at(0), "test"));
  rig.settle();
  rig.set_now(rig.now() + 1ms);
  REQUIRE(rig.engine().trigger("various"));  // in flight at shutdown: interrupted
  rig.settle();
  bool idle = false;
  rig.engine().shutdown([&] { idle = true; });
  rig.engine().stop_now();  // no waiting for kill_grace
  rig.settle();
  REQUIRE(idle);

  std::string text = metrics.render();
  INFO(text.substr(0, 4000));

  // Every outcome was seen.
  for (auto name : kOutcomeNames) {
    INFO(name);
    std::regex zero("jobhost_runs_total\\{outcome=\"" + std::string(name) + "\"\\} 0\\n");
    CHECK_FALSE(std::regex_search(text, zero));
  }
  // Per job and outcome, the counter equals the ledger's count.
  for (const char* job : {"ok", "flaky", "forbid", "swap", "gone", "various"}) {
    std::map<std::string, int> ledger_counts;
    for (const auto& run : rig.runs(job)) {
      if (run.outcome) ++ledger_counts[std::string(to_string(*run.outcome))];
    }
    for (auto outcome : kOutcomeNames) {
      const std::string line = "jobhost_job_runs_total{job_name=\"" + std::string(job) +
                               "\",outcome=\"" + std::string(outcome) + "\"} " +
                               std::to_string(ledger_counts[std::string(outcome)]);
      INFO(line);
      CHECK(has_line(text, line));
    }
  }
  CHECK(has_line(text, "jobhost_job_skipped_fires_total{job_name=\"gone\",reason=\"blocked\"} 1"));
  CHECK(has_line(text, "jobhost_job_retries_total{job_name=\"flaky\"} 1"));
  CHECK(has_line(text, "jobhost_job_plugin_metric{job_name=\"ok\",name=\"rows\"} 7"));
  CHECK(has_line(
      text,
      "jobhost_job_plugin_metric{job_name=\"ok\",name=\"odd \\\"name\\\"\\n\xef\xbf\xbd\"} 1"));
  CHECK(has_line(text, "jobhost_job_memory_peak_bytes{job_name=\"ok\"} 8388608"));
  if (auto problems = promtool_check(text)) {
    CHECK(*problems == "");
  } else {
    WARN("promtool is not installed (Debian package prometheus): format not checked by it");
  }
  CHECK(has_line(text, "jobhost_queue_capacity 10000"));
  CHECK(has_line(text, "jobhost_queue_depth 0"));
  CHECK(has_line(text, "jobhost_runs_in_flight 0"));
  CHECK(has_line(text, "jobhost_fork_server_restarts_total 0"));
  CHECK(has_line(text, "jobhost_plugins{state=\"accepted\"} 1"));
  CHECK(has_line(text, "jobhost_job_runs_in_flight{job_name=\"ok\"} 0"));
}
