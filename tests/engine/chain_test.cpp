// Chains: a fire's final end (after its retries) fires its on_success,
// on_failure and on_done jobs, which share its trace and get its run in
// their payload.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/engine_rig.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kJobs = R"(
[jobs.a]
plugin = "noop"
schedule = "@manual"
retry = { max_attempts = 2, initial_delay = "1s", jitter = "none" }
on_success = ["b"]
on_failure = ["c"]
on_done = ["d"]

[jobs.b]
plugin = "noop"
schedule = "@manual"

[jobs.c]
plugin = "noop"
schedule = "@manual"

[jobs.d]
plugin = "noop"
schedule = "@manual"
)";

// The jobs started so far, in order.
std::vector<std::string> started_jobs(FakeExecutor& fake) {
  std::vector<std::string> out;
  for (const auto& s : fake.started) out.push_back(s.request.job);
  return out;
}

}  // namespace

TEST_CASE("a → c on failure once its retries are spent, a → d on done; trace and payload shared",
          "[engine][chain]") {
  Rig rig(kJobs, Rig::Runs::fake);
  auto& fake = rig.fake();
  fake.decorate = [](exec::RunReport& report) { report.retryable = true; };
  rig.start(at_utc(10, 0, 0));
  REQUIRE(rig.engine().trigger("a"));
  rig.settle();
  REQUIRE(fake.started.size() == 1);
  const auto first = fake.started[0].request;
  fake.finish(first.run_id, Outcome::failed);
  rig.settle();
  CHECK(started_jobs(fake) == std::vector<std::string>{"a"});  // a retry follows: no chain yet
  rig.run_until(rig.now() + 2s);
  REQUIRE(started_jobs(fake) == std::vector<std::string>{"a", "a"});
  const auto second = fake.started[1].request;
  CHECK(second.attempt == 2);
  fake.finish(second.run_id, Outcome::failed);
  rig.settle();
  REQUIRE(started_jobs(fake) == (std::vector<std::string>{"a", "a", "c", "d"}));
  for (std::size_t i = 2; i < 4; ++i) {
    const auto& chained = fake.started[i].request;
    INFO(chained.job);
    CHECK(chained.trigger_kind == "chain");
    CHECK(chained.trace_id == first.trace_id);
    REQUIRE(chained.event);
    const json upstream = json::parse(*chained.event)["upstream"];
    CHECK(upstream["job"] == "a");
    CHECK(upstream["run_id"] == second.run_id);
    CHECK(upstream["outcome"] == "failed");
    CHECK(upstream["attempt"] == 2);
  }
  // Two chained fires of one instant are two slots, recorded as chain.
  CHECK(fake.started[2].request.scheduled_for == fake.started[3].request.scheduled_for);
  for (const auto& job : {"c", "d"}) {
    const auto runs = rig.runs(job);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].trigger == ledger::Trigger::chain);
  }
}

TEST_CASE("a → b on success (and d on done), not c", "[engine][chain]") {
  Rig rig(kJobs, Rig::Runs::fake);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0));
  REQUIRE(rig.engine().trigger("a"));
  rig.settle();
  fake.finish(fake.started[0].request.run_id, Outcome::succeeded);
  rig.settle();
  REQUIRE(started_jobs(fake) == (std::vector<std::string>{"a", "b", "d"}));
  CHECK(fake.started[1].request.trace_id == fake.started[0].request.trace_id);
  // Chained fires run their own course: b's end chains nothing further.
  fake.finish(fake.started[1].request.run_id, Outcome::succeeded);
  rig.settle();
  CHECK(fake.started.size() == 3);
}

TEST_CASE("two manual fires of one millisecond are two slots", "[engine][chain]") {
  Rig rig("[jobs.m]\nplugin = \"noop\"\nschedule = \"@manual\"\nconcurrency = \"allow\"\n",
          Rig::Runs::fake, "max_concurrency = 4");
  rig.start(at_utc(10, 0, 0));
  auto one = rig.engine().trigger("m");
  auto two = rig.engine().trigger("m");
  REQUIRE(one);
  REQUIRE(two);
  CHECK(*two > *one);
  rig.settle();
  CHECK(rig.fake().started.size() == 2);
}
