// The engine's ledger writes (engine/backlog.h): grouped in one commit per
// loop turn, and committed before anything acts on them. Each case reads
// the ledger through a second connection, which sees committed rows only.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "engine_rig.h"
#include "support/ledger_faults.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

// Another connection to the rig's ledger, as the CLI would have.
std::unique_ptr<ledger::Store> second_connection(Rig& rig) {
  auto store = ledger::open_sqlite_store(rig.config().host.state_dir / "jobhost.db",
                                         config::Durability::normal, ledger::Access::read_only);
  REQUIRE(store);
  return std::move(*store);
}

// Checks, as each observer call comes, that what it is told is committed.
class CommittedCheck final : public engine::Observer {
 public:
  explicit CommittedCheck(ledger::Store& other) : other_(other) {}

  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport&) override {
    ++finished;
    auto committed = other_.get_run(run.run_id).value();
    REQUIRE(committed);
    CHECK(committed->outcome == end.outcome);
    if (end.retry_at) {
      auto retries = other_.pending_retries().value();
      CHECK(std::any_of(retries.begin(), retries.end(), [&](const auto& r) {
        return r.job == run.job && r.scheduled_for == run.scheduled_for &&
               r.next_attempt == run.attempt + 1;
      }));
    }
  }
  void on_skipped(const ledger::SkipRecord& skip) override {
    ++skipped;
    auto committed = other_.get_run(skip.run_id).value();
    REQUIRE(committed);
    CHECK(committed->outcome == Outcome::skipped);
  }

  int finished = 0;
  int skipped = 0;

 private:
  ledger::Store& other_;
};

}  // namespace

TEST_CASE("the claims of fires due together are committed together, before any run starts",
          "[engine][ledger_writes]") {
  Rig rig(R"(
[jobs.a]
plugin = "noop"
schedule = "* * * * * *"
[jobs.b]
plugin = "noop"
schedule = "* * * * * *"
[jobs.c]
plugin = "noop"
schedule = "* * * * * *"
)",
          Rig::Runs::fake, "max_concurrency = 3\n");
  auto other = second_connection(rig);
  std::vector<std::size_t> committed_at_start;
  rig.fake().on_start = [&](const exec::RunRequest&) {
    committed_at_start.push_back(other->running_runs().value().size());
  };
  rig.start(at_utc(10, 0, 0, 500));
  rig.run_until(at_utc(10, 0, 1, 500));
  // The three fires of 10:00:01 were claimed in one group: the first run
  // to start already finds all three claims committed.
  CHECK(committed_at_start == std::vector<std::size_t>{3, 3, 3});
}

TEST_CASE("with durability full, records are committed before the engine acts on them",
          "[engine][ledger_writes]") {
  Rig rig(R"(
[jobs.flaky]
plugin = "noop"
schedule = "@manual"
concurrency = "forbid"
retry = { max_attempts = 2, initial_delay = "1s", jitter = "none" }
)",
          Rig::Runs::fake, "max_concurrency = 2\ndurability = \"full\"\n");
  auto other = second_connection(rig);
  CommittedCheck check(*other);
  rig.observers.push_back(&check);
  auto& fake = rig.fake();
  fake.decorate = [](exec::RunReport& report) { report.retryable = true; };
  // A run starts only once its claim is committed, and once every earlier
  // run of its job has its end committed (forbid, and retries).
  int starts = 0;
  fake.on_start = [&](const exec::RunRequest& request) {
    ++starts;
    const auto slot = other->slot_runs("flaky", request.scheduled_for).value();
    for (const auto& run : slot) {
      if (run.run_id == request.run_id) continue;
      CHECK(run.finished_at.has_value());
    }
    auto claimed = other->get_run(request.run_id).value();
    REQUIRE(claimed);
    CHECK_FALSE(claimed->finished_at);
  };
  rig.start(at_utc(10, 0, 0));

  REQUIRE(rig.engine().trigger("flaky"));
  rig.set_now(rig.now() + 1ms);
  REQUIRE(rig.engine().trigger("flaky"));  // forbid: skipped, run 1 is in flight
  rig.settle();
  CHECK(check.skipped == 1);
  REQUIRE(fake.started.size() == 1);
  fake.finish(fake.started[0].request.run_id, Outcome::failed);  // retried in 1 s
  rig.settle();
  CHECK(check.finished == 1);
  rig.run_until(rig.now() + 2s);
  REQUIRE(fake.started.size() == 2);
  CHECK(fake.started[1].request.attempt == 2);
  fake.finish(fake.started[1].request.run_id, Outcome::succeeded);
  rig.settle();
  CHECK(check.finished == 2);
  CHECK(starts == 2);
  auto runs = rig.runs("flaky");
  REQUIRE(runs.size() == 3);
}

TEST_CASE("a commit the ledger refuses loses nothing: fires wait, ends are kept and written later",
          "[engine][ledger_writes]") {
  Rig rig(R"(
[jobs.job]
plugin = "noop"
schedule = "@manual"
concurrency = "allow"
)",
          Rig::Runs::fake, "max_concurrency = 1\n");
  auto other = second_connection(rig);
  auto& fake = rig.fake();
  rig.start(at_utc(10, 0, 0));
  REQUIRE(rig.engine().trigger("job"));
  REQUIRE(fake.started.size() == 1);
  const std::string first = fake.started[0].request.run_id;

  {
    // Every commit fails meanwhile, as on a full disk.
    FileSizeLimit full(1);
    REQUIRE(full.ok());
    fake.finish(first);
    rig.settle();  // the end's group fails: the end is kept in memory
    rig.set_now(rig.now() + 1ms);
    REQUIRE(rig.engine().trigger("job"));  // waits: no claim behind a kept record
  }
  CHECK(fake.started.size() == 1);
  CHECK(rig.snapshot()["ledger_backlog"]["records"] == 1);
  CHECK(rig.snapshot()["queued"] == 1);
  CHECK_FALSE(other->get_run(first).value()->finished_at);

  // After the rest, the timer writes the kept end, then claims the fire.
  rig.run_until(rig.now() + engine::kLedgerRetry + 1ms, 100ms);
  REQUIRE(fake.started.size() == 2);
  CHECK(other->get_run(first).value()->outcome == Outcome::succeeded);
  CHECK(other->get_run(fake.started[1].request.run_id).value().has_value());
  CHECK(rig.snapshot()["ledger_backlog"]["records"] == 0);
  fake.finish(fake.started[1].request.run_id);
  rig.settle();
  CHECK(other->history("job", 10).value().size() == 2);
  CHECK(other->running_runs().value().empty());
}

TEST_CASE("a reload in the turn a run failed drops the retry its end has not written yet",
          "[engine][ledger_writes]") {
  Rig rig(R"(
[jobs.flaky]
plugin = "noop"
schedule = "@manual"
retry = { max_attempts = 3, initial_delay = "1m", jitter = "none" }
)",
          Rig::Runs::fake);
  auto& fake = rig.fake();
  fake.decorate = [](exec::RunReport& report) { report.retryable = true; };
  rig.start(at_utc(10, 0, 0));
  REQUIRE(rig.engine().trigger("flaky"));
  REQUIRE(fake.started.size() == 1);
  fake.finish(fake.started[0].request.run_id, Outcome::failed);
  // Only the run's end: its write waits for the end of the loop turn.
  REQUIRE(rig.io().poll_one() == 1);
  config::Config loaded = rig.engine().config();
  jobhost::config::own_settings(loaded.jobs.front()).retry.max_attempts = 1;
  loaded.jobs.front().definition_hash = "changed";
  auto diff = rig.engine().apply_config(loaded);
  REQUIRE(diff.changed == std::vector<std::string>{"flaky"});
  rig.settle();
  CHECK(rig.store().pending_retries().value().empty());
  CHECK(rig.runs("flaky").front().outcome == Outcome::failed);
  rig.run_until(rig.now() + 2min);
  CHECK(fake.started.size() == 1);
}
