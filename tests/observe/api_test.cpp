// The JSON API (/api/v1/): each endpoint and filter against a real SQLite
// ledger and an engine on the fake executor; cursor paging while runs are
// added; the run objects equal `history --json`'s; auth; pause, resume and
// cancel; the OpenAPI document lists exactly the routes.
#include "observe/api.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/engine_rig.h"
#include "observe/timed_store.h"
#include "support/harness.h"
#include "support/threaded_worker.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;
using nlohmann::json;
using observe::Request;
using observe::Response;

namespace {

constexpr const char* kJobs = R"(
[jobs.alpha]
plugin = "noop"
schedule = "* * * * * *"
retry = { max_attempts = 3, initial_delay = "1s" }

[jobs.beta]
plugin = "noop"
schedule = "@manual"
retry = { max_attempts = 1 }

[jobs.gamma]
plugin = "noop"
schedule = "@manual"
enabled = false
)";

// Calls the router directly, as the server would; the answer must come now.
Response call(const observe::Router& router, std::string method, std::string target,
              std::string authorization = "", std::string body = "") {
  Request request;
  request.method = std::move(method);
  request.body = std::move(body);
  request.peer = "127.0.0.1:5000";
  request.authorization = std::move(authorization);
  auto q = target.find('?');
  request.path = target.substr(0, q);
  if (q != std::string::npos) {
    std::string rest = target.substr(q + 1);
    std::size_t i = 0;
    while (i <= rest.size()) {
      auto end = rest.find('&', i);
      if (end == std::string::npos) end = rest.size();
      auto pair = rest.substr(i, end - i);
      auto eq = pair.find('=');
      if (!pair.empty())
        request.query[pair.substr(0, eq)] = eq == std::string::npos ? "" : pair.substr(eq + 1);
      i = end + 1;
    }
  }
  std::optional<Response> out;
  router.dispatch(request, [&](Response r) { out = std::move(r); });
  REQUIRE(out);
  return *out;
}

json body(const Response& r) {
  INFO(r.body);
  return json::parse(r.body);
}

// An API over a Rig: a fake clock, the fake executor, a ledger in a temp dir.
struct ApiRig {
  explicit ApiRig(const std::string& jobs = kJobs, std::string token = "")
      : rig(jobs, Rig::Runs::fake) {
    if (!token.empty()) {
      auto file = rig.dir() / "token";
      std::ofstream(file) << token << "\n";
      ::chmod(file.c_str(), 0600);
      rig.config().http.token_file = file;
    }
  }
  void start(TimePoint t, observe::ApiHooks hooks = {}) {
    rig.start(t);
    router = std::make_unique<observe::Router>();
    api = std::make_unique<observe::Api>(rig.engine(), rig.store(), std::move(hooks));
    api->add_routes(*router);
  }
  Response get(const std::string& target) { return call(*router, "GET", target); }
  Response post(const std::string& target, const std::string& auth = "Bearer s3cret",
                const std::string& body = "") {
    return call(*router, "POST", target, auth, body);
  }
  // Every run matching `filter` (a query string), following next_cursor.
  std::vector<json> all_runs(const std::string& filter, int limit) {
    std::vector<json> out;
    std::string cursor;
    for (int page = 0; page < 10000; ++page) {
      auto r = get("/api/v1/runs?limit=" + std::to_string(limit) + filter +
                   (cursor.empty() ? "" : "&cursor=" + cursor));
      REQUIRE(r.status == 200);
      auto b = body(r);
      for (auto& run : b["runs"]) out.push_back(run);
      if (b["next_cursor"].is_null()) return out;
      cursor = b["next_cursor"].get<std::string>();
    }
    FAIL("paging did not end");
    return out;
  }

  Rig rig;
  std::unique_ptr<observe::Router> router;
  std::unique_ptr<observe::Api> api;
};

// Records a finished run of `job` directly in the ledger.
void add_run(ledger::Store& store, const std::string& job, TimePoint started, Outcome outcome,
             Duration duration = 100ms, ledger::Trigger trigger = ledger::Trigger::manual) {
  static int n = 0;
  ledger::RunStart start;
  start.run_id = fmt::format("r{:06}", ++n);
  start.trace_id = "t" + start.run_id;
  start.job = job;
  start.scheduled_for = TimePoint(Duration(n * 1000));  // a slot of its own
  start.started_at = started;
  start.trigger = trigger;
  start.host_pid = 1;
  REQUIRE(store.claim_and_start(start).value());
  ledger::RunEnd end;
  end.run_id = start.run_id;
  end.finished_at = started + duration;
  end.outcome = outcome;
  end.duration = duration;
  end.message = "m";
  end.output_tail = "out\xff";
  REQUIRE(store.finish_run(end).value());
}

}  // namespace

TEST_CASE("api: jobs list filters, sorts and pages; a job's page has its figures",
          "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0, 500));
  auto& store = a.rig.store();
  add_run(store, "beta", at_utc(9, 0, 0), Outcome::succeeded, 100ms);
  add_run(store, "beta", at_utc(9, 1, 0), Outcome::failed, 300ms);
  add_run(store, "beta", at_utc(9, 2, 0), Outcome::failed, 200ms);

  auto all = body(a.get("/api/v1/jobs"));
  CHECK(all["total"] == 3);
  REQUIRE(all["jobs"].size() == 3);
  CHECK(all["jobs"][0]["name"] == "alpha");
  CHECK(all["jobs"][0]["schedule"] == "* * * * * *");
  CHECK(!all["jobs"][0]["schedule_description"].get<std::string>().empty());
  CHECK(all["jobs"][0]["next_fire"].is_string());
  const auto& beta = all["jobs"][1];
  CHECK(beta["name"] == "beta");
  CHECK(beta["last_outcome"] == "failed");
  CHECK(beta["consecutive_failures"] == 2);
  CHECK(beta["success_rate"].get<double>() == Approx(1.0 / 3));
  CHECK(beta["p50_duration_ms"] == 200);
  CHECK(beta["p95_duration_ms"] == 300);
  REQUIRE(beta["recent"].size() == 3);
  CHECK(beta["recent"][0]["outcome"] == "failed");  // newest first
  CHECK(beta["last_run"] == ledger::format_utc(at_utc(9, 2, 0)));

  struct Case {
    std::string query;
    std::vector<std::string> names;
    int total;
  };
  const Case cases[] = {
      {"q=ph", {"alpha"}, 1},
      {"q=a", {"alpha", "beta", "gamma"}, 3},
      {"state=disabled", {"gamma"}, 1},
      {"state=enabled", {"alpha", "beta"}, 2},
      {"state=failing", {"beta"}, 1},
      {"state=paused", {}, 0},
      {"state=running", {}, 0},
      {"sort=-name", {"gamma", "beta", "alpha"}, 3},
      {"sort=last_run", {"beta", "alpha", "gamma"}, 3},  // no value: last
      {"sort=-success_rate", {"beta", "alpha", "gamma"}, 3},
      {"sort=next_fire", {"alpha", "beta", "gamma"}, 3},
      {"limit=1&offset=1", {"beta"}, 3},
      {"limit=2&offset=5", {}, 3},
  };
  for (const auto& c : cases) {
    INFO(c.query);
    auto r = body(a.get("/api/v1/jobs?" + c.query));
    std::vector<std::string> names;
    for (const auto& j : r["jobs"]) names.push_back(j["name"]);
    CHECK(names == c.names);
    CHECK(r["total"] == c.total);
  }
  for (const char* bad : {"state=sleepy", "sort=size", "limit=0", "limit=x", "offset=-1"}) {
    INFO(bad);
    auto r = a.get(std::string("/api/v1/jobs?") + bad);
    CHECK(r.status == 400);
    CHECK(body(r)["error"].is_string());
  }

  auto detail = body(a.get("/api/v1/jobs/alpha"));
  CHECK(detail["next_fires"].size() == 10);
  CHECK(detail["next_fires"][0] == ledger::format_utc(at_utc(10, 0, 1)));
  CHECK(detail["next_fires"][9] == ledger::format_utc(at_utc(10, 0, 10)));
  CHECK(detail["alerts"].is_null());
  CHECK(detail["paused"] == false);
  CHECK(detail["timezone"].is_string());
  auto beta_detail = body(a.get("/api/v1/jobs/beta"));
  CHECK(beta_detail["next_fires"].empty());
  CHECK(beta_detail["p95_duration_ms"] == 300);
  CHECK(beta_detail["mean_duration_ms"] == 200);
  CHECK(a.get("/api/v1/jobs/nope").status == 404);
}

TEST_CASE("api: the alerts hook fills a job's alerts", "[observe][api]") {
  ApiRig a;
  observe::ApiHooks hooks;
  hooks.alerts = [](std::string_view job) {
    return json{{"job", std::string(job)}, {"firing", true}};
  };
  a.start(at_utc(10, 0, 0), hooks);
  CHECK(body(a.get("/api/v1/jobs/beta"))["alerts"] == json({{"job", "beta"}, {"firing", true}}));
}

TEST_CASE("api: cursor paging returns every run exactly once while runs are added",
          "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  auto& store = a.rig.store();
  // Several runs share a start instant: the run id breaks the tie.
  for (int i = 0; i < 23; ++i) add_run(store, "beta", at_utc(8, 0, i / 3), Outcome::succeeded);

  std::vector<std::string> seen;
  std::string cursor;
  int added = 0;
  for (int page = 0; page < 100; ++page) {
    auto r =
        body(a.get("/api/v1/runs?job=beta&limit=4" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    for (const auto& run : r["runs"]) seen.push_back(run["run_id"]);
    // Between pages, new runs start (they sort before the cursor).
    add_run(store, "beta", at_utc(9, 0, added++), Outcome::failed);
    if (r["next_cursor"].is_null()) break;
    cursor = r["next_cursor"].get<std::string>();
  }
  CHECK(seen.size() == 23);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 23);
  // Newest first, with no gaps: the same order as history.
  auto history = store.history("beta", 1000).value();
  std::vector<std::string> expected;
  for (const auto& run : history) {
    if (run.outcome == Outcome::succeeded) expected.push_back(run.run_id);
  }
  CHECK(seen == expected);

  CHECK(a.get("/api/v1/runs?cursor=garbage").status == 400);
  CHECK(a.get("/api/v1/runs?cursor=12.bad%id").status == 400);
}

TEST_CASE("api: runs filters, and its run objects equal history --json's", "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  auto& store = a.rig.store();
  add_run(store, "beta", at_utc(8, 0, 0), Outcome::succeeded);
  add_run(store, "beta", at_utc(8, 0, 1), Outcome::failed, 10ms, ledger::Trigger::retry);
  add_run(store, "gamma", at_utc(8, 0, 2), Outcome::failed);
  add_run(store, "gamma", at_utc(8, 0, 3), Outcome::cancelled);

  auto ids = [&](const std::string& filter) {
    std::vector<std::string> out;
    for (const auto& run : a.all_runs(filter, 2))
      out.push_back(run["job"].get<std::string>() + ":" + run["outcome"].get<std::string>());
    return out;
  };
  CHECK(ids("&job=beta") == std::vector<std::string>{"beta:failed", "beta:succeeded"});
  CHECK(ids("&outcome=failed") == std::vector<std::string>{"gamma:failed", "beta:failed"});
  CHECK(ids("&outcome=cancelled") == std::vector<std::string>{"gamma:cancelled"});
  CHECK(ids("&trigger=retry") == std::vector<std::string>{"beta:failed"});
  CHECK(ids("&since=2030-01-07T08:00:01Z&until=2030-01-07T08:00:03Z") ==
        std::vector<std::string>{"gamma:failed", "beta:failed"});
  CHECK(ids("&outcome=running").empty());
  for (const char* bad : {"outcome=great", "trigger=cron", "since=yesterday", "limit=1001"}) {
    INFO(bad);
    CHECK(a.get(std::string("/api/v1/runs?") + bad).status == 400);
  }

  // The same runs through `jobhost history --json` (the binary, on this ledger).
  auto api_runs = a.all_runs("", 3);
  auto cli_runs = history(a.rig.config().file);
  REQUIRE(cli_runs.size() == 4);
  CHECK(json(api_runs) == cli_runs);
}

TEST_CASE("api: one run with its output tail, events and the other attempts", "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  auto& store = a.rig.store();
  // Attempt 1 of a slot fails and schedules attempt 2, which succeeds.
  ledger::RunStart first;
  first.run_id = "first";
  first.trace_id = "trace";
  first.job = "beta";
  first.scheduled_for = at_utc(9, 0, 0);
  first.started_at = at_utc(9, 0, 0);
  first.host_pid = 1;
  REQUIRE(store.claim_and_start(first).value());
  ledger::RunEnd end{.run_id = "first",
                     .finished_at = at_utc(9, 0, 1),
                     .outcome = Outcome::failed,
                     .duration = 1s,
                     .message = "boom",
                     .retry_at = at_utc(9, 0, 2)};
  REQUIRE(store.finish_run(end).value());
  ledger::RunStart second = first;
  second.run_id = "second";
  second.attempt = 2;
  second.trigger = ledger::Trigger::retry;
  second.started_at = at_utc(9, 0, 2);
  REQUIRE(store.claim_and_start(second).value());
  end.run_id = "second";
  end.outcome = Outcome::succeeded;
  end.output_tail = "all good\n";
  end.retry_at.reset();
  REQUIRE(store.finish_run(end).value());

  auto r = a.get("/api/v1/runs/" + second.run_id);
  REQUIRE(r.status == 200);
  auto run = body(r);
  CHECK(run["attempt"] == 2);
  CHECK(run["output_tail"] == "all good\n");
  std::set<std::string> kinds;
  for (const auto& e : run["events"]) kinds.insert(e["kind"]);
  CHECK(kinds.contains("started"));
  CHECK(kinds.contains("finished"));
  REQUIRE(run["attempts"].size() == 1);
  CHECK(run["attempts"][0]["attempt"] == 1);
  CHECK(run["attempts"][0]["outcome"] == "failed");
  CHECK(run["attempts"][0]["trace_id"] == run["trace_id"]);
  // The run object itself is history's.
  json expected = a.rig.store().get_run(second.run_id).value().value();
  for (auto& [key, value] : expected.items()) CHECK(run[key] == value);
  CHECK(a.get("/api/v1/runs/nope").status == 404);

  // A tail that is not UTF-8 is still a JSON string.
  add_run(a.rig.store(), "beta", at_utc(9, 5, 0), Outcome::failed);
  auto last = a.rig.store().history("beta", 1).value().front();
  CHECK(body(a.get("/api/v1/runs/" + last.run_id))["output_tail"] == "out\xef\xbf\xbd");
}

TEST_CASE("api: events after an id, oldest first, bounded", "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  for (int i = 0; i < 5; ++i) add_run(a.rig.store(), "beta", at_utc(8, 0, i), Outcome::succeeded);
  auto first = body(a.get("/api/v1/events?limit=3"));
  REQUIRE(first["events"].size() == 3);
  CHECK(first["events"][0]["id"].get<int64_t>() < first["events"][1]["id"].get<int64_t>());
  auto since = first["next_since"].get<int64_t>();
  CHECK(since == first["events"][2]["id"]);
  auto rest = body(a.get("/api/v1/events?limit=1000&since=" + std::to_string(since)));
  CHECK(rest["events"].size() == 10 - 3);  // started + finished per run
  CHECK(rest["events"][0]["id"].get<int64_t>() == since + 1);
  auto none = body(a.get("/api/v1/events?since=" + rest["next_since"].dump()));
  CHECK(none["events"].empty());
  CHECK(none["next_since"] == rest["next_since"]);
  CHECK(a.get("/api/v1/events?since=-1").status == 400);
  CHECK(a.get("/api/v1/events?limit=5000").status == 400);
}

TEST_CASE("api: status has the engine snapshot and the jobs of status --json", "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  add_run(a.rig.store(), "beta", at_utc(8, 0, 0), Outcome::succeeded);
  auto s = body(a.get("/api/v1/status"));
  CHECK(s["daemon"]["running"] == true);
  CHECK(s["daemon"]["queued"] == 0);
  REQUIRE(s["jobs"].size() == 3);
  CHECK(s["jobs"][1]["job"] == "beta");
  CHECK(s["jobs"][1]["last_outcome"] == "succeeded");
  CHECK(s["jobs"][1]["enabled"] == true);
  CHECK(s["jobs"][1]["paused"] == false);
  CHECK(s["jobs"][1]["next_build"].is_object());
  CHECK(s["jobs_total"] == 3);
  CHECK(s["next_offset"].is_null());
  CHECK(s["running"].empty());
}

TEST_CASE("api: status pages its jobs in config order", "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  auto first = body(a.get("/api/v1/status?limit=2"));
  REQUIRE(first["jobs"].size() == 2);
  CHECK(first["jobs"][1]["job"] == "beta");
  CHECK(first["jobs_total"] == 3);
  REQUIRE(first["next_offset"] == 2);
  auto second = body(a.get("/api/v1/status?limit=2&offset=2"));
  REQUIRE(second["jobs"].size() == 1);
  CHECK(second["jobs"][0]["job"] != "beta");
  CHECK(second["next_offset"].is_null());
  CHECK(body(a.get("/api/v1/status?offset=7"))["jobs"].empty());
  CHECK(a.get("/api/v1/status?limit=0").status == 400);
  CHECK(a.get("/api/v1/status?limit=1001").status == 400);
}

TEST_CASE("api: status has the dashboard's summary; jobs=false leaves the jobs out",
          "[observe][api][dashboard]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  // The summary's hour is the wall clock's (the dashboard shows "last hour").
  const TimePoint now = wall_now();
  add_run(a.rig.store(), "beta", now - std::chrono::minutes(90), Outcome::failed);
  add_run(a.rig.store(), "beta", now - std::chrono::minutes(20), Outcome::succeeded, 100ms);
  add_run(a.rig.store(), "beta", now - std::chrono::minutes(10), Outcome::crashed, 300ms);
  auto s = body(a.get("/api/v1/status"));
  const auto& summary = s["summary"];
  CHECK(summary["runs_in_flight"] == 0);
  CHECK(summary["queue_depth"] == 0);
  CHECK(summary["pending_retries"] == 0);
  CHECK(summary["last_hour"]["runs"] == 2);
  CHECK(summary["last_hour"]["failed"] == 1);
  CHECK(summary["last_hour"]["failure_rate"] == 0.5);
  CHECK(summary["last_hour"]["mean_duration_ms"] == 200);
  CHECK(summary["ledger"]["healthy"] == true);
  CHECK(summary["cluster"].is_null());  // a ledger of its own
  CHECK(s["jobs"].size() == 3);

  auto light = body(a.get("/api/v1/status?jobs=false"));
  CHECK(light["jobs"].empty());
  CHECK(light["summary"] == summary);
}

TEST_CASE("api: status shows the hosts sharing the ledger and their skew", "[observe][api]") {
  ApiRig a;
  observe::ApiHooks hooks;
  const json cluster = {{"live_hosts", 3},
                        {"skew",
                         {{"definitions", "d1"},
                          {"hosts_with_other_definitions", {"host-c"}},
                          {"plugins_built_differently", json::object()}}}};
  hooks.cluster = [&] { return cluster; };
  a.start(at_utc(10, 0, 0), hooks);
  auto s = body(a.get("/api/v1/status?jobs=false"));
  CHECK(s["summary"]["cluster"] == cluster);
}

TEST_CASE("api: actions need the bearer token of [http] token_file", "[observe][api][auth]") {
  SECTION("no token file: 403 for every action") {
    ApiRig a;
    a.start(at_utc(10, 0, 0));
    for (const char* path :
         {"/api/v1/jobs/beta/trigger", "/api/v1/jobs/beta/pause", "/api/v1/jobs/beta/resume",
          "/api/v1/runs/x/cancel", "/api/v1/reload"}) {
      INFO(path);
      auto r = a.post(path);
      CHECK(r.status == 403);
      CHECK(body(r)["error"].get<std::string>().find("token_file") != std::string::npos);
    }
    CHECK(a.rig.fake().started.empty());
  }
  SECTION("a token file: 401 without or with a wrong token, 200 with it") {
    ApiRig a(kJobs, "s3cret");
    a.start(at_utc(10, 0, 0));
    for (const char* auth :
         {"", "Bearer", "Bearer wrong", "Basic s3cret", "Bearer s3cret2", "bearer s3cret"}) {
      INFO(auth);
      auto r = a.post("/api/v1/jobs/beta/trigger", auth);
      CHECK(r.status == 401);
      bool challenged = false;
      for (const auto& [name, value] : r.headers) {
        challenged |= name == "WWW-Authenticate" && value.starts_with("Bearer");
      }
      CHECK(challenged);
    }
    a.rig.settle();
    CHECK(a.rig.fake().started.empty());
    auto r = a.post("/api/v1/jobs/beta/trigger");
    CHECK(r.status == 200);
    CHECK(body(r)["job"] == "beta");
    a.rig.settle();
    CHECK(a.rig.fake().started.size() == 1);
    CHECK(a.post("/api/v1/jobs/nope/trigger").status == 404);
    // The trigger is a ledger event naming who did it.
    bool named = false;
    const auto events = a.rig.store().events("beta", 100).value();
    for (const auto& e : events) {
      named |=
          e.kind == "triggered" && e.detail.find("http token 127.0.0.1:5000") != std::string::npos;
    }
    CHECK(named);
  }
  SECTION("the token is read again on reload") {
    ApiRig a(kJobs, "old");
    std::function<void(json)> finish_reload;
    observe::ApiHooks hooks;
    hooks.reload = [&](std::string who, std::function<void(json)> done) {
      CHECK(who == "http token 127.0.0.1:5000");
      finish_reload = std::move(done);
    };
    a.start(at_utc(10, 0, 0), hooks);
    std::ofstream(a.rig.dir() / "token") << "new\n";
    std::optional<Response> answer;
    Request request;
    request.method = "POST";
    request.path = "/api/v1/reload";
    request.authorization = "Bearer old";
    request.peer = "127.0.0.1:5000";
    a.router->dispatch(request, [&](Response r) { answer = std::move(r); });
    CHECK_FALSE(answer);  // answered when the reload ends
    REQUIRE(finish_reload);
    finish_reload({{"ok", true}, {"lines", json::array({"config reloaded"})}});
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK(body(*answer)["lines"][0] == "config reloaded");
    CHECK(a.post("/api/v1/jobs/beta/trigger", "Bearer old").status == 401);
    CHECK(a.post("/api/v1/jobs/beta/trigger", "Bearer new").status == 200);
  }
}

TEST_CASE("api: a paused job's fires are recorded skipped \"paused\", across a restart; resume",
          "[observe][api][pause]") {
  ApiRig a(kJobs, "s3cret");
  a.start(at_utc(10, 0, 0, 500));
  auto r = a.post("/api/v1/jobs/alpha/pause");
  REQUIRE(r.status == 200);
  CHECK(body(r)["changed"] == true);
  CHECK(body(a.post("/api/v1/jobs/alpha/pause"))["changed"] == false);
  CHECK(a.post("/api/v1/jobs/alpha/trigger").status == 409);
  a.rig.run_until(at_utc(10, 0, 3, 500));
  CHECK(a.rig.fake().started.empty());
  auto runs = a.rig.runs("alpha");
  REQUIRE(runs.size() == 3);  // slots :01 .. :03, each claimed
  for (const auto& run : runs) {
    CHECK(run.outcome == Outcome::skipped);
    CHECK(run.message == "paused");
  }
  auto job = body(a.get("/api/v1/jobs/alpha"));
  CHECK(job["paused"] == true);
  CHECK(job["paused_by"] == "http token 127.0.0.1:5000");
  CHECK(body(a.get("/api/v1/jobs?state=paused"))["total"] == 1);

  // A restart on the same ledger: still paused.
  bool idle = false;
  a.rig.engine().shutdown([&] { idle = true; });
  a.rig.settle();
  REQUIRE(idle);
  a.start(at_utc(10, 0, 5, 500));
  CHECK(a.rig.engine().paused("alpha"));
  a.rig.run_until(at_utc(10, 0, 6, 500));
  CHECK(a.rig.fake().started.empty());

  REQUIRE(a.post("/api/v1/jobs/alpha/resume").status == 200);
  a.rig.run_until(at_utc(10, 0, 7, 500));
  REQUIRE(a.rig.fake().started.size() == 1);
  CHECK(a.rig.fake().started[0].request.scheduled_for == at_utc(10, 0, 7));
  std::vector<std::string> kinds;
  const auto events = a.rig.store().events("alpha", 100).value();
  for (const auto& e : events) {
    if (e.kind == "paused" || e.kind == "resumed") kinds.push_back(e.kind);
  }
  CHECK(kinds == std::vector<std::string>{"resumed", "paused"});  // newest first
  CHECK(a.post("/api/v1/jobs/nope/pause").status == 404);
}

TEST_CASE("api: cancel stops a run in flight; it ends cancelled and is not retried",
          "[observe][api][cancel]") {
  ApiRig a(kJobs, "s3cret");
  a.start(at_utc(10, 0, 0, 500));
  a.rig.run_until(at_utc(10, 0, 1, 500));
  auto& fake = a.rig.fake();
  REQUIRE(fake.started.size() == 1);
  const auto id = fake.started[0].request.run_id;
  auto r = a.post("/api/v1/runs/" + id + "/cancel");
  REQUIRE(r.status == 200);
  a.rig.settle();
  REQUIRE(fake.stopped.size() == 1);
  CHECK(fake.stopped[0].reason == exec::StopReason::cancel);
  auto run = a.rig.store().get_run(id).value().value();
  CHECK(run.outcome == Outcome::cancelled);
  CHECK(a.rig.store().pending_retries().value().empty());  // alpha retries failures, not this
  CHECK(a.rig.store().job_stats("alpha").value().consecutive_failures == 0);
  bool named = false;
  const auto events = a.rig.store().run_events(id, 100).value();
  for (const auto& e : events) {
    named |= e.kind == "cancel" && e.detail.find("http token") != std::string::npos;
  }
  CHECK(named);
  CHECK(a.post("/api/v1/runs/" + id + "/cancel").status == 409);  // not in flight any more
  CHECK(a.post("/api/v1/runs/nope/cancel").status == 404);
}

namespace {

// The API's store on the loop: reading a run there fails the test (it must
// come through the read worker).
class NoRunOnLoop final : public observe::TimedStore {
 public:
  explicit NoRunOnLoop(ledger::Store& inner)
      : TimedStore(inner, [](observe::LedgerOp, double) {}) {}
  Result<std::optional<ledger::RunRecord>> get_run(std::string_view run_id) override {
    FAIL("get_run(" << run_id << ") read on the loop");
    return std::nullopt;
  }
};

}  // namespace

// On PostgreSQL the API's reads go through a worker thread: so does the
// read that tells an unknown run (404) from one not in flight (409), and,
// like the other reads, it is refused at once (503) past 16 waiting.
TEST_CASE("api: cancel of a run not in flight reads the ledger through the read worker",
          "[observe][api][cancel]") {
  ApiRig a(kJobs, "s3cret");
  a.start(at_utc(10, 0, 0, 500));
  add_run(a.rig.store(), "beta", at_utc(9, 0, 0), Outcome::succeeded);
  const std::string finished = a.rig.store().history("beta", 1).value().at(0).run_id;
  NoRunOnLoop loop(a.rig.store());
  ThreadedWorker w(a.rig.config().host.state_dir / "jobhost.db");
  observe::Api api(a.rig.engine(), loop);
  api.read_through(w.worker());
  observe::Router router;
  api.add_routes(router);
  // The answer to a cancel, once given.
  auto cancel = [&](const std::string& id) {
    auto out = std::make_shared<std::optional<Response>>();
    Request request;
    request.method = "POST";
    request.peer = "127.0.0.1:5000";
    request.authorization = "Bearer s3cret";
    request.path = "/api/v1/runs/" + id + "/cancel";
    router.dispatch(request, [out](Response r) { *out = std::move(r); });
    return out;
  };

  auto unknown = cancel("nope");
  auto done = cancel(finished);
  CHECK_FALSE(unknown->has_value());  // until the worker's answer
  CHECK_FALSE(done->has_value());
  w.wait_idle();
  w.answer();
  REQUIRE(unknown->has_value());
  CHECK((*unknown)->status == 404);
  REQUIRE(done->has_value());
  CHECK((*done)->status == 409);
  CHECK(body(**done)["error"].get<std::string>().find("not in flight") != std::string::npos);

  w.hold();
  std::vector<std::shared_ptr<std::optional<Response>>> waiting;
  for (int i = 0; i < 16; ++i) waiting.push_back(cancel("nope" + std::to_string(i)));
  auto refused = cancel("one-more");
  REQUIRE(refused->has_value());
  CHECK((*refused)->status == 503);
  w.release();
  w.wait_idle();
  w.answer();
  for (const auto& r : waiting) {
    REQUIRE(r->has_value());
    CHECK((*r)->status == 404);
  }
}

TEST_CASE("api: the OpenAPI document lists every route, and only those", "[observe][api]") {
  ApiRig a;
  a.start(at_utc(10, 0, 0));
  auto r = a.get("/api/v1/openapi.json");
  REQUIRE(r.status == 200);
  auto doc = body(r);
  CHECK(doc["openapi"].get<std::string>().starts_with("3.0"));
  std::set<std::pair<std::string, std::string>> documented, registered;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      std::string upper = method;
      for (auto& c : upper) c = static_cast<char>(std::toupper(c));
      documented.emplace(upper, path);
      CHECK(op.contains("responses"));
      // Every {param} of the path is described.
      for (auto pos = path.find('{'); pos != std::string::npos; pos = path.find('{', pos + 1)) {
        auto name = path.substr(pos + 1, path.find('}', pos) - pos - 1);
        bool described = false;
        for (const auto& p : op.value("parameters", json::array())) {
          described |= p["name"] == name && p["in"] == "path";
        }
        CHECK(described);
      }
    }
  }
  for (const auto& route : a.router->routes()) registered.insert(route);
  CHECK(documented == registered);
  // Every $ref points at a schema that exists.
  std::function<void(const json&)> check_refs = [&](const json& node) {
    if (node.is_object()) {
      if (node.contains("$ref")) {
        auto ref = node["$ref"].get<std::string>();
        REQUIRE(ref.starts_with("#/components/schemas/"));
        CHECK(doc["components"]["schemas"].contains(ref.substr(21)));
      }
      for (const auto& [k, v] : node.items()) check_refs(v);
    } else if (node.is_array()) {
      for (const auto& v : node) check_refs(v);
    }
  };
  check_refs(doc);
}

TEST_CASE("api: a job's schedule_resolved writes out cron H; the Job schema has every key",
          "[observe][api]") {
  ApiRig a(R"(
[jobs.backup]
plugin = "noop"
schedule = "H(0-29) 2 * * *"

[jobs.manual]
plugin = "noop"
schedule = "@manual"
)");
  a.start(at_utc(1, 0, 0));
  auto all = body(a.get("/api/v1/jobs"));
  REQUIRE(all["jobs"].size() == 2);
  const json& backup = all["jobs"][0];
  CHECK(backup["schedule"] == "H(0-29) 2 * * *");
  CHECK(backup["schedule_resolved"] == "3 2 * * *");
  CHECK(backup["schedule_description"] == "at 02:03 every day (UTC)");
  CHECK(all["jobs"][1]["schedule_resolved"] == "@manual");
  auto page = body(a.get("/api/v1/jobs/backup"));
  CHECK(page["schedule_resolved"] == "3 2 * * *");
  REQUIRE(!page["next_fires"].empty());
  CHECK(page["next_fires"][0].get<std::string>().ends_with("T02:03:00.000Z"));

  // The document's Job requires exactly the keys a job in the list has.
  auto doc = body(a.get("/api/v1/openapi.json"));
  std::set<std::string> required, answered;
  for (const auto& key : doc["components"]["schemas"]["Job"]["required"]) {
    required.insert(key.get<std::string>());
  }
  for (const auto& [key, value] : backup.items()) answered.insert(key);
  CHECK(required == answered);
}

TEST_CASE("api: cursors round-trip and refuse what they did not make", "[observe][api]") {
  ledger::RunCursor c{TimePoint(Duration(1234567)), "01ABCdef-_"};
  auto back = observe::decode_cursor(observe::encode_cursor(c));
  REQUIRE(back);
  CHECK(back->started_at == c.started_at);
  CHECK(back->run_id == c.run_id);
  for (const char* bad :
       {"", ".", "1.", ".x", "-1.x", "1x.y", "1.a b", "99999999999999999999.x", "1.a/b"}) {
    INFO(bad);
    CHECK_FALSE(observe::decode_cursor(bad));
  }
  CHECK(observe::constant_time_equal("abc", "abc"));
  CHECK_FALSE(observe::constant_time_equal("abc", "abd"));
  CHECK_FALSE(observe::constant_time_equal("abc", "abcd"));
}

TEST_CASE("a trigger with a JSON body is a webhook: its runs get the body as their event",
          "[api][abi]") {
  ApiRig a(kJobs, "s3cret");
  auto& fake = a.rig.fake();
  fake.decorate = [](exec::RunReport& report) { report.retryable = true; };
  a.start(at_utc(10, 0, 0));
  auto r = a.post("/api/v1/jobs/alpha/trigger", "Bearer s3cret",
                  R"({ "file": "a.csv", "rows": [1, 2] })");
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(body(r)["trigger"] == "webhook");
  a.rig.settle();
  REQUIRE(fake.started.size() == 1);
  const std::string event = R"({"file":"a.csv","rows":[1,2]})";
  CHECK(fake.started[0].request.trigger_kind == "webhook");
  CHECK(fake.started[0].request.event == event);
  const std::string run_id = fake.started[0].request.run_id;
  auto run = body(a.get("/api/v1/runs/" + run_id));
  CHECK(run["trigger"] == "webhook");
  CHECK(run["event"] == json::parse(event));
  // Its retry (alpha retries) carries the same payload.
  fake.finish(run_id, Outcome::failed);
  a.rig.run_until(a.rig.now() + 3s);
  std::vector<std::string> kinds;
  for (const auto& started : fake.started) {
    if (started.request.job != "alpha" ||
        started.request.scheduled_for != fake.started[0].request.scheduled_for)
      continue;
    kinds.push_back(started.request.trigger_kind);
    CHECK(started.request.event == event);
  }
  CHECK(kinds == std::vector<std::string>{"webhook", "retry"});

  // Without a body: a manual trigger, no event.
  r = a.post("/api/v1/jobs/beta/trigger");
  REQUIRE(r.status == 200);
  CHECK(body(r)["trigger"] == "manual");
  a.rig.settle();
  CHECK(fake.started.back().request.job == "beta");
  CHECK(fake.started.back().request.trigger_kind == "manual");
  CHECK_FALSE(fake.started.back().request.event.has_value());
  CHECK_FALSE(body(a.get("/api/v1/runs/" + fake.started.back().request.run_id)).contains("event"));

  // Not JSON, or too large: refused, nothing fires.
  const std::size_t before = fake.started.size();
  r = a.post("/api/v1/jobs/beta/trigger", "Bearer s3cret", "{ nope");
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("not a JSON document"));
  r = a.post("/api/v1/jobs/beta/trigger", "Bearer s3cret",
             "\"" + std::string(40 * 1024, 'x') + "\"");
  CHECK(r.status == 413);
  CHECK_THAT(r.body, Catch::Contains("at most 32768"));
  r = a.post("/api/v1/jobs/beta/trigger", "Bearer s3cret",
             std::string(20000, '[') + std::string(20000, ']'));
  CHECK(r.status == 400);
  CHECK_THAT(r.body, Catch::Contains("deeper than 64 levels"));
  a.rig.settle();
  CHECK(fake.started.size() == before);
}

TEST_CASE("api: forecast: the next hours in intervals, with the ledger's or the book's p95",
          "[observe][api][forecast]") {
  ApiRig a;  // alpha fires every second, concurrency forbid (the default)
  a.start(at_utc(10, 0, 0));
  SECTION("no history: 1 s a run, each ends as the next fire comes") {
    auto f = body(a.get("/api/v1/forecast?hours=1"));
    CHECK(f["from"] == "2030-01-07T10:00:00.000Z");
    CHECK(f["to"] == "2030-01-07T11:00:00.000Z");
    CHECK(f["bucket_minutes"] == 15);
    CHECK(f["max_concurrency"] == a.rig.config().host.max_concurrency);
    CHECK(f["truncated"] == false);
    CHECK(f["jobs_without_history"] == 1);  // alpha; beta is manual, gamma disabled
    CHECK(f["summary"]["fires"] == 3599);   // 10:00:01 to 10:59:59
    CHECK(f["summary"]["runs"] == 3599);
    CHECK(f["summary"]["peak_runs"] == 1);
    REQUIRE(f["buckets"].size() == 4);
    CHECK(f["buckets"][0]["start"] == "2030-01-07T10:00:00.000Z");
    CHECK(f["buckets"][0]["fires"] == 899);
    CHECK(f["buckets"][1]["start"] == "2030-01-07T10:15:00.000Z");
    CHECK(f["buckets"][3]["fires"] == 900);
    CHECK(f["buckets"][3]["peak_runs"] == 1);
  }
  SECTION("a p95 of 2.5 s: two fires of three are skipped by forbid; the book agrees") {
    add_run(a.rig.store(), "alpha", at_utc(9, 0, 0), Outcome::succeeded, 2500ms);
    auto f = body(a.get("/api/v1/forecast?hours=1&bucket_minutes=30"));
    CHECK(f["jobs_without_history"] == 0);
    CHECK(f["summary"]["runs"] == 1200);
    CHECK(f["summary"]["skipped"]["forbid"] == 2399);
    REQUIRE(f["buckets"].size() == 2);
    CHECK(f["buckets"][1]["skipped"] == 1200);
    observe::JobBook book;
    REQUIRE(book.seed(a.rig.store(), at_utc(10, 0, 0)));
    observe::ApiHooks hooks;
    hooks.book = &book;
    observe::Api with_book(a.rig.engine(), a.rig.store(), hooks);
    observe::Router router;
    with_book.add_routes(router);
    CHECK(body(call(router, "GET", "/api/v1/forecast?hours=1&bucket_minutes=30")) == f);
  }
  SECTION("bounds: the window, the intervals and the fires simulated") {
    CHECK(a.get("/api/v1/forecast?hours=0").status == 400);
    CHECK(a.get("/api/v1/forecast?hours=169").status == 400);
    CHECK(a.get("/api/v1/forecast?bucket_minutes=0").status == 400);
    auto many = a.get("/api/v1/forecast?hours=24&bucket_minutes=1");
    CHECK(many.status == 400);
    CHECK_THAT(many.body, Catch::Contains("at most 1000"));
    // A week of a job firing every second is more than a forecast simulates.
    auto week = body(a.get("/api/v1/forecast?hours=168"));
    CHECK(week["truncated"] == true);
    CHECK(week["covered_to"] < week["to"]);
    CHECK(week["buckets"].size() == 672);
    CHECK(week["buckets"][671]["fires"] == 0);
  }
  SECTION("the document's Forecast requires exactly the keys answered") {
    auto f = body(a.get("/api/v1/forecast"));
    CHECK(f["buckets"].size() == 96);
    auto doc = body(a.get("/api/v1/openapi.json"));
    const json& schema = doc["components"]["schemas"]["Forecast"];
    std::set<std::string> required, answered;
    for (const auto& key : schema["required"]) required.insert(key.get<std::string>());
    for (const auto& [key, value] : f.items()) answered.insert(key);
    CHECK(required == answered);
    required.clear(), answered.clear();
    for (const auto& key : schema["properties"]["summary"]["required"]) {
      required.insert(key.get<std::string>());
    }
    for (const auto& [key, value] : f["summary"].items()) answered.insert(key);
    CHECK(required == answered);
    required.clear(), answered.clear();
    for (const auto& key : schema["properties"]["buckets"]["items"]["required"]) {
      required.insert(key.get<std::string>());
    }
    for (const auto& [key, value] : f["buckets"][0].items()) answered.insert(key);
    CHECK(required == answered);
  }
}
