// A host cut off from the database (issue 15): host-b reaches PostgreSQL
// through a TCP proxy the test cuts (connections closed, new ones closed at
// once) for longer than the lease. host-b stops claiming and stops its run;
// host-a takes it over and retries it; when the proxy heals, host-b finds its
// lease lost, joins again as a new incarnation and claims again. Every slot
// of a per-second job is recorded once throughout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "support/harness.h"
#include "support/http_client.h"
#include "support/skip.h"
#include "support/tcp_proxy.h"
#include "support/test_ledger.h"

using namespace jobhost;
using namespace jobhost::testing;
using json = nlohmann::json;

namespace {

std::string host_state(const fs::path& config, const std::string& id) {
  const json host = cluster_host(cluster_status(config), id);
  return host.is_null() ? "" : host["state"].get<std::string>();
}

}  // namespace

TEST_CASE("a host cut off from the database stops, is taken over, and rejoins", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const std::string url = ledger.url();
  // postgresql://user@127.0.0.1:PORT/db: host-b goes through the proxy.
  Proxy proxy(url);
  const std::string proxied = proxy.url();
  const std::string jobs = R"(
[jobs.tick]
plugin = "sleeper"
schedule = "* * * * * *"
concurrency = "allow"
retry = { max_attempts = 1 }  # one record per slot: a tick the cut stops is not retried
params = { seconds = 0.2 }

[jobs.long]
plugin = "sleeper"
schedule = "@manual"
retry = { max_attempts = 2, initial_delay = "100ms" }
params = { seconds = 60 }
)";
  const auto host = [](const char* id, const std::string& store) {
    return "id = \"" + std::string(id) + "\"\n\n[store]\nurl = \"" + store +
           "\"\nheartbeat = \"500ms\"\nlease = \"2s\"\n";
  };
  TestHost a({"sleeper.so"}, jobs, host("host-a", url));
  TestHost b({"sleeper.so"}, jobs, host("host-b", proxied));
  REQUIRE(trigger(b.config(), "long").exit_code == 0);
  REQUIRE(wait_for(
      [&] {
        auto runs = history(a.config(), "long");
        return runs.size() == 1 && runs[0]["host"] == "host-b";
      },
      10s));

  proxy.cut();
  if (!wait_for([&] { return host_state(a.config(), "host-b") == "taken over"; }, 15s)) {
    FAIL(cluster_status(a.config()).dump() << "\n" << a.log() << "\n---\n" << b.log());
  }
  REQUIRE(wait_for(
      [&] {
        return b.log().find("fenced: this host's lease could not be renewed") != std::string::npos;
      },
      15s));
  CHECK_THAT(b.log(), Catch::Contains("the 1 run(s) in flight are stopped"));
  // host-a retried the run taken over.
  REQUIRE(wait_for(
      [&] {
        auto runs = history(a.config(), "long");
        return runs.size() == 2 && runs[0]["host"] == "host-a";
      },
      10s));
  auto runs = history(a.config(), "long");
  CHECK(runs[0]["attempt"] == 2);
  CHECK(runs[1]["outcome"] == "interrupted");
  CHECK_THAT(runs[1]["message"].get<std::string>(), Catch::Contains("taken over by host host-a"));
  std::this_thread::sleep_for(2s);  // host-a alone for a while

  proxy.heal();
  REQUIRE(wait_for([&] { return host_state(a.config(), "host-b") == "live"; }, 20s));
  CHECK_THAT(b.log(), Catch::Contains("lost its lease"));
  // host-b claims again: some tick slots after the heal are its.
  const auto healed = std::chrono::system_clock::now();
  REQUIRE(wait_for(
      [&] {
        const json ticks = history(a.config(), "tick", 200);
        for (const auto& run : ticks) {
          if (run["host"] == "host-b" &&
              run["scheduled_for"].get<std::string>() >
                  ledger::format_utc(
                      TimePoint(std::chrono::duration_cast<Duration>(healed.time_since_epoch())))) {
            return true;
          }
        }
        return false;
      },
      20s));
  a.stop();
  b.stop();
  const std::string audit = every_second_once(history(a.config(), "tick", 100000));
  INFO(a.log() << "\n---\n" << b.log());
  CHECK(audit == "");
}

TEST_CASE("a database that stalls holds no timer of a run in flight", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const std::string url = ledger.url();
  Proxy proxy(url);
  const std::string proxied = proxy.url();
  // A lease far longer than the stall: the host is not fenced, and its
  // heartbeats fall due during the stall.
  TestHost host({"sleeper.so"}, R"(
[http]
listen = "127.0.0.1:0"

[jobs.bounded]
plugin = "sleeper"
schedule = "@manual"
timeout = "3s"
kill_grace = "500ms"
retry = { max_attempts = 1 }
params = { seconds = 60 }
)",
                "id = \"host-a\"\n\n[store]\nurl = \"" + proxied +
                    "\"\nheartbeat = \"1s\"\nlease = \"30s\"\n");
  REQUIRE(trigger(host.config(), "bounded").exit_code == 0);
  REQUIRE(wait_for([&] { return history(host.config(), "bounded").size() == 1; }, 10s));
  // Its timeout falls within the stall: the loop kills it on time (a loop
  // waiting on the database would kill it only after the stall).
  const auto port = wait_http_port(host.daemon());
  REQUIRE(port);
  proxy.stall();
  // A reload waits for its reads of the ledger (on the ledger worker), not
  // the loop: a loop waiting on the database would answer nothing below.
  std::ofstream(host.config(), std::ios::app) << R"(
[jobs.added]
plugin = "sleeper"
schedule = "@manual"
)";
  // A request that reads the ledger waits for it (on the API's read worker),
  // not the loop: the metrics answer meanwhile.
  auto runs_read = std::async(std::launch::async, [&] { return http_get(*port, "/api/v1/runs"); });
  std::this_thread::sleep_for(1s);
  HttpConnection connection(*port, "127.0.0.1", 2s);
  const auto metrics = connection.request("GET", "/metrics", "", {}, 2s);
  CHECK(metrics.status == 200);  // 0 after 2 s without an answer
  // /readyz answers too: its write probe goes to a worker, and one that
  // does not come back within two intervals (2 s) makes it not ready.
  CHECK(connection.request("GET", "/readyz", "", {}, 2s).status != 0);
  std::this_thread::sleep_for(3s);
  const auto ready = connection.request("GET", "/readyz", "", {}, 2s);
  CHECK(ready.status == 503);
  CHECK_THAT(ready.body, Catch::Contains("has not answered a write probe"));
  std::this_thread::sleep_for(2s);
  proxy.resume();
  CHECK(runs_read.get().status == 200);
  REQUIRE(wait_for(
      [&] {
        auto runs = history(host.config(), "bounded");
        return runs.size() == 1 && runs[0]["outcome"] == "timed_out";
      },
      20s));
  const json run = history(host.config(), "bounded")[0];
  INFO(run.dump() << "\n" << host.log());
  CHECK(run["duration_ms"].get<int64_t>() < 4500);
  CHECK_THAT(host.log(), !Catch::Contains("fenced"));
  CHECK_THAT(host.log(), Catch::Contains("config reloaded: jobs added: added"));
}

TEST_CASE("a host stopped while its database hangs exits within the answer timeout", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const std::string url = ledger.url();
  Proxy proxy(url);
  const std::string proxied = proxy.url();
  TestHost host({"sleeper.so"}, R"(
[jobs.tick]
plugin = "sleeper"
schedule = "* * * * * *"
params = { seconds = 0.1 }
)",
                "id = \"host-a\"\n\n[store]\nurl = \"" + proxied +
                    "\"\nheartbeat = \"500ms\"\nlease = \"30s\"\n");
  REQUIRE(wait_for([&] { return history(host.config(), "tick").size() >= 2; }, 10s));
  // The server neither answers nor closes (a stopped process whose kernel
  // still acknowledges): every call waits for its answer timeout, not for
  // ever, and the stop goes through with what could not be written logged.
  proxy.stall();
  std::this_thread::sleep_for(1s);
  const auto asked = std::chrono::steady_clock::now();
  host.stop(0, 40s);
  const auto took = std::chrono::steady_clock::now() - asked;
  proxy.resume();
  INFO(host.log());
  CHECK(took < 35s);
  CHECK_THAT(host.log(), Catch::Contains("did not answer within 10 s"));
  CHECK_THAT(host.log(), Catch::Contains("lease is left to run out"));
}
