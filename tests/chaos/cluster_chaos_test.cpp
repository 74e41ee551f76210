// The cluster chaos test (issue 15): three hosts share a PostgreSQL ledger
// and fire 20 per-second jobs, some flaky and retrying, for about a minute,
// while the test kill -9s hosts and restarts them, stops one (SIGSTOP) for
// longer than its lease and lets it go on, and restarts PostgreSQL itself.
// Each execution stamps (job, slot, attempt) into a file. The audit:
//   - no (job, slot, attempt) executed twice, and every execution is a run
//     in the ledger;
//   - no slot lost: every second of each job's window is claimed (run or
//     skipped);
//   - every run closed by a takeover was retried (its job retries) or ended
//     its chain, and was taken over within lease + heartbeat of its host's
//     death (plus the test's own slack);
//   - the work was spread over the hosts.
// It starts its own PostgreSQL server (it restarts it), with
// scripts/pg-test-server.sh; without server binaries it skips.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "ledger/pg_store.h"
#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost;
using namespace jobhost::testing;

namespace {

constexpr int kJobs = 20;
constexpr int kHosts = 3;
constexpr auto kHeartbeat = std::chrono::seconds(1);
#ifdef __SANITIZE_ADDRESS__
// Under the sanitizers a loaded host answers slower: a longer lease, so that
// none is taken over while it lives, and more slack.
constexpr auto kLease = std::chrono::seconds(8);
constexpr auto kTakeoverSlack = std::chrono::seconds(8);
#else
constexpr auto kLease = std::chrono::seconds(4);
// Scheduling noise on a loaded 2-core machine, on top of lease + heartbeat.
constexpr auto kTakeoverSlack = std::chrono::seconds(3);
#endif

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int run_script(const std::string& args) {
  const std::string command =
      std::string(JOBHOST_SOURCE_DIR) + "/scripts/pg-test-server.sh " + args + " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A PostgreSQL server of the test's own: it is restarted mid-test.
class OwnServer {
 public:
  OwnServer() {
    if (run_script("start " + dir_.path().string()) != 0) return;
    std::ifstream in(dir_.path() / "url");
    std::getline(in, url_);
  }
  ~OwnServer() { run_script("stop " + dir_.path().string()); }
  const std::string& url() const { return url_; }
  bool restart() { return run_script("restart " + dir_.path().string()) == 0; }

 private:
  TempDir dir_;
  std::string url_;
};

std::string jobs_toml(const fs::path& drop) {
  std::ostringstream out;
  out << "[defaults]\ntimeout = \"10s\"\nkill_grace = \"1s\"\nmisfire = \"run_all\"\n"
      << "misfire_limit = 100\n";
  for (int i = 0; i < kJobs; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "j%02d", i);
    const bool flaky = i % 4 != 3;
    out << "\n[jobs." << name << "]\nplugin = \"flaky\"\nschedule = \"* * * * * *\"\n"
        << "concurrency = \"allow\"\n"
        << "retry = { max_attempts = " << (i % 2 == 0 ? 3 : 1)
        << ", initial_delay = \"300ms\", max_delay = \"1s\" }\n"
        << "params = { tag = \"" << name << "\", stamp = \"" << (drop / name).string() << "\"";
    if (flaky) out << ", retry_percent = 30, fail_percent = 5, max_sleep_ms = 1500";
    out << " }\n";
  }
  return out.str();
}

struct Stamp {
  std::string job;
  int64_t slot = 0;
  int attempt = 0;
};

std::vector<Stamp> read_stamps(const fs::path& drop) {
  std::vector<Stamp> out;
  for (const auto& entry : fs::directory_iterator(drop)) {
    std::ifstream in(entry.path());
    Stamp s;
    int64_t pid = 0;
    while (in >> s.job >> s.slot >> s.attempt >> pid) out.push_back(s);
  }
  return out;
}

// One host: its own directory and state_dir, the shared ledger.
struct Host {
  std::string id;
  TempDir dir;
  fs::path config;
  std::optional<Daemon> daemon;
  int64_t died_at_ms = 0;  // the last kill -9 (or the end of the SIGSTOP's lease)

  void start() {
    daemon.reset();
    daemon.emplace(config);
  }
};

}  // namespace

TEST_CASE("cluster chaos: kill -9, SIGSTOP past the lease, a database restart; every slot once",
          "[cluster][chaos]") {
  OwnServer server;
  if (server.url().empty())
    JOBHOST_SKIP("no PostgreSQL server binaries (scripts/pg-test-server.sh)");
  TempDir shared;
  const fs::path drop = run_writable_dir(shared.path());
  const std::string jobs = jobs_toml(drop);
  std::vector<std::unique_ptr<Host>> hosts;
  for (int i = 0; i < kHosts; ++i) {
    auto host = std::make_unique<Host>();
    host->id = "host-" + std::to_string(i);
    install_plugins(host->dir.path(), {"flaky.so"});
    host->config = write_config(host->dir.path(), jobs,
                                "id = \"" + host->id + "\"\n\n[store]\nurl = \"" + server.url() +
                                    "\"\nheartbeat = \"1s\"\nlease = \"" +
                                    std::to_string(kLease.count()) + "s\"\n");
    hosts.push_back(std::move(host));
  }
  for (auto& h : hosts) h->start();
  for (auto& h : hosts) {
    if (!h->daemon->wait_ready(30s)) FAIL(h->daemon->log());
  }
  const int64_t began_ms = now_ms();
  std::map<std::string, std::vector<int64_t>> deaths;  // host id -> when it stopped renewing

  std::mt19937 rng(std::random_device{}());
  const auto pause = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  const auto kill_host = [&](Host& h) {
    h.daemon->signal(SIGKILL);
    h.daemon->wait_exit(10s);
    h.died_at_ms = now_ms();
    deaths[h.id].push_back(h.died_at_ms);
  };
  const auto pick = [&] { return std::uniform_int_distribution<int>(0, kHosts - 1)(rng); };

  pause(5s);
  // Killed and back before its lease runs out: it closes its own runs.
  Host& quick = *hosts[pick()];
  kill_host(quick);
  pause(1s);
  quick.start();
  REQUIRE(quick.daemon->wait_ready(30s));
  pause(5s);
  // Killed for longer than its lease: another host takes its runs over.
  Host& slow = *hosts[pick()];
  kill_host(slow);
  pause(kLease + 4s);
  slow.start();
  REQUIRE(slow.daemon->wait_ready(30s));
  pause(5s);
  // Stopped past its lease: taken over; when it goes on it finds its lease
  // lost, stops what it ran, and joins again.
  Host& stopped = *hosts[pick()];
  stopped.daemon->signal(SIGSTOP);
  deaths[stopped.id].push_back(now_ms());
  pause(kLease + 5s);
  stopped.daemon->signal(SIGCONT);
  pause(5s);
  // The database restarts under all three.
  REQUIRE(server.restart());
  pause(8s);
  // One more kill -9 past the lease, and back.
  Host& last = *hosts[pick()];
  kill_host(last);
  pause(kLease + 3s);
  last.start();
  REQUIRE(last.daemon->wait_ready(30s));
  pause(6s);
  const int64_t ended_ms = now_ms();
  for (auto& h : hosts) {
    h->daemon->signal(SIGTERM);
    CHECK(h->daemon->wait_exit(30s) == 0);
  }

  // ---- the audit -------------------------------------------------------
  {
    std::ofstream out("/tmp/cluster-chaos.log");
    for (auto& h : hosts) out << "==== " << h->id << "\n" << h->daemon->log();
  }
  auto store = ledger::open_pg_store(server.url(), ledger::Access::read_only);
  REQUIRE(store);
  auto runs = (*store)->history(std::nullopt, 1'000'000);
  REQUIRE(runs);

  // No attempt executed twice; every execution is a run of the ledger.
  std::map<std::tuple<std::string, int64_t, int>, int> executions;
  for (const auto& s : read_stamps(drop)) ++executions[{s.job, s.slot, s.attempt}];
  std::map<std::tuple<std::string, int64_t, int>, const ledger::RunRecord*> by_attempt;
  for (const auto& run : *runs) {
    by_attempt[{run.job, run.scheduled_for.time_since_epoch().count(), run.attempt}] = &run;
  }
  CHECK(executions.size() > 500);
  for (const auto& [key, count] : executions) {
    INFO(std::get<0>(key) << " @" << std::get<1>(key) << " attempt " << std::get<2>(key));
    CHECK(count == 1);
    CHECK(by_attempt.contains(key));
  }

  // No slot lost: each job's every second between the first minute's
  // slots and the last ones is claimed.
  std::map<std::string, std::set<int64_t>> slots;
  for (const auto& run : *runs) slots[run.job].insert(run.scheduled_for.time_since_epoch().count());
  REQUIRE(slots.size() == kJobs);
  const int64_t from = (began_ms / 1000 + 2) * 1000;
  const int64_t to = (ended_ms / 1000 - 3) * 1000;
  for (const auto& [job, seen] : slots) {
    std::vector<int64_t> missing;
    for (int64_t t = from; t <= to; t += 1000) {
      if (!seen.contains(t)) missing.push_back(t);
    }
    INFO(job << " misses " << missing.size() << " slot(s), first "
             << (missing.empty() ? 0 : missing.front()));
    CHECK(missing.empty());
  }

  std::set<std::pair<std::string, int64_t>> pending;
  auto retries = (*store)->pending_retries();
  REQUIRE(retries);
  for (const auto& r : *retries)
    pending.insert({r.job, r.scheduled_for.time_since_epoch().count()});

  // Every run closed by a takeover: retried if its job retries, and closed
  // within lease + heartbeat (+ slack) of its host's death.
  int taken_over = 0;
  for (const auto& run : *runs) {
    if (run.outcome != Outcome::interrupted) continue;
    if (run.message.find("taken over") == std::string::npos) continue;
    ++taken_over;
    INFO(run.job << " " << run.run_id << " attempt " << run.attempt << " of host "
                 << run.host.value_or("?"));
    const bool retries = std::stoi(run.job.substr(1)) % 2 == 0;
    if (retries && run.attempt < 3) {
      // Run, or still pending when the hosts stopped.
      CHECK((by_attempt.contains(
                 {run.job, run.scheduled_for.time_since_epoch().count(), run.attempt + 1}) ||
             pending.contains({run.job, run.scheduled_for.time_since_epoch().count()})));
    }
    const int64_t closed_ms = run.finished_at->time_since_epoch().count();
    const auto& died = deaths[run.host.value_or("")];
    bool within = false;
    for (int64_t d : died) {
      within |=
          closed_ms >= d &&
          closed_ms - d <= std::chrono::milliseconds(kLease + kHeartbeat + kTakeoverSlack).count();
    }
    CHECK(within);
  }
  CHECK(taken_over > 0);

  // Spread: every host ran a fair share.
  std::map<std::string, int> per_host;
  for (const auto& run : *runs) ++per_host[run.host.value_or("?")];
  for (auto& h : hosts) {
    INFO(h->id << " ran " << per_host[h->id] << " of " << runs->size());
    CHECK(per_host[h->id] > static_cast<int>(runs->size()) / 10);
  }
}
