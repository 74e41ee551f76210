// /healthz and /readyz: the readiness verdict, and the ledger write probe
// (a real write, at most once per interval).
#include "observe/health.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "ledger/sqlite_store.h"
#include "support/temp_dir.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("readiness: 200 when every check passes, else 503 with one reason per failure",
          "[observe][health]") {
  struct Case {
    bool config_loaded;
    bool writable;
    bool stopping;
    std::size_t backlog;
    int status;
    std::vector<std::string> reasons;  // substrings, in order
  };
  const Case cases[] = {
      {true, true, false, 0, 200, {}},
      {false, true, false, 0, 503, {"no config loaded"}},
      {true, false, false, 0, 503, {"ledger not writable: disk I/O error"}},
      {true, true, false, 3, 503, {"ledger write backlog: 3 record(s)"}},
      {true, true, true, 0, 503, {"stopping: no new runs start"}},
      {false, false, true, 1, 503, {"stopping", "no config", "not writable", "backlog: 1"}},
  };
  for (const auto& c : cases) {
    Readiness r;
    r.config_loaded = c.config_loaded;
    r.stopping = c.stopping;
    if (!c.writable) r.ledger_writable = fail("disk I/O error");
    r.ledger_backlog = c.backlog;
    auto response = readiness_response(r);
    CHECK(response.status == c.status);
    CHECK(response.content_type == "application/json");
    auto body = json::parse(response.body);
    if (c.status == 200) {
      CHECK(body == json({{"status", "ready"}}));
      continue;
    }
    CHECK(body["status"] == "not ready");
    REQUIRE(body["reasons"].size() == c.reasons.size());
    for (std::size_t i = 0; i < c.reasons.size(); ++i) {
      CHECK_THAT(body["reasons"][i].get<std::string>(), Catch::Contains(c.reasons[i]));
    }
  }
}

TEST_CASE("the ledger probe writes for real, at most once per interval", "[observe][health]") {
  testing::TempDir dir;
  const auto db = dir.path() / "jobhost.db";
  auto store = ledger::open_sqlite_store(db, config::Durability::normal);
  REQUIRE(store.has_value());
  auto now = std::chrono::steady_clock::time_point{} + 100h;
  LedgerWriteProbe probe(**store, 1s, [&] { return now; });

  const auto probe_row = [&] {
    SQLite::Database reader(db.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(reader, "SELECT count(*) FROM host_settings WHERE name = 'write_probe'");
    q.executeStep();
    return q.getColumn(0).getInt();
  };

  CHECK(probe.check().has_value());
  CHECK(probe.probes() == 1);
  CHECK(probe_row() == 1);
  for (int i = 0; i < 100; ++i) CHECK(probe.check().has_value());  // a storm: cached
  CHECK(probe.probes() == 1);

  {
    // Another process holds the write lock: the next probe fails.
    SQLite::Database other(db.string(), SQLite::OPEN_READWRITE);
    other.exec("BEGIN EXCLUSIVE");
    now += 999ms;
    CHECK(probe.check().has_value());  // still the cached verdict
    now += 1ms;
    auto verdict = probe.check();
    REQUIRE_FALSE(verdict.has_value());
    CHECK_THAT(verdict.error().message, Catch::Contains("cannot write to the ledger"));
    CHECK(probe.probes() == 2);
    now += 500ms;
    CHECK_FALSE(probe.check().has_value());  // cached failure
    CHECK(probe.probes() == 2);
    other.exec("ROLLBACK");
  }
  now += 500ms;
  CHECK(probe.check().has_value());
  CHECK(probe.probes() == 3);
}

TEST_CASE("the health routes answer GET and HEAD", "[observe][health]") {
  Router router;
  bool ready = true;
  add_health_routes(router, [&] {
    Readiness r;
    r.config_loaded = true;
    if (!ready) r.ledger_writable = fail("read-only");
    return r;
  });
  const auto ask = [&](std::string method, std::string path) {
    Response out;
    Request request;
    request.method = std::move(method);
    request.path = std::move(path);
    router.dispatch(request, [&](Response r) { out = std::move(r); });
    return out;
  };
  CHECK(ask("GET", "/healthz").status == 200);
  CHECK(json::parse(ask("GET", "/healthz").body) == json({{"status", "ok"}}));
  CHECK(ask("HEAD", "/healthz").status == 200);
  CHECK(ask("GET", "/readyz").status == 200);
  ready = false;
  auto not_ready = ask("GET", "/readyz");
  CHECK(not_ready.status == 503);
  CHECK(json::parse(not_ready.body)["reasons"][0] == "ledger not writable: read-only");
  CHECK(ask("POST", "/readyz").status == 405);
}
