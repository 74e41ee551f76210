// Several hosts on one PostgreSQL ledger (docs/cluster.md), with the real
// daemon: each slot runs once, on whichever host claims it first.
#include <catch2/catch.hpp>
#include <set>

#include "support/harness.h"
#include "support/skip.h"
#include "support/test_ledger.h"

using namespace jobhost;
using namespace jobhost::testing;
using json = nlohmann::json;

TEST_CASE("two hosts on one PostgreSQL ledger run each slot once", "[cluster]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  const std::string jobs = R"(
[jobs.tick]
plugin = "hello"
schedule = "* * * * * *"
params = { greeting = "tick" }
)";
  const auto host = [&](const char* id) {
    return "id = \"" + std::string(id) + "\"\n\n[store]\nurl = \"" + ledger.url() + "\"\n";
  };
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
  // The loser of each race says so, routinely (not a warning).
  CHECK_THAT(a.log() + b.log(), Catch::Contains("already claimed (by another host"));
}
