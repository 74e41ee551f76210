// The Alerter in this process, on a real SQLite ledger: notices left
// undelivered by a previous host are sent at start, retries are not fires,
// alert_to = [] keeps state without telling anyone, a kind turned off by a
// reload is cleared, a failed delivery is recorded with its error, state()
// is what the API shows.
#include <signal.h>

#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <catch2/catch.hpp>
#include <fstream>

#include "ledger/sqlite_store.h"
#include "ledger/store_worker.h"
#include "observe/alerts.h"
#include "observe/timed_store.h"
#include "support/temp_dir.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace std::chrono_literals;
using jobhost::testing::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Rig {
  TempDir dir;
  boost::asio::io_context io;
  std::unique_ptr<ledger::Store> store;
  fs::path notices = dir.path() / "notices";
  TimePoint clock = TimePoint(std::chrono::hours(24 * 365 * 56));

  Rig() {
    ::signal(SIGPIPE, SIG_IGN);
    auto opened = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
    const fs::path exe = dir.path() / "notify";
    std::ofstream(exe) << "#!/bin/sh\ncat >> \"$1\"\n";
    fs::permissions(exe, fs::perms::owner_all);
  }

  config::NotifierConfig log_notifier() const {
    config::NotifierConfig n;
    n.name = "log";
    n.type = config::NotifierConfig::Type::command;
    n.command = {(dir.path() / "notify").string(), notices.string()};
    if (::geteuid() == 0) n.user = "root";  // the temp dir is root-only
    return n;
  }

  std::unique_ptr<Alerter> alerter(const config::Config& config) {
    return std::make_unique<Alerter>(io, *store, config, [this] { return clock; });
  }

  std::vector<json> lines() const {
    std::vector<json> out;
    std::ifstream in(notices);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }

  std::vector<ledger::Event> events(const std::string& kind) {
    std::vector<ledger::Event> out;
    const auto all = store->events(std::nullopt, 1000).value();
    for (const auto& e : all) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }

  // Runs the loop until `done` or 20 s.
  bool run_until(const std::function<bool()>& done) {
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (!done() && std::chrono::steady_clock::now() < until) {
      io.restart();
      io.run_for(20ms);
    }
    return done();
  }

  // Runs the loop for a while: what was going to happen has happened.
  void settle() {
    io.restart();
    io.run_for(500ms);
  }

  void fire_end(Alerter& a, const std::string& job, Outcome outcome,
                std::optional<TimePoint> retry_at = std::nullopt) {
    ledger::RunStart start;
    start.run_id = "run-" + std::to_string(++runs);
    start.job = job;
    ledger::RunEnd end;
    end.run_id = start.run_id;
    end.outcome = outcome;
    end.message = "boom";
    end.retry_at = retry_at;
    a.on_run_finished(start, end, exec::RunReport{});
  }
  int runs = 0;
};

config::JobConfig job(const std::string& name, int alert_after, Duration silent = Duration(0)) {
  config::JobConfig j;
  j.name = name;
  jobhost::config::own_settings(j).plugin = "hello";
  jobhost::config::own_settings(j).alert_after = alert_after;
  jobhost::config::own_settings(j).expect_success_within = silent;
  return j;
}

}  // namespace

TEST_CASE("a notice a previous host decided but did not deliver is sent at start",
          "[observe][alerter]") {
  Rig rig;
  ledger::AlertRecord left{"a",
                           "failing",
                           true,
                           rig.clock - 1h,
                           rig.clock - 1h,
                           3,
                           std::nullopt,
                           true,
                           "job a failed 3 times in a row"};
  REQUIRE(rig.store->save_alert_state(left, rig.clock - 1h, std::nullopt).has_value());
  config::Config config;
  config.jobs = {job("a", 3)};
  config.alerts = {rig.log_notifier()};
  auto alerter = rig.alerter(config);
  alerter->start();
  REQUIRE(rig.run_until([&] { return rig.events("alert").size() == 1; }));
  REQUIRE(rig.lines().size() == 1);
  CHECK(rig.lines()[0]["message"] == "job a failed 3 times in a row");
  CHECK(rig.lines()[0]["event"] == "alert");
  const auto rows = rig.store->alert_states().value();
  REQUIRE(rows.size() == 1);
  CHECK_FALSE(rows[0].pending);
  CHECK(rows[0].firing);
}

TEST_CASE("retries are not fires; alert_to = [] keeps the state and tells no one",
          "[observe][alerter]") {
  Rig rig;
  config::Config config;
  config.jobs = {job("b", 2)};
  jobhost::config::own_settings(config.jobs[0]).alert_to = std::vector<std::string>{};
  config.alerts = {rig.log_notifier()};
  auto alerter = rig.alerter(config);
  alerter->start();
  // Two failed attempts of one fire (the first has a retry), then one more fire.
  rig.fire_end(*alerter, "b", Outcome::failed, rig.clock + 1s);
  rig.fire_end(*alerter, "b", Outcome::failed);
  CHECK_FALSE(alerter->state("b")["failing"]["firing"].get<bool>());
  CHECK(alerter->state("b")["failing"]["consecutive_failed_fires"] == 1);
  rig.fire_end(*alerter, "b", Outcome::timed_out);
  CHECK(alerter->state("b")["failing"]["firing"].get<bool>());
  rig.settle();  // let anything queued run (nothing should)
  CHECK(rig.lines().empty());
  auto alerts = rig.events("alert");
  REQUIRE(alerts.size() == 1);
  auto detail = json::parse(alerts[0].detail);
  CHECK(detail["result"] == "no notifier");
  CHECK(detail["notifier"].is_null());
  CHECK(alerter->state("b")["notifiers"] == json::array());
  CHECK(alerter->state("nope").is_null());
}

TEST_CASE("a reload that turns a firing kind off clears it without a notice",
          "[observe][alerter]") {
  Rig rig;
  config::Config config;
  config.jobs = {job("c", 1, 1h)};
  config.alerts = {rig.log_notifier()};
  auto alerter = rig.alerter(config);
  alerter->start();
  rig.fire_end(*alerter, "c", Outcome::crashed);
  REQUIRE(rig.run_until([&] { return rig.events("alert").size() == 1; }));
  auto state = alerter->state("c");
  CHECK(state["failing"]["firing"].get<bool>());
  CHECK(state["silent"]["enabled"].get<bool>());
  CHECK(state["silent"]["expect_success_within"] == "1h");
  CHECK(state["silent"]["deadline"] == ledger::format_utc(rig.clock + 1h));
  CHECK(state["notifiers"] == json::array({"log"}));

  jobhost::config::own_settings(config.jobs[0]).alert_after = 0;
  alerter->on_config_applied(config);
  CHECK_FALSE(alerter->state("c")["failing"]["firing"].get<bool>());
  CHECK(rig.events("alert_cleared").size() == 1);
  CHECK(rig.lines().size() == 1);  // no notice for the clearing
  // A success now recovers nothing: there is nothing firing.
  rig.fire_end(*alerter, "c", Outcome::succeeded);
  rig.settle();
  CHECK(rig.events("alert_recovered").empty());
}

TEST_CASE("the silence timer alerts once the window passes", "[observe][alerter]") {
  Rig rig;
  config::Config config;
  config.jobs = {job("d", 0, 1h)};
  config.alerts = {rig.log_notifier()};
  auto alerter = rig.alerter(config);
  alerter->start();  // first seen now: the window starts here
  CHECK(alerter->state("d")["silent"]["window_start"] == ledger::format_utc(rig.clock));
  rig.settle();
  CHECK(rig.lines().empty());
  rig.clock += 1h;  // the (real) timer looks again within kSilenceCheckEvery; poke it by a reload
  alerter->apply_config(config);
  REQUIRE(rig.run_until([&] { return rig.lines().size() == 1; }));
  CHECK(rig.lines()[0]["kind"] == "silent");
  alerter->apply_config(config);
  rig.settle();
  CHECK(rig.lines().size() == 1);
}

TEST_CASE("a delivery that fails is recorded with its error", "[observe][alerter]") {
  Rig rig;
  boost::asio::ip::tcp::acceptor probe(rig.io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = probe.local_endpoint().port();
  probe.close();
  config::NotifierConfig hook;
  hook.name = "hook";
  hook.type = config::NotifierConfig::Type::webhook;
  hook.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  hook.retries = 0;
  hook.timeout = 2s;
  config::Config config;
  config.jobs = {job("e", 1)};
  config.alerts = {hook, rig.log_notifier()};
  auto alerter = rig.alerter(config);
  alerter->start();
  rig.fire_end(*alerter, "e", Outcome::failed);
  REQUIRE(rig.run_until([&] { return rig.events("alert").size() == 2; }));
  std::map<std::string, json> by_notifier;
  for (const auto& e : rig.events("alert")) {
    auto d = json::parse(e.detail);
    by_notifier[d["notifier"]] = d;
  }
  CHECK(by_notifier["log"]["result"] == "ok");
  CHECK(by_notifier["hook"]["result"] == "failed");
  CHECK(by_notifier["hook"]["type"] == "webhook");
  CHECK(by_notifier["hook"]["error"].get<std::string>().starts_with("connecting: "));
  // Every notifier answered: the notice is no longer pending, though one failed.
  CHECK_FALSE(alerter->state("e")["failing"]["pending"].get<bool>());
}

TEST_CASE("a delivery the daemon abandons when it stops is sent again at the next start",
          "[observe][alerter]") {
  Rig rig;
  const fs::path slow = rig.dir.path() / "slow";
  std::ofstream(slow) << "#!/bin/sh\nsleep 30\n";
  fs::permissions(slow, fs::perms::owner_all);
  config::NotifierConfig hanging = rig.log_notifier();
  hanging.command = {slow.string()};
  config::Config config;
  config.jobs = {job("f", 1)};
  config.alerts = {hanging};
  {
    auto alerter = rig.alerter(config);
    alerter->start();
    rig.fire_end(*alerter, "f", Outcome::failed);
    bool drained = false;
    alerter->drain(200ms, [&] { drained = true; });
    REQUIRE(rig.run_until([&] { return drained; }));
  }
  auto abandoned = rig.events("alert");
  REQUIRE(abandoned.size() == 1);
  CHECK(json::parse(abandoned[0].detail)["error"] == "abandoned: the daemon stopped");
  auto rows = rig.store->alert_states().value();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].pending);

  config.alerts = {rig.log_notifier()};
  auto next = rig.alerter(config);
  next->start();
  REQUIRE(rig.run_until([&] { return rig.lines().size() == 1; }));
  CHECK(rig.lines()[0]["event"] == "alert");
  REQUIRE(rig.run_until([&] { return !rig.store->alert_states().value()[0].pending; }));
}

// Alert state is kept only for the jobs that have an alert setting (or
// alert_to), or state in the ledger; every other job of the config shows the
// state of a job with alerts off, as it always did, and costs nothing.
TEST_CASE("state is kept only for jobs with an alert setting or alert state",
          "[observe][alerter]") {
  Rig rig;
  // "old" had alert_after once: its state is in the ledger.
  const ledger::AlertRecord left{"old",        "failing",      false,
                                 std::nullopt, rig.clock - 2h, 0,
                                 std::nullopt, false,          "job old succeeded again"};
  REQUIRE(rig.store->save_alert_state(left, rig.clock - 2h, std::nullopt).has_value());
  config::Config config;
  config.jobs = {job("a", 2), job("s", 0, 1h), job("old", 0), job("to", 0)};
  jobhost::config::own_settings(config.jobs.back()).alert_to = std::vector<std::string>{"log"};
  for (int i = 0; i < 1000; ++i) config.jobs.push_back(job("plain" + std::to_string(i), 0));
  config.alerts = {rig.log_notifier()};
  auto alerter = rig.alerter(config);
  alerter->start();
  CHECK(alerter->jobs_kept() == 4);  // a, s, to, and old (from the ledger)

  const json off = {
      {"notifiers", json::array({"log"})},
      {"failing",
       {{"enabled", false},
        {"alert_after", 0},
        {"firing", false},
        {"since", nullptr},
        {"notified_at", nullptr},
        {"consecutive_failed_fires", 0},
        {"pending", false}}},
      {"silent",
       {{"enabled", false},
        {"expect_success_within", nullptr},
        {"firing", false},
        {"since", nullptr},
        {"notified_at", nullptr},
        {"window_start", nullptr},
        {"deadline", nullptr},
        {"pending", false}}},
  };
  CHECK(alerter->state("plain7") == off);
  json old = off;
  old["failing"]["notified_at"] = ledger::format_utc(rig.clock - 2h);
  CHECK(alerter->state("old") == old);
  CHECK(alerter->state("nope").is_null());
  CHECK(alerter->state("to")["notifiers"] == json::array({"log"}));

  // Fires of jobs with alerts off change nothing and keep nothing.
  for (int i = 0; i < 3; ++i) rig.fire_end(*alerter, "plain7", Outcome::failed);
  rig.fire_end(*alerter, "plain8", Outcome::succeeded);
  rig.settle();
  CHECK(rig.events("alert").empty());
  CHECK(alerter->jobs_kept() == 4);
  CHECK(alerter->state("plain7") == off);

  // A reload that gives one alert_after keeps it from then on; one that
  // removes a job with state drops it.
  jobhost::config::own_settings(config.jobs[4]).alert_after = 1;  // plain0
  config.jobs.erase(config.jobs.begin() + 2);                     // old
  alerter->apply_config(config);
  CHECK(alerter->jobs_kept() == 4);
  CHECK(alerter->state("old").is_null());
  rig.fire_end(*alerter, "plain0", Outcome::failed);
  REQUIRE(rig.run_until([&] { return rig.lines().size() == 1; }));
  CHECK(rig.lines()[0]["job"] == "plain0");
  CHECK(rig.lines()[0]["run_id"] == "run-" + std::to_string(rig.runs));
  CHECK(alerter->state("plain0")["failing"]["firing"].get<bool>());
}

namespace {

// The alerter's store on the loop: reading a window there fails the test
// (it must come through the worker).
class NoBoundsOnLoop final : public TimedStore {
 public:
  explicit NoBoundsOnLoop(ledger::Store& inner) : TimedStore(inner, [](LedgerOp, double) {}) {}
  Result<SuccessBounds> success_bounds(std::string_view job) override {
    FAIL("success_bounds(" << job << ") read on the loop");
    return {};
  }
};

void add_success(ledger::Store& store, const std::string& job, TimePoint finished) {
  ledger::RunStart start;
  start.run_id = "ok-" + job;
  start.trace_id = "t-" + job;
  start.job = job;
  start.scheduled_for = finished - 1min;
  start.started_at = finished - 1min;
  start.host_pid = 1;
  REQUIRE(store.claim_and_start(start).value());
  ledger::RunEnd end;
  end.run_id = start.run_id;
  end.finished_at = finished;
  end.outcome = Outcome::succeeded;
  REQUIRE(store.finish_run(end).value());
}

}  // namespace

// On PostgreSQL the alerter's writes go through a worker thread with a
// connection of its own; the windows of silences it has no start for (new
// at start or by a reload) are read there too, and set when the answer is
// back on the loop. Meanwhile such a job has no window: no alert, no crash.
TEST_CASE("a new silence's window is read through the worker, not on the loop",
          "[observe][alerter]") {
  Rig rig;
  add_success(*rig.store, "late", rig.clock - 3h);
  auto second =
      ledger::open_sqlite_store(rig.dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(second);
  NoBoundsOnLoop loop_store(*rig.store);
  ledger::StoreWorker worker(**second, [&](std::function<void()> answer) {
    boost::asio::post(rig.io, std::move(answer));
  });
  auto window = [](Alerter& a, const std::string& job) {
    return a.state(job)["silent"]["window_start"];
  };

  config::Config config;
  config.jobs = {job("d", 0, 1h)};
  config.alerts = {rig.log_notifier()};
  auto alerter = std::make_unique<Alerter>(rig.io, loop_store, config, [&] { return rig.clock; });
  alerter->write_through(worker);
  alerter->start();
  const TimePoint started = rig.clock;
  CHECK(window(*alerter, "d").is_null());
  rig.clock += 1min;  // the answer comes later; the window counts from the asking
  REQUIRE(rig.run_until([&] { return !window(*alerter, "d").is_null(); }));
  CHECK(window(*alerter, "d") == ledger::format_utc(started));

  // A reload adds "late" (its last success 3 h ago), "fresh" (no run), "ok"
  // (a success before the answer) and "gone" (removed again before it).
  config.jobs = {job("d", 0, 1h), job("late", 0, 1h), job("fresh", 0, 1h), job("ok", 0, 1h),
                 job("gone", 0, 1h)};
  alerter->apply_config(config);
  const TimePoint asked = rig.clock;
  for (const char* name : {"late", "fresh", "ok", "gone"}) {
    INFO(name);
    CHECK(window(*alerter, name).is_null());
    CHECK(alerter->state(name)["silent"]["deadline"].is_null());
  }
  rig.clock += 1min;
  rig.fire_end(*alerter, "ok", Outcome::succeeded);
  config.jobs.pop_back();
  alerter->apply_config(config);
  CHECK(alerter->state("gone").is_null());
  CHECK(rig.events("alert").empty());  // nothing without a window

  REQUIRE(rig.run_until([&] { return !window(*alerter, "late").is_null(); }));
  CHECK(window(*alerter, "late") == ledger::format_utc(started - 3h));
  CHECK(window(*alerter, "fresh") == ledger::format_utc(asked));
  CHECK(window(*alerter, "ok") == ledger::format_utc(asked + 1min));  // the success's
  // Its window passed long ago: the timer alerts at once.
  REQUIRE(rig.run_until([&] { return rig.lines().size() == 1; }));
  CHECK(rig.lines()[0]["job"] == "late");
  CHECK(rig.lines()[0]["kind"] == "silent");
  worker.settle();
  std::map<std::string, std::optional<TimePoint>> saved;
  const auto rows = rig.store->alert_states().value();
  for (const auto& row : rows) {
    if (row.kind == "silent") saved[row.job] = row.window_start;
  }
  CHECK(saved.size() == 4);  // not "gone"
  CHECK(saved["late"] == started - 3h);
  CHECK(saved["fresh"] == asked);

  // An answer that comes back after the alerter is gone is dropped.
  config.jobs.push_back(job("after", 0, 1h));
  alerter->apply_config(config);
  alerter.reset();
  worker.settle();
  rig.settle();
}
