// /metrics of a real daemon: runs of several outcomes, then one scrape that
// promtool accepts and whose per-job run counters equal the ledger's counts.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "support/harness.h"
#include "support/http_client.h"
#include "support/temp_dir.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

// The port the daemon logged ("http: listening on 127.0.0.1:PORT"), or 0.
int listening_port(const TestHost& host) {
  std::smatch m;
  const std::string log = host.log();
  static const std::regex kListening(R"(http: listening on 127\.0\.0\.1:(\d+))");
  if (!std::regex_search(log, m, kListening)) return 0;
  return std::stoi(m[1]);
}

// The value of the sample `series` (name{labels}) in a scrape, or nullopt.
std::optional<double> sample(const std::string& scrape, const std::string& series) {
  std::istringstream in(scrape);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > series.size() && line.starts_with(series) && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE(
    "a daemon's /metrics after runs of several outcomes: promtool accepts it, run "
    "counters equal the ledger's",
    "[observe][metrics][integration]") {
  TestHost host({"resources.so", "sleeper.so", "segv.so"}, R"(
[http]
listen = "127.0.0.1:0"

[jobs.burn]
plugin = "resources"
schedule = "@manual"
params = { own_cpu_ms = 200, touch_mib = 16 }

[jobs.failing]
plugin = "resources"
schedule = "@manual"
retry = { max_attempts = 2, initial_delay = "1s" }
params = { own_cpu_ms = 0, outcome = "retry" }

[jobs.crashy]
plugin = "segv"
schedule = "@manual"
retry = { max_attempts = 1 }

[jobs.slow]
plugin = "sleeper"
schedule = "@manual"
timeout = "1s"
kill_grace = "1s"
retry = { max_attempts = 1 }
params = { seconds = 30 }

[jobs.overlap]
plugin = "sleeper"
schedule = "@manual"
concurrency = "forbid"
params = { seconds = 2 }
)");
  const int port = listening_port(host);
  REQUIRE(port > 0);
  const fs::path& config = host.config();

  for (const char* job : {"burn", "failing", "crashy", "slow", "overlap", "overlap"}) {
    REQUIRE(trigger(config, job).exit_code == 0);
  }
  REQUIRE(wait_outcome(config, "burn", "succeeded"));
  REQUIRE(wait_outcome(config, "crashy", "crashed"));
  REQUIRE(wait_outcome(config, "slow", "timed_out"));
  REQUIRE(wait_outcome(config, "overlap", "skipped"));
  REQUIRE(wait_outcome(config, "overlap", "succeeded"));
  // The failing job's retry runs a second later and fails too.
  REQUIRE(
      wait_for([&] { return finished(history(config, "failing"), "failing").size() == 2; }, 20s));

  // Nothing in flight or pending: the counters can be compared.
  std::string scrape;
  REQUIRE(wait_for(
      [&] {
        auto r = http_get(port, "/metrics");
        scrape = r.body;
        return r.status == 200 && sample(scrape, "jobhost_runs_in_flight") == 0.0 &&
               sample(scrape, "jobhost_pending_retries") == 0.0;
      },
      20s));
  auto r = http_get(port, "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  scrape = r.body;
  INFO(scrape.substr(0, 3000));

  auto ledger = open_ledger(config);
  for (const char* job : {"burn", "failing", "crashy", "slow", "overlap"}) {
    auto runs = ledger->history(job, 1000);
    REQUIRE(runs);
    std::map<std::string, int> counts;
    for (const auto& run : *runs) {
      if (run.outcome) ++counts[std::string(to_string(*run.outcome))];
    }
    for (auto outcome : kOutcomeNames) {
      const std::string series = "jobhost_job_runs_total{job_name=\"" + std::string(job) +
                                 "\",outcome=\"" + std::string(outcome) + "\"}";
      INFO(series);
      CHECK(sample(scrape, series) == static_cast<double>(counts[std::string(outcome)]));
    }
  }
  CHECK(sample(scrape, "jobhost_job_runs_total{job_name=\"failing\",outcome=\"failed\"}") == 2);
  CHECK(sample(scrape, "jobhost_job_retries_total{job_name=\"failing\"}") == 1);
  CHECK(sample(scrape, "jobhost_job_consecutive_failures{job_name=\"failing\"}") == 2);
  CHECK(sample(scrape, "jobhost_job_skipped_fires_total{job_name=\"overlap\",reason=\"concurrency\"}") ==
        1);
  CHECK(sample(scrape, "jobhost_job_cpu_seconds_total{job_name=\"burn\"}") >= 0.19);
  CHECK(sample(scrape, "jobhost_job_memory_peak_bytes{job_name=\"burn\"}") >= 16 << 20);
  CHECK(sample(scrape, "jobhost_job_plugin_metric{job_name=\"burn\",name=\"cpu_ms\"}") == 200);
  CHECK(sample(scrape, "jobhost_job_fire_lateness_seconds_count{job_name=\"burn\"}") == 1);
  CHECK(sample(scrape, "jobhost_ledger_write_seconds_count{op=\"claim\"}") == 6);
  CHECK(sample(scrape, "jobhost_queue_capacity") == 10000);
  CHECK(sample(scrape, "jobhost_fork_server_restarts_total") == 0);

  // The ledger has the same resources (history --json shape).
  auto burn = ledger->history("burn", 1).value().front();
  REQUIRE(burn.cpu_seconds);
  CHECK(*burn.cpu_seconds >= 0.19);
  CHECK(burn.metrics.at("cpu_ms") == 200);
  CHECK_FALSE(burn.metrics.contains("nan"));

  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    TempDir dir;
    const auto file = dir.path() / "scrape.prom";
    std::ofstream(file) << scrape;
    const std::string cmd = "promtool check metrics < '" + file.string() + "' >'" +
                            (dir.path() / "out").string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream out(dir.path() / "out");
    std::string problems((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
    INFO(problems);
    CHECK(rc == 0);
  } else {
    WARN("promtool is not installed (Debian package prometheus): format not checked by it");
  }
  host.stop();
}
