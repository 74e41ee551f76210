// bench_lateness: how late isolated runs start when many are due at the same
// instant, against processes forked ahead and released at the instant.
//
// For each N (--jobs, default 20, 200 and 1,000), R repetitions (--reps),
// each made of two parts run one after the other (interleaved):
//  - daemon: the real `jobhost run` on a fresh temporary state directory,
//    N jobs of the bench plugin (bench/lateness/lateness_plugin.c) on
//    `*/P * * * * *` (every --period P seconds; no jitter), max_concurrency
//    = N, HTTP off, runs isolated as usual (cgroups, dynamic users when root,
//    the syscall filter). P is by default 1 s up to 250 jobs and one more
//    second per 250 jobs above (rounded up to a divisor of 60), so that an
//    instant's runs are done before the next one: the daemon starts about
//    1,000 runs a second today. Once the daemon is ready and --settle
//    seconds have passed, --instants instants are measured: each
//    run of a slot in them reports, at the entry of run(), CLOCK_REALTIME as a
//    metric, which the daemon records in the ledger. Lateness = that time -
//    the slot. After the window's runs are done the daemon gets SIGTERM and
//    the ledger is read with its own API: slots with no run are missed,
//    skipped runs are counted by reason;
//  - probe (the physical limit here): as many instants,
//    each with N processes forked ahead, each having loaded the same plugin
//    (dlopen), parked reading a pipe; the parent sleeps until the instant
//    (CLOCK_REALTIME, absolute) and closes the pipe, which wakes them all;
//    each calls the plugin's run(), which reads the clock as above. It runs
//    in bench_fork_probe, a small C program (bench/support/fork_probe.c).
// Prints p50/p99/max per repetition, the medians over repetitions and the
// ratios daemon / probe of the medians, with the targets. Figures
// only: never fails on time. --quick is a smoke mode (5 jobs, one short
// repetition) that fails only if the bench itself does not work: a run
// without its figure, a run that did not succeed, a probe process lost.
//
// usage: bench_lateness [--jobs 20,200,1000] [--reps 5] [--instants 10]
//                       [--period SECONDS] [--settle 2] [--host 'KEY = VALUE']...
//                       [--hold MS] [--quick]
// --hold MS (below 500): the daemon's runs stay MS ms after entering run()
// (the plugin's param hold_ms), so that no run ends, and no end is recorded,
// while the instant's other runs start; the probe's processes exit at once.
// (BENCH_KEEP=1 keeps the temporary directories, with each daemon's log)
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/daemon_bench.h"

using namespace jobhost;
using namespace jobhost::bench;
using namespace std::chrono_literals;

namespace {

// How the daemon isolated the runs (its log says), printed with the figures.
std::string g_isolation;

constexpr const char* kMetric = "entered_unix_us";

struct Options {
  std::vector<int> jobs{20, 200, 1000};
  int reps = 5;
  int instants = 10;
  int period = 0;  // 0: period_for(jobs)
  int settle = 2;
  int hold_ms = 0;  // --hold: the daemon's runs last this long after run() is entered
  bool quick = false;
  std::vector<std::string> host;  // --host: more lines for [host]
};

struct Figures {
  double p50 = 0, p99 = 0, max = 0;
};

Figures figures_of(const std::vector<double>& ms) {
  return {percentile(ms, 0.5), percentile(ms, 0.99), percentile(ms, 1.0)};
}

struct DaemonRep {
  std::vector<double> lateness_ms;            // run() entered - slot
  std::vector<double> started_ms;             // the ledger's started_at - slot (whole ms)
  int slots = 0;                              // instants in the window
  int64_t expected = 0;                       // N x slots
  int64_t ran = 0;                            // runs of the window, not skipped
  int64_t missed = 0;                         // (job, slot) pairs with no record at all
  int64_t no_figure = 0;                      // runs that recorded no lateness
  std::map<std::string, int> skipped;         // by reason
  std::map<std::string, int> other_outcomes;  // runs that did not succeed
  double ready_s = 0;                         // start to "ready"
  int exit_code = 0;
};

// The default period: 1 s up to 250 jobs, one more second per 250 jobs
// above, rounded up to a divisor of 60 (so that `*/P` is evenly spaced).
int period_for(int jobs) {
  const int at_least = (jobs + 249) / 250;
  for (const int p : {1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30}) {
    if (p >= at_least) return p;
  }
  return 60;
}

// Skip reasons name the run still going; counted without it.
std::string reason_kind(const std::string& message) {
  std::string kind;
  std::size_t at = 0;
  while (at < message.size()) {
    auto end = message.find(' ', at);
    if (end == std::string::npos) end = message.size();
    const std::string word = message.substr(at, end - at);
    const bool run_id = word.size() == 26 && std::all_of(word.begin(), word.end(), [](char c) {
                          return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
                        });
    kind += (kind.empty() ? "" : " ") + (run_id ? std::string("<run>") : word);
    at = end + 1;
  }
  return kind;
}

// N jobs of the bench plugin, every `period` seconds. Every run of an
// instant may be parked (max_parked = N), as every probe process is forked
// ahead, unless a --host line sets max_parked (a key given twice is a TOML
// error); --host lines are added to [host] as given.
std::string config_text(const Options& o, int jobs, int period) {
  bool max_parked_given = false;
  std::string extra;
  for (const auto& line : o.host) {
    max_parked_given |= line.find("max_parked") != std::string::npos;
    extra += line + "\n";
  }
  if (!max_parked_given) extra += fmt::format("max_parked = {}\n", jobs);
  std::string text = fmt::format(
      "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"var\"\nmax_concurrency = {}\n"
      // one uid per job when the host is root: the default range is too small
      // for many jobs
      "dynamic_users = \"100000-2000000\"\n{}\n[http]\nlisten = \"\"\n\n",
      jobs, extra);
  const std::string schedule = period == 1 ? "* * * * * *" : fmt::format("*/{} * * * * *", period);
  const std::string hold =
      o.hold_ms > 0 ? fmt::format("params = {{ hold_ms = {} }}\n", o.hold_ms) : std::string();
  for (int j = 0; j < jobs; ++j) {
    text += fmt::format("[jobs.late-{:04}]\nplugin = \"bench_lateness\"\nschedule = \"{}\"\n{}\n",
                        j, schedule, hold);
  }
  return text;
}

DaemonRep daemon_rep(const Options& o, int jobs, int period) {
  DaemonRep rep;
  TempDir dir("bench-lateness");
  install_plugin(BENCH_LATENESS_PLUGIN, dir.path() / "plugins");
  std::ofstream(dir.path() / "jobhost.toml") << config_text(o, jobs, period);

  const auto launched = WallClock::now();
  Daemon daemon(JOBHOST_BIN, dir.path() / "jobhost.toml", dir.path() / "daemon.log");
  // Startup grows with the job count; give it plenty.
  const auto ready = daemon.wait_ready(std::chrono::milliseconds(60'000 + jobs * 100));
  if (!ready) {
    throw std::runtime_error("the daemon did not get ready:\n" + daemon.log_text());
  }
  rep.ready_s = std::chrono::duration<double>(*ready - launched).count();

  const int64_t period_ms = period * 1000;
  const int64_t settle_end = unix_ms(*ready) + o.settle * 1000;
  const int64_t from = (settle_end + period_ms - 1) / period_ms * period_ms;
  rep.slots = o.instants;
  const int64_t to = from + rep.slots * period_ms;
  rep.expected = static_cast<int64_t>(jobs) * rep.slots;
  sleep_until(WallClock::time_point(std::chrono::milliseconds(to)));

  // Wait for the window's runs to be recorded: all of them, or no change for
  // 3 s (slots missed or skipped never come), at most 120 s.
  const fs::path db = dir.path() / "var" / "jobhost.db";
  auto last_change = std::chrono::steady_clock::now();
  const auto give_up = last_change + 120s;
  int64_t seen = -1;
  while (std::chrono::steady_clock::now() < give_up) {
    const int64_t done = finished_runs_between(db, from, to);
    if (done >= rep.expected) break;
    if (done != seen) {
      seen = done;
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > 3s) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  rep.exit_code = daemon.stop(120s);

  std::set<std::pair<std::string, int64_t>> recorded;
  for (const auto& run : read_runs(dir.path() / "var")) {
    const int64_t slot = run.scheduled_for.time_since_epoch().count();
    if (slot < from || slot >= to || run.attempt != 1) continue;
    recorded.emplace(run.job, slot);
    if (run.outcome == Outcome::skipped) {
      ++rep.skipped[reason_kind(run.message)];
      continue;
    }
    ++rep.ran;
    if (run.outcome != Outcome::succeeded) {
      ++rep.other_outcomes[run.outcome ? std::string(to_string(*run.outcome)) : "running"];
    }
    rep.started_ms.push_back(static_cast<double>(run.started_at.time_since_epoch().count() - slot));
    const auto figure = run.metrics.find(kMetric);
    if (figure == run.metrics.end()) {
      ++rep.no_figure;
      continue;
    }
    rep.lateness_ms.push_back((figure->second - static_cast<double>(slot) * 1000) / 1000);
  }
  rep.missed = rep.expected - static_cast<int64_t>(recorded.size());
  g_isolation = isolation_line(daemon.log_text());
  return rep;
}

struct ProbeRep {
  std::vector<double> lateness_ms;
  int lost = 0;  // processes that reported nothing or did not exit 0
};

// `instants` instants of `jobs` processes forked ahead, parked and released
// at once, in bench_fork_probe (a small process: see bench/support/fork_probe.c).
ProbeRep probe_rep(int jobs, int instants) {
  ProbeRep rep;
  std::istringstream lines(run_capture({BENCH_FORK_PROBE, "wake", std::to_string(jobs),
                                        std::to_string(instants), BENCH_LATENESS_PLUGIN}));
  for (std::string line; std::getline(lines, line);) {
    if (line == "lost") {
      ++rep.lost;
    } else {
      rep.lateness_ms.push_back(std::atof(line.c_str()) / 1000);
    }
  }
  return rep;
}

std::string by_reason(const std::map<std::string, int>& counts) {
  std::string text;
  for (const auto& [reason, count] : counts) {
    text += fmt::format("{}{} x \"{}\"", text.empty() ? "" : ", ", count, reason);
  }
  return text;
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> values;
  std::size_t at = 0;
  while (at <= text.size()) {
    const auto comma = std::min(text.find(',', at), text.size());
    const int v = std::atoi(text.substr(at, comma - at).c_str());
    if (v > 0) values.push_back(v);
    at = comma + 1;
  }
  return values;
}

[[noreturn]] void usage() {
  fmt::print(stderr,
             "usage: bench_lateness [--jobs 20,200,1000] [--reps R] [--instants K] [--period S] "
             "[--settle S] [--host 'KEY = VALUE']... [--hold MS] [--quick]\n");
  std::exit(2);
}

}  // namespace

int run_bench(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--quick") {
      o.quick = true;
      o.jobs = {5};
      o.reps = 1;
      o.instants = 2;
      o.settle = 1;
      continue;
    }
    if (i + 1 >= argc) usage();
    const std::string value = argv[++i];
    if (flag == "--jobs") {
      o.jobs = parse_list(value);
    } else if (flag == "--reps") {
      o.reps = std::atoi(value.c_str());
    } else if (flag == "--instants") {
      o.instants = std::atoi(value.c_str());
    } else if (flag == "--period") {
      o.period = std::atoi(value.c_str());
    } else if (flag == "--settle") {
      o.settle = std::atoi(value.c_str());
    } else if (flag == "--host") {
      o.host.push_back(value);
    } else if (flag == "--hold") {
      o.hold_ms = std::atoi(value.c_str());
    } else {
      usage();
    }
  }
  if (o.jobs.empty() || o.reps < 1 || o.instants < 1 || o.period < 0 ||
      (o.period > 0 && 60 % o.period != 0) || o.settle < 0 || o.hold_ms < 0 || o.hold_ms >= 500) {
    usage();
  }

  fmt::print(
      "bench_lateness: jobs {}, {} repetition(s) each of {} instants, settle {} s{}; load {}\n",
      fmt::join(o.jobs, ","), o.reps, o.instants, o.settle,
      o.host.empty() ? std::string() : fmt::format(", [host] {}", fmt::join(o.host, "; ")),
      load_average());
  fmt::print("lateness = run() entered (CLOCK_REALTIME) - slot, in ms; p50 / p99 / max\n");
  bool broken = false;
  for (const int jobs : o.jobs) {
    const int period = o.period > 0 ? o.period : period_for(jobs);
    fmt::print("\n== {} jobs on one instant, every {} s ==\n", jobs, period);
    fmt::print("{:>3}  {:>26}  {:>12}  {:>7}  {:>26}  {}\n", "rep", "daemon p50/p99/max",
               "ledger start", "ready", "probe p50/p99/max", "missed / skipped");
    std::vector<double> d50, d99, dmax, p50, p99, pmax, s50, all_daemon, all_probe;
    int64_t missed = 0, skipped = 0, expected = 0;
    std::map<std::string, int> reasons, others;
    for (int r = 1; r <= o.reps; ++r) {
      const DaemonRep d = daemon_rep(o, jobs, period);
      const ProbeRep p = probe_rep(jobs, d.slots);
      const Figures df = figures_of(d.lateness_ms), pf = figures_of(p.lateness_ms);
      d50.push_back(df.p50);
      d99.push_back(df.p99);
      dmax.push_back(df.max);
      p50.push_back(pf.p50);
      p99.push_back(pf.p99);
      pmax.push_back(pf.max);
      s50.push_back(median(d.started_ms));
      all_daemon.insert(all_daemon.end(), d.lateness_ms.begin(), d.lateness_ms.end());
      all_probe.insert(all_probe.end(), p.lateness_ms.begin(), p.lateness_ms.end());
      int64_t rep_skipped = 0;
      for (const auto& [reason, count] : d.skipped) {
        reasons[reason] += count;
        rep_skipped += count;
      }
      for (const auto& [outcome, count] : d.other_outcomes) others[outcome] += count;
      missed += d.missed;
      skipped += rep_skipped;
      expected += d.expected;
      fmt::print(
          "{:>3}  {:8.2f} {:8.2f} {:8.2f}  {:>9.0f} ms  {:5.2f}s  {:8.2f} {:8.2f} {:8.2f}  {} / "
          "{}\n",
          r, df.p50, df.p99, df.max, median(d.started_ms), d.ready_s, pf.p50, pf.p99, pf.max,
          d.missed, rep_skipped);
      if (d.no_figure > 0 || p.lost > 0 || d.exit_code != 0) {
        fmt::print("     {} run(s) without a figure, {} probe process(es) lost, daemon exit {}\n",
                   d.no_figure, p.lost, d.exit_code);
      }
      if (o.quick &&
          (d.ran == 0 || d.no_figure > 0 || !d.other_outcomes.empty() || p.lost > 0 ||
           p.lateness_ms.size() != static_cast<std::size_t>(jobs * d.slots) || d.exit_code != 0)) {
        broken = true;
      }
    }
    const double md50 = median(d50), md99 = median(d99), mp50 = median(p50), mp99 = median(p99);
    fmt::print(
        "medians of {} rep(s): daemon p50 {:.2f} p99 {:.2f} max {:.2f} ms; probe p50 {:.2f} "
        "p99 {:.2f} max {:.2f} ms\n",
        o.reps, md50, md99, median(dmax), mp50, mp99, median(pmax));
    const Figures pooled_d = figures_of(all_daemon), pooled_p = figures_of(all_probe);
    fmt::print(
        "all runs pooled:      daemon p50 {:.2f} p99 {:.2f} max {:.2f} ms ({} runs); probe "
        "p50 {:.2f} p99 {:.2f} max {:.2f} ms ({} wakes)\n",
        pooled_d.p50, pooled_d.p99, pooled_d.max, all_daemon.size(), pooled_p.p50, pooled_p.p99,
        pooled_p.max, all_probe.size());
    fmt::print("slots: {} expected, {} missed, {} skipped{}{}\n", expected, missed, skipped,
               reasons.empty() ? "" : ": ", by_reason(reasons));
    if (!others.empty()) fmt::print("runs that did not succeed: {}\n", by_reason(others));
    const double r50 = mp50 > 0 ? md50 / mp50 : 0, r99 = mp99 > 0 ? md99 / mp99 : 0;
    std::string target;
    if (jobs == 200) {
      target = fmt::format(" (targets: p50 <= 1.5 {}, p99 <= 1.2 {})",
                           r50 <= 1.5 ? "met" : "not met", r99 <= 1.2 ? "met" : "not met");
    } else if (jobs == 20) {
      target = fmt::format(" (target: p99 <= 2 {})", r99 <= 2 ? "met" : "not met");
    }
    fmt::print("ratio daemon / probe (medians): p50 {:.2f}, p99 {:.2f}{}\n", r50, r99, target);
  }
  fmt::print("\ndaemon isolation: {}\n", g_isolation);
  fmt::print("load at the end {}\n", load_average());
  if (o.quick) {
    fmt::print("quick: {}\n", broken ? "BROKEN (see above)" : "ok");
    return broken ? 1 : 0;
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run_bench(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
}
