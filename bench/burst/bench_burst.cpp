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
// --cluster (docs/cluster.md): each repetition also runs the burst on a
// PostgreSQL ledger (a throwaway server on loopback, a fresh database each
// time) with one daemon, then with three daemons sharing it (each host with
// max_concurrency C: 3 x C in flight together), the SQLite daemon first.
//
// usage: bench_burst [--runs 2000] [--reps 5] [--concurrency 2]
//                    [--host 'KEY = VALUE']... [--cluster] [--quick]
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

#include "ledger/pg_store.h"
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
  bool cluster = false;           // --cluster: also PostgreSQL with 1 and 3 hosts
  std::vector<std::string> host;  // --host: more lines for [host]
};

// Where a repetition's daemons keep their ledger: SQLite (one daemon), or a
// PostgreSQL database shared by `hosts` daemons.
struct Setup {
  std::string label;
  bool postgresql = false;
  int hosts = 1;
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

std::string config_text(const Options& o, int64_t due_ms, const std::string& store = "",
                        int host = 0) {
  const time_t seconds = static_cast<time_t>(due_ms / 1000);
  tm utc{};
  ::gmtime_r(&seconds, &utc);
  char due[32];
  std::strftime(due, sizeof due, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::string extra;
  for (const auto& line : o.host) extra += line + "\n";
  if (!store.empty()) extra += fmt::format("id = \"h{}\"\n\n[store]\nurl = \"{}\"\n", host, store);
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
std::optional<DaemonRep> daemon_rep(const Options& o, std::chrono::milliseconds lead,
                                    const Setup& setup, PgServer* server) {
  DaemonRep rep;
  const std::string store = setup.postgresql ? server->fresh_database() : "";
  std::vector<std::unique_ptr<TempDir>> dirs;
  std::vector<std::unique_ptr<Daemon>> daemons;
  const auto launched = WallClock::now();
  const int64_t due = (unix_ms(launched + lead) + 999) / 1000 * 1000;
  for (int h = 0; h < setup.hosts; ++h) {
    dirs.push_back(std::make_unique<TempDir>("bench-burst"));
    const fs::path& dir = dirs.back()->path();
    install_plugin(BENCH_NOOP_PLUGIN, dir / "plugins");
    std::ofstream(dir / "jobhost.toml") << config_text(o, due, store, h);
    daemons.push_back(
        std::make_unique<Daemon>(JOBHOST_BIN, dir / "jobhost.toml", dir / "daemon.log"));
  }
  const TempDir& first = *dirs.front();
  Daemon& daemon = *daemons.front();
  WallClock::time_point last_ready{};
  for (auto& d : daemons) {
    const auto ready = d->wait_ready(std::chrono::milliseconds(60'000 + o.runs * 100));
    if (!ready) throw std::runtime_error("a daemon did not get ready:\n" + d->log_text());
    last_ready = std::max(last_ready, *ready);
  }
  rep.ready_s = std::chrono::duration<double>(last_ready - launched).count();
  if (unix_ms(last_ready) > due - 300) {
    for (auto& d : daemons) d->stop(120s);
    return std::nullopt;
  }
  const fs::path& dir_path = first.path();

  // Wait for every run to be recorded, or no change for 5 s, at most 300 s.
  sleep_until(WallClock::time_point(std::chrono::milliseconds(due)));
  const fs::path db = dir_path / "var" / "jobhost.db";
  auto last_change = std::chrono::steady_clock::now();
  const auto give_up = last_change + 300s;
  int64_t seen = -1;
  while (std::chrono::steady_clock::now() < give_up) {
    const int64_t done = setup.postgresql ? pg_finished_runs_between(store, due, due + 1)
                                          : finished_runs_between(db, due, due + 1);
    if (done >= o.runs) break;
    if (done != seen) {
      seen = done;
      last_change = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_change > 5s) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  for (auto& d : daemons) rep.exit_code = std::max(rep.exit_code, d->stop(120s));

  int64_t first_start = std::numeric_limits<int64_t>::max(), last_finish = 0, recorded = 0;
  std::vector<ledger::RunRecord> runs;
  if (setup.postgresql) {
    auto opened = ledger::open_pg_store(store, ledger::Access::read_only);
    if (!opened) throw std::runtime_error(opened.error().message);
    auto all = (*opened)->history(std::nullopt, o.runs * 2 + 100);
    if (!all) throw std::runtime_error(all.error().message);
    runs = std::move(*all);
  } else {
    runs = read_runs(dir_path / "var");
  }
  for (const auto& run : runs) {
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
             "[--cluster] [--quick]\n");
  std::exit(2);
}

}  // namespace

int run_bench(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--cluster") {
      o.cluster = true;
      continue;
    }
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
  std::vector<Setup> setups{{"sqlite", false, 1}};
  std::unique_ptr<PgServer> server;
  if (o.cluster) {
    server = std::make_unique<PgServer>();
    setups.push_back({"pg, 1 host", true, 1});
    setups.push_back({"pg, 3 hosts", true, 3});
  }
  int warm_failed = 0;
  bare_loop(std::min(o.runs, 200), o.concurrency, true, warm_failed);  // page cache, loader
  std::vector<std::vector<double>> rate(setups.size()), from_due(setups.size());
  std::vector<double> bare, dlopen_loop;
  bool broken = warm_failed > 0;
  std::vector<std::chrono::milliseconds> lead(setups.size(),
                                              std::chrono::milliseconds(3000 + o.runs));
  for (int r = 1; r <= o.reps; ++r) {
    for (std::size_t i = 0; i < setups.size(); ++i) {
      std::optional<DaemonRep> d;
      for (int attempt = 0; attempt < 5 && !d; ++attempt) {
        d = daemon_rep(o, lead[i], setups[i], server.get());
        if (!d) {
          lead[i] *= 2;
          fmt::print("     {}: not ready 300 ms before the instant: again, {} ms ahead\n",
                     setups[i].label, lead[i].count());
        }
      }
      if (!d) {
        fmt::print(stderr, "the daemon never got ready in time\n");
        return 1;
      }
      // Next time: twice the startup seen, and at least a second to spare.
      lead[i] = std::max(lead[i],
                         std::chrono::milliseconds(static_cast<int64_t>(d->ready_s * 2000) + 1000));
      rate[i].push_back(d->rate);
      from_due[i].push_back(d->from_due);
      int64_t not_succeeded = d->missing;
      for (const auto& [what, count] : d->others) not_succeeded += count;
      fmt::print(
          "{:>3}  {:<12} {:>7.0f} runs/s ({:.0f} from the instant due), ready {:.2f}s, {} "
          "not succeeded\n",
          r, setups[i].label, d->rate, d->from_due, d->ready_s, not_succeeded);
      if (!d->others.empty()) fmt::print("     {}\n", by_reason(d->others));
      if (d->missing > 0 || d->exit_code != 0) {
        fmt::print("     {} job(s) without a run, daemon exit {}\n", d->missing, d->exit_code);
      }
      if (d->succeeded != o.runs || d->exit_code != 0) broken = true;
    }
    int failed = 0;
    bare.push_back(bare_loop(o.runs, o.concurrency, false, failed));
    dlopen_loop.push_back(bare_loop(o.runs, o.concurrency, true, failed));
    fmt::print("{:>3}  {:<12} {:>7.0f} runs/s, fork + dlopen {:.0f} runs/s\n", r, "bare fork",
               bare.back(), dlopen_loop.back());
    if (failed > 0) {
      fmt::print("     {} probe process(es) failed\n", failed);
      broken = true;
    }
  }
  const double mb = median(bare), ml = median(dlopen_loop);
  fmt::print("medians of {} rep(s), runs/s: bare fork {:.0f}, fork + dlopen {:.0f}\n", o.reps, mb,
             ml);
  for (std::size_t i = 0; i < setups.size(); ++i) {
    const double md = median(rate[i]);
    fmt::print(
        "  {:<12} {:.0f} (from the instant due {:.0f}); / bare fork {:.2f} (target >= 0.5), "
        "/ fork + dlopen {:.2f}{}\n",
        setups[i].label, md, median(from_due[i]), mb > 0 ? md / mb : 0, ml > 0 ? md / ml : 0,
        i > 0 ? fmt::format("; / sqlite {:.2f}", median(rate[0]) > 0 ? md / median(rate[0]) : 0)
              : "");
  }
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
