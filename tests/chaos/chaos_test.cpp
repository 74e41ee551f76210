// The chaos test (issue 5): a daemon with 20 per-second jobs, some flaky, is
// kill -9'ed at random moments and restarted (sometimes after a downtime),
// then stopped cleanly; the ledger must show that every guarantee of
// docs/reliability.md held throughout.
//
// JOBHOST_CHAOS_SEED=<n> replays the kill moments of an earlier run (the runs
// themselves fail at random, so the ledger differs from one run to the next).
#include <signal.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "support/harness.h"

using namespace jobhost::testing;

namespace {

constexpr int kJobs = 20;
constexpr int kKills = 20;
constexpr int kMinKillMs = 300;
constexpr int kMaxKillMs = 3000;
constexpr int kMaxDowntimeMs = 2500;
// Enough for every slot missed during a restart, so run_all never skips one.
constexpr int kMisfireLimit = 100;
// How long a due retry may wait for a free run slot in the last daemon.
constexpr int64_t kRetryLateness = 2000;

const char* const kMisfires[] = {"skip", "run_once", "run_all"};

struct JobSpec {
  std::string name;
  std::string misfire;
  bool forbid = true;
  int max_attempts = 1;
};

// Job i: misfire cycles skip/run_once/run_all, concurrency forbid/allow (all
// six pairs every six jobs). Three in four are flaky (RETRY 40%, FAIL 5%,
// sleep up to 700 ms, a grandchild 10% of the time); the others succeed
// after up to 300 ms.
std::vector<JobSpec> job_specs() {
  std::vector<JobSpec> jobs;
  for (int i = 0; i < kJobs; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "j%02d", i);
    jobs.push_back({name, kMisfires[i % 3], i % 2 == 0, i % 4 == 3 ? 1 : 2 + i % 3});
  }
  return jobs;
}

std::string jobs_toml(const std::vector<JobSpec>& jobs, const fs::path& pid_log) {
  const char* const jitters[] = {"full", "equal", "none"};
  std::ostringstream out;
  out << "[defaults]\ntimeout = \"10s\"\nkill_grace = \"1s\"\ncatchup_spread = \"500ms\"\n";
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& job = jobs[i];
    const bool flaky = i % 4 != 3;
    out << "\n[jobs." << job.name << "]\nplugin = \"flaky\"\nschedule = \"* * * * * *\"\n"
        << "misfire = \"" << job.misfire << "\"\nmisfire_limit = " << kMisfireLimit << "\n"
        << "concurrency = \"" << (job.forbid ? "forbid" : "allow") << "\"\n"
        << "retry = { max_attempts = " << job.max_attempts << ", initial_delay = \""
        << 200 + 100 * (i % 4) << "ms\", max_delay = \"2s\", jitter = \"" << jitters[i % 3]
        << "\" }\n";
    if (flaky) {
      out << "params = { retry_percent = 40, fail_percent = 5, max_sleep_ms = 700, "
             "grandchild_percent = 10, pid_log = \""
          << pid_log.string() << "\" }\n";
    } else {
      out << "params = { max_sleep_ms = 300, pid_log = \"" << pid_log.string() << "\" }\n";
    }
  }
  return out.str();
}

uint64_t chaos_seed() {
  if (const char* env = std::getenv("JOBHOST_CHAOS_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Field 22 of /proc/<pid>/stat, empty if there is no such live process.
std::string start_time_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return "";
  auto pos = line.rfind(')');
  if (pos == std::string::npos || pos + 2 >= line.size() || line[pos + 2] == 'Z') return "";
  std::istringstream rest(line.substr(pos + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) rest >> field;
  return field;
}

// Live processes whose command line mentions `needle`: the daemon's forked
// children (runs, their grandchildren, probes) keep the daemon's command line.
std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    pid_t pid = std::stoi(name);
    if (cmdline.find(needle) != std::string::npos && process_alive(pid)) out.push_back(pid);
  }
  return out;
}

struct Row {
  std::string job;
  int64_t slot = 0;
  int attempt = 0;
  std::string trace_id;
  std::string trigger;
  std::optional<std::string> outcome;
  std::optional<int64_t> finished_at;
  std::string message;
  int64_t started_at = 0;
  int64_t host_pid = 0;
};

struct Pending {
  int next_attempt = 0;
  std::string trace_id;
  int64_t due_at = 0;
};

struct Ledger {
  std::vector<Row> runs;
  std::map<std::pair<std::string, int64_t>, std::string> slots;  // -> trace id
  std::map<std::pair<std::string, int64_t>, Pending> pending;
};

Ledger read_ledger(const fs::path& db_path) {
  SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
  Ledger ledger;
  SQLite::Statement runs(db,
                         "SELECT job, scheduled_for, attempt, trace_id, trigger, outcome, "
                         "finished_at, message, started_at, host_pid FROM runs");
  while (runs.executeStep()) {
    Row row;
    row.job = runs.getColumn(0).getString();
    row.slot = runs.getColumn(1).getInt64();
    row.attempt = runs.getColumn(2).getInt();
    row.trace_id = runs.getColumn(3).getString();
    row.trigger = runs.getColumn(4).getString();
    if (!runs.getColumn(5).isNull()) row.outcome = runs.getColumn(5).getString();
    if (!runs.getColumn(6).isNull()) row.finished_at = runs.getColumn(6).getInt64();
    row.message = runs.getColumn(7).getString();
    row.started_at = runs.getColumn(8).getInt64();
    row.host_pid = runs.getColumn(9).getInt64();
    ledger.runs.push_back(std::move(row));
  }
  SQLite::Statement slots(db, "SELECT job, scheduled_for, trace_id FROM slots");
  while (slots.executeStep()) {
    ledger.slots[{slots.getColumn(0).getString(), slots.getColumn(1).getInt64()}] =
        slots.getColumn(2).getString();
  }
  SQLite::Statement pending(db,
                            "SELECT job, scheduled_for, next_attempt, trace_id, due_at FROM "
                            "pending_retries");
  while (pending.executeStep()) {
    ledger.pending[{pending.getColumn(0).getString(), pending.getColumn(1).getInt64()}] =
        Pending{pending.getColumn(2).getInt(), pending.getColumn(3).getString(),
                pending.getColumn(4).getInt64()};
  }
  return ledger;
}

std::string slot_name(const std::string& job, int64_t slot) {
  return job + " @" + std::to_string(slot);
}

// Outcomes after which the engine retries while attempts remain (see
// docs/reliability.md, Retries): RETRY, an exit without a result, a timeout,
// a stall, a crash, a limit. `interrupted` ends a chain: the host went away
// or stopped the run, the job did not fail.
bool retryable(const Row& row) {
  if (!row.outcome) return false;
  const std::string& o = *row.outcome;
  if (o == "failed") {
    return row.message.starts_with("returned RETRY") ||
           row.message.find("without reporting a result") != std::string::npos;
  }
  return o == "timed_out" || o == "stalled" || o == "crashed" || o == "limit_exceeded";
}

// What the audit found: a list of problems per guarantee, and counts to print.
struct Audit {
  std::map<std::string, std::vector<std::string>> problems;
  std::map<std::string, long> counts;

  void fail(const std::string& guarantee, std::string what) {
    auto& list = problems[guarantee];
    if (list.size() < 20) list.push_back(std::move(what));
    ++counts["problems: " + guarantee];
  }
};

// `final_start`, `final_stop`: when the last daemon was ready and when it
// got SIGTERM (wall clock, ms).
void audit_ledger(const Ledger& ledger, const std::vector<JobSpec>& jobs, int64_t final_start,
                  int64_t final_stop, Audit& audit) {
  std::map<std::string, const JobSpec*> spec;
  for (const auto& job : jobs) spec[job.name] = &job;

  // Slot -> its rows, by attempt.
  std::map<std::pair<std::string, int64_t>, std::map<int, const Row*>> chains;
  for (const auto& row : ledger.runs) {
    auto key = std::make_pair(row.job, row.slot);
    if (!chains[key].emplace(row.attempt, &row).second) {
      audit.fail("no duplicate (job, scheduled_for, attempt)",
                 slot_name(row.job, row.slot) + " attempt " + std::to_string(row.attempt));
    }
    if (!row.outcome || !row.finished_at) {
      audit.fail("no run left open", slot_name(row.job, row.slot) + " attempt " +
                                         std::to_string(row.attempt) + " (" + row.trigger + ")");
    }
    if (row.outcome == "skipped" && row.message.empty()) {
      audit.fail("every skip has a reason", slot_name(row.job, row.slot));
    }
    // A re-fire under a slightly different instant would dodge the unique key.
    if (row.slot % 1000 != 0) {
      audit.fail("slots are whole seconds", slot_name(row.job, row.slot));
    }
    if (!spec.contains(row.job)) audit.fail("only configured jobs run", row.job);

    ++audit.counts["rows"];
    if (row.outcome == "skipped") {
      ++audit.counts["skipped"];
      if (row.message.starts_with("missed")) {
        ++audit.counts["skipped: missed (misfire)"];
      } else if (row.message.find("concurrency = forbid") != std::string::npos) {
        ++audit.counts["skipped: forbid"];
      } else {
        ++audit.counts["skipped: other"];
      }
    } else {
      ++audit.counts["runs"];
      if (row.outcome) ++audit.counts["runs: " + *row.outcome];
      if (row.attempt > 1) ++audit.counts["retries"];
      if (row.trigger == "catchup") ++audit.counts["catch-up runs"];
    }
  }
  audit.counts["slots"] = static_cast<long>(chains.size());
  audit.counts["pending retries"] = static_cast<long>(ledger.pending.size());

  // Every slot row has its runs and the other way round, with one trace id.
  for (const auto& [key, trace] : ledger.slots) {
    if (!chains.contains(key))
      audit.fail("every claimed slot has a run row", slot_name(key.first, key.second));
  }

  // Retry chains: attempts 1..n with the slot's trace id; the last one ended
  // for good, or its retry is pending in the ledger.
  for (const auto& [key, attempts] : chains) {
    const std::string name = slot_name(key.first, key.second);
    auto slot_trace = ledger.slots.find(key);
    if (slot_trace == ledger.slots.end()) {
      audit.fail("every run row has a claimed slot", name);
      continue;
    }
    int expected = 1;
    for (const auto& [attempt, row] : attempts) {
      if (attempt != expected++) {
        audit.fail("retry chains are contiguous",
                   name + " has no attempt " + std::to_string(expected - 1));
        break;
      }
      if (row->trace_id != slot_trace->second) {
        audit.fail("one trace id per chain", name + " attempt " + std::to_string(attempt));
      }
      if ((attempt > 1) != (row->trigger == "retry")) {
        audit.fail("attempts after the first are retries",
                   name + " attempt " + std::to_string(attempt) + " trigger " + row->trigger);
      }
    }
    const Row& last = *attempts.rbegin()->second;
    const int max_attempts = spec.contains(key.first) ? spec.at(key.first)->max_attempts : 1;
    auto pending = ledger.pending.find(key);
    const bool wants_retry = retryable(last) && last.attempt < max_attempts;
    if (wants_retry && pending == ledger.pending.end()) {
      audit.fail("retry chains are complete or pending",
                 name + " attempt " + std::to_string(last.attempt) + " of " +
                     std::to_string(max_attempts) + " ended " + last.outcome.value_or("open") +
                     " (" + last.message + ") and no retry is pending");
    }
    if (pending != ledger.pending.end()) {
      if (!wants_retry || pending->second.next_attempt != last.attempt + 1 ||
          pending->second.trace_id != slot_trace->second) {
        audit.fail("a pending retry continues its chain",
                   name + " pending attempt " + std::to_string(pending->second.next_attempt) +
                       " after attempt " + std::to_string(last.attempt) + " " +
                       last.outcome.value_or("open"));
      }
    }
  }
  for (const auto& [key, p] : ledger.pending) {
    // The last daemon ran the retries that came due while it ran (allowing
    // for a queue behind max_concurrency); older pending ones were forgotten.
    if (p.due_at < final_stop - kRetryLateness) {
      audit.fail("retries left pending came due only at the end",
                 slot_name(key.first, key.second) + " attempt " + std::to_string(p.next_attempt) +
                     " due " + std::to_string(final_stop - p.due_at) + " ms before the stop");
    }
    if (!chains.contains(key))
      audit.fail("a pending retry continues its chain", slot_name(key.first, key.second));
  }

  // No gap: every second from a job's first slot to its last is in the
  // ledger, run or skipped, whatever the misfire and concurrency policies.
  std::map<std::string, std::vector<int64_t>> slots_of;
  for (const auto& [key, attempts] : chains) slots_of[key.first].push_back(key.second);
  for (const auto& job : jobs) {
    auto& slots = slots_of[job.name];
    if (slots.empty()) {
      audit.fail("every job fired", job.name);
      continue;
    }
    for (std::size_t i = 1; i < slots.size(); ++i) {
      if (slots[i] - slots[i - 1] != 1000) {
        audit.fail(
            "no gap between a job's first and last slot",
            job.name + " from " + std::to_string(slots[i - 1]) + " to " + std::to_string(slots[i]));
      }
    }
    // The last daemon kept the schedule going.
    if (slots.back() < final_start) {
      audit.fail("the last daemon fired every job", job.name);
    }
  }

  // What each misfire policy may do with the slots missed while down.
  std::map<std::pair<std::string, int64_t>, int> catchup_runs;  // (job, host pid)
  for (const auto& row : ledger.runs) {
    if (row.trigger != "catchup" || row.attempt != 1) continue;
    const auto& policy = spec.at(row.job)->misfire;
    const bool missed = row.outcome == "skipped" && row.message.starts_with("missed");
    if (policy == "skip" && !missed) {
      audit.fail("misfire = skip runs no missed slot",
                 slot_name(row.job, row.slot) + ": " + row.outcome.value_or("open"));
    }
    if (policy == "run_all" && missed) {
      audit.fail("misfire = run_all runs every missed slot (within misfire_limit)",
                 slot_name(row.job, row.slot) + ": " + row.message);
    }
    if (policy == "run_once" && !missed && ++catchup_runs[{row.job, row.host_pid}] == 2) {
      audit.fail("misfire = run_once runs one missed slot per start",
                 row.job + " under host pid " + std::to_string(row.host_pid));
    }
  }
}

}  // namespace

TEST_CASE("chaos: kill -9 at random moments, restart, and the ledger keeps every guarantee",
          "[chaos]") {
  const uint64_t seed = chaos_seed();
  std::cout << "chaos: seed " << seed << " (JOBHOST_CHAOS_SEED=" << seed
            << " replays the kill moments)" << std::endl;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> kill_after(kMinKillMs, kMaxKillMs);
  std::uniform_int_distribution<int> downtime(0, kMaxDowntimeMs);
  long downtime_ms = 0;

  TempDir dir;
  install_plugins(dir.path(), {"flaky.so"});
  // Every job appends to it, each as its own dynamic user (when root).
  const fs::path pid_log = dir.path() / "pids.log";
  std::ofstream(pid_log).close();
  fs::permissions(pid_log, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                               fs::perms::group_write | fs::perms::others_read |
                               fs::perms::others_write);
  const auto jobs = job_specs();
  // durability = "normal": a kill -9 loses nothing that was committed (the
  // WAL is in the OS page cache), which is all this test can do to the host;
  // "full" only adds the fsyncs that guard against a power cut.
  const auto config = write_config(dir.path(), jobs_toml(jobs, pid_log),
                                   "max_concurrency = 16\ndurability = \"normal\"\n");
  const std::string config_needle = config.string();

  const auto test_start = std::chrono::steady_clock::now();
  std::vector<int64_t> kill_times;  // wall clock ms
  std::vector<pid_t> daemon_pids;
  std::vector<std::pair<pid_t, std::string>> seen_children;  // pid, start time
  for (int kill = 0; kill < kKills; ++kill) {
    Daemon daemon(config);
    daemon_pids.push_back(daemon.pid());
    const int after = kill_after(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(after));
    INFO("daemon " << kill << " pid " << daemon.pid() << " log:\n" << daemon.log());
    REQUIRE(daemon.alive());
    for (pid_t child : children_of(daemon.pid())) {
      seen_children.emplace_back(child, start_time_of(child));
    }
    daemon.signal(SIGKILL);
    kill_times.push_back(now_ms());
    REQUIRE(!daemon.wait_exit(10s).has_value());  // died of the signal
    // Half the restarts are immediate; the others wait, as a supervisor's
    // restart delay would, so that slots are missed and misfire policies act.
    if (rng() % 2 == 0) {
      const int down = downtime(rng);
      downtime_ms += down;
      std::this_thread::sleep_for(std::chrono::milliseconds(down));
    }
  }

  // A last start closes the orphans and catches up; then a clean stop.
  int64_t final_start = 0;
  int64_t final_stop = 0;
  {
    Daemon daemon(config);
    daemon_pids.push_back(daemon.pid());
    REQUIRE(daemon.wait_ready());
    final_start = now_ms();
    std::this_thread::sleep_for(4s);
    final_stop = now_ms();
    daemon.signal(SIGTERM);
    INFO(daemon.log());
    REQUIRE(daemon.wait_exit(30s) == 0);
  }
  const auto chaos_took = std::chrono::steady_clock::now() - test_start;

  Audit audit;
  audit_ledger(read_ledger(dir.path() / "var" / "jobhost.db"), jobs, final_start, final_stop,
               audit);

  // No process of any daemon outlives it: runs, their grandchildren, probes.
  std::this_thread::sleep_for(200ms);  // SIGKILLs in flight land
  for (pid_t pid : processes_mentioning(config_needle)) {
    audit.fail("no child of a dead daemon is alive", "pid " + std::to_string(pid));
  }
  std::ifstream pids(pid_log);
  pid_t pid = 0;
  std::string start_time;
  long logged = 0;
  while (pids >> pid >> start_time) {
    ++logged;
    if (start_time_of(pid) == start_time) {
      audit.fail("no child of a dead daemon is alive", "run process " + std::to_string(pid));
    }
  }
  for (const auto& [child, started] : seen_children) {
    if (!started.empty() && start_time_of(child) == started) {
      audit.fail("no child of a dead daemon is alive", "child " + std::to_string(child));
    }
  }
  for (pid_t daemon_pid : daemon_pids) {
    if (process_alive(daemon_pid)) audit.fail("every daemon is gone", std::to_string(daemon_pid));
  }

  // The longest stretch from a kill to the next ledger write of a new daemon
  // (the added downtime included).
  auto ledger = read_ledger(dir.path() / "var" / "jobhost.db");
  std::vector<int64_t> starts;
  for (const auto& row : ledger.runs) starts.push_back(row.started_at);
  std::sort(starts.begin(), starts.end());
  int64_t max_gap = 0;
  for (int64_t k : kill_times) {
    auto next = std::upper_bound(starts.begin(), starts.end(), k);
    if (next != starts.end()) max_gap = std::max(max_gap, *next - k);
  }

  audit.counts["kills"] = kKills;
  audit.counts["downtime added between kill and restart (ms)"] = downtime_ms;
  audit.counts["daemons"] = static_cast<long>(daemon_pids.size());
  audit.counts["processes logged by runs"] = logged;
  audit.counts["children seen at kills"] = static_cast<long>(seen_children.size());
  audit.counts["max restart gap (ms, kill to next ledger write)"] = max_gap;
  audit.counts["chaos phase (ms)"] =
      static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(chaos_took).count());
  std::cout << "chaos: seed " << seed << "\n";
  for (const auto& [name, count] : audit.counts) std::cout << "  " << name << ": " << count << "\n";
  std::cout << std::flush;

  const std::string guarantees[] = {
      "no duplicate (job, scheduled_for, attempt)",
      "no run left open",
      "every skip has a reason",
      "slots are whole seconds",
      "only configured jobs run",
      "every claimed slot has a run row",
      "every run row has a claimed slot",
      "retry chains are contiguous",
      "one trace id per chain",
      "attempts after the first are retries",
      "retry chains are complete or pending",
      "a pending retry continues its chain",
      "retries left pending came due only at the end",
      "every job fired",
      "no gap between a job's first and last slot",
      "the last daemon fired every job",
      "misfire = skip runs no missed slot",
      "misfire = run_all runs every missed slot (within misfire_limit)",
      "misfire = run_once runs one missed slot per start",
      "no child of a dead daemon is alive",
      "every daemon is gone",
  };
  for (const auto& guarantee : guarantees) {
    INFO("seed " << seed << ": " << guarantee);
    auto it = audit.problems.find(guarantee);
    std::string found;
    if (it != audit.problems.end()) {
      for (const auto& p : it->second) found += "\n  " + p;
    }
    INFO("violations:" << found);
    CHECK(found.empty());
  }
  // Catch a guarantee recorded under a name the list above does not have.
  for (const auto& [guarantee, list] : audit.problems) {
    INFO(guarantee);
    CHECK(std::find(std::begin(guarantees), std::end(guarantees), guarantee) !=
          std::end(guarantees));
  }
  if (!audit.problems.empty()) {
    const fs::path keep = fs::temp_directory_path() / ("jobhost-chaos-" + std::to_string(seed));
    fs::create_directories(keep);
    for (const char* file :
         {"var/jobhost.db", "var/jobhost.db-wal", "daemon.log", "jobhost.toml", "pids.log"}) {
      std::error_code ec;
      fs::copy_file(dir.path() / file, keep / fs::path(file).filename(),
                    fs::copy_options::overwrite_existing, ec);
    }
    std::cout << "chaos: ledger, config and daemon log kept in " << keep.string() << std::endl;
  }
}
