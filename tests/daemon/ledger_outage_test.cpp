// The daemon while its ledger refuses writes: loud, no crash, nothing lost.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.h"
#include "support/ledger_faults.h"
#include "support/skip.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

// The daemon's ledger backlog, from `jobhost status --json`; null when the
// daemon did not answer.
json ledger_backlog(const fs::path& config) {
  auto status = run_jobhost({"status", "--config", config.string(), "--json"});
  if (status.exit_code != 0) return nullptr;
  return json::parse(status.out)["daemon"].value("ledger_backlog", json(nullptr));
}

int backlog_records(const fs::path& config) {
  auto backlog = ledger_backlog(config);
  return backlog.is_object() ? backlog.value("records", -1) : -1;
}

// Locked by another process, or made read-only under the daemon.
void check_outage(bool read_only) {
  INFO((read_only ? "ledger made read-only (chattr +i)" : "ledger locked by another process"));
  // Runs last 6 s on a 1 s schedule. While one runs, each fire is recorded as
  // skipped at once: records to keep every second. Once it ends (its end is
  // kept too), the next fire waits for its claim and the later ones are
  // skipped behind it, in order.
  TestHost host({"sleeper.so"}, R"(
[jobs.slow]
plugin = "sleeper"
schedule = "* * * * * *"
concurrency = "forbid"
timeout = "10s"
params = { seconds = 6 }
)");
  const fs::path& config = host.config();
  Daemon& daemon = host.daemon();
  REQUIRE(wait_for([&] { return finished(history(config, "slow"), "slow").size() >= 2; }, 20s));

  {
    std::optional<LedgerWriteLock> lock;
    std::optional<LedgerReadOnly> frozen;
    if (read_only) {
      frozen.emplace(host.dir() / "var");
      if (!frozen->available()) {
        JOBHOST_SKIP("chattr +i is not available here (needs root and ext4/xfs/tmpfs)");
      }
    } else {
      lock.emplace(host.dir() / "var" / "jobhost.db");
    }
    // Skipped slots, then the run's end, come while the ledger refuses them.
    REQUIRE(wait_for(
        [&] {
          return daemon.log().find("kept in memory until the ledger accepts it: end of run") !=
                 std::string::npos;
        },
        30s));
    auto backlog = ledger_backlog(config);
    CHECK(backlog["records"].get<int>() >= 2);
    CHECK(backlog["refusing_since"].is_string());
    CHECK(backlog["oldest_kept_since"].is_string());
    CHECK(backlog["oldest_age_ms"].get<int64_t>() >= 0);
    auto text = run_jobhost({"status", "--config", config.string()});
    CHECK(text.out.find("ledger: refusing writes since") != std::string::npos);
    CHECK(daemon.alive());
    // Not an assertion: lets a few fires wait for their claim.
    std::this_thread::sleep_for(3s);
    if (lock) lock->release();
    if (frozen) frozen->release();
  }

  REQUIRE(wait_for([&] { return backlog_records(config) == 0; }, 30s));
  CHECK(ledger_backlog(config)["refusing_since"].is_null());
  // Fires go on after the outage: a run claimed after it finishes.
  std::size_t before = finished(history(config, "slow"), "slow").size();
  REQUIRE(
      wait_for([&] { return finished(history(config, "slow"), "slow").size() > before + 2; }, 30s));
  host.stop();

  // Loud once when it starts, once when it ends; one line per kept record.
  auto log = daemon.log();
  CHECK(log.find(read_only ? "disk I/O error" : "database is locked by another process") !=
        std::string::npos);
  CHECK(log.find("until the ledger accepts writes again") != std::string::npos);
  CHECK(log.find("kept in memory until the ledger accepts it") != std::string::npos);
  CHECK(log.find("the ledger accepts writes again after") != std::string::npos);
  CHECK(log.find("not recorded in the ledger") == std::string::npos);

  // Nothing lost, nothing doubled, nothing left open: every second from the
  // first slot to the last is in the ledger once, run or skipped.
  auto runs = history(config, "slow", 100000);
  int skipped = 0;
  for (const auto& run : runs) {
    CHECK(run["outcome"].is_string());
    CHECK(run["trigger"] == "schedule");
    if (run["outcome"] == "skipped") ++skipped;
  }
  CHECK(skipped >= 5);
  REQUIRE(runs.size() >= 10);
  CHECK(every_second_once(runs) == "");
}

}  // namespace

TEST_CASE("a ledger that refuses writes loses nothing once it accepts them again",
          "[daemon][ledger]") {
  check_outage(false);
}

TEST_CASE("a ledger made read-only loses nothing once it accepts writes again",
          "[daemon][ledger][needs-chattr]") {
  check_outage(true);
}
