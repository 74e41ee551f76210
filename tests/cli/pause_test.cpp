// `jobhost pause`, `resume` and `cancel` through a real daemon: a paused
// job's fires are recorded skipped "paused", the pause survives a restart,
// each action is a ledger event naming the caller's uid.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "schedule/schedule.h"
#include "support/harness.h"
#include "support/http_client.h"

using namespace jobhost;
using namespace jobhost::testing;
using nlohmann::json;

namespace {

constexpr const char* kJobs = R"(
[jobs.tick]
plugin = "sleeper"
schedule = "* * * * * *"
params = { seconds = 0 }

[jobs.long]
plugin = "sleeper"
schedule = "@manual"
kill_grace = "1s"
retry = { max_attempts = 3, initial_delay = "1s" }
params = { seconds = 60 }
)";

TimePoint time_of(const json& value) {
  return schedule::parse_rfc3339(value.get<std::string>()).value();
}

// Runs of `job` with a slot after `after`, as (outcome, message).
std::vector<std::pair<std::string, std::string>> slots_after(const fs::path& config,
                                                             const std::string& job,
                                                             TimePoint after) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : history(config, job)) {
    if (time_of(r["scheduled_for"]) <= after || r["outcome"].is_null()) continue;
    out.emplace_back(r["outcome"], r["message"]);
  }
  return out;
}

bool has_event(const fs::path& config, const std::string& job, const std::string& kind,
               const std::string& detail_part) {
  auto store = open_ledger(config);
  const auto events = store->events(job, 1000).value();
  for (const auto& e : events) {
    if (e.kind == kind && e.detail.find(detail_part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("jobhost pause and resume: fires skipped \"paused\", across a daemon restart",
          "[cli][pause]") {
  TestHost host({"sleeper.so"}, kJobs);
  const fs::path& config = host.config();
  const std::string uid = "uid " + std::to_string(::getuid());

  auto paused = run_jobhost({"pause", "tick", "-c", config.string()});
  INFO(paused.err);
  REQUIRE(paused.exit_code == 0);
  CHECK(paused.out.find("paused tick") != std::string::npos);
  const TimePoint pause_time = wall_now() + std::chrono::seconds(1);  // a run may be in flight
  CHECK(run_jobhost({"pause", "tick", "-c", config.string()}).out.find("already paused") !=
        std::string::npos);
  CHECK(has_event(config, "tick", "paused", uid));

  auto refused = trigger(config, "tick");
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("paused") != std::string::npos);

  REQUIRE(wait_for([&] { return slots_after(config, "tick", pause_time).size() >= 2; }, 10s));
  for (const auto& [outcome, message] : slots_after(config, "tick", pause_time)) {
    CHECK(outcome == "skipped");
    CHECK(message == "paused");
  }

  // A restart reads the pause back from the ledger.
  host.stop();
  CHECK(run_jobhost({"pause", "tick", "-c", config.string()}).exit_code == 3);  // no daemon
  host.start();
  const TimePoint restarted = wall_now() + std::chrono::seconds(1);
  REQUIRE(wait_for([&] { return slots_after(config, "tick", restarted).size() >= 2; }, 10s));
  for (const auto& [outcome, message] : slots_after(config, "tick", restarted)) {
    CHECK(outcome == "skipped");
    CHECK(message == "paused");
  }

  auto resumed = run_jobhost({"resume", "tick", "-c", config.string()});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.out.find("resumed tick") != std::string::npos);
  CHECK(has_event(config, "tick", "resumed", uid));
  const TimePoint resume_time = wall_now();
  REQUIRE(wait_for(
      [&] {
        for (const auto& [outcome, message] : slots_after(config, "tick", resume_time)) {
          if (outcome == "succeeded") return true;
        }
        return false;
      },
      10s));
  CHECK(run_jobhost({"pause", "nope", "-c", config.string()}).exit_code == 1);
  host.stop();
}

TEST_CASE("jobhost cancel stops a run in flight: cancelled, not retried", "[cli][pause]") {
  TestHost host({"sleeper.so"}, kJobs);
  const fs::path& config = host.config();
  REQUIRE(trigger(config, "long").exit_code == 0);
  std::string run_id;
  REQUIRE(wait_for(
      [&] {
        auto runs = history(config, "long");
        if (runs.empty() || !runs[0]["outcome"].is_null()) return false;
        run_id = runs[0]["run_id"];
        return true;
      },
      10s));
  auto r = run_jobhost({"cancel", run_id, "-c", config.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto cancelled = wait_outcome(config, "long", "cancelled");
  REQUIRE(cancelled);
  CHECK((*cancelled)["run_id"] == run_id);
  CHECK((*cancelled)["duration_ms"].get<int64_t>() < 10000);
  CHECK(has_event(config, "long", "cancel", "uid " + std::to_string(::getuid())));
  // Not retried (the job retries failures up to 3 attempts, 1 s apart).
  std::this_thread::sleep_for(2s);
  CHECK(history(config, "long").size() == 1);
  auto again = run_jobhost({"cancel", run_id, "-c", config.string()});
  CHECK(again.exit_code == 1);
  CHECK(again.err.find("not in flight") != std::string::npos);
  host.stop();
}

TEST_CASE("the daemon serves the JSON API on [http] listen", "[cli][pause][api]") {
  TestHost host({"sleeper.so"}, std::string(kJobs) + "\n[http]\nlisten = \"127.0.0.1:0\"\n");
  auto port = wait_http_port(host.daemon(), 10s);
  REQUIRE(port);
  auto jobs = http_get(*port, "/api/v1/jobs?q=tic");
  REQUIRE(jobs.status == 200);
  auto body = json::parse(jobs.body);
  CHECK(body["total"] == 1);
  CHECK(body["jobs"][0]["name"] == "tick");
  REQUIRE(wait_for([&] { return !history(host.config(), "tick").empty(); }, 10s));
  auto runs = json::parse(http_get(*port, "/api/v1/runs?job=tick&limit=1").body);
  REQUIRE(runs["runs"].size() == 1);
  CHECK(http_get(*port, "/api/v1/openapi.json").status == 200);
  // No token_file: actions over HTTP are refused; the control socket remains.
  auto refused = http_post(*port, "/api/v1/jobs/tick/pause");
  CHECK(refused.status == 403);
  CHECK(refused.body.find("token_file") != std::string::npos);
  CHECK(http_get(*port, "/api/v1/jobs/tick/pause").status == 405);
  // A pause through the control socket shows in the API and in /metrics.
  const auto paused_series = "jobhost_job_paused{job_name=\"tick\"} ";
  CHECK(http_get(*port, "/metrics").body.find(paused_series + std::string("0")) !=
        std::string::npos);
  REQUIRE(run_jobhost({"pause", "tick", "-c", host.config().string()}).exit_code == 0);
  CHECK(http_get(*port, "/metrics").body.find(paused_series + std::string("1")) !=
        std::string::npos);
  CHECK(json::parse(http_get(*port, "/api/v1/jobs/tick").body)["paused"] == true);
  host.stop();
}
