// What the benchmarks that drive the real daemon share (bench/lateness,
// bench/burst): a temporary directory, a plugin installed as jobhost wants
// it, `jobhost run` in the background with its log in a file, waiting for
// "ready", stopping it with SIGTERM, the ledger's runs read back, and
// percentiles. Figures only: nothing here asserts on time. What cannot be
// done throws std::runtime_error, so that the destructors stop the daemon and
// remove the temporary directory on the way out.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/records.h"

namespace jobhost::bench {

namespace fs = std::filesystem;
using WallClock = std::chrono::system_clock;

// A directory of its own under $TMPDIR (mode 0755: runs of dynamic users
// must reach their state directories under it), removed with everything in
// it by the destructor, unless BENCH_KEEP is set in the environment (then
// its path is printed).
class TempDir {
 public:
  explicit TempDir(std::string_view prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Copies `plugin` into `plugin_dir` (created if needed) as jobhost accepts
// it: a regular file of ours, mode 0644, in a directory of mode 0755.
void install_plugin(const fs::path& plugin, const fs::path& plugin_dir);

// `jobhost run --config CONFIG`, started by the constructor, its stdout and
// stderr in `log`. The destructor SIGKILLs and reaps it if still running.
class Daemon {
 public:
  Daemon(const fs::path& jobhost_bin, const fs::path& config, fs::path log);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until the log has the "ready: " line; the wall time at which it
  // was seen (polled every 2 ms), or nullopt if the daemon exited first or
  // `timeout` passed.
  std::optional<WallClock::time_point> wait_ready(std::chrono::milliseconds timeout);
  // SIGTERM, then waits up to `timeout` (SIGKILL after it). The exit code,
  // or -1 when it had to be killed or died of a signal.
  int stop(std::chrono::milliseconds timeout);
  std::string log_text() const;

 private:
  fs::path log_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Every run in the ledger at `state_dir`/jobhost.db, opened read-only with
// the ledger's own API (call it after the daemon stopped).
std::vector<ledger::RunRecord> read_runs(const fs::path& state_dir);

// How many runs of the ledger at `db` have a slot in [from, to) and are
// finished: a cheap count to poll while the daemon runs (a WAL reader never
// blocks it). -1 when the ledger cannot be read yet.
int64_t finished_runs_between(const fs::path& db, int64_t from_ms, int64_t to_ms);

// Runs `argv` (argv[0] a path), waits for it and returns its stdout; throws
// when it cannot be started or does not exit 0.
std::string run_capture(const std::vector<std::string>& argv);

// Sleeps until `at` on CLOCK_REALTIME (absolute: no drift).
void sleep_until(WallClock::time_point at);

int64_t unix_ms(WallClock::time_point t);
int64_t unix_us_now();  // CLOCK_REALTIME in microseconds

// Nearest-rank percentile (q in (0, 1]) of `values`; 0 when empty.
double percentile(std::vector<double> values, double q);
double median(std::vector<double> values);

// A figure of /proc/PID/status in KiB (`field` with its colon, "VmRSS:"),
// or -1 when the process is gone or has no such line.
long status_kib(pid_t pid, std::string_view field);

// A TCP connection to 127.0.0.1:PORT, or -1.
int connect_to(int port);

// The load averages, as /proc/loadavg has them ("0.64 0.66 0.88").
std::string load_average();

// The daemon's "isolation: ..." log line, without the prefix, or "".
std::string isolation_line(const std::string& log);

// A throwaway PostgreSQL server on loopback for the benches that compare
// stores (scripts/pg-test-server.sh in a temporary directory; fsync off);
// stopped and removed by the destructor. Throws when PostgreSQL's server
// binaries are not installed.
class PgServer {
 public:
  PgServer();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;
  // The URI of a new, empty database on it.
  std::string fresh_database();

 private:
  TempDir dir_;
  std::string admin_url_;
  int made_ = 0;
};

// Finished runs with a slot in [from, to) in the PostgreSQL ledger at `url`
// (finished_runs_between for PostgreSQL); -1 when it cannot be read.
int64_t pg_finished_runs_between(const std::string& url, int64_t from_ms, int64_t to_ms);

}  // namespace jobhost::bench
