// Write groups (Store::begin_group, commit_group): many writes, one commit.
#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>

#include "ledger/ledger_test_util.h"
#include "support/ledger_faults.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;
using Catch::Contains;
using jobhost::testing::FileSizeLimit;

namespace {

int64_t count_rows(const std::filesystem::path& db, const char* table) {
  SQLite::Database raw(db, SQLite::OPEN_READONLY);
  return raw.execAndGet(std::string("SELECT count(*) FROM ") + table).getInt64();
}

}  // namespace

TEST_CASE("a group's writes are committed together, and seen by others only then",
          "[ledger][group]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto other = ledger.open();
  auto a = make_start("hello", 0);
  auto b = make_start("hello", 1000, 1000);

  REQUIRE(store->begin_group());
  REQUIRE(store->claim_and_start(a).value() == true);
  REQUIRE(store->finish_run(make_end(a, Outcome::succeeded)).value() == true);
  REQUIRE(store->claim_and_start(b).value() == true);
  REQUIRE(store->record_skipped(make_skip("hello", 2000, "missed")).value() == true);
  REQUIRE(store->add_event(Event{0, at_ms(kBase), "fired", "hello", std::nullopt, "x"}));
  REQUIRE(store->upsert_job("hello", "def1", at_ms(kBase + 3000), at_ms(kBase)));
  // Reads on the same store see the group's writes; another connection does not.
  CHECK(store->history("hello", 10).value().size() == 3);
  CHECK(other->history("hello", 10).value().empty());
  CHECK(other->events("hello", 10).value().empty());

  REQUIRE(store->commit_group());
  CHECK(other->history("hello", 10).value().size() == 3);
  CHECK(other->get_run(a.run_id).value()->outcome == Outcome::succeeded);
  CHECK(other->running_runs().value().size() == 1);
  CHECK(other->last_fire("hello").value() == at_ms(kBase + 2000));
  CHECK(other->job_stats("hello").value().next_fire == at_ms(kBase + 3000));
  CHECK(other->events("hello", 10).value().size() == 5);  // started x2, finished, skipped, fired

  // The store writes on its own again, each write its own transaction.
  REQUIRE(store->finish_run(make_end(b, Outcome::failed)).value() == true);
  CHECK(other->get_run(b.run_id).value()->outcome == Outcome::failed);
}

TEST_CASE("a failed write in a group changes nothing and the others still commit",
          "[ledger][group][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  auto a = make_start("hello", 1000);
  auto c = make_start("hello", 2000);
  // Slot 3000 under a run id that is already taken: the claim of the slot
  // and the job's last fire are written, then the run row fails.
  auto b = make_start("hello", 3000);
  b.run_id = a.run_id;

  REQUIRE(store->begin_group());
  REQUIRE(store->claim_and_start(a).value() == true);
  auto failed = store->claim_and_start(b);
  REQUIRE_FALSE(failed.has_value());
  CHECK_THAT(failed.error().message, Contains(dir.db().string()));
  auto unknown = store->finish_run(make_end(make_start("hello", 9000), Outcome::succeeded));
  REQUIRE_FALSE(unknown.has_value());
  CHECK_THAT(unknown.error().message, Contains("no such run"));
  REQUIRE(store->claim_and_start(c).value() == true);
  REQUIRE(store->finish_run(make_end(a, Outcome::succeeded)).value() == true);
  REQUIRE(store->commit_group());

  auto other = open_store(dir.db());
  auto runs = other->history("hello", 10).value();
  REQUIRE(runs.size() == 2);
  CHECK(other->get_run(a.run_id).value()->outcome == Outcome::succeeded);
  CHECK(other->get_run(c.run_id).value().has_value());
  // Nothing of the failed claim: its slot is free, the last fire is c's.
  CHECK(other->last_fire("hello").value() == at_ms(kBase + 2000));
  CHECK(other->slot_runs("hello", at_ms(kBase + 3000)).value().empty());
  b.run_id = new_id(b.started_at);
  CHECK(other->claim_and_start(b).value() == true);
}

TEST_CASE("inside a group a slot is still claimed once", "[ledger][group]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto before = make_start("hello", 0);
  REQUIRE(store->claim_and_start(before).value() == true);
  REQUIRE(store->finish_run(make_end(before, Outcome::failed)).value() == true);

  REQUIRE(store->begin_group());
  // Claimed before the group.
  CHECK(store->claim_and_start(make_start("hello", 0, 5)).value() == false);
  CHECK(store->record_skipped(make_skip("hello", 0, "missed")).value() == false);
  // Claimed earlier in the same group.
  auto t = make_start("hello", 1000, 1000);
  REQUIRE(store->claim_and_start(t).value() == true);
  CHECK(store->claim_and_start(make_start("hello", 1000, 1001)).value() == false);
  CHECK(store->record_skipped(make_skip("hello", 1000, "missed")).value() == false);
  // An attempt of a retry is claimed once too.
  auto retry = make_start("hello", 0, 2000, Trigger::retry);
  retry.attempt = 2;
  retry.trace_id = before.trace_id;
  REQUIRE(store->claim_and_start(retry).value() == true);
  auto again = make_start("hello", 0, 2001, Trigger::retry);
  again.attempt = 2;
  again.trace_id = before.trace_id;
  CHECK(store->claim_and_start(again).value() == false);
  REQUIRE(store->commit_group());

  auto runs = store->history("hello", 10).value();
  CHECK(runs.size() == 3);  // before, its retry, t
  CHECK(store->slot_runs("hello", at_ms(kBase)).value().size() == 2);
  CHECK(store->slot_runs("hello", at_ms(kBase + 1000)).value().size() == 1);
}

TEST_CASE("a group whose commit fails writes nothing and says why", "[ledger][group][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  REQUIRE(store->claim_and_start(make_start("hello", 0)).value() == true);
  const int64_t runs_before = count_rows(dir.db(), "runs");
  const int64_t events_before = count_rows(dir.db(), "events");
  auto a = make_start("hello", 1000);
  auto skip = make_skip("hello", 2000, "missed");

  REQUIRE(store->begin_group());
  REQUIRE(store->claim_and_start(a).value() == true);
  REQUIRE(store->record_skipped(skip).value() == true);
  {
    FileSizeLimit full(1);
    REQUIRE(full.ok());
    auto committed = store->commit_group();
    REQUIRE_FALSE(committed.has_value());
    CHECK_THAT(committed.error().message, Contains(dir.db().string()));
    CHECK_THAT(committed.error().message, Contains("cannot commit a group of 2 write(s)"));
  }
  CHECK(count_rows(dir.db(), "runs") == runs_before);
  CHECK(count_rows(dir.db(), "events") == events_before);
  CHECK_FALSE(store->get_run(a.run_id).value().has_value());
  // Nothing was claimed: the same records go through when tried again, in a
  // new group.
  REQUIRE(store->begin_group());
  CHECK(store->claim_and_start(a).value() == true);
  CHECK(store->record_skipped(skip).value() == true);
  REQUIRE(store->commit_group());
  CHECK(count_rows(dir.db(), "runs") == runs_before + 2);
}

TEST_CASE("a group is opened once, closed once, and never on a read-only ledger",
          "[ledger][group][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  CHECK(store->commit_group());  // no group: nothing to do
  REQUIRE(store->begin_group());
  auto twice = store->begin_group();
  REQUIRE_FALSE(twice.has_value());
  CHECK_THAT(twice.error().message, Contains("already open"));
  REQUIRE(store->claim_and_start(make_start("hello", 0)).value() == true);
  REQUIRE(store->commit_group());
  CHECK(store->history("hello", 10).value().size() == 1);

  auto reader = open_sqlite_store(dir.db(), config::Durability::normal, Access::read_only);
  REQUIRE(reader);
  auto refused = (*reader)->begin_group();
  REQUIRE_FALSE(refused.has_value());
  CHECK_THAT(refused.error().message, Contains(dir.db().string()));
}

TEST_CASE("a group never committed is rolled back when the store closes", "[ledger][group]") {
  JOBHOST_TEST_LEDGER(ledger);
  {
    auto store = ledger.open();
    REQUIRE(store->begin_group());
    REQUIRE(store->claim_and_start(make_start("hello", 0)).value() == true);
  }
  auto store = ledger.open();
  CHECK(store->history("hello", 10).value().empty());
  CHECK(store->claim_and_start(make_start("hello", 0)).value() == true);
}

TEST_CASE("PostgreSQL: a statement that fails outside a savepoint fails the whole group",
          "[ledger][group][postgresql]") {
  JOBHOST_TEST_LEDGER(ledger);
  REQUIRE(ledger.postgresql());  // SQLite undoes only the failed statement
  auto store = ledger.open();
  // A write that the server refuses in the middle of a group: an event of
  // kind "boom" (add_event has no savepoint of its own).
  REQUIRE(ledger.execute(R"(
    CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.kind = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_boom BEFORE INSERT ON events
      FOR EACH ROW EXECUTE FUNCTION refuse_boom();)") == "");
  auto before = make_start("a", 0);
  REQUIRE(store->claim_and_start(before).value());
  REQUIRE(store->begin_group().has_value());
  auto claimed = make_start("a", 1000, 1000);
  REQUIRE(store->claim_and_start(claimed).value());
  auto refused = store->add_event(Event{0, at_ms(kBase + 1000), "boom", "a", std::nullopt, ""});
  REQUIRE_FALSE(refused.has_value());
  CHECK_THAT(refused.error().message, Catch::Contains("boom refused"));
  // The transaction is gone: every later write of the group fails, and so
  // does the commit; the claim made before the failure was not kept.
  CHECK_FALSE(store->claim_and_start(make_start("a", 2000, 2000)).has_value());
  auto committed = store->commit_group();
  REQUIRE_FALSE(committed.has_value());
  CHECK_FALSE(store->get_run(claimed.run_id).value().has_value());
  CHECK(store->get_run(before.run_id).value().has_value());
  // And the store goes on: the slot is free to claim again.
  CHECK(store->claim_and_start(make_start("a", 1000, 3000)).value());
}
