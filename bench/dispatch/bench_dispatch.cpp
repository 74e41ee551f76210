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
// executor+ledger / bare (target >= 0.6). These loops write each record in
// its own transaction (claim_and_start, finish_run).
//
// Then, as the daemon dispatches (issue 14: "2,000 no-op runs due at once,
// 2 at a time"): N manual fires of one no-op job queued at once in the real
// Engine (executor, cgroups, the SQLite ledger with the engine's write
// groups), max_concurrency 1 and 2, against a bare loop (fork, dlopen, run,
// _exit, waitpid) keeping 1 and 2 children in flight.
// Prints figures only; never fails on time.
//
// usage: bench_dispatch [--runs N] [--reps R] [--plugin PATH] [--filter default|none]
//                       [--durability normal|full]
//        bench_dispatch --only bare|bare2|exec|ledger|full|engine|engine2|cgroup|pooled-cgroup
//                       [--runs N]
//        (one loop alone, for perf or strace)
#include <dlfcn.h>
#include <fcntl.h>
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
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "common/log.h"
#include "config/config.h"
#include "engine/engine.h"
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

// The bare loop with `in_flight` children at once: fork until that many
// run, reap any one, fork the next.
double bare_loop_in_flight(const std::string& plugin, int runs, int in_flight) {
  jobhost_host_api api{};
  api.struct_size = sizeof api;
  const auto t0 = Clock::now();
  int started = 0, running = 0;
  while (started < runs || running > 0) {
    while (started < runs && running < in_flight) {
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
      ++started;
      ++running;
    }
    int status = 0;
    if (waitpid(-1, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fmt::print(stderr, "bare run failed: status {}\n", status);
      std::exit(1);
    }
    --running;
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

// The daemon's path: the plugin dir, config and catalog of one no-op job,
// and the ledger, for engine_loop.
struct EngineSetup {
  config::Config config;
  catalog::ScanResult plugins;
  fs::path log;       // the engine's log lines
  TimePoint clock{};  // the engines' last reading (engine_loop)
};

EngineSetup engine_setup(const fs::path& dir, const std::string& plugin) {
  const fs::path plugins = dir / "plugins";
  fs::create_directories(plugins);
  fs::create_directories(dir / "var");
  const auto mode = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                    fs::perms::others_read | fs::perms::others_exec;
  fs::permissions(plugins, mode);
  fs::copy_file(plugin, plugins / "noop.so", fs::copy_options::overwrite_existing);
  fs::permissions(plugins / "noop.so", mode);
  std::ofstream(dir / "jobhost.toml") << fmt::format(
      "[host]\nplugin_dir = \"{}\"\nstate_dir = \"{}\"\n\n[http]\nlisten = \"\"\n\n"
      "[jobs.noop]\nplugin = \"noop\"\nschedule = \"@manual\"\nconcurrency = "
      "\"allow\"\ntimeout = \"30s\"\n",
      plugins.string(), (dir / "var").string());
  auto config = config::load_config(dir / "jobhost.toml");
  if (!config) {
    fmt::print(stderr, "config: {}\n", config.error().front().to_string());
    std::exit(1);
  }
  jobhost::config::own_settings(config->jobs.front()).sandbox.syscall_filter = g_syscall_filter;
  catalog::Catalog catalog(plugins, dir / "var" / "plugins");
  auto scanned = catalog.scan();
  if (scanned.find("noop") == nullptr) {
    fmt::print(stderr, "the catalog did not accept {}\n", plugin);
    std::exit(1);
  }
  return EngineSetup{std::move(*config), std::move(scanned), dir / "engine.log"};
}

// The engine logs two lines a run (started, finished) on stderr, as the
// daemon does: while it lives they go to a file, not the terminal.
class StderrToFile {
 public:
  explicit StderrToFile(const fs::path& file) : saved_(::dup(2)) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::dup2(fd, 2);
      ::close(fd);
    }
  }
  ~StderrToFile() {
    ::dup2(saved_, 2);
    ::close(saved_);
  }
  StderrToFile(const StderrToFile&) = delete;
  StderrToFile& operator=(const StderrToFile&) = delete;

 private:
  int saved_;
};

// Counts the runs the engine saw end, and stops the loop after the last.
class RunCounter final : public engine::Observer {
 public:
  RunCounter(boost::asio::io_context& io, int runs) : io_(io), runs_(runs) {}
  void on_run_finished(const ledger::RunStart&, const ledger::RunEnd& end,
                       const exec::RunReport&) override {
    if (end.outcome != Outcome::succeeded) {
      failure = fmt::format("run ended {}: {}", to_string(end.outcome), end.message);
      io_.stop();
    } else if (++done == runs_) {
      io_.stop();
    }
  }
  void on_run_unstarted(const ledger::RunStart&, const ledger::RunEnd& end) override {
    failure = end.message;
    io_.stop();
  }
  int done = 0;
  std::string failure;

 private:
  boost::asio::io_context& io_;
  int runs_;
};

// N manual fires of the no-op job queued at once in a real Engine with
// max_concurrency `in_flight`, on `store` and a ForkExecutor with `caps`:
// from the first fire to the last run's end as the engine's observers see it.
// CPU time (user + system) this process used so far, in ms.
double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

// The host's own CPU per run in the last engine_loop, in ms: what the daemon
// spends a run (its fork server and the runs are other processes). Less
// sensitive to the machine's load than the rate.
double g_engine_cpu_ms_per_run = 0;

double engine_loop(EngineSetup& setup, int runs, int in_flight,
                   const exec::IsolationCaps& isolation, ledger::Store& store) {
  boost::asio::io_context io;
  exec::ExecutorOptions options;
  options.isolation = isolation;
  options.log_sink = [](const exec::RunLogLine&) {};
  exec::ForkExecutor executor(io, options);
  config::Config config = setup.config;
  config.host.max_concurrency = in_flight;
  // Manual fires take `now` as their slot: each reading one millisecond
  // after the last at least, in this loop and the ones before (the clock
  // runs ahead of the wall clock), so that no slot is claimed twice.
  auto clock = [&last = setup.clock] {
    last = std::max(now(), last + Duration(1));
    return last;
  };
  RunCounter counter(io, runs);
  double seconds = 0;
  {
    StderrToFile log(setup.log);
    engine::Engine engine(io, config, setup.plugins, store, executor, 1, clock);
    engine.add_observer(counter);
    engine.start();
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_ms();
    for (int i = 0; i < runs; ++i) {
      if (auto fired = engine.trigger("noop"); !fired) {
        fmt::print(stderr, "trigger: {}\n", fired.error().message);
        std::exit(1);
      }
    }
    // A bound, should a run never end (a bug): the loop then fails below.
    io.run_for(std::chrono::seconds(60) + runs * std::chrono::milliseconds(50));
    seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    g_engine_cpu_ms_per_run = (process_cpu_ms() - cpu0) / runs;
    engine.shutdown([] {});
    engine.remove_observer(counter);
  }
  if (!counter.failure.empty() || counter.done != runs) {
    fmt::print(
        stderr, "engine loop failed after {} of {} runs: {}\n", counter.done, runs,
        counter.failure.empty() ? "no failure seen: see " + setup.log.string() : counter.failure);
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
  config::Durability durability = config::Durability::normal;
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
    } else if (flag == "--durability" && (std::string_view(argv[i + 1]) == "normal" ||
                                          std::string_view(argv[i + 1]) == "full")) {
      durability = std::string_view(argv[i + 1]) == "full" ? config::Durability::full
                                                           : config::Durability::normal;
    } else if (flag == "--filter" && (std::string_view(argv[i + 1]) == "default" ||
                                      std::string_view(argv[i + 1]) == "none")) {
      g_syscall_filter = std::string_view(argv[i + 1]) == "none" ? config::SyscallFilter::none
                                                                 : config::SyscallFilter::standard;
    } else {
      fmt::print(stderr,
                 "usage: bench_dispatch [--runs N] [--reps R] [--plugin PATH] "
                 "[--filter default|none] [--durability normal|full]\n");
      return 2;
    }
  }
  if (!fs::exists(plugin)) {
    fmt::print(stderr, "no plugin at {} (build the runtime_noop target)\n", plugin);
    return 1;
  }

  const fs::path dir = fs::temp_directory_path() / fmt::format("bench_dispatch-{}", getpid());
  fs::create_directories(dir);
  auto store = ledger::open_sqlite_store(dir / "jobhost.db", durability);
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
  log::init(log::Format::text);  // on stderr, as in the daemon
  EngineSetup setup = engine_setup(dir / "engine", plugin);
  if (!only.empty()) {  // one loop alone, for perf/strace
    int64_t slot = 0;
    double rate = 0;
    if (only == "bare") {
      rate = bare_loop(plugin, runs);
    } else if (only == "bare2") {
      rate = bare_loop_in_flight(plugin, runs, 2);
    } else if (only == "engine" || only == "engine2") {
      rate = engine_loop(setup, runs, only == "engine" ? 1 : 2, caps, **store);
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
      fmt::print(stderr,
                 "--only takes bare, bare2, exec, ledger, full, engine, engine2, cgroup or "
                 "pooled-cgroup\n");
      return 2;
    }
    fmt::print("{}: {:.0f} runs/s", only, rate);
    if (only.starts_with("engine")) {
      fmt::print(", host CPU {:.3f} ms a run", g_engine_cpu_ms_per_run);
    }
    fmt::print("\n");
    store->reset();
    return 0;
  }

  fmt::print("bench_dispatch: {} no-op runs x {} repetitions, plugin {}\n", runs, reps, plugin);
  fmt::print("isolation: {}\n", caps.description);
  fmt::print("ledger: {} (WAL, synchronous={})\n\n", (dir / "jobhost.db").string(),
             durability == config::Durability::full ? "FULL" : "NORMAL");
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

  // As the daemon dispatches: N fires due at once, through the Engine.
  fmt::print("\n{} manual fires queued at once in the Engine (executor, cgroup, ledger), runs/s:\n",
             runs);
  fmt::print("{:>4}  {:>10}  {:>14}  {:>10}  {:>14}\n", "rep", "bare 1", "engine 1", "bare 2",
             "engine 2");
  std::vector<double> bare1, engine1, bare2, engine2, cpu1, cpu2;
  for (int rep = 1; rep <= reps; ++rep) {
    bare1.push_back(bare_loop(plugin, runs));
    engine1.push_back(engine_loop(setup, runs, 1, caps, **store));
    cpu1.push_back(g_engine_cpu_ms_per_run);
    bare2.push_back(bare_loop_in_flight(plugin, runs, 2));
    engine2.push_back(engine_loop(setup, runs, 2, caps, **store));
    cpu2.push_back(g_engine_cpu_ms_per_run);
    fmt::print("{:>4}  {:>10.0f}  {:>14.0f}  {:>10.0f}  {:>14.0f}\n", rep, bare1.back(),
               engine1.back(), bare2.back(), engine2.back());
  }
  const double b1 = median(bare1), e1 = median(engine1), b2 = median(bare2), e2 = median(engine2);
  fmt::print("\nmedians (runs/s, ms per run):\n");
  fmt::print("  bare loop, 1 in flight                            {:6.0f}  {:6.2f}\n", b1,
             1000 / b1);
  fmt::print("  engine, max_concurrency 1                         {:6.0f}  {:6.2f}\n", e1,
             1000 / e1);
  fmt::print("  bare loop, 2 in flight                            {:6.0f}  {:6.2f}\n", b2,
             1000 / b2);
  fmt::print("  engine, max_concurrency 2                         {:6.0f}  {:6.2f}\n", e2,
             1000 / e2);
  fmt::print(
      "host CPU per run (the engine's process alone, ms): max_concurrency 1 {:.3f}, "
      "2 {:.3f}\n",
      median(cpu1), median(cpu2));
  fmt::print(
      "ratio to bare: engine 1 in flight {:.2f}, engine 2 in flight {:.2f} (issue 14: >= 0.50 "
      "with 2)\n",
      e1 / b1, e2 / b2);

  store->reset();
  return 0;
}
