// Retention: the policy of a config, the prune slack, and the Pruner on a
// real ledger.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "ledger/ledger_test_util.h"
#include "ledger/store_worker.h"
#include "retention/retention.h"

using namespace jobhost;
using namespace jobhost::retention;

TEST_CASE("prune_slack is a tenth of keep_last, at least 1", "[retention]") {
  struct Case {
    int keep;
    int slack;
  };
  const Case cases[] = {{1, 1}, {3, 1}, {19, 1}, {20, 2}, {1000, 100}, {10000, 1000}};
  for (const auto& c : cases) {
    INFO("keep_last " << c.keep);
    CHECK(prune_slack(c.keep) == c.slack);
  }
}

TEST_CASE("retention_policy takes keep_runs and the jobs with a count limit", "[retention]") {
  config::Config config;
  config.host.keep_runs = std::chrono::days(7);
  // Not in name order: the policy's lookup is by name all the same.
  for (auto [name, keep] : {std::pair{"c", 10000}, std::pair{"b", 0}, std::pair{"a", 5}}) {
    config::JobConfig job;
    job.name = name;
    jobhost::config::own_settings(job).keep_last = keep;
    config.jobs.push_back(job);
  }
  auto policy = retention_policy(config);
  CHECK(policy.keep_runs == std::chrono::days(7));
  CHECK(policy.keep_last == decltype(policy.keep_last){{"a", 5}, {"c", 10000}});
  CHECK(policy.keep_last.find("a")->second == 5);
  CHECK_FALSE(policy.keep_last.contains("b"));
}

TEST_CASE("Pruner follows a reloaded policy", "[retention]") {
  using namespace jobhost::ledger::testing;
  TempDir dir;
  auto store = open_store(dir.db());
  for (int slot = 1; slot <= 30; ++slot) {
    auto start = make_start("a", slot * 1000, slot * 1000);
    REQUIRE(store->claim_and_start(start).value());
    REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)));
  }
  auto runs_of_a = [&] { return store->history("a", 1000).value().size(); };
  boost::asio::io_context io;
  ledger::StoreWorker worker(*store);
  Pruner pruner(io, worker, RetentionPolicy{}, [] { return at_ms(kBase + 60'000); });
  pruner.start();
  io.run_for(std::chrono::milliseconds(100));
  CHECK(runs_of_a() == 30);  // no keep_last: nothing to prune

  SECTION("a lowered keep_last is applied without waiting for new runs") {
    pruner.set_policy(RetentionPolicy{Duration(0), {{"a", 5}}});
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    CHECK(runs_of_a() == 5);
  }
  SECTION("a keep_last removed before its prune ran deletes nothing") {
    pruner.set_policy(RetentionPolicy{Duration(0), {{"a", 5}}});
    pruner.set_policy(RetentionPolicy{});
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    CHECK(runs_of_a() == 30);
  }
  pruner.stop();
}

TEST_CASE("Pruner tells what it pruned, once per step that deleted runs", "[retention]") {
  using namespace jobhost::ledger::testing;
  TempDir dir;
  auto store = open_store(dir.db());
  for (const char* job : {"a", "b"}) {
    for (int slot = 1; slot <= 30; ++slot) {
      auto start = make_start(job, slot * 1000, slot * 1000);
      REQUIRE(store->claim_and_start(start).value());
      REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)));
    }
  }
  boost::asio::io_context io;
  std::vector<PrunedRuns> told;
  ledger::StoreWorker worker(*store);
  Pruner pruner(io, worker, RetentionPolicy{}, [] { return at_ms(kBase + 60'000); });
  pruner.on_pruned([&](const PrunedRuns& p) { told.push_back(p); });
  pruner.start();
  io.run_for(std::chrono::milliseconds(100));
  CHECK(told.empty());

  SECTION("by count: the job, and nothing when there was nothing to delete") {
    pruner.set_policy(RetentionPolicy{Duration(0), {{"a", 5}, {"b", 100}}});
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    REQUIRE(told.size() == 1);
    CHECK(told[0].job == "a");
    pruner.set_policy(RetentionPolicy{Duration(0), {{"a", 5}}});
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    CHECK(told.size() == 1);  // "a" had nothing more to delete
  }
  SECTION("by age: the cutoff") {
    // keep_runs = 40 s: runs started before kBase + 20 s go.
    pruner.set_policy(RetentionPolicy{std::chrono::seconds(40), {}});
    io.restart();
    io.run_for(std::chrono::milliseconds(2500));  // the first age pass comes after 2 s
    REQUIRE(told.size() == 1);
    CHECK(told[0].job.empty());
    CHECK(told[0].before == at_ms(kBase + 20'000));
    CHECK(store->history("a", 1000).value().size() < 30);
  }
  pruner.stop();
}

TEST_CASE("Pruner: no sweep over every job at start; a job's first record prunes it",
          "[retention]") {
  using namespace jobhost::ledger::testing;
  TempDir dir;
  auto store = open_store(dir.db());
  for (const char* job : {"a", "b"}) {
    for (int slot = 1; slot <= 30; ++slot) {
      auto start = make_start(job, slot * 1000, slot * 1000);
      REQUIRE(store->claim_and_start(start).value());
      REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)));
    }
  }
  auto runs_of = [&](const char* job) { return store->history(job, 1000).value().size(); };
  boost::asio::io_context io;
  std::vector<PrunedRuns> told;
  // keep_last 5 with a slack of 1: without the first-record rule, "a" would
  // wait for a second record.
  ledger::StoreWorker worker(*store);
  Pruner pruner(io, worker, RetentionPolicy{Duration(0), {{"a", 5}, {"b", 5}}},
                [] { return at_ms(kBase + 60'000); });
  pruner.on_pruned([&](const PrunedRuns& p) { told.push_back(p); });
  pruner.start();
  io.run_for(std::chrono::milliseconds(300));
  CHECK(runs_of("a") == 30);  // nothing was swept at start
  CHECK(runs_of("b") == 30);

  pruner.note_recorded("a");  // the first record of "a" since start
  io.restart();
  io.run_for(std::chrono::milliseconds(300));
  CHECK(runs_of("a") == 5);
  CHECK(runs_of("b") == 30);  // "b" has not run since start
  REQUIRE(told.size() == 1);
  CHECK(told[0].job == "a");

  SECTION("a reload prunes only jobs whose keep_last is new or lower") {
    pruner.set_policy(RetentionPolicy{Duration(0), {{"a", 5}, {"b", 10}}});  // b raised
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    CHECK(runs_of("b") == 30);  // 10 > 5: not lower, not pruned now
    pruner.set_policy(RetentionPolicy{Duration(0), {{"a", 5}, {"b", 4}}});
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    CHECK(runs_of("b") == 4);
  }
  pruner.stop();
}
