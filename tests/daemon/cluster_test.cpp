// Several hosts on one PostgreSQL ledger (docs/cluster.md), with the real
// daemon: each slot runs once, on whichever host claims it first.
#include <signal.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "support/harness.h"
#include "support/http_client.h"
#include "support/skip.h"
#include "support/test_ledger.h"

using namespace jobhost;
using namespace jobhost::testing;
using json = nlohmann::json;

namespace {

// Heartbeat and lease short enough for a test to see a takeover or a change
// reach the other host in a second or two.
constexpr const char* kQuickLease = "heartbeat = \"500ms\"\nlease = \"2s\"\n";

// The [host] lines of host `id` on `ledger`'s PostgreSQL database, then
// `store_extra` lines in its [store].
std::string host_on(const TestLedger& ledger, const char* id, const char* store_extra = "") {
  return "id = \"" + std::string(id) + "\"\n\n[store]\nurl = \"" + ledger.url() + "\"\n" +
         store_extra;
}

}  // namespace

TEST_CASE("two hosts on one PostgreSQL ledger run each slot once", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const std::string jobs = R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
params = { greeting = "tick" }
)";
  const auto host = [&](const char* id) { return host_on(ledger, id); };
  TestHost a({"hello.so"}, jobs, host("host-a"));
  TestHost b({"hello.so"}, jobs, host("host-b"));
  json runs;
  REQUIRE(wait_for(
      [&] {
        runs = history(a.config(), "tick");
        return finished(runs, "tick").size() >= 6;
      },
      30s));
  a.stop();
  b.stop();
  runs = history(b.config(), "tick");  // the same ledger, read through the other host
  INFO(a.log() << "\n---\n" << b.log());
  CHECK(every_second_once(runs).empty());
  std::map<std::string, int> by_host;
  for (const auto& run : runs) {
    CHECK(run["outcome"] == "succeeded");
    ++by_host[run["host"].get<std::string>()];
  }
  for (const auto& [id, count] : by_host) {
    CHECK((id == "host-a" || id == "host-b"));
    INFO(id << " ran " << count);
  }
  // The loser of each race says nothing: races are routine here.
  CHECK_THAT(a.log() + b.log(), !Catch::Contains("already claimed"));
}

TEST_CASE("a host killed is taken over, one stopped past its lease is fenced when it resumes",
          "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  // A long run, triggered by hand on one host, retried once elsewhere.
  const std::string jobs = R"(
[jobs.long]
plugin = "sleeper"
schedule = "@manual"
retry = { max_attempts = 2, initial_delay = "100ms" }
params = { seconds = 60 }
)";
  const auto host = [&](const char* id) { return host_on(ledger, id, kQuickLease); };
  TestHost a({"sleeper.so"}, jobs, host("host-a"));
  TestHost b({"sleeper.so"}, jobs, host("host-b"));
  auto status = cluster_status(a.config());
  CHECK(status["store"] == "postgresql");
  REQUIRE(status["hosts"].size() == 2);
  CHECK(cluster_host(status, "host-a")["state"] == "live");
  CHECK(cluster_host(status, "host-a")["this_host"] == true);
  CHECK(cluster_host(status, "host-b")["state"] == "live");

  SECTION("kill -9: its run is taken over and retried on the other host") {
    REQUIRE(trigger(b.config(), "long").exit_code == 0);
    REQUIRE(wait_for(
        [&] { return cluster_host(cluster_status(a.config()), "host-b")["runs_in_flight"] == 1; },
        10s));
    b.daemon().signal(SIGKILL);
    REQUIRE(b.daemon().wait_exit(10s).has_value() == false);  // killed: no exit code
    // Taken over within lease + heartbeat (2.5 s) and a loaded machine's slack.
    REQUIRE(wait_for(
        [&] { return cluster_host(cluster_status(a.config()), "host-b")["state"] == "taken over"; },
        10s));
    CHECK(cluster_host(cluster_status(a.config()), "host-b")["taken_over_by"] == "host-a");
    auto runs = history(a.config(), "long");
    REQUIRE(wait_for(
        [&] {
          runs = history(a.config(), "long");
          return runs.size() == 2;
        },
        10s));
    // Newest first: attempt 2 runs on host-a; attempt 1 was closed by it.
    CHECK(runs[0]["attempt"] == 2);
    CHECK(runs[0]["host"] == "host-a");
    CHECK(runs[0]["outcome"].is_null());
    CHECK(runs[1]["attempt"] == 1);
    CHECK(runs[1]["host"] == "host-b");
    CHECK(runs[1]["outcome"] == "interrupted");
    CHECK_THAT(runs[1]["message"].get<std::string>(), Catch::Contains("taken over by host host-a"));
    CHECK(runs[0]["trace_id"] == runs[1]["trace_id"]);
    b.start();  // a new incarnation joins
    CHECK(cluster_host(cluster_status(a.config()), "host-b")["state"] == "live");
  }
  SECTION("SIGSTOP past the lease: taken over, then fenced and joined again") {
    REQUIRE(trigger(b.config(), "long").exit_code == 0);
    REQUIRE(wait_for(
        [&] { return cluster_host(cluster_status(a.config()), "host-b")["runs_in_flight"] == 1; },
        10s));
    b.daemon().signal(SIGSTOP);
    REQUIRE(wait_for(
        [&] { return cluster_host(cluster_status(a.config()), "host-b")["state"] == "taken over"; },
        10s));
    b.daemon().signal(SIGCONT);
    REQUIRE(wait_for([&] { return b.log().find("lost its lease") != std::string::npos; }, 10s));
    // Its run was stopped, its late end changed nothing, and it joined
    // again as a new incarnation.
    CHECK_THAT(b.log(), Catch::Contains("the 1 run(s) in flight are stopped"));
    REQUIRE(wait_for(
        [&] { return cluster_host(cluster_status(a.config()), "host-b")["state"] == "live"; },
        10s));
    json runs;
    REQUIRE(wait_for(
        [&] {
          runs = history(a.config(), "long");
          return runs.size() == 2;
        },
        10s));
    CHECK(runs[1]["host"] == "host-b");
    CHECK(runs[1]["attempt"] == 1);
    CHECK(runs[1]["outcome"] == "interrupted");
    CHECK_THAT(runs[1]["message"].get<std::string>(), Catch::Contains("taken over"));
    // Attempt 2, once: the taker scheduled it, and so did host-b, whose
    // stopped run kept its retry; whichever claimed it first runs it.
    CHECK(runs[0]["attempt"] == 2);
    CHECK(runs[0]["trace_id"] == runs[1]["trace_id"]);
    std::this_thread::sleep_for(1s);
    CHECK(history(a.config(), "long").size() == 2);
  }
  a.stop();
  b.stop();
  // Both ended their leases: nothing left to take over.
  status = cluster_status(a.config());
  CHECK(cluster_host(status, "host-a")["state"] == "stopped");
  CHECK(cluster_host(status, "host-b")["state"] == "stopped");
}

TEST_CASE("hosts that define a job differently are shown as skew until they agree", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const auto jobs = [](const char* greeting) {
    return std::string(R"(
[jobs.hi]
plugin = "hello"
schedule = "@manual"
params = { greeting = ")") +
           greeting + "\" }\n";
  };
  const auto host = [&](const char* id) { return host_on(ledger, id, kQuickLease); };
  TestHost a({"hello.so"}, jobs("a"), host("host-a"));
  TestHost b({"hello.so"}, "[http]\nlisten = \"127.0.0.1:0\"\n" + jobs("b"), host("host-b"));
  json skew;
  REQUIRE(wait_for(
      [&] {
        skew = cluster_status(a.config())["skew"];
        return skew["hosts_with_other_definitions"].size() == 1;
      },
      15s));
  INFO(skew.dump());
  CHECK(skew["plugins_built_differently"].empty());  // the same hello.so
  const json hosts = cluster_status(a.config())["hosts"];
  REQUIRE(hosts.size() == 2);
  CHECK(hosts[0]["definitions"] != hosts[1]["definitions"]);
  CHECK(hosts[0]["plugins"]["hello"] == hosts[1]["plugins"]["hello"]);
  const auto text = run_jobhost({"cluster", "status", "--config", a.config().string()});
  CHECK_THAT(text.out, Catch::Contains("defines the jobs differently from most hosts"));

  // The daemon's own view: status and metrics.
  REQUIRE(wait_for(
      [&] {
        const auto status = run_jobhost({"status", "--json", "--config", b.config().string()});
        const json cluster = json::parse(status.out)["daemon"]["cluster"];
        return cluster.is_object() && cluster["skew"]["hosts_with_other_definitions"].size() == 1;
      },
      10s));
  const auto port = wait_http_port(b.daemon());
  REQUIRE(port);
  const std::string metrics = http_get(*port, "/metrics").body;
  CHECK_THAT(metrics, Catch::Contains("jobhost_cluster_hosts 2"));
  CHECK_THAT(metrics, Catch::Contains("jobhost_cluster_skew{kind=\"definitions\"} 1"));
  CHECK_THAT(metrics, Catch::Contains("jobhost_cluster_skew{kind=\"plugins\"} 0"));

  // host-b's config reloaded to match: the skew clears.
  std::ifstream in(b.config());
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = config.find("greeting = \"b\"");
  REQUIRE(at != std::string::npos);
  config.replace(at, std::string("greeting = \"b\"").size(), "greeting = \"a\"");
  std::ofstream(b.config()) << config;
  REQUIRE(wait_for(
      [&] { return cluster_status(a.config())["skew"]["hosts_with_other_definitions"].empty(); },
      15s));
  CHECK_THAT(b.log(), Catch::Contains("the hosts sharing the ledger differ"));
  a.stop();
  b.stop();
}

TEST_CASE("a job paused on one host is paused on every host, and resumed likewise", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const std::string jobs = R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
params = { greeting = "tick" }
)";
  const auto host = [&](const char* id) { return host_on(ledger, id, kQuickLease); };
  TestHost a({"hello.so"}, jobs, host("host-a"));
  TestHost b({"hello.so"}, jobs, host("host-b"));
  REQUIRE(wait_for([&] { return finished(history(a.config(), "tick"), "tick").size() >= 2; }, 20s));
  REQUIRE(run_jobhost({"pause", "tick", "--config", a.config().string()}).exit_code == 0);
  REQUIRE(wait_for(
      [&] {
        return b.log().find("paused on another host sharing the ledger") != std::string::npos;
      },
      10s));
  // From a second after host-b heard of it, no slot of the job runs: each
  // is recorded skipped "paused", by whichever host claims it.
  std::this_thread::sleep_for(1s);
  const std::string heard = ledger::format_utc(wall_now());
  std::this_thread::sleep_for(3s);
  int skipped = 0;
  for (const auto& run : history(a.config(), "tick", 200)) {
    if (run["scheduled_for"].get<std::string>() <= heard) continue;
    INFO(run.dump());
    CHECK(run["outcome"] == "skipped");
    CHECK(run["message"] == "paused");
    ++skipped;
  }
  CHECK(skipped >= 2);

  REQUIRE(run_jobhost({"resume", "tick", "--config", b.config().string()}).exit_code == 0);
  REQUIRE(wait_for(
      [&] {
        return a.log().find("resumed on another host sharing the ledger") != std::string::npos;
      },
      10s));
  const std::string resumed = ledger::format_utc(wall_now());
  REQUIRE(wait_for(
      [&] {
        for (const auto& run : history(a.config(), "tick", 50)) {
          if (run["scheduled_for"].get<std::string>() > resumed && run["outcome"] == "succeeded") {
            return true;
          }
        }
        return false;
      },
      10s));
  a.stop();
  b.stop();
  CHECK(every_second_once(history(a.config(), "tick", 100000)).empty());
}

// Without the jobs' figures, the JSON API would read them from the ledger at
// each request, on the loop: on PostgreSQL the host does not start instead.
TEST_CASE("a host that cannot read its jobs' figures at start exits", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  (void)ledger.open();  // the schema
  // Only the figures' query reads the jobs table before the engine starts.
  REQUIRE(ledger.execute("ALTER TABLE jobs RENAME TO jobs_elsewhere") == "");
  TempDir dir;
  install_plugins(dir.path(), {"hello.so"});
  const fs::path config = write_config(dir.path(), R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
)",
                                       host_on(ledger, "host-a"));
  Daemon daemon(config);
  const auto code = daemon.wait_exit(30s);
  INFO(daemon.log());
  CHECK(code == 1);
  CHECK_THAT(daemon.log(),
             Catch::Contains("cannot read the jobs' figures from the ledger at start"));
  CHECK_THAT(daemon.log(), !Catch::Contains("ready:"));
}
