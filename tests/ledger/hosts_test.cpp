// Leases and takeover (Store::renew_lease, end_lease, hosts,
// take_over_expired): what several hosts sharing a ledger decide each
// other's liveness by (docs/cluster.md). A contract case: SQLite and
// PostgreSQL alike.
#include <atomic>
#include <set>
#include <thread>

#include "ledger/ledger_test_util.h"
#include "ledger/pg_store.h"
#include "support/tcp_proxy.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;

namespace {

HostRecord host_at(std::string id, std::string incarnation, int64_t started_ms,
                   int64_t heartbeat_ms, int64_t lease_ms = 8000) {
  HostRecord h;
  h.id = std::move(id);
  h.incarnation = std::move(incarnation);
  h.pid = 100;
  h.version = "test";
  h.started_at = at_ms(kBase + started_ms);
  h.heartbeat_at = at_ms(kBase + heartbeat_ms);
  h.lease_until = at_ms(kBase + heartbeat_ms + lease_ms);
  return h;
}

std::unique_ptr<Store> open_as(const TestLedger& ledger, const std::string& host) {
  return ledger.open(config::Durability::normal, Access::read_write, host);
}

}  // namespace

TEST_CASE("leases: registered, renewed, replaced by a newer incarnation", "[ledger][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  CHECK(store->hosts().value().empty());
  REQUIRE(store->renew_lease(host_at("a", "a1", 0, 0)).value() == Lease::renewed);
  REQUIRE(store->renew_lease(host_at("a", "a1", 0, 2000)).value() == Lease::renewed);
  auto hosts = store->hosts().value();
  REQUIRE(hosts.size() == 1);
  CHECK(hosts[0].id == "a");
  CHECK(hosts[0].incarnation == "a1");
  CHECK(hosts[0].version == "test");
  CHECK(hosts[0].started_at == at_ms(kBase));
  CHECK(hosts[0].heartbeat_at == at_ms(kBase + 2000));
  CHECK(hosts[0].lease_until == at_ms(kBase + 10000));
  CHECK_FALSE(hosts[0].taken_over_at.has_value());

  // The host restarted: its new incarnation takes the row, and the old one,
  // should it still live (two daemons with one id), has lost it.
  REQUIRE(store->renew_lease(host_at("a", "a2", 5000, 5000)).value() == Lease::renewed);
  CHECK(store->renew_lease(host_at("a", "a1", 0, 6000)).value() == Lease::lost);
  CHECK(store->hosts().value().at(0).incarnation == "a2");
  CHECK(store->hosts().value().at(0).heartbeat_at == at_ms(kBase + 5000));
}

TEST_CASE("takeover: a host whose lease ran out has its runs closed once, by one host",
          "[ledger][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto a = open_as(ledger, "a");
  auto b = open_as(ledger, "b");
  REQUIRE(a->renew_lease(host_at("a", "a1", 0, 0)).value() == Lease::renewed);
  REQUIRE(b->renew_lease(host_at("b", "b1", 0, 0)).value() == Lease::renewed);
  auto running = make_start("job", 0, 0);
  auto parked = make_start("job", 60000, 10);
  parked.parked = true;
  auto done = make_start("other", 0, 20);
  REQUIRE(b->claim_and_start(running).value());
  REQUIRE(b->claim_and_start(parked).value());
  REQUIRE(b->claim_and_start(done).value());
  REQUIRE(b->finish_run(make_end(done, Outcome::succeeded)).value());
  auto mine = make_start("mine", 0, 30);
  REQUIRE(a->claim_and_start(mine).value());

  // Not before its lease has run out.
  CHECK(a->take_over_expired("a", at_ms(kBase + 8000), "taken over").value().closed.empty());
  CHECK(b->get_run(running.run_id).value()->running());

  // a renews; b does not. Past b's lease a takes it over, never itself.
  REQUIRE(a->renew_lease(host_at("a", "a1", 0, 8000)).value() == Lease::renewed);
  auto takeover =
      a->take_over_expired("a", at_ms(kBase + 9000), "its host's lease ran out").value();
  const auto& closed = takeover.closed;
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].run_id == running.run_id);
  CHECK(closed[0].outcome == Outcome::interrupted);
  CHECK(closed[0].host == "b");
  auto run = a->get_run(running.run_id).value().value();
  CHECK(run.outcome == Outcome::interrupted);
  CHECK(run.message == "its host's lease ran out");
  CHECK(run.finished_at == at_ms(kBase + 9000));
  // The parked claim (its process never began) is undone: the slot is free,
  // for the taker to fire.
  REQUIRE(takeover.freed.size() == 1);
  CHECK(takeover.freed[0].first == "job");
  CHECK(takeover.freed[0].second == parked.scheduled_for);
  CHECK_FALSE(a->get_run(parked.run_id).value().has_value());
  CHECK(a->slot_runs("job", parked.scheduled_for).value().empty());
  CHECK(a->get_run(done.run_id).value()->outcome == Outcome::succeeded);
  CHECK(a->get_run(mine.run_id).value()->running());
  auto hosts = a->hosts().value();
  REQUIRE(hosts.size() == 2);
  CHECK(hosts[1].id == "b");
  CHECK(hosts[1].taken_over_at == at_ms(kBase + 9000));
  CHECK(hosts[1].taken_over_by == "a");
  CHECK_FALSE(hosts[0].taken_over_at.has_value());

  // Once: a later takeover finds nothing, and b, should it wake up, has lost
  // its lease; its late end of the run changes nothing.
  auto again = a->take_over_expired("a", at_ms(kBase + 20000), "again").value();
  CHECK(again.closed.empty());
  CHECK(again.freed.empty());
  CHECK(b->renew_lease(host_at("b", "b1", 0, 9500)).value() == Lease::lost);
  CHECK(b->finish_run(make_end(running, Outcome::succeeded)).value() == false);
  CHECK(a->get_run(running.run_id).value()->outcome == Outcome::interrupted);
  // b restarts: a new incarnation registers afresh.
  REQUIRE(b->renew_lease(host_at("b", "b2", 10000, 10000)).value() == Lease::renewed);
  CHECK_FALSE(b->hosts().value().at(1).taken_over_at.has_value());
}

TEST_CASE("a host that stops cleanly leaves nothing to take over", "[ledger][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto a = open_as(ledger, "a");
  auto b = open_as(ledger, "b");
  REQUIRE(b->renew_lease(host_at("b", "b1", 0, 0)).value() == Lease::renewed);
  REQUIRE(b->end_lease("b", "b1", at_ms(kBase + 1000)).has_value());
  REQUIRE(b->end_lease("nobody", "x", at_ms(kBase + 1000)).has_value());
  auto hosts = a->hosts().value();
  REQUIRE(hosts.size() == 1);
  CHECK(hosts[0].lease_until == at_ms(kBase + 1000));
  CHECK(hosts[0].taken_over_by == "b");
  CHECK(a->take_over_expired("a", at_ms(kBase + 60000), "x").value().closed.empty());
}

TEST_CASE("hosts taking over at once close each run once", "[ledger][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  std::vector<RunStart> starts;
  {
    auto dead = open_as(ledger, "dead");
    for (int i = 0; i < 3; ++i) {
      const std::string id = "dead" + std::to_string(i);
      REQUIRE(dead->renew_lease(host_at(id, id, 0, 0)).value() == Lease::renewed);
    }
    for (int i = 0; i < 30; ++i) {
      auto start = make_start("job" + std::to_string(i), 0, i);
      REQUIRE(dead->claim_and_start(start).value());
      starts.push_back(start);
    }
  }
  // The runs belong to host "dead"; the three dead hosts' rows and "dead"'s
  // own are taken over by whichever of the takers gets each.
  {
    auto dead = open_as(ledger, "dead");
    REQUIRE(dead->renew_lease(host_at("dead", "d", 0, 0)).value() == Lease::renewed);
  }
  std::vector<std::vector<RunRecord>> closed(3);
  std::vector<std::string> errors(3);
  std::vector<std::thread> takers;
  for (int t = 0; t < 3; ++t) {
    takers.emplace_back([&, t] {
      const std::string me = "taker" + std::to_string(t);
      auto store = ledger.try_open(config::Durability::normal, Access::read_write, me);
      if (!store) {
        errors[t] = store.error().message;
        return;
      }
      // A busy SQLite file refuses a taker now and then: it tries again.
      for (int attempt = 0; attempt < 50; ++attempt) {
        auto got = (*store)->take_over_expired(me, at_ms(kBase + 60000), "taken over");
        if (got) {
          closed[t] = std::move(got->closed);
          errors[t].clear();
          return;
        }
        errors[t] = got.error().message;
      }
    });
  }
  for (auto& t : takers) t.join();
  std::multiset<std::string> ids;
  for (int t = 0; t < 3; ++t) {
    INFO(errors[t]);
    CHECK(errors[t].empty());
    for (const auto& run : closed[t]) ids.insert(run.run_id);
  }
  CHECK(ids.size() == starts.size());
  for (const auto& start : starts) CHECK(ids.count(start.run_id) == 1);
  auto store = ledger.open();
  const auto hosts = store->hosts().value();  // bound: a range-for would dangle (GCC 12)
  for (const auto& h : hosts) {
    INFO(h.id);
    CHECK(h.taken_over_by.value_or("").starts_with("taker"));
  }
}

TEST_CASE("a write group locks its jobs' rows first: another host's group waits for it",
          "[ledger][cluster][postgresql]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  auto a = open_as(ledger, "a");
  auto b = open_as(ledger, "b");
  REQUIRE(a->upsert_job("x", "h", std::nullopt, at_ms(kBase)));
  REQUIRE(a->upsert_job("y", "h", std::nullopt, at_ms(kBase)));
  REQUIRE(a->begin_group());
  const std::vector<std::string> both = {"x", "y"};
  REQUIRE(a->lock_jobs(both));
  std::atomic<bool> b_locked{false};
  std::thread other([&] {
    const std::vector<std::string> y = {"y"};
    REQUIRE(b->begin_group());
    REQUIRE(b->lock_jobs(y));
    b_locked = true;
    REQUIRE(b->commit_group());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_FALSE(b_locked);
  REQUIRE(a->commit_group());
  other.join();
  CHECK(b_locked);
}

TEST_CASE("one host prunes at a time: another's batch is refused as busy until then",
          "[ledger][cluster][postgresql]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  auto a = open_as(ledger, "a");
  auto b = open_as(ledger, "b");
  // a's batch inside a group holds the turn until the group commits.
  REQUIRE(a->begin_group());
  REQUIRE(a->prune(at_ms(kBase), 10));
  auto by_age = b->prune(at_ms(kBase), 10);
  REQUIRE_FALSE(by_age);
  CHECK(by_age.error().kind == Error::Kind::busy);
  CHECK_THAT(by_age.error().message, Catch::Contains("another host"));
  auto excess = b->prune_excess("x", 1, 10);
  REQUIRE_FALSE(excess);
  CHECK(excess.error().kind == Error::Kind::busy);
  REQUIRE(a->commit_group());
  CHECK(b->prune(at_ms(kBase), 10));
  CHECK(b->prune_excess("x", 1, 10));
}

TEST_CASE("a host's definitions digest and plugin builds travel with its lease",
          "[ledger][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  HostRecord a = host_at("a", "a1", 0, 0);
  a.definitions = "d1";
  a.plugins = {{"hello", "sha-1"}, {"stamp", "sha-2"}};
  REQUIRE(store->renew_lease(a).value() == Lease::renewed);
  auto hosts = store->hosts().value();
  REQUIRE(hosts.size() == 1);
  CHECK(hosts[0].definitions == "d1");
  CHECK(hosts[0].plugins == a.plugins);
  // A reload changes them: the next renewal writes the new ones.
  a = host_at("a", "a1", 0, 2000);
  a.definitions = "d2";
  a.plugins = {{"hello", "sha-3"}};
  REQUIRE(store->renew_lease(a).value() == Lease::renewed);
  hosts = store->hosts().value();
  CHECK(hosts[0].definitions == "d2");
  CHECK(hosts[0].plugins == a.plugins);
}

TEST_CASE("definitions_digest: the same jobs alike, whatever their order", "[ledger][cluster]") {
  using Jobs = std::vector<std::pair<std::string, std::string>>;
  const std::string ab = definitions_digest(Jobs{{"a", "h1"}, {"b", "h2"}});
  CHECK(ab.size() == 64);
  CHECK(definitions_digest(Jobs{{"b", "h2"}, {"a", "h1"}}) == ab);
  CHECK(definitions_digest(Jobs{{"a", "h1"}, {"b", "h3"}}) != ab);  // b defined otherwise
  CHECK(definitions_digest(Jobs{{"a", "h1"}}) != ab);               // b missing
  CHECK(definitions_digest(Jobs{{"a", "h1b"}, {"", "h2"}}) != ab);  // no ambiguity in the joins
  CHECK(definitions_digest(Jobs{}) != ab);
}

TEST_CASE("skew_of: the live hosts that differ", "[ledger][cluster]") {
  const TimePoint now = at_ms(kBase + 1000);
  const auto live = [](std::string id, std::string definitions,
                       std::map<std::string, std::string> plugins) {
    HostRecord h = host_at(std::move(id), "i", 0, 0);
    h.definitions = std::move(definitions);
    h.plugins = std::move(plugins);
    return h;
  };
  struct Case {
    const char* what;
    std::vector<HostRecord> hosts;
    std::vector<std::string> other_definitions;
    std::vector<std::string> plugins_skewed;
  };
  HostRecord gone = live("d", "x", {{"p", "s9"}});
  gone.taken_over_at = at_ms(kBase);
  HostRecord expired = live("e", "y", {{"p", "s8"}});
  expired.lease_until = at_ms(kBase + 500);
  const std::vector<Case> cases = {
      {"no host", {}, {}, {}},
      {"all alike", {live("a", "x", {{"p", "s1"}}), live("b", "x", {{"p", "s1"}})}, {}, {}},
      {"one host behind",
       {live("a", "x", {{"p", "s1"}}), live("b", "y", {{"p", "s1"}}),
        live("c", "x", {{"p", "s1"}})},
       {"b"},
       {}},
      {"a tie: the smaller digest is most hosts'",
       {live("a", "y", {}), live("b", "x", {})},
       {"a"},
       {}},
      {"a plugin built differently",
       {live("a", "x", {{"p", "s1"}, {"q", "s5"}}), live("b", "x", {{"p", "s2"}, {"q", "s5"}})},
       {},
       {"p"}},
      {"taken over and expired hosts are not compared",
       {live("a", "x", {{"p", "s1"}}), gone, expired},
       {},
       {}},
      {"a host that wrote no digest (an older jobhost) differs",
       {live("a", "x", {{"p", "s1"}}), live("b", "", {})},
       {"b"},
       {}},
      {"no host wrote a digest: nothing to compare",
       {live("a", "", {}), live("b", "", {})},
       {},
       {}},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const Skew skew = skew_of(c.hosts, now);
    CHECK(skew.other_definitions == c.other_definitions);
    std::vector<std::string> skewed;
    for (const auto& [plugin, builds] : skew.plugins) skewed.push_back(plugin);
    CHECK(skewed == c.plugins_skewed);
    CHECK(skew.any() == (!c.other_definitions.empty() || !c.plugins_skewed.empty()));
  }
}

TEST_CASE("a COMMIT whose answer is lost is asked after: a claim that went through stands",
          "[ledger][cluster][postgresql]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  jobhost::testing::Proxy proxy(ledger.url());
  auto opened = open_pg_store(proxy.url(), Access::read_write, "a");
  REQUIRE(opened);
  auto& store = **opened;
  const RunStart start = make_start("j", 1000);
  REQUIRE(store.begin_group());
  REQUIRE(store.claim_and_start(start).value());
  // The server gets the COMMIT and commits; its answer is lost. The store
  // waits for it (10 s), then asks a new session about the transaction.
  proxy.deafen();
  std::thread hear([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    proxy.hear();
  });
  const auto committed = store.commit_group();
  hear.join();
  INFO((committed ? std::string() : committed.error().message));
  CHECK(committed.has_value());
  auto direct = open_as(ledger, "b");
  CHECK(direct->get_run(start.run_id).value().has_value());
  // The store goes on over its new session.
  CHECK(store.get_run(start.run_id).value().has_value());
}

TEST_CASE("a COMMIT whose answer is lost and that did not go through is refused",
          "[ledger][cluster][postgresql]") {
  TestLedger ledger(TestLedger::Kind::postgresql);
  if (!ledger.available()) JOBHOST_SKIP(ledger.why());
  jobhost::testing::Proxy proxy(ledger.url());
  auto opened = open_pg_store(proxy.url(), Access::read_write, "a");
  REQUIRE(opened);
  auto& store = **opened;
  const RunStart start = make_start("j", 1000);
  REQUIRE(store.begin_group());
  REQUIRE(store.claim_and_start(start).value());
  // The COMMIT never reaches the server: the connection is cut while it
  // waits, and the server rolls the session's transaction back.
  proxy.stall();
  std::thread resume([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    proxy.cut();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    proxy.resume();
    proxy.heal();
  });
  const auto committed = store.commit_group();
  resume.join();
  CHECK_FALSE(committed.has_value());
  auto direct = open_as(ledger, "b");
  CHECK_FALSE(direct->get_run(start.run_id).value().has_value());
}
