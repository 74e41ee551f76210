// bench_dispatch: how close isolated runs come to the cost of a bare fork.
//
// Measures, in the same process and interleaved, repetition by repetition:
//  - executor + ledger: N no-op runs through the real Executor (fork, pidfd,
//    pipes, child setup, cgroup when the host has one, rlimits, dlopen, run,
//    result record, reap), each claimed and finished in the real SQLite
//    ledger, one after the other (the next starts when the previous is done);
//  - the same without a cgroup (isolation mode none), to show what the
//    cgroup costs;
//  - bare loop: fork, the child dlopens the same plugin and calls run, then
//    _exits, and the parent waitpids it.
// Prints runs per second for each repetition, the medians and the ratio
// executor+ledger / bare (target >= 0.6). Prints figures only; never fails
// on time.
//
// usage: bench_dispatch [--runs N] [--reps R] [--plugin PATH]
#include <dlfcn.h>
#include <fmt/format.h>
#include <jobhost/plugin.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "exec/executor.h"
#include "ledger/ids.h"
#include "ledger/sqlite_store.h"

using namespace jobhost;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

TimePoint now() {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
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

// N runs through the Executor, one after another, each recorded in `store`
// when given. Exits on any run that does not succeed.
double executor_loop(const std::string& plugin, int runs, const exec::IsolationCaps& isolation,
                     ledger::Store* store, int64_t& slot) {
  boost::asio::io_context io;
  exec::ExecutorOptions options;
  options.isolation = isolation;
  options.log_sink = [](const exec::RunLogLine&) {};
  exec::Executor executor(io, options);
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
  if (!failure.empty() || done != runs) {
    fmt::print(stderr, "executor loop failed after {} runs: {}\n", done, failure);
    std::exit(1);
  }
  return runs / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 500;
  int reps = 5;
  std::string plugin = JOBHOST_TEST_PLUGIN_DIR "/noop.so";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    } else if (flag == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (flag == "--plugin") {
      plugin = argv[i + 1];
    } else {
      fmt::print(stderr, "usage: bench_dispatch [--runs N] [--reps R] [--plugin PATH]\n");
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
  const exec::IsolationCaps caps = exec::detect_isolation(detect);
  const exec::IsolationCaps no_cgroup;

  fmt::print("bench_dispatch: {} no-op runs x {} repetitions, plugin {}\n", runs, reps, plugin);
  fmt::print("isolation: {}\n", caps.description);
  fmt::print("ledger: {} (WAL, synchronous=NORMAL)\n\n", (dir / "jobhost.db").string());
  fmt::print("{:>4}  {:>14}  {:>22}  {:>22}\n", "rep", "bare runs/s", "executor+ledger runs/s",
             "same, no cgroup runs/s");

  std::vector<double> bare, isolated, isolated_no_cgroup;
  int64_t slot = 0;
  bare_loop(plugin, std::min(runs, 50));  // warm-up: page cache, dynamic loader
  for (int rep = 1; rep <= reps; ++rep) {
    bare.push_back(bare_loop(plugin, runs));
    isolated.push_back(executor_loop(plugin, runs, caps, store->get(), slot));
    isolated_no_cgroup.push_back(executor_loop(plugin, runs, no_cgroup, store->get(), slot));
    fmt::print("{:>4}  {:>14.0f}  {:>22.0f}  {:>22.0f}\n", rep, bare.back(), isolated.back(),
               isolated_no_cgroup.back());
  }
  const double b = median(bare), e = median(isolated), n = median(isolated_no_cgroup);
  fmt::print(
      "\nmedian: bare {:.0f} runs/s ({:.2f} ms/run), executor+ledger {:.0f} runs/s "
      "({:.2f} ms/run), without cgroup {:.0f} runs/s\n",
      b, 1000 / b, e, 1000 / e, n);
  fmt::print("ratio executor+ledger / bare: {:.2f} (target >= 0.60); without cgroup: {:.2f}\n",
             e / b, n / b);

  store->reset();
  exec::remove_parent_cgroups(caps);
  fs::remove_all(dir);
  return 0;
}
