// bench_dispatch: how close isolated runs come to the cost of a bare fork.
//
// Measures, in the same process and interleaved, repetition by repetition:
//  - executor + ledger: N no-op runs through the real Executor (fork, pidfd,
//    pipes, child setup, cgroup when the host has one, rlimits, dlopen, run,
//    result record, reap), each claimed and finished in the real SQLite
//    ledger, one after the other (the next starts when the previous is done);
//    run cgroups are reused from the Executor's CgroupPool, as in the daemon;
//  - the same without the ledger and without a cgroup (isolation mode
//    none), and with the ledger but no cgroup, to show what each costs;
//  - bare loop: fork, the child dlopens the same plugin and calls run, then
//    _exits, and the parent waitpids it.
// Prints runs per second for each repetition, the medians and the ratio
// executor+ledger / bare (target >= 0.6). Prints figures only; never fails
// on time.
//
// usage: bench_dispatch [--runs N] [--reps R] [--plugin PATH] [--filter default|none]
//        bench_dispatch --only bare|exec|ledger|full|cgroup|pooled-cgroup [--runs N]
//        (one loop alone, for perf or strace)
#include <dlfcn.h>
#include <fmt/format.h>
#include <jobhost/plugin.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "exec/fork_executor.h"
#include "ledger/ids.h"
#include "ledger/sqlite_store.h"

using namespace jobhost;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

TimePoint now() {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

// Minor page faults taken by this process (the parent) since the last call:
// after fork every page the parent writes faults once (copy-on-write), which
// is what makes forking from a busy process dearer than from a quiet one.
long parent_faults_since_last() {
  static long last = 0;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const long delta = u.ru_minflt - last;
  last = u.ru_minflt;
  return delta;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The bare loop: what isolation is measured against.
double bare_loop(const std::string& plugin, int runs) {
  jobhost_host_api api{};  // the no-op plugin calls none of the host functions
  api.struct_size = sizeof api;
  const auto t0 = Clock::now();
  for (int i = 0; i < runs; ++i) {
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      std::exit(1);
    }
    if (pid == 0) {
      void* handle = dlopen(plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) _exit(2);
      auto entry = reinterpret_cast<jobhost_entry_fn>(dlsym(handle, JOBHOST_ENTRY_SYMBOL));
      if (entry == nullptr) _exit(3);
      _exit(entry()->run(&api, nullptr) == JOBHOST_OK ? 0 : 4);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fmt::print(stderr, "bare run failed: status {}\n", status);
      std::exit(1);
    }
  }
  return runs / std::chrono::duration<double>(Clock::now() - t0).count();
}

// The runs' syscall_filter (--filter): the default, or none to see its cost.
config::SyscallFilter g_syscall_filter = config::SyscallFilter::standard;

// N runs through the Executor, one after another, each recorded in `store`
// when given. Exits on any run that does not succeed.
double executor_loop(const std::string& plugin, int runs, const exec::IsolationCaps& isolation,
                     ledger::Store* store, int64_t& slot, uint64_t* cgroups_made = nullptr) {
  boost::asio::io_context io;
  exec::ExecutorOptions options;
  options.isolation = isolation;
  options.log_sink = [](const exec::RunLogLine&) {};
  exec::ForkExecutor executor(io, options);
  int done = 0;
  std::string failure;

  std::function<void()> start_next = [&] {
    exec::RunRequest r;
    r.job = "noop";
    r.run_id = ledger::new_id(now());
    r.trace_id = r.run_id;
    r.scheduled_for = TimePoint(Duration(++slot));
    r.plugin_path = plugin;
    r.timeout = std::chrono::seconds(30);
    r.kill_grace = std::chrono::seconds(1);
    r.sandbox.syscall_filter = g_syscall_filter;
    const auto started_at = Clock::now();
    if (store != nullptr) {
      ledger::RunStart s;
      s.run_id = r.run_id;
      s.job = r.job;
      s.scheduled_for = r.scheduled_for;
      s.trace_id = r.trace_id;
      s.started_at = now();
      s.host_pid = getpid();
      auto claimed = store->claim_and_start(s);
      if (!claimed || !*claimed) {
        failure = claimed ? "slot already claimed" : claimed.error().message;
        return;
      }
    }
    const std::string run_id = r.run_id;
    auto pid = executor.start(std::move(r), [&, run_id, started_at](exec::RunReport rep) {
      if (rep.outcome != Outcome::succeeded) {
        failure = fmt::format("run ended {}: {}", to_string(rep.outcome), rep.message);
        return;
      }
      if (store != nullptr) {
        ledger::RunEnd e;
        e.run_id = run_id;
        e.finished_at = rep.finished;
        e.outcome = rep.outcome;
        e.exit_code = rep.exit_code;
        e.duration = std::chrono::duration_cast<Duration>(Clock::now() - started_at);
        e.message = rep.message;
        e.output_tail = rep.output_tail;
        if (auto finished = store->finish_run(e); !finished) {
          failure = finished.error().message;
          return;
        }
      }
      if (++done < runs) start_next();
    });
    if (!pid) failure = pid.error().message;
  };

  const auto t0 = Clock::now();
  start_next();
  io.run();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (cgroups_made != nullptr) *cgroups_made += executor.cgroups_made();
  if (!failure.empty() || done != runs) {
    fmt::print(stderr, "executor loop failed after {} runs: {}\n", done, failure);
    std::exit(1);
  }
  return runs / seconds;
}

// The ledger's share: claim_and_start + finish_run per run, no fork.
double ledger_loop(ledger::Store& store, int runs, int64_t& slot) {
  const auto t0 = Clock::now();
  for (int i = 0; i < runs; ++i) {
    ledger::RunStart s;
    s.run_id = ledger::new_id(now());
    s.job = "noop";
    s.scheduled_for = TimePoint(Duration(++slot));
    s.trace_id = s.run_id;
    s.started_at = now();
    s.host_pid = getpid();
    ledger::RunEnd e;
    e.run_id = s.run_id;
    e.finished_at = now();
    e.outcome = Outcome::succeeded;
    e.exit_code = 0;
    e.duration = Duration(1);
    e.message = "succeeded";
    if (!store.claim_and_start(s) || !store.finish_run(e)) {
      fmt::print(stderr, "ledger loop failed\n");
      std::exit(1);
    }
  }
  return runs / std::chrono::duration<double>(Clock::now() - t0).count();
}

// The cgroups' share, no process: a run cgroup made, killed and removed
// each time (pooled = false), or taken from and given back to a CgroupPool
// as the Executor does.
double cgroup_loop(const exec::IsolationCaps& caps, int runs, bool pooled) {
  exec::CgroupPool pool(caps);
  const auto t0 = Clock::now();
  for (int i = 0; i < runs; ++i) {
    const std::string name = fmt::format("bench-{}", i);
    auto cg = pooled ? pool.acquire(name, config::Limits{})
                     : exec::RunCgroup::create(caps, name, config::Limits{});
    if (!cg) {
      fmt::print(stderr, "cgroup loop failed: {}\n", cg.error().message);
      std::exit(1);
    }
    cg->kill_all();
    if (pooled) {
      pool.release(std::move(*cg));
    } else {
      cg->remove();
    }
  }
  return runs / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 500;
  int reps = 5;
  std::string plugin = JOBHOST_TEST_PLUGIN_DIR "/noop.so";
  std::string only;  // profiling: run just this loop (bare, exec, ledger, full)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    } else if (flag == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (flag == "--only") {
      only = argv[i + 1];
    } else if (flag == "--plugin") {
      plugin = argv[i + 1];
    } else if (flag == "--filter" && (std::string_view(argv[i + 1]) == "default" ||
                                      std::string_view(argv[i + 1]) == "none")) {
      g_syscall_filter = std::string_view(argv[i + 1]) == "none" ? config::SyscallFilter::none
                                                                 : config::SyscallFilter::standard;
    } else {
      fmt::print(stderr,
                 "usage: bench_dispatch [--runs N] [--reps R] [--plugin PATH] "
                 "[--filter default|none]\n");
      return 2;
    }
  }
  if (!fs::exists(plugin)) {
    fmt::print(stderr, "no plugin at {} (build the runtime_noop target)\n", plugin);
    return 1;
  }

  const fs::path dir = fs::temp_directory_path() / fmt::format("bench_dispatch-{}", getpid());
  fs::create_directories(dir);
  auto store = ledger::open_sqlite_store(dir / "jobhost.db", config::Durability::normal);
  if (!store) {
    fmt::print(stderr, "{}\n", store.error().message);
    return 1;
  }
  exec::DetectOptions detect;
  detect.parent_name = fmt::format("jobhost-bench-{}", getpid());
  static const exec::IsolationCaps caps = exec::detect_isolation(detect);
  static fs::path temp_dir = dir;
  // Also when a loop fails and exits early: no parent cgroup or ledger left behind.
  std::atexit([] {
    exec::remove_parent_cgroups(caps);
    std::error_code ignored;
    fs::remove_all(temp_dir, ignored);
  });
  const exec::IsolationCaps no_cgroup;
  if (!only.empty()) {  // one loop alone, for perf/strace
    int64_t slot = 0;
    double rate = 0;
    if (only == "bare") {
      rate = bare_loop(plugin, runs);
    } else if (only == "exec") {
      rate = executor_loop(plugin, runs, no_cgroup, nullptr, slot);
    } else if (only == "ledger") {
      rate = executor_loop(plugin, runs, no_cgroup, store->get(), slot);
    } else if (only == "cgroup") {
      rate = cgroup_loop(caps, runs, false);
    } else if (only == "pooled-cgroup") {
      rate = cgroup_loop(caps, runs, true);
    } else if (only == "full") {
      rate = executor_loop(plugin, runs, caps, store->get(), slot);
    } else {
      fmt::print(stderr, "--only takes bare, exec, ledger, full, cgroup or pooled-cgroup\n");
      return 2;
    }
    fmt::print("{}: {:.0f} runs/s\n", only, rate);
    store->reset();
    return 0;
  }

  fmt::print("bench_dispatch: {} no-op runs x {} repetitions, plugin {}\n", runs, reps, plugin);
  fmt::print("isolation: {}\n", caps.description);
  fmt::print("ledger: {} (WAL, synchronous=NORMAL)\n\n", (dir / "jobhost.db").string());
  fmt::print("runs/s per repetition ({} runs each):\n", runs);
  fmt::print("{:>4}  {:>10}  {:>14}  {:>14}  {:>22}\n", "rep", "bare", "executor only", "+ ledger",
             "+ ledger + cgroup (full)");

  std::vector<double> bare, exec_only, with_ledger, full, ledger_only;
  int64_t slot = 0;
  bare_loop(plugin, std::min(runs, 50));  // warm-up: page cache, dynamic loader
  std::array<long, 5> faults{};
  uint64_t cgroups_made = 0;
  for (int rep = 1; rep <= reps; ++rep) {
    parent_faults_since_last();
    bare.push_back(bare_loop(plugin, runs));
    faults[0] += parent_faults_since_last();
    exec_only.push_back(executor_loop(plugin, runs, no_cgroup, nullptr, slot));
    faults[1] += parent_faults_since_last();
    with_ledger.push_back(executor_loop(plugin, runs, no_cgroup, store->get(), slot));
    faults[2] += parent_faults_since_last();
    full.push_back(executor_loop(plugin, runs, caps, store->get(), slot, &cgroups_made));
    faults[3] += parent_faults_since_last();
    ledger_only.push_back(ledger_loop(**store, runs, slot));
    faults[4] += parent_faults_since_last();
    fmt::print("{:>4}  {:>10.0f}  {:>14.0f}  {:>14.0f}  {:>22.0f}\n", rep, bare.back(),
               exec_only.back(), with_ledger.back(), full.back());
  }
  const double b = median(bare), e = median(exec_only), l = median(with_ledger), f = median(full);
  const auto per_run = [&](long f) { return static_cast<double>(f) / (runs * reps); };
  fmt::print("\nmedians (runs/s, ms per run, page faults in the host per run):\n");
  fmt::print("  bare loop (fork, dlopen, run, _exit, waitpid)     {:6.0f}  {:6.2f}  {:6.1f}\n", b,
             1000 / b, per_run(faults[0]));
  fmt::print("  executor only (no ledger, no cgroup)              {:6.0f}  {:6.2f}  {:6.1f}\n", e,
             1000 / e, per_run(faults[1]));
  fmt::print("  executor + ledger (no cgroup)                     {:6.0f}  {:6.2f}  {:6.1f}\n", l,
             1000 / l, per_run(faults[2]));
  fmt::print("  executor + ledger + cgroup (what the daemon does) {:6.0f}  {:6.2f}  {:6.1f}\n", f,
             1000 / f, per_run(faults[3]));
  fmt::print("  ledger alone (claim_and_start + finish_run)       {:6.0f}  {:6.2f}  {:6.1f}\n",
             median(ledger_only), 1000 / median(ledger_only), per_run(faults[4]));
  if (caps.mode != exec::CgroupMode::none) {
    fmt::print("run cgroups made in the full loops: {} for {} runs (the rest reused)\n",
               cgroups_made, runs * reps);
  }
  fmt::print("ratio to bare: executor only {:.2f}, + ledger {:.2f}, full {:.2f} (target >= 0.60)\n",
             e / b, l / b, f / b);

  store->reset();
  return 0;
}
