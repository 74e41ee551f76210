#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "ledger/ledger_test_util.h"
#include "ledger/schema.h"
#include "support/skip.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;
using Catch::Contains;

namespace {

int raw_pragma(const std::filesystem::path& file, const char* pragma) {
  SQLite::Database db(file, SQLite::OPEN_READONLY);
  return db.execAndGet(std::string("PRAGMA ") + pragma).getInt();
}

std::set<std::string> table_names(const std::filesystem::path& file) {
  SQLite::Database db(file, SQLite::OPEN_READONLY);
  SQLite::Statement q(db, "SELECT name FROM sqlite_schema WHERE type = 'table'");
  std::set<std::string> names;
  while (q.executeStep()) names.insert(q.getColumn(0).getString());
  return names;
}

// Makes a file unwritable even for root (immutable attribute) or, for
// others, by its mode; undone on destruction. ok() is false where neither
// works (e.g. no CAP_LINUX_IMMUTABLE), so the caller can skip.
class ReadOnlyFile {
 public:
  explicit ReadOnlyFile(const std::filesystem::path& file) : file_(file) {
    if (::geteuid() != 0) {
      ok_ = ::chmod(file.c_str(), 0444) == 0;
      return;
    }
    fd_ = ::open(file.c_str(), O_RDONLY);
    int flags = 0;
    if (fd_ >= 0 && ::ioctl(fd_, FS_IOC_GETFLAGS, &flags) == 0) {
      flags |= FS_IMMUTABLE_FL;
      immutable_ = ok_ = ::ioctl(fd_, FS_IOC_SETFLAGS, &flags) == 0;
    }
  }
  ~ReadOnlyFile() {
    if (immutable_) {
      int flags = 0;
      ::ioctl(fd_, FS_IOC_GETFLAGS, &flags);
      flags &= ~FS_IMMUTABLE_FL;
      ::ioctl(fd_, FS_IOC_SETFLAGS, &flags);
    } else if (::geteuid() != 0) {
      ::chmod(file_.c_str(), 0644);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

 private:
  std::filesystem::path file_;
  int fd_ = -1;
  bool ok_ = false;
  bool immutable_ = false;
};

}  // namespace

TEST_CASE("opening an empty file applies every migration", "[ledger][store][sqlite]") {
  TempDir dir;
  { auto store = open_store(dir.db()); }
  CHECK(raw_pragma(dir.db(), "user_version") == current_schema_version());
  CHECK(raw_pragma(dir.db(), "application_id") == kApplicationId);
  auto tables = table_names(dir.db());
  for (const char* t : {"jobs", "slots", "runs", "events", "pending_retries"}) {
    INFO(t);
    CHECK(tables.count(t) == 1);
  }
  SQLite::Database db(dir.db(), SQLite::OPEN_READONLY);
  CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
}

TEST_CASE("migrations are numbered 1, 2, ... without gaps", "[ledger][store]") {
  int expected = 1;
  for (const auto& m : migrations()) CHECK(m.version == expected++);
  CHECK(current_schema_version() == expected - 1);
}

TEST_CASE("reopening keeps the data and migrates nothing twice", "[ledger][store][sqlite]") {
  TempDir dir;
  auto start = make_start("hello", 0);
  {
    auto store = open_store(dir.db());
    REQUIRE(store->claim_and_start(start).value());
    REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)).value());
  }
  auto store = open_store(dir.db(), config::Durability::full);
  auto run = store->get_run(start.run_id);
  REQUIRE(run.has_value());
  REQUIRE(run->has_value());
  CHECK((*run)->outcome == Outcome::succeeded);
  CHECK((*run)->plugin_sha256 == start.plugin_sha256);
  CHECK(raw_pragma(dir.db(), "user_version") == current_schema_version());
}

TEST_CASE("a ledger from a newer jobhost is refused", "[ledger][store][sqlite]") {
  TempDir dir;
  { auto store = open_store(dir.db()); }
  {
    SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE);
    db.exec("PRAGMA user_version = " + std::to_string(current_schema_version() + 1));
  }
  auto store = open_sqlite_store(dir.db(), config::Durability::normal);
  REQUIRE_FALSE(store.has_value());
  CHECK_THAT(store.error().message, Contains(dir.db().string()));
  CHECK_THAT(store.error().message, Contains("newer jobhost"));
  // And it was left as it was.
  CHECK(raw_pragma(dir.db(), "user_version") == current_schema_version() + 1);
}

TEST_CASE("files that are not a jobhost ledger are refused with a reason",
          "[ledger][store][sqlite]") {
  TempDir dir;
  SECTION("another application's database") {
    {
      SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY)");
    }
    auto store = open_sqlite_store(dir.db(), config::Durability::normal);
    REQUIRE_FALSE(store.has_value());
    CHECK_THAT(store.error().message, Contains("not a jobhost ledger"));
    CHECK(table_names(dir.db()) == std::set<std::string>{"customers"});
  }
  SECTION("not an SQLite file at all") {
    std::ofstream(dir.db()) << std::string(8192, 'x');
    auto store = open_sqlite_store(dir.db(), config::Durability::normal);
    REQUIRE_FALSE(store.has_value());
    CHECK_THAT(store.error().message, Contains(dir.db().string()));
    CHECK_THAT(store.error().message, Contains("not an SQLite database"));
  }
  SECTION("a directory that does not exist") {
    auto file = dir.path() / "missing" / "jobhost.db";
    auto store = open_sqlite_store(file, config::Durability::normal);
    REQUIRE_FALSE(store.has_value());
    CHECK_THAT(store.error().message, Contains(file.string()));
    CHECK_THAT(store.error().message, Contains("directory exists"));
  }
  SECTION("read-only access to a file that is not there") {
    auto store = open_sqlite_store(dir.db(), config::Durability::normal, Access::read_only);
    REQUIRE_FALSE(store.has_value());
    CHECK_THAT(store.error().message, Contains("no ledger here yet"));
    CHECK_FALSE(std::filesystem::exists(dir.db()));
  }
}

TEST_CASE("a fire slot is claimed exactly once", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto first = make_start("hello", 0);
  REQUIRE(store->claim_and_start(first).value() == true);

  SECTION("a second claim of the same slot is refused, whatever its run id") {
    auto second = make_start("hello", 0, 5);
    CHECK(store->claim_and_start(second).value() == false);
    CHECK_FALSE(store->get_run(second.run_id).value().has_value());
    second.trigger = Trigger::manual;
    CHECK(store->claim_and_start(second).value() == false);
  }
  SECTION("also after closing and reopening") {
    store.reset();
    store = ledger.open();
    CHECK(store->claim_and_start(make_start("hello", 0, 5)).value() == false);
  }
  SECTION("other slots and other jobs are free") {
    CHECK(store->claim_and_start(make_start("hello", 1)).value() == true);
    CHECK(store->claim_and_start(make_start("other", 0)).value() == true);
  }
  SECTION("a slot recorded as skipped cannot be run, and the other way round") {
    CHECK(store->record_skipped(make_skip("hello", 0, "missed")).value() == false);
    REQUIRE(store->record_skipped(make_skip("hello", 1000, "missed")).value() == true);
    CHECK(store->claim_and_start(make_start("hello", 1000, 1000)).value() == false);
  }
  auto runs = store->history(std::nullopt, 100).value();
  std::set<std::pair<std::string, int64_t>> slots;
  for (const auto& r : runs) {
    CHECK(slots.insert({r.job, r.scheduled_for.time_since_epoch().count()}).second);
  }
}

TEST_CASE("retries are attempts of a claimed slot", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto first = make_start("flaky", 0);
  REQUIRE(store->claim_and_start(first).value());
  auto end = make_end(first, Outcome::failed);
  end.retry_at = first.started_at + Duration(1000);
  REQUIRE(store->finish_run(end).value());

  auto pending = store->pending_retries().value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].job == "flaky");
  CHECK(pending[0].next_attempt == 2);
  CHECK(pending[0].scheduled_for == first.scheduled_for);
  CHECK(pending[0].due_at == *end.retry_at);
  CHECK(pending[0].trace_id == first.trace_id);

  auto retry = make_start("flaky", 0, 1000, Trigger::retry);
  retry.attempt = 2;
  retry.trace_id = first.trace_id;
  REQUIRE(store->claim_and_start(retry).value() == true);
  CHECK(store->pending_retries().value().empty());  // consumed in the same transaction

  SECTION("an attempt is claimed once") {
    auto again = retry;
    again.run_id = new_id(again.started_at);
    CHECK(store->claim_and_start(again).value() == false);
  }
  SECTION("an attempt of a slot never claimed is an error") {
    auto orphan = make_start("flaky", 5000, 5000, Trigger::retry);
    orphan.attempt = 2;
    auto r = store->claim_and_start(orphan);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message, Contains("never claimed"));
  }
  SECTION("an attempt with another trace id is an error") {
    auto wrong = make_start("flaky", 0, 2000, Trigger::retry);
    wrong.attempt = 3;
    auto r = store->claim_and_start(wrong);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message, Contains("trace id"));
  }
  SECTION("all attempts share the trace id") {
    auto third = make_start("flaky", 0, 2000, Trigger::retry);
    third.attempt = 3;
    third.trace_id = first.trace_id;
    REQUIRE(store->claim_and_start(third).value());
    auto runs = store->history("flaky", 10).value();
    REQUIRE(runs.size() == 3);
    for (const auto& r : runs) CHECK(r.trace_id == first.trace_id);
    CHECK(runs[0].attempt == 3);
    CHECK(runs[2].attempt == 1);
  }
}

TEST_CASE("pending retries survive a reopen and can be removed", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto a = make_start("a", 0);
  auto b = make_start("b", 0);
  {
    auto store = ledger.open();
    REQUIRE(store->claim_and_start(a).value());
    REQUIRE(store->claim_and_start(b).value());
    REQUIRE(store->schedule_retry(
        {"a", a.scheduled_for, 2, at_ms(kBase + 9000), a.trace_id, std::nullopt}, a.started_at));
    REQUIRE(store->schedule_retry(
        {"b", b.scheduled_for, 2, at_ms(kBase + 3000), b.trace_id, std::nullopt}, b.started_at));
    auto never = store->schedule_retry({"b", at_ms(kBase + 1), 2, at_ms(kBase), "x", std::nullopt},
                                       a.started_at);
    REQUIRE_FALSE(never.has_value());
    CHECK_THAT(never.error().message, Contains("never claimed"));
  }
  auto store = ledger.open();
  auto pending = store->pending_retries().value();
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].job == "b");  // soonest first
  CHECK(pending[1].job == "a");
  CHECK(store->remove_retry("b", b.scheduled_for).value() == true);
  CHECK(store->remove_retry("b", b.scheduled_for).value() == false);
  CHECK(store->pending_retries().value().size() == 1);
}

TEST_CASE("a slot keeps its trigger's payload for its retries, run detail and takeover",
          "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto hooked = make_start("a", 0, 0, Trigger::webhook);
  hooked.event = R"({"file":"x.csv"})";
  auto plain = make_start("b", 0);
  REQUIRE(store->claim_and_start(hooked).value());
  REQUIRE(store->claim_and_start(plain).value());
  CHECK(store->get_run(hooked.run_id).value()->event == hooked.event);
  CHECK_FALSE(store->get_run(plain.run_id).value()->event.has_value());
  // History lists do not carry it (run detail only).
  CHECK_FALSE(store->history("a", 10).value().front().event.has_value());

  auto end = make_end(hooked, Outcome::failed);
  end.retry_at = at_ms(kBase + 5000);
  REQUIRE(store->finish_run(end).value());
  auto pending = store->pending_retries().value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].event == hooked.event);
  // The retry's own claim keeps the slot's payload, whatever it carries.
  auto retry = make_start("a", 0, 6000, Trigger::retry);
  retry.attempt = 2;
  retry.trace_id = hooked.trace_id;
  REQUIRE(store->claim_and_start(retry).value());
  CHECK(store->get_run(retry.run_id).value()->event == hooked.event);
  // A run closed at a restart hands its payload to the retry made of it.
  auto closed = store->close_orphaned_runs(at_ms(kBase + 7000), "restarted").value().closed;
  REQUIRE(closed.size() == 2);
  for (const auto& run : closed) {
    CHECK(run.event == (run.job == "a" ? hooked.event : std::nullopt));
  }
}

TEST_CASE("finish_run is idempotent", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto start = make_start("hello", 0);
  REQUIRE(store->claim_and_start(start).value());
  auto end = make_end(start, Outcome::crashed, 1234);
  end.exit_code.reset();
  end.signal = "SIGSEGV";
  end.output_tail = std::string("tail\0with nul \xff", 16);
  REQUIRE(store->finish_run(end).value() == true);

  auto later = make_end(start, Outcome::succeeded, 99);
  CHECK(store->finish_run(later).value() == false);
  CHECK(store->finish_run(end).value() == false);

  auto run = store->get_run(start.run_id).value().value();
  CHECK(run.outcome == Outcome::crashed);
  CHECK(run.signal == "SIGSEGV");
  CHECK_FALSE(run.exit_code.has_value());
  CHECK(run.duration == Duration(1234));
  CHECK(run.finished_at == end.finished_at);
  CHECK(run.output_tail == end.output_tail);
  CHECK(store->job_stats("hello").value().consecutive_failures == 1);

  auto unknown = store->finish_run(make_end(make_start("hello", 7), Outcome::succeeded));
  REQUIRE_FALSE(unknown.has_value());
  CHECK_THAT(unknown.error().message, Contains("no such run"));
}

TEST_CASE("consecutive failures count failed-type outcomes and reset on success",
          "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  struct Step {
    Outcome outcome;
    int expected;
  };
  const std::vector<Step> steps = {
      {Outcome::failed, 1},    {Outcome::timed_out, 2},      {Outcome::skipped, 2},
      {Outcome::crashed, 3},   {Outcome::interrupted, 3},    {Outcome::replaced, 3},
      {Outcome::stalled, 4},   {Outcome::limit_exceeded, 5}, {Outcome::cancelled, 5},
      {Outcome::succeeded, 0}, {Outcome::failed, 1},
  };
  int64_t slot = 0;
  for (const auto& step : steps) {
    INFO(to_string(step.outcome));
    auto start = make_start("job", slot, slot);
    slot += 1000;
    REQUIRE(store->claim_and_start(start).value());
    REQUIRE(store->finish_run(make_end(start, step.outcome)).value());
    CHECK(store->job_stats("job").value().consecutive_failures == step.expected);
  }
  // record_skipped leaves the count alone.
  REQUIRE(store->record_skipped(make_skip("job", slot, "missed")).value());
  CHECK(store->job_stats("job").value().consecutive_failures == 1);
}

TEST_CASE("record_skipped writes a finished skipped run and moves last_fire", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  CHECK_FALSE(store->last_fire("job").value().has_value());
  auto skip = make_skip("job", 5000, "missed");
  REQUIRE(store->record_skipped(skip).value());
  auto run = store->get_run(skip.run_id).value().value();
  CHECK(run.outcome == Outcome::skipped);
  CHECK(run.message == "missed");
  CHECK(run.finished_at == skip.at);
  CHECK(run.attempt == 1);
  CHECK(store->last_fire("job").value() == skip.scheduled_for);

  // An earlier slot does not move last_fire back; manual slots do not move it.
  REQUIRE(store->claim_and_start(make_start("job", 1000, 6000, Trigger::catchup)).value());
  CHECK(store->last_fire("job").value() == skip.scheduled_for);
  REQUIRE(store->claim_and_start(make_start("job", 9000, 9000, Trigger::manual)).value());
  CHECK(store->last_fire("job").value() == skip.scheduled_for);
  REQUIRE(store->claim_and_start(make_start("job", 8000, 9500, Trigger::schedule)).value());
  CHECK(store->last_fire("job").value() == at_ms(kBase + 8000));

  auto events = store->events("job", 10).value();
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().kind == "skipped");
  CHECK_THAT(events.back().detail, Contains("missed"));
}

TEST_CASE("last_claimed: the latest first attempt of a trigger that was not skipped",
          "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open(config::Durability::normal, Access::read_write, "here");
  CHECK_FALSE(store->last_claimed("job", Trigger::file).value().has_value());
  // Other triggers and other jobs do not count.
  REQUIRE(store->claim_and_start(make_start("job", 9000, 9000, Trigger::manual)).value());
  REQUIRE(store->claim_and_start(make_start("other", 9500, 9500, Trigger::file)).value());
  CHECK_FALSE(store->last_claimed("job", Trigger::file).value().has_value());

  auto first = make_start("job", 1000, 1000, Trigger::file);
  REQUIRE(store->claim_and_start(first).value());
  CHECK(store->last_claimed("job", Trigger::file).value() == at_ms(kBase + 1000));
  // Finished (any outcome but skipped) still counts; a retry of it is not a new fire.
  REQUIRE(store
              ->finish_run([&] {
                auto end = make_end(first, Outcome::failed);
                end.retry_at = at_ms(kBase + 20000);
                return end;
              }())
              .value());
  RunStart retry = make_start("job", 1000, 20000, Trigger::retry);
  retry.attempt = 2;
  retry.trace_id = first.trace_id;
  REQUIRE(store->claim_and_start(retry).value());
  CHECK(store->last_claimed("job", Trigger::file).value() == at_ms(kBase + 1000));
  // A later skipped file fire is not a claim its files were handed to.
  REQUIRE(store->record_skipped(make_skip("job", 3000, "shutdown", Trigger::file)).value());
  CHECK(store->last_claimed("job", Trigger::file).value() == at_ms(kBase + 1000));
  REQUIRE(store->claim_and_start(make_start("job", 2000, 2000, Trigger::file)).value());
  CHECK(store->last_claimed("job", Trigger::file).value() == at_ms(kBase + 2000));

  if (ledger.postgresql()) {
    // Another host's file fires are its own files' (each host watches its own).
    auto there = ledger.open(config::Durability::normal, Access::read_write, "there");
    REQUIRE(there->claim_and_start(make_start("job", 4000, 4000, Trigger::file)).value());
    CHECK(store->last_claimed("job", Trigger::file).value() == at_ms(kBase + 2000));
    CHECK(there->last_claimed("job", Trigger::file).value() == at_ms(kBase + 4000));
  }
}

TEST_CASE("heartbeats update running runs only", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto start = make_start("slow", 0);
  REQUIRE(store->claim_and_start(start).value());
  CHECK(store->heartbeat(start.run_id, at_ms(kBase + 100), 0.25).value());
  CHECK(store->heartbeat(start.run_id, at_ms(kBase + 200), std::nullopt).value());
  auto run = store->running_runs().value().at(0);
  CHECK(run.last_heartbeat == at_ms(kBase + 200));
  CHECK(run.progress == 0.25);  // kept when no new progress is given
  REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)).value());
  CHECK(store->heartbeat(start.run_id, at_ms(kBase + 300), 0.5).value() == false);
  CHECK(store->heartbeat("nope", at_ms(kBase + 300), 0.5).value() == false);
}

TEST_CASE("runs left open by a dead host are closed as interrupted", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto a = make_start("a", 0, 0);
  auto b = make_start("b", 0, 10);
  auto done = make_start("c", 0, 20);
  {
    auto store = ledger.open();
    REQUIRE(store->claim_and_start(a).value());
    REQUIRE(store->claim_and_start(b).value());
    REQUIRE(store->claim_and_start(done).value());
    REQUIRE(store->finish_run(make_end(done, Outcome::succeeded)).value());
    // The host dies here: no finish for a and b.
  }
  auto store = ledger.open();
  CHECK(store->running_runs().value().size() == 2);
  auto now = at_ms(kBase + 60000);
  auto result = store->close_orphaned_runs(now, "the host stopped while the run was in flight");
  REQUIRE(result.has_value());
  const auto& closed = result->closed;
  REQUIRE(closed.size() == 2);
  CHECK(closed[0].run_id == a.run_id);  // oldest first
  CHECK(closed[1].run_id == b.run_id);
  CHECK(result->freed.empty());
  for (const auto& id : {a.run_id, b.run_id}) {
    auto run = store->get_run(id).value().value();
    CHECK(run.outcome == Outcome::interrupted);
    CHECK(run.finished_at == now);
    CHECK_FALSE(run.duration.has_value());
    CHECK_THAT(run.message, Contains("host stopped"));
  }
  CHECK(store->get_run(done.run_id).value()->outcome == Outcome::succeeded);
  CHECK(store->running_runs().value().empty());
  CHECK(store->close_orphaned_runs(now, "again").value().closed.empty());
  CHECK(store->job_stats("a").value().consecutive_failures == 0);
  CHECK(store->events("a", 1).value().at(0).kind == "interrupted");
  // Finishing an interrupted run later (a late write) changes nothing.
  CHECK(store->finish_run(make_end(a, Outcome::succeeded)).value() == false);
}

TEST_CASE("each run records the host that claimed it", "[ledger][store][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto one = ledger.open(config::Durability::normal, Access::read_write, "host-1");
  auto run = make_start("a", 0);
  REQUIRE(one->claim_and_start(run).value());
  auto skip = make_skip("a", 1000, "missed");
  REQUIRE(one->record_skipped(skip).value());
  CHECK(one->get_run(run.run_id).value()->host == "host-1");
  CHECK(one->get_run(skip.run_id).value()->host == "host-1");
  CHECK(nlohmann::json(*one->get_run(run.run_id).value())["host"] == "host-1");
  // A store opened without a host id records none.
  auto anonymous = ledger.open();
  auto other = make_start("b", 0);
  REQUIRE(anonymous->claim_and_start(other).value());
  CHECK_FALSE(anonymous->get_run(other.run_id).value()->host.has_value());
}

TEST_CASE("a starting host closes its own open runs; on PostgreSQL only those",
          "[ledger][store][cluster]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto one = ledger.open(config::Durability::normal, Access::read_write, "host-1");
  auto two = ledger.open(config::Durability::normal, Access::read_write, "host-2");
  auto mine = make_start("a", 0, 0);
  auto mine_parked = make_start("a", 60000, 10);
  mine_parked.parked = true;
  auto theirs = make_start("b", 0, 20);
  auto theirs_parked = make_start("b", 60000, 30);
  theirs_parked.parked = true;
  REQUIRE(one->claim_and_start(mine).value());
  REQUIRE(one->claim_and_start(mine_parked).value());
  REQUIRE(two->claim_and_start(theirs).value());
  REQUIRE(two->claim_and_start(theirs_parked).value());
  auto result = one->close_orphaned_runs(at_ms(kBase + 1000), "host-1 restarted").value();
  const auto& closed = result.closed;
  // host-1's parked slot is free again, for it to fire (on SQLite, host-2's
  // too: every open run is the host's).
  REQUIRE(result.freed.size() == (ledger.postgresql() ? 1u : 2u));
  CHECK(result.freed[0].second == mine_parked.scheduled_for);
  // host-1's parked claim is undone either way.
  CHECK_FALSE(one->get_run(mine_parked.run_id).value().has_value());
  CHECK(one->slot_runs("a", mine_parked.scheduled_for).value().empty());
  if (ledger.postgresql()) {
    // Several hosts share the ledger: host-2's runs are its own business.
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].run_id == mine.run_id);
    CHECK(two->get_run(theirs.run_id).value()->running());
    CHECK(two->slot_runs("b", theirs_parked.scheduled_for).value().size() == 0);  // still parked
    REQUIRE(two->release_parked(std::vector<std::string>{theirs_parked.run_id}).has_value());
    CHECK(two->get_run(theirs_parked.run_id).value()->running());
  } else {
    // One host per SQLite file (the state_dir lock): every open run is its.
    REQUIRE(closed.size() == 2);
    CHECK(closed[1].run_id == theirs.run_id);
    CHECK_FALSE(two->get_run(theirs_parked.run_id).value().has_value());
  }
  CHECK(one->get_run(mine.run_id).value()->outcome == Outcome::interrupted);
}

TEST_CASE("job stats: success rate and mean duration over the last 100 runs", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  int64_t t = 0;
  auto run = [&](Outcome outcome, int64_t duration_ms) {
    auto start = make_start("job", t, t);
    t += 1000;
    REQUIRE(store->claim_and_start(start).value());
    REQUIRE(store->finish_run(make_end(start, outcome, duration_ms)).value());
  };
  // 50 old failures that fall out of the window.
  for (int i = 0; i < 50; ++i) run(Outcome::failed, 5000);
  // The window: 25 failures of 300 ms, then 75 successes of 100 ms, with
  // skipped slots in between that do not count.
  for (int i = 0; i < 25; ++i) run(Outcome::failed, 300);
  for (int i = 0; i < 75; ++i) {
    run(Outcome::succeeded, 100);
    if (i % 10 == 0) {
      REQUIRE(store->record_skipped(make_skip("job", t, "forbid: previous run active")).value());
      t += 1000;
    }
  }
  auto running = make_start("job", t, t);
  REQUIRE(store->claim_and_start(running).value());

  auto stats = store->job_stats("job").value();
  CHECK(stats.window_runs == 100);
  REQUIRE(stats.success_rate.has_value());
  CHECK(*stats.success_rate == Approx(0.75));
  REQUIRE(stats.mean_duration.has_value());
  CHECK(stats.mean_duration->count() == (75 * 100 + 25 * 300) / 100);
  CHECK(stats.last_outcome == Outcome::succeeded);
  CHECK(stats.last_started == running.started_at);
  CHECK(stats.runs_in_flight == 1);
  CHECK(stats.consecutive_failures == 0);
  CHECK(stats.definition_hash == "def1");

  auto unknown = store->job_stats("never-ran").value();
  CHECK(unknown.window_runs == 0);
  CHECK_FALSE(unknown.success_rate.has_value());
  CHECK_FALSE(unknown.mean_duration.has_value());
  CHECK_FALSE(unknown.last_outcome.has_value());
}

TEST_CASE("all_job_stats and upsert_job", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  REQUIRE(store->upsert_job("b", "hash-b", at_ms(kBase + 60000), at_ms(kBase)));
  REQUIRE(store->upsert_job("a", "hash-a", std::nullopt, at_ms(kBase)));
  REQUIRE(store->upsert_job("a", "hash-a2", at_ms(kBase + 5000), at_ms(kBase + 1)));
  auto start = make_start("c", 0);
  REQUIRE(store->claim_and_start(start).value());
  auto all = store->all_job_stats().value();
  REQUIRE(all.size() == 3);
  CHECK(all[0].job == "a");
  CHECK(all[0].definition_hash == "hash-a2");
  CHECK(all[0].next_fire == at_ms(kBase + 5000));
  CHECK(all[1].job == "b");
  CHECK(all[2].job == "c");
  CHECK(all[2].runs_in_flight == 1);
  CHECK(all[2].last_fire == start.scheduled_for);
}

TEST_CASE("job_marks: every job row in one read", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  REQUIRE(store->upsert_job("b", "hash-b", std::nullopt, at_ms(kBase)));
  REQUIRE(store->upsert_job("a", "hash-a", at_ms(kBase + 5000), at_ms(kBase)));
  auto start = make_start("c", 0);
  REQUIRE(store->claim_and_start(start).value());
  auto marks = store->job_marks().value();
  REQUIRE(marks.size() == 3);
  CHECK(marks[0].job == "a");
  CHECK(marks[0].definition_hash == "hash-a");
  CHECK(marks[0].next_fire == at_ms(kBase + 5000));
  CHECK_FALSE(marks[0].last_fire);
  CHECK(marks[1].job == "b");
  CHECK(marks[1].definition_hash == "hash-b");
  CHECK_FALSE(marks[1].next_fire);
  CHECK(marks[2].job == "c");
  CHECK(marks[2].last_fire == start.scheduled_for);
}

TEST_CASE("history is newest first and limited", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    auto start = make_start(i % 2 ? "odd" : "even", i * 1000, i * 1000);
    REQUIRE(store->claim_and_start(start).value());
    ids.push_back(start.run_id);
  }
  // Two runs started in the same millisecond: the larger run id is newer.
  auto tie1 = make_start("even", 50000, 50000);
  auto tie2 = make_start("even", 51000, 50000);
  REQUIRE(tie1.run_id < tie2.run_id);
  REQUIRE(store->claim_and_start(tie2).value());
  REQUIRE(store->claim_and_start(tie1).value());

  auto all = store->history(std::nullopt, 100).value();
  REQUIRE(all.size() == 12);
  CHECK(all[0].run_id == tie2.run_id);
  CHECK(all[1].run_id == tie1.run_id);
  for (std::size_t i = 2; i < all.size(); ++i) CHECK(all[i].run_id == ids[11 - i]);

  auto three = store->history(std::nullopt, 3).value();
  REQUIRE(three.size() == 3);
  CHECK(three[2].run_id == ids[9]);

  auto odd = store->history("odd", 100).value();
  REQUIRE(odd.size() == 5);
  for (const auto& r : odd) CHECK(r.job == "odd");
  CHECK(odd[0].run_id == ids[9]);

  CHECK(store->history("nobody", 10).value().empty());
  CHECK_FALSE(store->history(std::nullopt, 0).has_value());
}

TEST_CASE("events: the audit trail, newest first", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  REQUIRE(store->add_event(
      {0, at_ms(kBase), "reloaded", std::nullopt, std::nullopt, R"({"plugins":3})"}));
  REQUIRE(store->add_event(
      {0, at_ms(kBase + 1), "rejected_plugin", "backup", std::nullopt, "abi major 2"}));
  auto start = make_start("backup", 0, 2);
  REQUIRE(store->claim_and_start(start).value());
  REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)).value());

  auto all = store->events(std::nullopt, 10).value();
  REQUIRE(all.size() == 4);
  CHECK(all[0].kind == "finished");
  CHECK(all[0].run_id == start.run_id);
  CHECK(all[1].kind == "started");
  CHECK(all[2].kind == "rejected_plugin");
  CHECK(all[3].kind == "reloaded");
  CHECK_FALSE(all[3].job.has_value());
  CHECK(all[0].id > all[1].id);
  CHECK(store->events("backup", 10).value().size() == 3);
  CHECK(store->events(std::nullopt, 1).value().size() == 1);
}

TEST_CASE("a read-only ledger gives an Error, not an exception", "[ledger][store][sqlite]") {
  TempDir dir;
  auto start = make_start("hello", 0);
  {
    auto store = open_store(dir.db());
    REQUIRE(store->claim_and_start(start).value());
  }
  SECTION("opened read-only: reads work, writes are refused") {
    auto opened = open_sqlite_store(dir.db(), config::Durability::normal, Access::read_only);
    REQUIRE(opened.has_value());
    auto& store = **opened;
    CHECK(store.history(std::nullopt, 10).value().size() == 1);
    auto write = store.finish_run(make_end(start, Outcome::succeeded));
    REQUIRE_FALSE(write.has_value());
    CHECK_THAT(write.error().message, Contains(dir.db().string()));
    CHECK_THAT(write.error().message, Contains("read-only"));
    auto claim = store.claim_and_start(make_start("hello", 1000));
    REQUIRE_FALSE(claim.has_value());
    CHECK_THAT(claim.error().message, Contains("read-only"));
  }
}

TEST_CASE("a ledger file that cannot be written gives an Error, not an exception",
          "[ledger][store][needs-chattr][sqlite]") {
  TempDir dir;
  {
    auto store = open_store(dir.db());
    REQUIRE(store->claim_and_start(make_start("hello", 0)).value());
  }
  {
    ReadOnlyFile guard(dir.db());
    if (!guard.ok()) JOBHOST_SKIP("cannot make a file read-only here (no CAP_LINUX_IMMUTABLE?)");
    auto store = open_sqlite_store(dir.db(), config::Durability::normal);
    REQUIRE_FALSE(store.has_value());
    CHECK_THAT(store.error().message, Contains(dir.db().string()));
    CHECK_THAT(store.error().message, Contains("read-only"));
  }
}

TEST_CASE("a ledger locked by another process gives an Error and loses nothing",
          "[ledger][store][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  auto start = make_start("hello", 0);
  {
    SQLite::Database other(dir.db(), SQLite::OPEN_READWRITE);
    SQLite::Transaction lock(other, SQLite::TransactionBehavior::IMMEDIATE);
    auto claimed = store->claim_and_start(start);
    REQUIRE_FALSE(claimed.has_value());
    CHECK_THAT(claimed.error().message, Contains(dir.db().string()));
    CHECK_THAT(claimed.error().message, Contains("locked by another process"));
    // WAL: readers are not blocked by the writer.
    CHECK(store->history(std::nullopt, 10).value().empty());
  }
  // The same record, tried again once the lock is gone, goes through.
  CHECK(store->claim_and_start(start).value() == true);
  CHECK(store->history(std::nullopt, 10).value().size() == 1);
}

TEST_CASE("two stores on one file see each other (WAL)", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto a = ledger.open();
  auto b = ledger.open();
  auto start = make_start("hello", 0);
  REQUIRE(a->claim_and_start(start).value() == true);
  CHECK(b->claim_and_start(make_start("hello", 0, 1)).value() == false);
  REQUIRE(b->running_runs().value().size() == 1);
  REQUIRE(b->finish_run(make_end(start, Outcome::succeeded)).value() == true);
  CHECK(a->finish_run(make_end(start, Outcome::failed)).value() == false);
  CHECK(a->get_run(start.run_id).value()->outcome == Outcome::succeeded);
  CHECK(a->job_stats("hello").value().consecutive_failures == 0);
}

TEST_CASE("prune deletes old finished runs in batches and keeps the rest",
          "[ledger][store][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  std::vector<RunStart> old;
  for (int i = 0; i < 5; ++i) {
    auto s = make_start("job", i * 1000, i * 1000);
    REQUIRE(store->claim_and_start(s).value());
    auto end = make_end(s, Outcome::failed);
    if (i == 4) end.retry_at = at_ms(kBase + 100000);  // slot kept: its retry is pending
    REQUIRE(store->finish_run(end).value());
    old.push_back(s);
  }
  auto open_old = make_start("job", 5000, 5000);  // old but still running
  REQUIRE(store->claim_and_start(open_old).value());
  auto recent = make_start("job", 100000, 100000);
  REQUIRE(store->claim_and_start(recent).value());
  REQUIRE(store->finish_run(make_end(recent, Outcome::succeeded)).value());

  auto cutoff = at_ms(kBase + 50000);
  CHECK(store->prune(cutoff, 3).value().runs == 3);
  CHECK(store->prune(cutoff, 3).value().runs == 2);
  CHECK(store->prune(cutoff, 3).value().runs == 0);

  auto left = store->history(std::nullopt, 100).value();
  REQUIRE(left.size() == 2);
  CHECK(left[0].run_id == recent.run_id);
  CHECK(left[1].run_id == open_old.run_id);
  CHECK(store->pending_retries().value().size() == 1);
  std::set<std::string> pruned;
  for (const auto& s : old) pruned.insert(s.run_id);
  auto events = store->events(std::nullopt, 100).value();
  CHECK(events.size() == 2);  // recent's started and finished
  for (const auto& e : events) {
    CHECK(e.at >= cutoff);
    if (e.run_id) CHECK(pruned.count(*e.run_id) == 0);
  }
  {
    SQLite::Database db(dir.db(), SQLite::OPEN_READONLY);
    // Slots of pruned runs are gone, except the one with a pending retry.
    CHECK(db.execAndGet("SELECT count(*) FROM slots").getInt() == 3);
  }
  // The pending retry's attempt can still be claimed.
  auto retry = make_start("job", 4000, 100000, Trigger::retry);
  retry.attempt = 2;
  retry.trace_id = old[4].trace_id;
  CHECK(store->claim_and_start(retry).value() == true);
}

namespace {

// Records a finished run of slot (job, kBase + slot_ms), started then.
RunStart record_run(Store& store, const std::string& job, int64_t slot_ms,
                    Outcome outcome = Outcome::succeeded) {
  auto s = make_start(job, slot_ms, slot_ms);
  REQUIRE(store.claim_and_start(s).value());
  REQUIRE(store.finish_run(make_end(s, outcome)).value());
  return s;
}

std::vector<std::string> run_ids(Store& store, const std::string& job) {
  std::vector<std::string> ids;
  const auto runs = store.history(job, 1000).value();
  for (const auto& r : runs) ids.push_back(r.run_id);
  return ids;
}

}  // namespace

TEST_CASE("prune by age keeps open runs, pending retries and each job's newest slot",
          "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  // Job a: six old slots; the retry of slot 2 is pending.
  std::vector<RunStart> a;
  for (int i = 0; i < 6; ++i) {
    auto s = make_start("a", i * 1000, i * 1000);
    REQUIRE(store->claim_and_start(s).value());
    auto end = make_end(s, Outcome::failed);
    if (i == 2) end.retry_at = at_ms(kBase + 900000);
    REQUIRE(store->finish_run(end).value());
    a.push_back(s);
  }
  // Job b: one old run, its newest. Job c: an old run still open, then a newer slot.
  auto b = record_run(*store, "b", 500);
  auto c_open = make_start("c", 700, 700);
  REQUIRE(store->claim_and_start(c_open).value());
  auto c_new = record_run(*store, "c", 800);
  REQUIRE(store->add_event(Event{0, at_ms(kBase + 10), "reloaded", std::nullopt, std::nullopt, ""})
              .has_value());
  const auto last_fire_a = store->last_fire("a").value();

  auto cutoff = at_ms(kBase + 60000);  // everything above is older
  auto pruned = store->prune(cutoff, 500).value();
  CHECK(pruned.runs == 5);  // a's slots 0..4
  // Other events older than the cutoff: "reloaded", and those of the runs
  // kept (a[5], b and c_new: started + finished; c_open: started).
  CHECK(pruned.events == 8);
  CHECK(store->prune(cutoff, 500).value().runs == 0);

  CHECK(run_ids(*store, "a") == std::vector<std::string>{a[5].run_id});
  CHECK(run_ids(*store, "b") == std::vector<std::string>{b.run_id});
  CHECK(store->history("c", 10).value().size() == 2);  // the open run and the newest slot
  CHECK(store->running_runs().value().size() == 1);

  // The jobs' rows, hence last_fire (the engine's guard), stay as they were.
  CHECK(store->last_fire("a").value() == last_fire_a);
  CHECK(store->job_stats("b").value().last_outcome == Outcome::succeeded);
  // The newest slot is still claimed; the pending retry still runs.
  CHECK(store->claim_and_start(make_start("a", 5000, 70000)).value() == false);
  REQUIRE(store->pending_retries().value().size() == 1);
  auto retry = make_start("a", 2000, 900000, Trigger::retry);
  retry.attempt = 2;
  retry.trace_id = a[2].trace_id;
  CHECK(store->claim_and_start(retry).value() == true);
}

TEST_CASE("prune_excess keeps a job's newest runs", "[ledger][store]") {
  struct Case {
    int runs;  // finished runs of job x, one slot each, oldest first
    int keep;
    int batch;  // max_rows per call
    std::vector<int> deleted_per_call;
    int left;
  };
  const Case cases[] = {
      {10, 3, 500, {7, 0}, 3}, {10, 3, 4, {4, 3, 0}, 3}, {10, 10, 500, {0}, 10},
      {10, 20, 500, {0}, 10},  {10, 0, 500, {9, 0}, 1},  // keep 0 still keeps the newest slot
      {1, 0, 500, {0}, 1},     {0, 5, 500, {0}, 0},
  };
  for (const auto& c : cases) {
    INFO("runs " << c.runs << ", keep " << c.keep << ", batch " << c.batch);
    JOBHOST_TEST_LEDGER(ledger);
    auto store = ledger.open();
    std::vector<std::string> ids;
    for (int i = 0; i < c.runs; ++i) ids.push_back(record_run(*store, "x", i * 1000).run_id);
    auto other = record_run(*store, "y", 0);
    for (int expected : c.deleted_per_call) {
      CHECK(store->prune_excess("x", c.keep, c.batch).value() == expected);
    }
    auto left = run_ids(*store, "x");
    REQUIRE(static_cast<int>(left.size()) == c.left);
    // The newest survive, newest first.
    for (int i = 0; i < c.left; ++i) CHECK(left[i] == ids[ids.size() - 1 - i]);
    CHECK(run_ids(*store, "y") == std::vector<std::string>{other.run_id});
  }
}

TEST_CASE(
    "prune_excess counts open and skipped runs but deletes neither open runs nor slots "
    "with a pending retry",
    "[ledger][store][sqlite]") {
  TempDir dir;
  auto store = open_store(dir.db());
  auto open_old = make_start("x", 0, 0);  // the oldest, still running
  REQUIRE(store->claim_and_start(open_old).value());
  auto retried = make_start("x", 1000, 1000);
  REQUIRE(store->claim_and_start(retried).value());
  auto end = make_end(retried, Outcome::failed);
  end.retry_at = at_ms(kBase + 999000);
  REQUIRE(store->finish_run(end).value());
  auto plain = record_run(*store, "x", 2000);
  REQUIRE(store->record_skipped(make_skip("x", 3000, "forbid")).value());
  auto newest = record_run(*store, "x", 4000);

  CHECK(store->prune_excess("x", 2, 500).value() == 2);  // retried's attempt 1 and plain
  auto left = store->history("x", 10).value();
  REQUIRE(left.size() == 3);
  CHECK(left[0].run_id == newest.run_id);
  CHECK(left[1].outcome == Outcome::skipped);
  CHECK(left[2].run_id == open_old.run_id);
  // The retried slot stays claimed: its next attempt can start, attempt 1 cannot.
  CHECK(store->pending_retries().value().size() == 1);
  CHECK(store->claim_and_start(make_start("x", 1000, 5000)).value() == false);
  {
    SQLite::Database db(dir.db(), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT count(*) FROM slots WHERE job = 'x'").getInt() == 4);
    CHECK(db.execAndGet("SELECT count(*) FROM events WHERE run_id = '" + plain.run_id + "'")
              .getInt() == 0);
  }
  CHECK_FALSE(store->prune_excess("x", -1, 10).has_value());
  CHECK_FALSE(store->prune_excess("x", 1, 0).has_value());
  CHECK_FALSE(store->prune(at_ms(kBase), 0).has_value());
}

TEST_CASE("history records convert to the history --json shape", "[ledger][store]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  auto start = make_start("hello", 0);
  REQUIRE(store->claim_and_start(start).value());
  auto end = make_end(start, Outcome::succeeded, 42);
  end.message = "ok";
  REQUIRE(store->finish_run(end).value());
  nlohmann::json j = store->history(std::nullopt, 10).value();
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 1);
  CHECK(j[0]["run_id"] == start.run_id);
  CHECK(j[0]["trace_id"] == start.trace_id);
  CHECK(j[0]["outcome"] == "succeeded");
  CHECK(j[0]["duration_ms"] == 42);
  CHECK(j[0]["exit_code"] == 0);
  CHECK(j[0]["signal"].is_null());
  CHECK(j[0]["plugin"] == "hello");
  CHECK(j[0]["scheduled_for"] == "2026-11-29T08:00:00.000Z");
  CHECK(j[0]["finished_at"] == "2026-11-29T08:00:00.042Z");
}

TEST_CASE("checkpoint moves the write-ahead log into the database file",
          "[ledger][store][sqlite]") {
  JOBHOST_TEST_LEDGER(ledger);
  auto store = ledger.open();
  // Fewer runs than fill the log to SQLite's automatic checkpoint (1,000
  // pages, some 45 runs), which would move them first.
  for (int i = 0; i < 20; ++i) {
    auto start = make_start("job", i * 1000, i * 1000);
    REQUIRE(store->claim_and_start(start).value());
    REQUIRE(store->finish_run(make_end(start, Outcome::succeeded)).value());
  }
  auto before = std::filesystem::file_size(ledger.dir().db());
  REQUIRE(store->checkpoint().has_value());
  CHECK(std::filesystem::file_size(ledger.dir().db()) > before);
  CHECK(store->history(std::nullopt, 100).value().size() == 20);
}

TEST_CASE("the jitter seed is made once and survives a reopen", "[ledger][store][jitter]") {
  JOBHOST_TEST_LEDGER(ledger);
  uint64_t first = 0;
  {
    auto store = ledger.open();
    auto seed = store->jitter_seed();
    REQUIRE(seed.has_value());
    first = *seed;
    auto again = store->jitter_seed();
    REQUIRE(again.has_value());
    CHECK(*again == first);
  }
  {
    auto store = ledger.open();
    auto seed = store->jitter_seed();
    REQUIRE(seed.has_value());
    CHECK(*seed == first);
  }
  {
    // A reader sees the seed the daemon made.
    auto reader = ledger.try_open(config::Durability::normal, Access::read_only);
    REQUIRE(reader.has_value());
    auto seed = (*reader)->jitter_seed();
    REQUIRE(seed.has_value());
    CHECK(*seed == first);
  }
  // Another ledger gets another seed (equal with probability 2^-64).
  TempDir other;
  auto store = open_store(other.db());
  auto seed = store->jitter_seed();
  REQUIRE(seed.has_value());
  CHECK(*seed != first);
}

TEST_CASE("a read-only ledger without a seed says so", "[ledger][store][jitter]") {
  JOBHOST_TEST_LEDGER(ledger);
  { auto store = ledger.open(); }
  auto reader = ledger.try_open(config::Durability::normal, Access::read_only);
  REQUIRE(reader.has_value());
  auto seed = (*reader)->jitter_seed();
  REQUIRE_FALSE(seed.has_value());
  CHECK_THAT(seed.error().message, Contains("jitter seed"));
}

TEST_CASE("parked claims: hidden until released, undone at will or after a crash",
          "[ledger][store][parking]") {
  JOBHOST_TEST_LEDGER(ledger);
  // Job a fired at kBase; its next slot, kBase + 1 s, is claimed parked.
  auto first = make_start("a", 0, 0);
  auto parked = make_start("a", 1000, 1000);
  parked.parked = true;
  auto released = make_start("b", 1000, 1000);
  released.parked = true;
  {
    auto store = ledger.open();
    REQUIRE(store->claim_and_start(first).value());
    REQUIRE(store->finish_run(make_end(first, Outcome::succeeded)).value());
    REQUIRE(store->claim_and_start(parked).value());
    REQUIRE(store->claim_and_start(released).value());
    // Claimed: the slot is taken, the job's last fire moved...
    CHECK(store->last_fire("a").value() == at_ms(kBase + 1000));
    CHECK_FALSE(store->claim_and_start(make_start("a", 1000, 1000)).value());
    // ...but no read of runs shows a parked run.
    CHECK(store->history("a", 10).value().size() == 1);
    CHECK(store->get_run(parked.run_id).value() == std::nullopt);
    CHECK(store->running_runs().value().empty());
    CHECK(store->slot_runs("a", at_ms(kBase + 1000)).value().empty());
    RunQuery query;
    query.limit = 10;
    CHECK(store->query_runs(query).value().size() == 1);
    // Released: a run in flight like any other.
    const std::vector<std::string> ids{released.run_id};
    REQUIRE(store->release_parked(ids));
    CHECK(store->running_runs().value().size() == 1);
    CHECK(store->unclaim_parked(Unclaim{released.run_id, "too late", at_ms(kBase)}).value() ==
          false);
    // The host dies here, a still parked, b in flight.
  }
  auto store = ledger.open();
  auto result = store->close_orphaned_runs(at_ms(kBase + 60000), "interrupted");
  REQUIRE(result);
  REQUIRE(result->closed.size() == 1);  // b; a never began: its claim is undone
  CHECK(result->closed[0].run_id == released.run_id);
  REQUIRE(result->freed.size() == 1);
  CHECK(result->freed[0].first == "a");
  CHECK(store->last_fire("a").value() == at_ms(kBase));
  CHECK(store->job_stats("a").value().next_fire == at_ms(kBase + 1000));
  CHECK(store->claim_and_start(make_start("a", 1000, 61000)).value());  // free again
  auto events = store->events("a", 10).value();
  REQUIRE_FALSE(events.empty());
  auto unclaimed = std::find_if(events.begin(), events.end(),
                                [](const Event& e) { return e.kind == "unclaimed"; });
  REQUIRE(unclaimed != events.end());
  CHECK_FALSE(unclaimed->run_id);
  CHECK_THAT(unclaimed->detail, Contains(parked.run_id) && Contains("before the run's instant"));
  for (const auto& e : events) CHECK(e.run_id != std::optional<std::string>(parked.run_id));

  // unclaim_parked while the host runs: the same undoing; a parked run that
  // ended on its own keeps its record.
  auto next = make_start("a", 2000, 2000);
  next.parked = true;
  REQUIRE(store->claim_and_start(next).value());
  CHECK(store->unclaim_parked(Unclaim{next.run_id, "paused", at_ms(kBase + 62000)}).value());
  CHECK(store->last_fire("a").value() == at_ms(kBase + 1000));
  CHECK(store->unclaim_parked(Unclaim{next.run_id, "again", at_ms(kBase + 62000)}).value() ==
        false);
  auto died = make_start("a", 3000, 3000);
  died.parked = true;
  REQUIRE(store->claim_and_start(died).value());
  // It ended half a second before its instant: it started then too.
  auto died_end = make_end(died, Outcome::failed);
  died_end.finished_at = at_ms(kBase + 2500);
  REQUIRE(store->finish_run(died_end).value());
  auto died_run = store->get_run(died.run_id).value();
  REQUIRE(died_run);
  CHECK(died_run->outcome == Outcome::failed);
  CHECK(died_run->started_at == at_ms(kBase + 2500));
  CHECK(died_run->finished_at == at_ms(kBase + 2500));
  int died_started_events = 0;
  const auto died_events = store->run_events(died.run_id, 10).value();
  for (const auto& e : died_events) {
    if (e.kind != "started") continue;
    ++died_started_events;
    CHECK(e.at == at_ms(kBase + 2500));
  }
  CHECK(died_started_events == 1);
  CHECK(store->unclaim_parked(Unclaim{died.run_id, "late", at_ms(kBase + 63000)}).value() == false);
  CHECK(store->last_fire("a").value() == at_ms(kBase + 3000));
}
