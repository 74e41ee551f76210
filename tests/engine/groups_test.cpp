// Concurrency groups and priority: a [groups.NAME] limit holds whatever
// the host's max_concurrency, fires of other jobs pass a full group, and
// higher priority starts first.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "engine/engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

// `n` manual jobs g0..g(n-1) in group "db", and one job "free" outside it.
std::string grouped_jobs(int n) {
  std::string out = "[groups.db]\nmax_concurrency = 2\n";
  for (int i = 0; i < n; ++i) {
    out += fmt::format(
        "\n[jobs.g{}]\nplugin = \"noop\"\nschedule = \"@manual\"\nconcurrency_group = \"db\"\n", i);
  }
  return out + "\n[jobs.free]\nplugin = \"noop\"\nschedule = \"@manual\"\n";
}

std::size_t running_in_group(FakeExecutor& fake) {
  std::size_t n = 0;
  for (const auto& s : fake.started) {
    if (s.request.job != "free" && fake.running(s.request.run_id)) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("a group of 2 runs at most 2 of its jobs at once; others pass it", "[engine][groups]") {
  Rig rig(grouped_jobs(10), Rig::Runs::fake, "max_concurrency = 8");
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0));
  for (int i = 0; i < 10; ++i) REQUIRE(rig.engine().trigger(fmt::format("g{}", i)));
  rig.settle();
  CHECK(fake.started.size() == 2);
  // A job outside the group starts while the group is full.
  REQUIRE(rig.engine().trigger("free"));
  rig.settle();
  REQUIRE(fake.started.size() == 3);
  CHECK(fake.started[2].request.job == "free");
  auto groups = rig.snapshot()["groups"];
  REQUIRE(groups.size() == 1);
  CHECK(groups[0]["group"] == "db");
  CHECK(groups[0]["running"] == 2);
  CHECK(groups[0]["waiting"] == 8);
  // Each end lets one more in, never more than 2 at once.
  std::size_t most = 0;
  for (int round = 0; round < 20 && running_in_group(fake) > 0; ++round) {
    for (const auto& s : fake.started) {
      if (s.request.job != "free" && fake.running(s.request.run_id)) {
        fake.finish(s.request.run_id);
        break;
      }
    }
    rig.settle();
    most = std::max(most, running_in_group(fake));
  }
  CHECK(most == 2);
  CHECK(fake.started.size() == 11);  // all 10 ran, and free
  CHECK(rig.snapshot()["groups"][0]["waiting"] == 0);
}

TEST_CASE("higher priority starts first when runs wait for a slot", "[engine][groups]") {
  Rig rig(R"(
[jobs.hold]
plugin = "noop"
schedule = "@manual"

[jobs.low]
plugin = "noop"
schedule = "@manual"

[jobs.high]
plugin = "noop"
schedule = "@manual"
priority = 5
)",
          Rig::Runs::fake, "max_concurrency = 1");
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0));
  REQUIRE(rig.engine().trigger("hold"));
  rig.settle();
  REQUIRE(rig.engine().trigger("low"));
  rig.run_until(rig.now() + 1s);
  REQUIRE(rig.engine().trigger("high"));  // later, but first in line
  rig.settle();
  REQUIRE(fake.started.size() == 1);
  fake.finish(fake.started[0].request.run_id);
  rig.settle();
  REQUIRE(fake.started.size() == 2);
  CHECK(fake.started[1].request.job == "high");
  fake.finish(fake.started[1].request.run_id);
  rig.settle();
  REQUIRE(fake.started.size() == 3);
  CHECK(fake.started[2].request.job == "low");
}
