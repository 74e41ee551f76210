// The backlog alone: a real SQLite ledger behind a store that refuses
// writes (or the commit of a write group) while the test says so, and a
// fake clock.
#include "engine/backlog.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "ledger/sqlite_store.h"
#include "support/harness.h"
#include "support/ledger_faults.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;

namespace {

// Forwards to a real store; while `refusing`, every write fails without
// touching it, as a locked or read-only ledger does; with `refuse_write` =
// n, the n-th write tried (from 1) fails so. With `failing_commit`, the
// real store's commit of a write group fails (a file size limit: as on a
// full disk). Counts tried writes and groups.
class RefusingStore final : public ledger::Store {
 public:
  explicit RefusingStore(ledger::Store& real) : real_(real) {}

  bool refusing = false;
  int refuse_write = 0;
  bool failing_commit = false;
  int writes_tried = 0;
  int groups = 0;

  Result<void> begin_group() override {
    ++groups;
    return real_.begin_group();
  }
  Result<void> commit_group() override {
    if (!failing_commit) return real_.commit_group();
    FileSizeLimit full(1);
    REQUIRE(full.ok());
    return real_.commit_group();
  }

  Result<bool> claim_and_start(const ledger::RunStart& run) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.claim_and_start(run);
  }
  Result<bool> finish_run(const ledger::RunEnd& end) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.finish_run(end);
  }
  Result<void> release_parked(std::span<const std::string> run_ids) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.release_parked(run_ids);
  }
  Result<bool> unclaim_parked(const ledger::Unclaim& unclaim) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.unclaim_parked(unclaim);
  }
  Result<bool> record_skipped(const ledger::SkipRecord& skip) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.record_skipped(skip);
  }
  Result<bool> heartbeat(std::string_view run_id, TimePoint at,
                         std::optional<double> progress) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.heartbeat(run_id, at, progress);
  }
  Result<ledger::Takeover> close_orphaned_runs(TimePoint now, std::string_view message) override {
    return real_.close_orphaned_runs(now, message);
  }
  Result<ledger::Lease> renew_lease(const ledger::HostRecord& me) override {
    return real_.renew_lease(me);
  }
  Result<void> end_lease(std::string_view id, std::string_view incarnation,
                         TimePoint now) override {
    return real_.end_lease(id, incarnation, now);
  }
  Result<std::vector<ledger::HostRecord>> hosts() override { return real_.hosts(); }
  Result<ledger::Takeover> take_over_expired(std::string_view by, TimePoint now,
                                             std::string_view message) override {
    return real_.take_over_expired(by, now, message);
  }
  Result<std::vector<ledger::RunRecord>> history(std::optional<std::string_view> job,
                                                 int limit) override {
    return real_.history(job, limit);
  }
  Result<std::optional<ledger::RunRecord>> get_run(std::string_view run_id) override {
    return real_.get_run(run_id);
  }
  Result<std::vector<ledger::RunRecord>> running_runs() override { return real_.running_runs(); }
  Result<ledger::JobStats> job_stats(std::string_view job) override { return real_.job_stats(job); }
  Result<std::vector<ledger::JobStats>> all_job_stats() override { return real_.all_job_stats(); }
  Result<std::optional<TimePoint>> last_fire(std::string_view job) override {
    return real_.last_fire(job);
  }
  Result<std::optional<TimePoint>> last_claimed(std::string_view job,
                                                ledger::Trigger trigger) override {
    return real_.last_claimed(job, trigger);
  }
  Result<void> upsert_job(std::string_view job, std::string_view definition_hash,
                          std::optional<TimePoint> next_fire, TimePoint now) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.upsert_job(job, definition_hash, next_fire, now);
  }
  Result<std::vector<ledger::JobMark>> job_marks() override { return real_.job_marks(); }
  Result<void> add_event(const ledger::Event& event) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.add_event(event);
  }
  Result<std::vector<ledger::Event>> events(std::optional<std::string_view> job,
                                            int limit) override {
    return real_.events(job, limit);
  }
  Result<void> schedule_retry(const ledger::PendingRetry& retry, TimePoint now) override {
    return real_.schedule_retry(retry, now);
  }
  Result<std::vector<ledger::PendingRetry>> pending_retries() override {
    return real_.pending_retries();
  }
  Result<std::vector<ledger::AlertRecord>> alert_states() override { return real_.alert_states(); }
  Result<void> save_alert_state(const ledger::AlertRecord& state, TimePoint now,
                                const std::optional<ledger::Event>& event) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.save_alert_state(state, now, event);
  }
  Result<SuccessBounds> success_bounds(std::string_view job) override {
    return real_.success_bounds(job);
  }
  Result<bool> remove_retry(std::string_view job, TimePoint scheduled_for) override {
    return real_.remove_retry(job, scheduled_for);
  }
  Result<ledger::Pruned> prune(TimePoint before, int max_rows) override {
    return real_.prune(before, max_rows);
  }
  Result<int> prune_excess(std::string_view job, int keep, int max_rows) override {
    return real_.prune_excess(job, keep, max_rows);
  }
  Result<void> checkpoint() override { return real_.checkpoint(); }
  Result<std::vector<ledger::JobStats>> job_summaries() override { return real_.job_summaries(); }
  Result<std::vector<std::pair<std::string, std::vector<ledger::WindowRun>>>> window_runs(
      const std::vector<std::string>& jobs) override {
    return real_.window_runs(jobs);
  }
  Result<ledger::RunSummary> run_summary(TimePoint since) override {
    return real_.run_summary(since);
  }
  Result<std::vector<ledger::RunMinute>> run_minutes(TimePoint since) override {
    return real_.run_minutes(since);
  }
  Result<std::vector<ledger::RunRecord>> query_runs(const ledger::RunQuery& query) override {
    return real_.query_runs(query);
  }
  Result<std::vector<ledger::RunRecord>> slot_runs(std::string_view job,
                                                   TimePoint scheduled_for) override {
    return real_.slot_runs(job, scheduled_for);
  }
  Result<bool> set_paused(std::string_view job, bool paused, std::string_view by,
                          TimePoint at) override {
    return real_.set_paused(job, paused, by, at);
  }
  Result<std::vector<ledger::JobStats>> paused_jobs() override { return real_.paused_jobs(); }
  Result<std::vector<ledger::Event>> events_after(int64_t after_id, int limit) override {
    return real_.events_after(after_id, limit);
  }
  Result<std::vector<ledger::Event>> run_events(std::string_view run_id, int limit) override {
    return real_.run_events(run_id, limit);
  }
  Result<uint64_t> jitter_seed() override { return real_.jitter_seed(); }
  Result<void> probe_writable(TimePoint now) override {
    if (auto r = refuse()) return std::unexpected(*r);
    return real_.probe_writable(now);
  }

 private:
  std::optional<Error> refuse() {
    ++writes_tried;
    if (!refusing && writes_tried != refuse_write) return std::nullopt;
    return Error{"ledger test.db is locked (test)"};
  }
  ledger::Store& real_;
};

const TimePoint kT0 =
    TimePoint(std::chrono::sys_days(std::chrono::year(2030) / std::chrono::January / 7));

class BacklogRig {
 public:
  // `threaded`: the groups are written on a worker thread, their results
  // handed back only by settle().
  explicit BacklogRig(bool threaded = false) {
    auto store = ledger::open_sqlite_store(dir_.path() / "jobhost.db", config::Durability::normal);
    REQUIRE(store);
    real_ = std::move(*store);
    store_ = std::make_unique<RefusingStore>(*real_);
    worker_ = threaded ? std::make_unique<ledger::StoreWorker>(*store_, [](auto) {})
                       : std::make_unique<ledger::StoreWorker>(*store_);
    backlog_ = std::make_unique<engine::Backlog>(
        *worker_, [this] { return now; },
        engine::Backlog::Hooks{
            .on_recorded = [this](std::string_view job) { recorded.emplace_back(job); },
            .on_refused = [this] { ++refusals; },
            .on_queued = [this] { ++flushes_asked; }});
  }

  // Queues `w` and flushes, as the engine's end of a loop turn does.
  void write(engine::PendingWrite w) {
    backlog_->add(std::move(w));
    backlog_->flush();
  }
  // One group with `starts` (and what is queued); their results.
  std::vector<Result<bool>> flush(std::vector<ledger::RunStart> starts) {
    std::optional<std::vector<Result<bool>>> claimed;
    backlog_->flush(std::move(starts), [&](auto results) { claimed = std::move(results); });
    worker_->settle();
    REQUIRE(claimed);
    return std::move(*claimed);
  }
  // One claim alone in a group.
  Result<bool> claim(const ledger::RunStart& start) {
    auto claimed = flush({start});
    REQUIRE(claimed.size() == 1);
    return claimed.front();
  }
  // A first attempt of job "j" at slot kT0 + `second` s.
  ledger::RunStart start(int second) {
    ledger::RunStart s;
    s.run_id = "run" + std::to_string(second);
    s.job = "j";
    s.scheduled_for = kT0 + std::chrono::seconds(second);
    s.trace_id = "trace-run" + std::to_string(second);
    s.started_at = now;
    return s;
  }

  // A skip of job "j" at slot kT0 + `second` s, made now.
  engine::PendingWrite skip(int second) {
    const TimePoint slot = kT0 + std::chrono::seconds(second);
    ledger::SkipRecord record;
    record.run_id = "skip" + std::to_string(second);
    record.trace_id = "trace" + std::to_string(second);
    record.job = "j";
    record.scheduled_for = slot;
    record.reason = "test";
    record.at = now;
    return engine::PendingWrite{"j", slot, now, record};
  }
  // The slots recorded for job "j", oldest first.
  std::vector<TimePoint> slots() {
    auto history = real_->history("j", 1000);
    REQUIRE(history);
    std::vector<TimePoint> out;
    for (auto it = history->rbegin(); it != history->rend(); ++it) {
      out.push_back(it->scheduled_for);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  TimePoint now = kT0;
  std::vector<std::string> recorded;
  int refusals = 0;
  int flushes_asked = 0;
  RefusingStore& store() { return *store_; }
  engine::Backlog& backlog() { return *backlog_; }
  ledger::Store& real() { return *real_; }
  ledger::StoreWorker& worker() { return *worker_; }

 private:
  TempDir dir_;
  std::unique_ptr<ledger::Store> real_;
  std::unique_ptr<RefusingStore> store_;
  std::unique_ptr<ledger::StoreWorker> worker_;
  std::unique_ptr<engine::Backlog> backlog_;
};

}  // namespace

TEST_CASE("records the ledger refuses are kept and written in order once it accepts",
          "[engine][backlog]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  rig.write(rig.skip(1));
  CHECK(rig.slots().size() == 1);
  CHECK(backlog.may_claim());
  CHECK_FALSE(backlog.refusing());

  rig.store().refusing = true;
  rig.write(rig.skip(2));
  CHECK(rig.refusals == 1);
  CHECK(backlog.refusing());
  CHECK_FALSE(backlog.may_claim());
  // Resting: the next records are kept without a try.
  const int tried = rig.store().writes_tried;
  rig.now += 100ms;
  rig.write(rig.skip(3));
  rig.write(rig.skip(4));
  CHECK(rig.store().writes_tried == tried);
  auto json = backlog.json();
  CHECK(json["records"] == 3);
  CHECK(json["refusing_since"] == ledger::format_utc(kT0));
  CHECK(json["oldest_kept_since"] == ledger::format_utc(kT0));
  CHECK(json["oldest_age_ms"] == 100);
  CHECK(backlog.wake_at(false) == kT0 + engine::kLedgerRetry);

  // The rest has passed, the ledger still refuses: one try, nothing lost.
  rig.now = kT0 + engine::kLedgerRetry;
  backlog.flush();
  CHECK(rig.store().writes_tried == tried + 1);
  CHECK(backlog.json()["records"] == 3);

  // It accepts again: every kept record, in the order made, behind the first.
  rig.store().refusing = false;
  rig.now = kT0 + 2 * engine::kLedgerRetry;
  backlog.flush();
  CHECK(backlog.empty());
  CHECK_FALSE(backlog.refusing());
  CHECK(backlog.may_claim());
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s, kT0 + 3s, kT0 + 4s});
  CHECK(rig.recorded == std::vector<std::string>(4, "j"));
  CHECK(backlog.wake_at(true) == std::nullopt);
}

TEST_CASE("a record made while others are kept waits behind them", "[engine][backlog]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  rig.store().refusing = true;
  rig.write(rig.skip(5));
  // Accepting again, but the rest has not passed and one record is kept:
  // a newer record must not be written before it.
  rig.store().refusing = false;
  rig.now += engine::kLedgerRetry + 1ms;
  backlog.add(rig.skip(6));
  CHECK(rig.slots().empty());
  backlog.flush();
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 5s, kT0 + 6s});
}

TEST_CASE("a refused claim stops further claims until the ledger rested", "[engine][backlog]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  rig.store().refusing = true;
  ledger::RunStart start;
  start.run_id = "r1";
  start.job = "j";
  start.scheduled_for = kT0;
  start.trace_id = "t1";
  start.started_at = kT0;
  CHECK_FALSE(rig.claim(start));
  CHECK(rig.refusals == 1);
  CHECK_FALSE(backlog.may_claim());
  CHECK(backlog.wake_at(false) == std::nullopt);  // nothing kept: only a waiting claim wakes
  CHECK(backlog.wake_at(true) == kT0 + engine::kLedgerRetry);
  rig.store().refusing = false;
  rig.now += engine::kLedgerRetry;
  CHECK(backlog.may_claim());
  auto claimed = rig.claim(start);
  REQUIRE(claimed);
  CHECK(*claimed);
  CHECK_FALSE(backlog.refusing());
}

TEST_CASE("a clock set back does not stretch the rest", "[engine][backlog]") {
  BacklogRig rig;
  rig.store().refusing = true;
  rig.write(rig.skip(1));
  CHECK(rig.backlog().resting());
  rig.now = kT0 - 1h;
  CHECK_FALSE(rig.backlog().resting());
}

TEST_CASE("a refused next fire is written again, with its latest value", "[engine][backlog]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  rig.store().refusing = true;
  backlog.set_next_fire("j", "hash1", kT0 + 10s);
  backlog.flush();
  rig.now += engine::kLedgerRetry;
  backlog.set_next_fire("j", "hash2", kT0 + 20s);
  backlog.flush();  // tried again, refused again
  CHECK(backlog.refusing());
  CHECK(backlog.wake_at(false).has_value());
  rig.store().refusing = false;
  rig.now += engine::kLedgerRetry;
  backlog.flush();
  auto stats = rig.real().job_stats("j");
  REQUIRE(stats);
  CHECK(stats->next_fire == kT0 + 20s);
  CHECK(stats->definition_hash == "hash2");
  CHECK_FALSE(backlog.refusing());
}

TEST_CASE("at shutdown the backlog tries once more, then gives up what is refused",
          "[engine][backlog]") {
  struct Case {
    bool accepts;
    std::size_t recorded;
  };
  auto c = GENERATE(Case{true, 2}, Case{false, 0});
  CAPTURE(c.accepts);
  BacklogRig rig;
  auto& backlog = rig.backlog();
  rig.store().refusing = true;
  rig.write(rig.skip(1));
  rig.write(rig.skip(2));
  rig.store().refusing = !c.accepts;
  // However recent the refusal, the last try is made.
  backlog.give_up();
  CHECK(backlog.empty());
  CHECK(rig.slots().size() == c.recorded);
}

TEST_CASE("events and records the ledger already had do not count as recorded",
          "[engine][backlog]") {
  BacklogRig rig;
  rig.write(rig.skip(1));
  rig.write(rig.skip(1));  // the same slot again: already claimed
  ledger::Event event;
  event.at = kT0;
  event.kind = "test";
  event.job = "j";
  rig.write(engine::PendingWrite{"j", kT0, kT0, event});
  CHECK(rig.recorded.size() == 1);
}

TEST_CASE("one flush writes the queued records, claims and next fires in one group",
          "[engine][backlog][group]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  backlog.add(rig.skip(1));
  backlog.add(rig.skip(2));
  backlog.set_next_fire("j", "hash", kT0 + 60s);
  CHECK(rig.flushes_asked == 1);  // once per flush, however many records
  CHECK(rig.slots().empty());     // queued, not written yet
  CHECK(backlog.pending());
  CHECK(backlog.empty());  // queued records are not a backlog

  auto claimed = rig.flush({rig.start(3), rig.start(2), rig.start(4)});
  CHECK(rig.store().groups == 1);
  REQUIRE(claimed.size() == 3);
  CHECK(claimed[0].value() == true);
  CHECK(claimed[1].value() == false);  // slot 2 was just recorded skipped
  CHECK(claimed[2].value() == true);
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s, kT0 + 3s, kT0 + 4s});
  CHECK(rig.real().job_stats("j").value().next_fire == kT0 + 60s);
  CHECK(rig.recorded == std::vector<std::string>(2, "j"));
  CHECK_FALSE(backlog.pending());

  backlog.add(rig.skip(5));
  CHECK(rig.flushes_asked == 2);
  backlog.flush();
  CHECK(rig.store().groups == 2);
  // Nothing to write: no group.
  backlog.flush();
  CHECK(rig.store().groups == 2);
}

TEST_CASE("a refused write in a group: the records before it commit, it and the rest are kept",
          "[engine][backlog][group]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  backlog.add(rig.skip(1));
  backlog.add(rig.skip(2));
  backlog.add(rig.skip(3));
  rig.store().refuse_write = rig.store().writes_tried + 2;  // the skip of slot 2
  const ledger::RunStart start = rig.start(4);
  auto claimed = rig.flush({start});
  REQUIRE(claimed.size() == 1);
  CHECK_FALSE(claimed[0].has_value());  // not tried behind a refused record
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s});
  CHECK(rig.refusals == 1);
  CHECK(backlog.size() == 2);
  CHECK_FALSE(backlog.may_claim());
  CHECK(rig.recorded == std::vector<std::string>{"j"});

  rig.now += engine::kLedgerRetry;
  CHECK(rig.claim(start).value() == true);
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s, kT0 + 3s, kT0 + 4s});
  CHECK_FALSE(backlog.refusing());
}

TEST_CASE("a group whose commit fails: every record kept, every claim refused, nothing lost",
          "[engine][backlog][group]") {
  BacklogRig rig;
  auto& backlog = rig.backlog();
  rig.write(rig.skip(1));  // committed before
  backlog.add(rig.skip(2));
  ledger::Event event;
  event.at = kT0;
  event.kind = "test";
  event.job = "j";
  backlog.add(engine::PendingWrite{"j", kT0, kT0, event});
  backlog.set_next_fire("j", "hash", kT0 + 60s);
  rig.store().failing_commit = true;
  const ledger::RunStart start = rig.start(3);
  auto claimed = rig.flush({start});
  REQUIRE(claimed.size() == 1);
  REQUIRE_FALSE(claimed[0].has_value());
  CHECK_THAT(claimed[0].error().message, Catch::Contains("cannot commit a group of"));
  // Nothing of the group is in the ledger, and nothing counted as recorded.
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s});
  CHECK(rig.real().events("j", 100).value().size() == 1);  // skip 1's
  CHECK(rig.real().job_stats("j").value().next_fire == std::nullopt);
  CHECK(rig.recorded == std::vector<std::string>{"j"});
  CHECK(rig.refusals == 1);
  CHECK(backlog.refusing());
  CHECK(backlog.size() == 2);
  CHECK_FALSE(backlog.may_claim());

  // Once the rest passed and the ledger accepts: all of it, in order.
  rig.store().failing_commit = false;
  rig.now += engine::kLedgerRetry;
  CHECK(rig.claim(start).value() == true);
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s, kT0 + 3s});
  CHECK(rig.real().job_stats("j").value().next_fire == kT0 + 60s);
  CHECK(rig.real().events("j", 100).value().size() == 4);  // 2 skipped, test, started
  CHECK(rig.recorded == std::vector<std::string>(2, "j"));
  CHECK_FALSE(backlog.refusing());
  CHECK(backlog.empty());
}

TEST_CASE("a threaded ledger worker: one group in flight, what is made meanwhile goes in the next",
          "[engine][backlog][group]") {
  BacklogRig rig(/*threaded=*/true);
  auto& backlog = rig.backlog();
  backlog.add(rig.skip(1));
  CHECK(rig.flushes_asked == 1);
  std::optional<std::vector<Result<bool>>> claimed;
  backlog.flush({rig.start(2)}, [&](auto results) { claimed = std::move(results); });
  CHECK(backlog.flushing());
  CHECK_FALSE(backlog.may_claim());  // one group at a time
  backlog.add(rig.skip(3));          // behind the group in flight
  CHECK(rig.flushes_asked == 2);
  backlog.flush();  // nothing: the group in flight takes no more
  CHECK_FALSE(claimed);

  rig.worker().settle();
  REQUIRE(claimed);
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().value() == true);
  CHECK_FALSE(backlog.flushing());
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s});
  CHECK(rig.flushes_asked == 3);  // its end asks for the flush of skip 3
  CHECK(backlog.pending());

  backlog.flush();
  rig.worker().settle();
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s, kT0 + 3s});
  CHECK(rig.recorded == std::vector<std::string>(2, "j"));
  CHECK_FALSE(backlog.pending());
}

TEST_CASE("a threaded ledger worker: a failed commit keeps the records made before and during it",
          "[engine][backlog][group]") {
  BacklogRig rig(/*threaded=*/true);
  auto& backlog = rig.backlog();
  backlog.add(rig.skip(1));
  rig.store().failing_commit = true;
  std::optional<std::vector<Result<bool>>> claimed;
  backlog.flush({rig.start(2)}, [&](auto results) { claimed = std::move(results); });
  backlog.add(rig.skip(3));
  rig.worker().settle();
  REQUIRE(claimed);
  REQUIRE_FALSE(claimed->front().has_value());
  CHECK(backlog.refusing());
  CHECK(backlog.size() == 2);  // skip 1, and skip 3 made while the group was in flight
  CHECK(rig.slots().empty());

  rig.store().failing_commit = false;
  rig.now += engine::kLedgerRetry;
  CHECK(rig.claim(rig.start(2)).value() == true);
  CHECK(rig.slots() == std::vector<TimePoint>{kT0 + 1s, kT0 + 2s, kT0 + 3s});
  CHECK_FALSE(backlog.refusing());
}
