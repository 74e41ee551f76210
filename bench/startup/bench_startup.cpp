// bench_startup: how long the real daemon takes to be ready with N jobs, how
// much memory it holds then, and how much CPU it uses while nothing is due.
//
// For each N (default 10,000 and 100,000; --jobs 10000,100000,1000000):
//  - writes a config of N cron jobs on the bench_noop plugin, each on its own
//    second of the day at 03:xx:yy UTC (so none is due while measured unless
//    the bench runs then: it says so), with [host] dynamic_users wide enough;
//  - times `jobhost validate` and `jobhost list` on it;
//  - starts `jobhost run` on a new ledger and on the ledger that run left
//    (which then holds every job's row), R repetitions interleaved: the time
//    from exec to the "ready:" log line, and VmRSS / VmHWM at that moment;
//  - once, on the full ledger: utime + stime of the daemon over --idle
//    seconds after ready (target: <= 0.01 s per 30 s).
// Prints each repetition and the medians. Figures only; never fails on time.
//
// usage: bench_startup [--jobs N[,N...]] [--reps R] [--idle SECONDS]
//                      [--jobhost PATH] [--plugin PATH] [--keep DIR]
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon_bench.h"

using namespace jobhost;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using jobhost::bench::status_kib;

namespace {

struct Options {
  std::vector<long> jobs{10000, 100000};
  int reps = 3;
  int idle_seconds = 30;
  std::string jobhost = JOBHOST_BINARY;
  std::string plugin = JOBHOST_NOOP_PLUGIN;
};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Writes dir/jobs.toml with n jobs and dir/plugins/ with the bench_noop plugin.
fs::path write_config(const fs::path& dir, long n, const std::string& plugin) {
  bench::install_plugin(plugin, dir / "plugins");
  const fs::path file = dir / "jobs.toml";
  std::ofstream out(file);
  out << "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"state\"\nmax_concurrency = 2\n"
         "timezone = \"UTC\"\n"
      << fmt::format("dynamic_users = \"100000-{}\"\n", 100000 + 3 * n + 1000)
      << "[http]\nlisten = \"\"\n";
  for (long i = 0; i < n; ++i) {
    // Second i % 60, minute (i / 60) % 60, 03:xx UTC: one job per second of the hour.
    out << fmt::format("[jobs.job{}]\nplugin = \"bench_noop\"\nschedule = \"{} {} 3 * * *\"\n", i,
                       i % 60, (i / 60) % 60);
  }
  return file;
}

// utime + stime of pid, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

struct Start {
  double ready_s = -1;
  long rss_kib = -1;
  long hwm_kib = -1;
  double idle_cpu_s = -1;
};

// Seconds a CLI command takes to run to its end (its output discarded).
double timed_command(const std::vector<std::string>& argv) {
  const auto t0 = Clock::now();
  bench::run_capture(argv);
  return seconds_since(t0);
}

// Starts the daemon on config, waits for ready (at most 10 min), measures,
// then idles `idle` seconds if asked, and stops it.
Start start_daemon(const Options& o, const fs::path& config, const fs::path& log, int idle) {
  Start s;
  const auto t0 = Clock::now();
  bench::Daemon daemon(o.jobhost, config, log);
  if (!daemon.wait_ready(std::chrono::minutes(10))) {
    fmt::print("  the daemon did not get ready: see {}\n", log.string());
    return s;
  }
  s.ready_s = seconds_since(t0);
  s.rss_kib = status_kib(daemon.pid(), "VmRSS:");
  s.hwm_kib = status_kib(daemon.pid(), "VmHWM:");
  if (idle > 0) {
    // The first seconds after ready belong to start-up work: wait them out.
    std::this_thread::sleep_for(std::chrono::seconds(5));
    const double before = cpu_seconds(daemon.pid());
    std::this_thread::sleep_for(std::chrono::seconds(idle));
    s.idle_cpu_s = cpu_seconds(daemon.pid()) - before;
  }
  daemon.stop(std::chrono::seconds(60));
  return s;
}

std::vector<long> parse_list(const std::string& text) {
  std::vector<long> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::atol(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--jobs")
      o.jobs = parse_list(value);
    else if (flag == "--reps")
      o.reps = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--idle")
      o.idle_seconds = std::atoi(value.c_str());
    else if (flag == "--jobhost")
      o.jobhost = value;
    else if (flag == "--plugin")
      o.plugin = value;
    else if (flag == "--keep")
      keep = value;
    else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  if (utc.tm_hour == 3) {
    fmt::print("note: it is 03:xx UTC, when the generated jobs fire: idle figures include runs\n");
  }
  char tmpl[] = "/tmp/bench-startup-XXXXXX";
  const fs::path root = keep.empty() ? fs::path(mkdtemp(tmpl)) : fs::path(keep);
  fmt::print("bench_startup: {} ({} reps, idle {} s; load {})\n", o.jobhost, o.reps, o.idle_seconds,
             bench::load_average());
  fmt::print("{:>9} | {:>8} {:>8} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>10}\n", "jobs",
             "validate", "list", "new: s", "RSS MiB", "peak MiB", "full: s", "RSS MiB", "peak MiB",
             "idle CPU s");
  for (long n : o.jobs) {
    const fs::path dir = root / fmt::format("jobs-{}", n);
    const fs::path config = write_config(dir, n, o.plugin);
    const fs::path log = dir / "log.txt";
    std::vector<double> validate, list, fresh_s, fresh_rss, fresh_hwm, full_s, full_rss, full_hwm;
    double idle = -1;
    for (int rep = 0; rep < o.reps; ++rep) {
      // Interleaved: each repetition runs every measurement once.
      validate.push_back(timed_command({o.jobhost, "validate", "--config", config.string()}));
      fs::remove_all(dir / "state");
      fs::create_directories(dir / "state");
      Start fresh = start_daemon(o, config, log, 0);
      list.push_back(timed_command({o.jobhost, "list", "--config", config.string()}));
      const bool last = rep + 1 == o.reps;
      Start full = start_daemon(o, config, log, last ? o.idle_seconds : 0);
      fresh_s.push_back(fresh.ready_s);
      fresh_rss.push_back(fresh.rss_kib / 1024.0);
      fresh_hwm.push_back(fresh.hwm_kib / 1024.0);
      full_s.push_back(full.ready_s);
      full_rss.push_back(full.rss_kib / 1024.0);
      full_hwm.push_back(full.hwm_kib / 1024.0);
      if (last) idle = full.idle_cpu_s;
      fmt::print(
          "{:>9} | {:>8.2f} {:>8.2f} | {:>9.2f} {:>9.0f} {:>9.0f} | {:>9.2f} {:>9.0f} {:>9.0f} | "
          "{}\n",
          fmt::format("{} #{}", n, rep + 1), validate.back(), list.back(), fresh.ready_s,
          fresh_rss.back(), fresh_hwm.back(), full.ready_s, full_rss.back(), full_hwm.back(),
          last ? fmt::format("{:>10.3f}", idle) : std::string(10, ' '));
    }
    fmt::print(
        "{:>9} | {:>8.2f} {:>8.2f} | {:>9.2f} {:>9.0f} {:>9.0f} | {:>9.2f} {:>9.0f} {:>9.0f} | "
        "{:>10.3f}  (medians; idle over {} s)\n",
        fmt::format("{} med", n), bench::median(validate), bench::median(list),
        bench::median(fresh_s), bench::median(fresh_rss), bench::median(fresh_hwm),
        bench::median(full_s), bench::median(full_rss), bench::median(full_hwm), idle,
        o.idle_seconds);
    std::fflush(stdout);
  }
  if (keep.empty()) fs::remove_all(root);
  return 0;
}
