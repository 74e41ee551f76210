// bench_metrics: one /metrics scrape (observe::Metrics::render) of 1,000 jobs
// with realistic series (every outcome counted, skips, 200 durations and
// lateness observations per job, CPU, memory, 3 plugin metrics each),
// interleaved with a scrape of 10,000 jobs (per-job series off: aggregates
// only). Prints the median and p90 ms per scrape and the scrape's size.
// Prints figures only: it never fails on time. Without an engine: the two
// engine-read series per job (runs in flight, next fire) are not rendered.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "observe/metrics.h"

using namespace jobhost;
using namespace jobhost::observe;

namespace {

constexpr int kRepetitions = 41;

double percentile(std::vector<double> v, double p) {
  auto at = v.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), at, v.end());
  return *at;
}

// A Metrics that has seen `runs_per_job` runs of each of `jobs` jobs.
void fill(Metrics& m, int jobs, int runs_per_job) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> duration_s(1.0, 1.5);
  std::exponential_distribution<double> lateness_s(200.0);  // mean 5 ms
  for (int j = 0; j < jobs; ++j) {
    const std::string name = fmt::format("job-{:05}", j);
    for (int i = 0; i < runs_per_job; ++i) {
      ledger::RunStart run;
      run.run_id = fmt::format("{}-{}", name, i);
      run.job = name;
      run.started_at = TimePoint(Duration(1'800'000'000'000 + i * 60'000));
      m.on_run_started(run, std::chrono::duration_cast<Duration>(
                                std::chrono::duration<double>(lateness_s(rng))));
      ledger::RunEnd end;
      end.run_id = run.run_id;
      end.outcome = static_cast<Outcome>(i % kOutcomeNames.size());
      if (end.outcome == Outcome::skipped) {
        ledger::SkipRecord skip;
        skip.job = name;
        skip.reason = "run x is still running (concurrency = forbid)";
        m.on_skipped(skip);
        continue;
      }
      end.duration =
          std::chrono::duration_cast<Duration>(std::chrono::duration<double>(duration_s(rng)));
      end.finished_at = run.started_at + *end.duration;
      end.cpu_seconds = 0.1;
      end.max_rss_bytes = 50u << 20;
      end.metrics = {{"rows", i}, {"bytes_written", i * 1e6}, {"lag_seconds", 0.5}};
      if (end.outcome == Outcome::failed) end.retry_at = end.finished_at;
      m.on_run_finished(run, end, {});
    }
  }
}

}  // namespace

int main() {
  Metrics thousand({.version = "bench",
                    .engine = nullptr,
                    .fork_server_restarts = {},
                    .cluster = {},
                    .clock = {}});
  fill(thousand, 1000, 200);
  Metrics ten_thousand({.version = "bench",
                        .engine = nullptr,
                        .fork_server_restarts = {},
                        .cluster = {},
                        .clock = {}});
  fill(ten_thousand, 10000, 20);

  std::vector<double> a, b;
  std::size_t bytes_a = 0, bytes_b = 0;
  for (int r = 0; r < kRepetitions; ++r) {
    for (int which = 0; which < 2; ++which) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::string text = (which == 0 ? thousand : ten_thousand).render();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      (which == 0 ? a : b).push_back(ms);
      (which == 0 ? bytes_a : bytes_b) = text.size();
    }
  }
  const auto lines = [](const Metrics& m) {
    const std::string text = m.render();
    return std::count(text.begin(), text.end(), '\n');
  };
  fmt::print(
      "scrape of 1,000 jobs (per-job series): median {:.2f} ms, p90 {:.2f} ms, {} KiB, {} "
      "lines\n",
      percentile(a, 0.5), percentile(a, 0.9), bytes_a / 1024, lines(thousand));
  fmt::print(
      "scrape of 10,000 jobs (aggregates only): median {:.2f} ms, p90 {:.2f} ms, {} KiB, "
      "{} lines\n",
      percentile(b, 0.5), percentile(b, 0.9), bytes_b / 1024, lines(ten_thousand));
  fmt::print("({} interleaved repetitions each; target: under 20 ms for 1,000 jobs)\n",
             kRepetitions);
}
