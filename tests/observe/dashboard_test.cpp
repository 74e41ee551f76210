// The dashboard's serving (routes, content types, caching, CSP), a static
// check that its script never turns data into markup, and the header tiles'
// figures the API adds for it (status_summary).
#include <catch2/catch.hpp>
#include <string>

#include "ledger/ledger_test_util.h"
#include "observe/dashboard.h"
#include "observe/dashboard_data.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace jobhost::ledger::testing;
using Catch::Contains;

namespace {

Response get(const Router& router, std::string path, std::string method = "GET") {
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  Response out;
  bool answered = false;
  router.dispatch(request, [&](Response r) {
    out = std::move(r);
    answered = true;
  });
  REQUIRE(answered);
  return out;
}

std::string header(const Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

std::string_view file(std::string_view name) {
  for (const auto& f : dashboard_files()) {
    if (f.name == name) return f.data;
  }
  FAIL("no embedded file " << name);
  return {};
}

}  // namespace

TEST_CASE("the dashboard's files are served with their types and a strict CSP",
          "[observe][dashboard]") {
  Router router;
  add_dashboard_routes(router);

  struct Case {
    std::string path;
    std::string type;
    std::string cache;
  };
  const std::vector<Case> cases = {
      {"/", "text/html; charset=utf-8", "no-cache"},
      {"/assets/app.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
      {"/assets/app.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
      {"/assets/favicon.svg", "image/svg+xml", "public, max-age=31536000, immutable"},
  };
  for (const auto& c : cases) {
    INFO(c.path);
    auto r = get(router, c.path);
    CHECK(r.status == 200);
    CHECK(r.content_type == c.type);
    CHECK(header(r, "Cache-Control") == c.cache);
    const auto csp = header(r, "Content-Security-Policy");
    CHECK_THAT(csp, Contains("default-src 'none'"));
    CHECK_THAT(csp, Contains("script-src 'self';"));
    CHECK_THAT(csp, Contains("frame-ancestors 'none'"));
    CHECK(csp.find("unsafe") == std::string::npos);
    CHECK(header(r, "X-Content-Type-Options") == "nosniff");
    CHECK_FALSE(r.body.empty());
  }
  CHECK(get(router, "/assets/app.js").body == file("app.js"));
  CHECK(get(router, "/", "HEAD").status == 200);
}

TEST_CASE("index.html links its assets with a content version and has no inline script",
          "[observe][dashboard]") {
  Router router;
  add_dashboard_routes(router);
  const auto page = get(router, "/").body;
  CHECK(page.find("{{version}}") == std::string::npos);
  CHECK_THAT(page, Contains("<script src=\"/assets/app.js?v="));
  CHECK_THAT(page, Contains("<link rel=\"stylesheet\" href=\"/assets/app.css?v="));
  // Every <script> loads a file; no inline style or event handler attributes
  // (the CSP would block them anyway: this keeps the page working under it).
  for (auto at = page.find("<script"); at != std::string::npos; at = page.find("<script", at + 1)) {
    const auto end = page.find('>', at);
    CHECK_THAT(page.substr(at, end - at), Contains(" src=\"/assets/"));
    CHECK(page.substr(end + 1, 9) == "</script>");
  }
  CHECK(page.find(" style=") == std::string::npos);
  CHECK(page.find(" onclick=") == std::string::npos);
  CHECK(page.find("http://") == std::string::npos);  // nothing from elsewhere
  CHECK(page.find("https://") == std::string::npos);
}

TEST_CASE("the dashboard's script never parses data as HTML", "[observe][dashboard]") {
  // Plugin output, messages and job names reach the page as text only.
  const auto js = std::string(file("app.js"));
  for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "eval(", "new Function", "DOMParser", "createContextualFragment"}) {
    INFO(sink);
    CHECK(js.find(sink) == std::string::npos);
  }
  CHECK(js.find("https://") == std::string::npos);  // no CDN, works offline
}

TEST_CASE("unknown assets are 404 and other methods 405", "[observe][dashboard]") {
  Router router;
  add_dashboard_routes(router);
  for (const char* path : {"/assets/nope.js", "/assets/index.html", "/assets/..", "/index.html"}) {
    INFO(path);
    auto r = get(router, path);
    CHECK(r.status == 404);
    CHECK(r.content_type == "application/json");
  }
  CHECK(get(router, "/", "POST").status == 405);
}

TEST_CASE("last_hour_json counts the finished runs of the last hour", "[observe][dashboard]") {
  TempDir dir;
  auto store = open_store(dir.db());
  const auto now = at_ms(kBase + 2 * 3600 * 1000);
  struct Row {
    int64_t started_ms;
    Outcome outcome;
    int64_t duration_ms;
  };
  // One run 61 minutes ago (outside), three inside.
  const std::vector<Row> rows = {{3540 * 1000, Outcome::failed, 9000},
                                 {3700 * 1000, Outcome::succeeded, 100},
                                 {5000 * 1000, Outcome::crashed, 200},
                                 {7000 * 1000, Outcome::succeeded, 300}};
  for (const auto& row : rows) {
    auto start = make_start("job", row.started_ms, row.started_ms);
    REQUIRE(store->claim_and_start(start).value());
    REQUIRE(store->finish_run(make_end(start, row.outcome, row.duration_ms)).value());
  }
  auto hour = last_hour_json(*store, now).value();
  CHECK(hour["runs"] == 3);
  CHECK(hour["failed"] == 1);
  CHECK(hour["failure_rate"].get<double>() == Approx(1.0 / 3));
  CHECK(hour["mean_duration_ms"] == 200);

  auto later = last_hour_json(*store, now + std::chrono::hours(5)).value();
  CHECK(later["runs"] == 0);
  CHECK(later["failure_rate"].is_null());
  CHECK(later["mean_duration_ms"].is_null());
}

TEST_CASE("status_summary: the header tiles", "[observe][dashboard]") {
  TempDir dir;
  auto store = open_store(dir.db());
  auto start = make_start("job", 0, 0);
  REQUIRE(store->claim_and_start(start).value());
  REQUIRE(store->finish_run(make_end(start, Outcome::failed, 50)).value());
  ledger::PendingRetry retry{"job",          start.scheduled_for, 2, at_ms(kBase + 5000),
                             start.trace_id, std::nullopt};
  REQUIRE(store->schedule_retry(retry, at_ms(kBase + 100)).has_value());

  const nlohmann::json snapshot = {
      {"running", {{{"run_id", "r1"}}, {{"run_id", "r2"}}}},
      {"queued", 3},
      {"ledger_backlog", {{"records", 0}, {"oldest_kept_since", nullptr}}}};
  auto summary = status_summary(*store, snapshot, at_ms(kBase + 1000)).value();
  CHECK(summary["runs_in_flight"] == 2);
  CHECK(summary["queue_depth"] == 3);
  CHECK(summary["pending_retries"] == 1);
  CHECK(summary["last_hour"]["runs"] == 1);
  CHECK(summary["last_hour"]["failure_rate"] == 1.0);
  CHECK(summary["ledger"]["healthy"] == true);
  CHECK(summary["ledger"]["reason"].is_null());

  const nlohmann::json stuck = {
      {"running", nlohmann::json::array()},
      {"queued", 0},
      {"ledger_backlog", {{"records", 4}, {"oldest_kept_since", "2026-11-29T08:00:00.000Z"}}}};
  auto bad = status_summary(*store, stuck, at_ms(kBase + 1000)).value();
  CHECK(bad["ledger"]["healthy"] == false);
  CHECK(bad["ledger"]["backlog"] == 4);
  CHECK(bad["ledger"]["reason"] == "4 ledger write(s) waiting since 2026-11-29T08:00:00.000Z");
}
