// bench_burst: how fast the daemon works through many runs due at once, 2
// at a time, against a bare fork loop with 2 in flight.
//
// R repetitions (--reps), each made of parts run one after the other
// (interleaved):
//  - daemon: the real `jobhost run` on a fresh temporary state directory with
//    --runs jobs (default 2,000) of a no-op plugin (bench/burst/noop_plugin.c),
//    all with `at` = the same instant a few seconds ahead, so 2,000 runs are
//    due at once; max_concurrency = --concurrency (default 2), HTTP off, runs
//    isolated as usual (cgroups, dynamic users when root, the syscall
//    filter). Once all are recorded the daemon gets SIGTERM and the ledger is
//    read with its own API: rate = runs / (last finished_at - first
//    started_at), as the ledger records them (milliseconds). If the daemon
//    got ready less than 300 ms before the instant the repetition is done
//    again with a longer lead;
//  - bare (the physical limit here): fork, the child _exits, waitpid; as many
//    processes, the same number in flight;
//  - bare + dlopen: the same, the child first loading the plugin and calling
//    its run (what a run needs at least besides the fork).
//  Both run in bench_fork_probe, a small C program (bench/support/fork_probe.c):
//  forking from this large C++ process would be slower.
// Prints runs/s per repetition, the medians and the ratio daemon / bare
// (target >= 0.5). Figures only: never fails on time. --quick is a smoke mode
// (50 runs, one repetition) that fails only if the bench itself does not
// work: a run missing or not succeeded, a probe process that failed.
//
// usage: bench_burst [--runs 2000] [--reps 5] [--concurrency 2]
//                    [--host 'KEY = VALUE']... [--quick]
// (BENCH_KEEP=1 keeps the temporary directories, with each daemon's log)
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/daemon_bench.h"

using namespace jobhost;
using namespace jobhost::bench;
using namespace std::chrono_literals;

namespace {

// How the daemon isolated the runs (its log says), printed with the figures.
std::string g_isolation;

struct Options {
  int runs = 2000;
  int reps = 5;
  int concurrency = 2;
  bool quick = false;
  std::vector<std::string> host;  // --host: more lines for [host]
};

struct DaemonRep {
  double rate = 0;      // runs / (last finish - first start)
  double from_due = 0;  // runs / (last finish - the instant)
  double ready_s = 0;
  int64_t succeeded = 0;
  std::map<std::string, int> others;  // outcomes other than succeeded
  int64_t missing = 0;                // jobs with no run at all
  int exit_code = 0;
};

std::string config_text(const Options& o, int64_t due_ms) {
  const time_t seconds = static_cast<time_t>(due_ms / 1000);
  tm utc{};
  ::gmtime_r(&seconds, &utc);
  char due[32];
  std::strftime(due, sizeof due, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::string extra;
  for (const auto& line : o.host) extra += line + "\n";
  std::string text = fmt::format(
      "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"var\"\nmax_concurrency = {}\n"
      // one uid per job when the host is root: the default range is too small
      "dynamic_users = \"100000-2000000\"\n{}\n[http]\nlisten = \"\"\n\n",
      o.concurrency, extra);
  for (int j = 0; j < o.runs; ++j) {
    text += fmt::format("[jobs.burst-{:05}]\nplugin = \"bench_noop\"\nat = \"{}\"\n\n", j, due);
  }
  return text;
}

// One burst through the daemon, the instant `lead` after the start; nullopt
// when the daemon was not ready 300 ms before it.
std::optional<DaemonRep> daemon_rep(const Options& o, std::chrono::milliseconds lead) {
  DaemonRep rep;
  TempDir dir("bench-burst");
  install_plugin(BENCH_NOOP_PLUGIN, dir.path() / "plugins");
  const auto launched = WallClock::now();
  const int64_t due = (unix_ms(launched + lead) + 999) / 1000 * 1000;
  std::ofstream(dir.path() / "jobhost.toml") << config_text(o, due);

  Daemon daemon(JOBHOST_BIN, dir.path() / "jobhost.toml", dir.path() / "daemon.log");
  const auto ready = daemon.wait_ready(std::chrono::milliseconds(60'000 + o.runs * 100));
  if (!ready) {
    throw std::runtime_error("the daemon did not get ready:\n" + daemon.log_text());
  }
  rep.ready_s = std::chrono::duration<double>(*ready - launched).count();
  if (unix_ms(*ready) > due - 300) {
    daemon.stop(120s);
    return std::nullopt;
  }

  // Wait for every run to be recorded, or no change for 5 s, at most 300 s.
  sleep_until(WallClock::time_point(std::chrono::milliseconds(due)));
  const fs::path db = dir.path() / "var" / "jobhost.db";
  auto last_change = std::chrono::steady_clock::now();
  const auto give_up = last_change + 300s;
  int64_t seen = -1;
  while (std::chrono::steady_clock::now() < give_up) {
    const int64_t done = finished_runs_between(db, due, due + 1);
    if (done >= o.runs) break;
    if (done != seen) {
      seen = done;
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > 5s) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  rep.exit_code = daemon.stop(120s);

  int64_t first_start = std::numeric_limits<int64_t>::max(), last_finish = 0, recorded = 0;
  for (const auto& run : read_runs(dir.path() / "var")) {
    if (run.scheduled_for.time_since_epoch().count() != due || run.attempt != 1) continue;
    ++recorded;
    if (run.outcome == Outcome::succeeded) {
      ++rep.succeeded;
    } else {
      ++rep.others[run.outcome ? std::string(to_string(*run.outcome)) + ": " + run.message
                               : "running"];
    }
    if (run.outcome == Outcome::skipped) continue;
    first_start = std::min<int64_t>(first_start, run.started_at.time_since_epoch().count());
    if (run.finished_at) {
      last_finish = std::max<int64_t>(last_finish, run.finished_at->time_since_epoch().count());
    }
  }
  rep.missing = o.runs - recorded;
  if (last_finish > first_start) {
    rep.rate =
        static_cast<double>(rep.succeeded) * 1000 / static_cast<double>(last_finish - first_start);
  }
  if (last_finish > due) {
    rep.from_due =
        static_cast<double>(rep.succeeded) * 1000 / static_cast<double>(last_finish - due);
  }
  g_isolation = isolation_line(daemon.log_text());
  return rep;
}

// `runs` processes, `in_flight` at a time: fork, the child _exits (after
// loading the plugin and calling its run when `load_plugin`), waitpid; in
// bench_fork_probe, a small process (bench/support/fork_probe.c). Runs per
// second; `failed` counts children that did not exit 0.
double bare_loop(int runs, int in_flight, bool load_plugin, int& failed) {
  std::vector<std::string> argv{BENCH_FORK_PROBE, "burst", std::to_string(runs),
                                std::to_string(in_flight)};
  if (load_plugin) argv.emplace_back(BENCH_NOOP_PLUGIN);
  std::istringstream figures(run_capture(argv));
  double rate = 0;
  int lost = 0;
  figures >> rate >> lost;
  failed += lost;
  return rate;
}

std::string by_reason(const std::map<std::string, int>& counts) {
  std::string text;
  for (const auto& [reason, count] : counts) {
    text += fmt::format("{}{} x \"{}\"", text.empty() ? "" : ", ", count, reason);
  }
  return text;
}

[[noreturn]] void usage() {
  fmt::print(stderr,
             "usage: bench_burst [--runs N] [--reps R] [--concurrency C] [--host 'KEY = VALUE']... "
             "[--quick]\n");
  std::exit(2);
}

}  // namespace

int run_bench(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--quick") {
      o.quick = true;
      o.runs = 50;
      o.reps = 1;
      continue;
    }
    if (i + 1 >= argc) usage();
    const std::string text = argv[++i];
    const int value = std::atoi(text.c_str());
    if (flag == "--runs") {
      o.runs = value;
    } else if (flag == "--reps") {
      o.reps = value;
    } else if (flag == "--host") {
      o.host.push_back(text);
    } else if (flag == "--concurrency") {
      o.concurrency = value;
    } else {
      usage();
    }
  }
  if (o.runs < 1 || o.reps < 1 || o.concurrency < 1) usage();

  fmt::print("bench_burst: {} no-op runs due at once, {} at a time, {} repetition(s); load {}\n",
             o.runs, o.concurrency, o.reps, load_average());
  fmt::print("{:>3}  {:>12}  {:>14}  {:>7}  {:>12}  {:>14}  {}\n", "rep", "daemon runs/s",
             "(from the due)", "ready", "bare fork", "fork + dlopen", "not succeeded");
  int warm_failed = 0;
  bare_loop(std::min(o.runs, 200), o.concurrency, true, warm_failed);  // page cache, loader
  std::vector<double> daemon, from_due, bare, dlopen_loop;
  bool broken = warm_failed > 0;
  auto lead = std::chrono::milliseconds(3000 + o.runs);
  for (int r = 1; r <= o.reps; ++r) {
    std::optional<DaemonRep> d;
    for (int attempt = 0; attempt < 5 && !d; ++attempt) {
      d = daemon_rep(o, lead);
      if (!d) {
        lead *= 2;
        fmt::print("     the daemon was not ready 300 ms before the instant: again, {} ms ahead\n",
                   lead.count());
      }
    }
    if (!d) {
      fmt::print(stderr, "the daemon never got ready in time\n");
      return 1;
    }
    // Next time: twice the startup seen, and at least a second to spare.
    lead =
        std::max(lead, std::chrono::milliseconds(static_cast<int64_t>(d->ready_s * 2000) + 1000));
    int failed = 0;
    const double b = bare_loop(o.runs, o.concurrency, false, failed);
    const double l = bare_loop(o.runs, o.concurrency, true, failed);
    daemon.push_back(d->rate);
    from_due.push_back(d->from_due);
    bare.push_back(b);
    dlopen_loop.push_back(l);
    int64_t not_succeeded = d->missing;
    for (const auto& [what, count] : d->others) not_succeeded += count;
    fmt::print("{:>3}  {:>12.0f}  {:>14.0f}  {:6.2f}s  {:>12.0f}  {:>14.0f}  {}\n", r, d->rate,
               d->from_due, d->ready_s, b, l, not_succeeded);
    if (!d->others.empty()) fmt::print("     {}\n", by_reason(d->others));
    if (d->missing > 0 || d->exit_code != 0 || failed > 0) {
      fmt::print("     {} job(s) without a run, daemon exit {}, {} probe process(es) failed\n",
                 d->missing, d->exit_code, failed);
    }
    if (d->succeeded != o.runs || d->exit_code != 0 || failed > 0) broken = true;
  }
  const double md = median(daemon), mb = median(bare), ml = median(dlopen_loop);
  fmt::print(
      "medians of {} rep(s), runs/s: daemon {:.0f} (from the instant due {:.0f}), bare fork "
      "{:.0f}, fork + dlopen {:.0f}\n",
      o.reps, md, median(from_due), mb, ml);
  fmt::print("ratio daemon / bare fork: {:.2f} (target >= 0.5); daemon / fork + dlopen: {:.2f}\n",
             mb > 0 ? md / mb : 0, ml > 0 ? md / ml : 0);
  fmt::print("daemon isolation: {}\n", g_isolation);
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
