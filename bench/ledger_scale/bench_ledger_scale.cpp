// bench_ledger_scale: do `jobhost history JOB` and `jobhost status` stay fast
// on a ledger of 10 million runs (targets: under 10 ms and under 100 ms)?
//
//  - writes a config of J jobs (default 1,000) on the bench_noop plugin, each
//    due every minute;
//  - creates the ledger with the real store (open_sqlite_store: schema and
//    migrations), then fills it with plain SQL, in time order as a daemon
//    would (each minute, every job's run): R runs per job (default 10,000,
//    so 10 million in all, the last ending about now) with their slots, the
//    two events a run writes (started, finished), and each job's row. One in
//    20 runs failed, one in 100 was skipped (a forbid); each has an output
//    tail of some 40 bytes. Its cost is printed on its own;
//  - with no daemon running, times the CLI as a user runs it, --reps times
//    interleaved (default 7): `history JOB` (also with a config of one job,
//    which shows what loading 1,000 jobs costs the command), `history JOB
//    --json`, `status`, `status --json` (exec to exit), `jobhost --help`
//    (the floor of any command), and the same reads called in process
//    through the ledger library (open the store read-only, then what the
//    command asks of it: history(job, 20); running_runs() and job_stats_of()
//    of every job), so the query time shows apart from the process's own.
//    Each case is run once untimed, then timed with the ledger's pages in
//    the OS cache (warm), then timed again after they were evicted (cold:
//    posix_fadvise DONTNEED on its files); wall time and CPU time (user +
//    system, this process and its children: what other work on the machine
//    stretches least).
// Prints the medians. Figures only; never fails on time. A ledger reused
// with --keep is first opened read-write as the daemon would, so one of an
// older schema is migrated (the time is printed).
//
// usage: bench_ledger_scale [--jobs J] [--runs-per-job R] [--reps K]
//                           [--jobhost PATH] [--plugin PATH] [--keep DIR]
// With --keep DIR the files stay in DIR, and a later run with the same DIR,
// J and R reuses the ledger instead of building it again.
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ledger/sqlite_store.h"
#include "support/daemon_bench.h"

extern char** environ;

using namespace jobhost;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  long jobs = 1000;
  long runs_per_job = 10000;
  int reps = 7;
  std::string jobhost = JOBHOST_BINARY;
  std::string plugin = JOBHOST_NOOP_PLUGIN;
  std::string keep;
};

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string job_name(long i) {
  return fmt::format("job{:05}", i);
}

fs::path write_config(const fs::path& dir, const Options& o) {
  bench::install_plugin(o.plugin, dir / "plugins");
  fs::create_directories(dir / "state");
  const fs::path file = dir / "jobs.toml";
  std::ofstream out(file);
  out << "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"state\"\ntimezone = \"UTC\"\n"
      << fmt::format("dynamic_users = \"100000-{}\"\n", 100000 + 3 * o.jobs + 1000)
      << "[http]\nlisten = \"\"\n[defaults]\nkeep_last = 0\n";
  for (long i = 0; i < o.jobs; ++i) {
    out << fmt::format("[jobs.{}]\nplugin = \"bench_noop\"\nschedule = \"0 * * * * *\"\n",
                       job_name(i));
  }
  // The same host with one job: `history` needs only the state dir, so this
  // shows what the size of the config costs it.
  std::ofstream(dir / "one.toml")
      << "[host]\nplugin_dir = \"plugins\"\nstate_dir = \"state\"\ntimezone = \"UTC\"\n"
      << "[http]\nlisten = \"\"\n[jobs.one]\nplugin = \"bench_noop\"\nschedule = \"0 * * * * *\"\n";
  return file;
}

void exec_sql(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    fmt::print(stderr, "sql failed: {}\n{}\n", error ? error : "?", sql.substr(0, 400));
    std::exit(1);
  }
}

// Fills the (migrated, empty) ledger at `db_path`: minute m (0 .. R-1) of
// every job, oldest first, the last minute ending about now.
void fill_ledger(const fs::path& db_path, const Options& o) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) {
    fmt::print(stderr, "cannot open {}\n", db_path.string());
    std::exit(1);
  }
  // A build, not a daemon: no fsync, a large cache for the index pages.
  exec_sql(db, "PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA foreign_keys = ON");
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t first = (now_ms / 60000 - o.runs_per_job) * 60000;  // minute 0
  const std::string sha(64, 'a');
  exec_sql(db, "BEGIN");
  for (long j = 0; j < o.jobs; ++j) {
    exec_sql(db, fmt::format("INSERT INTO jobs (name, definition_hash, last_fire, next_fire, "
                             "updated_at) VALUES ('{}', '{}', {}, {}, {})",
                             job_name(j), sha, first + (o.runs_per_job - 1) * 60000,
                             first + o.runs_per_job * 60000, now_ms));
  }
  exec_sql(db, "COMMIT");
  // One transaction per chunk of minutes; rows of one minute in job order.
  // Run k (= m * J + j) of job j at minute m: scheduled m:00.000 + j ms
  // (jobs of one instant are started one after another), started 5-24 ms
  // later, 20-219 ms long; h spreads the skipped and failed runs and the
  // durations over every job.
  const long chunk = std::max(1L, 200000 / o.jobs);
  const std::string runs_of = fmt::format(
      "WITH RECURSIVE m(v) AS (SELECT ?1 UNION ALL SELECT v + 1 FROM m WHERE v + 1 < ?2), "
      "j(v) AS (SELECT 0 UNION ALL SELECT v + 1 FROM j WHERE v + 1 < {jobs}), "
      "k AS (SELECT m.v AS m, j.v AS j, m.v * {jobs} + j.v AS k, "
      "{first} + m.v * 60000 + j.v AS sched, m.v * 31 + j.v * 17 AS h FROM m, j) ",
      fmt::arg("jobs", o.jobs), fmt::arg("first", first));
  const std::string name = "printf('job%05d', j)";
  const std::string run_id = "printf('%012X%014X', sched + 5 + k % 20, k)";
  const std::string outcome =
      "CASE WHEN h % 100 = 7 THEN 'skipped' WHEN h % 20 = 3 THEN 'failed' ELSE 'succeeded' END";
  sqlite3_stmt* slots = nullptr;
  sqlite3_stmt* runs = nullptr;
  sqlite3_stmt* events = nullptr;
  auto prepare = [&](const std::string& sql, sqlite3_stmt** s) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, s, nullptr) != SQLITE_OK) {
      fmt::print(stderr, "prepare failed: {}\n{}\n", sqlite3_errmsg(db), sql);
      std::exit(1);
    }
  };
  prepare(runs_of +
              "INSERT INTO slots (job, scheduled_for, trigger, trace_id, claimed_at) "
              "SELECT " +
              name +
              ", sched, 'schedule', printf('%012XT%013X', sched, k), "
              "sched + 5 + k % 20 FROM k",
          &slots);
  prepare(runs_of +
              "INSERT INTO runs (run_id, job, scheduled_for, attempt, trace_id, trigger, "
              "started_at, finished_at, outcome, exit_code, duration_ms, plugin, plugin_version, "
              "plugin_sha256, definition_hash, message, output_tail, host_pid, cpu_seconds, "
              "max_rss_bytes) SELECT " +
              run_id + ", " + name +
              ", sched, 1, printf('%012XT%013X', sched, k), 'schedule', "
              "sched + 5 + k % 20, "
              "sched + 5 + k % 20 + CASE WHEN h % 100 = 7 THEN 0 ELSE 20 + h % 200 END, " +
              outcome +
              ", CASE WHEN h % 100 = 7 THEN NULL WHEN h % 20 = 3 THEN 1 ELSE 0 END, "
              "CASE WHEN h % 100 = 7 THEN 0 ELSE 20 + h % 200 END, "
              "CASE WHEN h % 100 = 7 THEN NULL ELSE 'bench_noop' END, "
              "CASE WHEN h % 100 = 7 THEN NULL ELSE '1.0.0' END, "
              "CASE WHEN h % 100 = 7 THEN NULL ELSE '" +
              sha + "' END, '" + sha + "', " +
              "CASE WHEN h % 100 = 7 THEN 'forbid: the previous run is still running' "
              "WHEN h % 20 = 3 THEN 'failed: exit 1' ELSE 'succeeded' END, "
              "CAST(printf('run %d of %s: done\n', m, " +
              name +
              ") AS BLOB), 4242, "
              "CASE WHEN h % 100 = 7 THEN NULL ELSE 0.004 END, "
              "CASE WHEN h % 100 = 7 THEN NULL ELSE 3145728 END FROM k",
          &runs);
  // started + finished (skipped runs: one skipped event), in the order the
  // daemon writes them.
  prepare(runs_of +
              "INSERT INTO events (at, kind, job, run_id, detail) "
              "SELECT at, kind, job, run_id, detail FROM ("
              "SELECT sched + 5 + k % 20 AS at, 0 AS o, k, "
              "CASE WHEN h % 100 = 7 THEN 'skipped' ELSE 'started' END AS kind, " +
              name + " AS job, " + run_id +
              " AS run_id, "
              "printf('{\"trigger\":\"schedule\",\"attempt\":1,\"scheduled_for\":\"%s\","
              "\"trace_id\":\"%012XT%013X\"}', strftime('%Y-%m-%dT%H:%M:%fZ', sched / 1000.0, "
              "'unixepoch'), sched, k) AS detail FROM k "
              "UNION ALL SELECT sched + 25 + k % 20 + h % 200, 1, k, 'finished', " +
              name + ", " + run_id + ", " +
              "printf('{\"outcome\":\"%s\",\"attempt\":1,\"exit_code\":%d,\"duration_ms\":%d}', " +
              outcome + ", h % 20 = 3, 20 + h % 200) FROM k WHERE h % 100 <> 7) ORDER BY at, k, o",
          &events);
  const auto t0 = Clock::now();
  for (long m = 0; m < o.runs_per_job; m += chunk) {
    exec_sql(db, "BEGIN");
    for (sqlite3_stmt* s : {slots, runs, events}) {
      sqlite3_bind_int64(s, 1, m);
      sqlite3_bind_int64(s, 2, std::min(o.runs_per_job, m + chunk));
      if (sqlite3_step(s) != SQLITE_DONE) {
        fmt::print(stderr, "insert failed: {}\n", sqlite3_errmsg(db));
        std::exit(1);
      }
      sqlite3_reset(s);
    }
    exec_sql(db, "COMMIT");
    const long done = std::min(o.runs_per_job, m + chunk) * o.jobs;
    if ((m / chunk) % 10 == 9 || done == o.runs_per_job * o.jobs) {
      fmt::print("  {:>9} runs written, {:.0f} s\n", done, ms_since(t0) / 1000);
      std::fflush(stdout);
    }
  }
  for (sqlite3_stmt* s : {slots, runs, events}) sqlite3_finalize(s);
  // No ANALYZE: the daemon never runs it, so the planner works without
  // statistics, as it does on a real ledger.
  exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& out) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawn");
    std::exit(2);
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// Milliseconds from exec to exit of one command (its output to `out`).
double timed_command(const std::vector<std::string>& args, const fs::path& out) {
  const auto t0 = Clock::now();
  const pid_t pid = spawn(args, out);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const double took = ms_since(t0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fmt::print("  ({} {} failed: see {})\n", args[1], args.size() > 4 ? args[4] : "", out.string());
  }
  return took;
}

// CPU time (user + system) of this process and of its children waited for,
// in ms: the share of a figure that other work on the machine does not
// stretch.
double cpu_ms() {
  timespec self{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &self);
  rusage children{};
  getrusage(RUSAGE_CHILDREN, &children);
  auto ms = [](const timeval& t) { return t.tv_sec * 1000.0 + t.tv_usec / 1000.0; };
  return self.tv_sec * 1000.0 + self.tv_nsec / 1e6 + ms(children.ru_utime) + ms(children.ru_stime);
}

// Drops the ledger's pages from the OS cache.
void evict(const fs::path& db) {
  for (const auto& p : {db, fs::path(db.string() + "-wal"), fs::path(db.string() + "-shm")}) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--jobs")
      o.jobs = std::max(1L, std::atol(value.c_str()));
    else if (flag == "--runs-per-job")
      o.runs_per_job = std::max(1L, std::atol(value.c_str()));
    else if (flag == "--reps")
      o.reps = std::max(1, std::atoi(value.c_str()));
    else if (flag == "--jobhost")
      o.jobhost = value;
    else if (flag == "--plugin")
      o.plugin = value;
    else if (flag == "--keep")
      o.keep = value;
    else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  if (argc % 2 == 0) {
    fmt::print(stderr, "flag {} needs a value\n", argv[argc - 1]);
    return 2;
  }
  // Removed at the end unless --keep names a directory (or BENCH_KEEP is set).
  std::optional<bench::TempDir> temp;
  if (o.keep.empty()) temp.emplace("bench-ledger-scale");
  const fs::path root = o.keep.empty() ? temp->path() : fs::path(o.keep);
  fs::create_directories(root);
  const fs::path config = write_config(root, o);
  const fs::path db = root / "state" / "jobhost.db";
  const fs::path out = root / "out.txt";
  const fs::path built = root / "state" / "built";
  const std::string shape = fmt::format("{} x {}", o.jobs, o.runs_per_job);
  fmt::print("bench_ledger_scale: {} jobs x {} runs = {} runs, in {}; load {}\n", o.jobs,
             o.runs_per_job, o.jobs * o.runs_per_job, root.string(), bench::load_average());

  std::ifstream marker(built);
  std::string have;
  std::getline(marker, have);
  if (have == shape && fs::exists(db)) {
    // As the daemon would open it: a ledger of an older schema is migrated.
    const auto t0 = Clock::now();
    auto store = ledger::open_sqlite_store(db, config::Durability::normal);
    if (!store) {
      fmt::print(stderr, "{}\n", store.error().message);
      return 1;
    }
    fmt::print("reusing the ledger built before ({}); opened read-write in {:.1f} s (migrations)\n",
               shape, ms_since(t0) / 1000);
  } else {
    fs::remove(db);
    fs::remove(db.string() + "-wal");
    fs::remove(db.string() + "-shm");
    const auto t0 = Clock::now();
    {
      auto store = ledger::open_sqlite_store(db, config::Durability::normal);
      if (!store) {
        fmt::print(stderr, "{}\n", store.error().message);
        return 1;
      }
    }
    fill_ledger(db, o);
    std::ofstream(built) << shape << "\n";
    fmt::print("built in {:.0f} s: {:.2f} GiB\n", ms_since(t0) / 1000,
               double(fs::file_size(db)) / (1 << 30));
  }
  const std::string job = job_name(o.jobs / 2);

  // In process, through the ledger library: what each command asks of it.
  auto history_in_process = [&] {
    auto store =
        ledger::open_sqlite_store(db, config::Durability::normal, ledger::Access::read_only);
    if (!store) {
      fmt::print("  {}\n", store.error().message);
      return;
    }
    auto runs = (*store)->history(std::string_view(job), 20);
    if (!runs || runs->size() != 20) fmt::print("  history: unexpected answer\n");
  };
  auto status_in_process = [&] {
    auto store =
        ledger::open_sqlite_store(db, config::Durability::normal, ledger::Access::read_only);
    if (!store) {
      fmt::print("  {}\n", store.error().message);
      return;
    }
    if (!(*store)->running_runs()) fmt::print("  running_runs failed\n");
    std::vector<std::string> names;
    for (long i = 0; i < o.jobs; ++i) names.push_back(job_name(i));
    auto stats = (*store)->job_stats_of(names);
    if (!stats || stats->size() != names.size() ||
        stats->back().window_runs != ledger::kStatsWindow) {
      fmt::print("  job_stats_of: unexpected answer\n");
    }
  };
  struct Case {
    std::string name;
    std::function<void()> run;
  };
  const std::string jh = o.jobhost, cf = config.string();
  std::vector<Case> cases = {
      {"history JOB",
       [&] {
         timed_command({jh, "history", "--config", cf, job}, out);
       }},
      {"history JOB, 1-job config",
       [&] {
         timed_command({jh, "history", "--config", (root / "one.toml").string(), job}, out);
       }},
      {"history JOB --json",
       [&] {
         timed_command({jh, "history", "--config", cf, job, "--json"}, out);
       }},
      {"status",
       [&] {
         timed_command({jh, "status", "--config", cf}, out);
       }},
      {"status --json",
       [&] {
         timed_command({jh, "status", "--config", cf, "--json"}, out);
       }},
      {"  in process: history(job, 20)", history_in_process},
      {"  in process: status's reads", status_in_process},
      {"  in process: open only",
       [&] {
         auto s =
             ledger::open_sqlite_store(db, config::Durability::normal, ledger::Access::read_only);
         if (!s) fmt::print("  {}\n", s.error().message);
       }},
      {"jobhost --help (process floor)",
       [&] {
         timed_command({jh, "--help"}, out);
       }},
  };
  std::vector<std::vector<double>> warm(cases.size()), cold(cases.size());
  std::vector<std::vector<double>> warm_cpu(cases.size()), cold_cpu(cases.size());
  auto timed = [&](std::size_t i, std::vector<double>& wall, std::vector<double>& cpu) {
    const double cpu0 = cpu_ms();
    const auto t0 = Clock::now();
    cases[i].run();
    wall.push_back(ms_since(t0));
    cpu.push_back(cpu_ms() - cpu0);
  };
  for (int rep = 0; rep < o.reps; ++rep) {
    for (std::size_t i = 0; i < cases.size(); ++i) {
      cases[i].run();  // untimed: loads what the command reads into the OS cache
      timed(i, warm[i], warm_cpu[i]);
      evict(db);
      timed(i, cold[i], cold_cpu[i]);
    }
  }
  fmt::print("{:<34} {:>9} {:>9} {:>9} {:>9}   (ms, median of {}; {} jobs, job {})\n", "", "warm",
             "cpu", "cold", "cpu", o.reps, o.jobs, job);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    fmt::print("{:<34} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f}\n", cases[i].name,
               bench::median(warm[i]), bench::median(warm_cpu[i]), bench::median(cold[i]),
               bench::median(cold_cpu[i]));
  }
  fmt::print("load {}\n", bench::load_average());
  return 0;
}
