// observe::JobBook: fed the same runs as the ledger, it has the ledger's
// figures (job_stats, window_runs), live and when seeded from the ledger;
// and the JSON API answers GET jobs and status from it exactly as from the
// ledger's queries.
#include "observe/job_book.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/sha256.h"
#include "engine/engine_rig.h"
#include "ledger/ids.h"
#include "ledger/sqlite_store.h"
#include "ledger/store_worker.h"
#include "observe/api.h"
#include "observe/timed_store.h"
#include "retention/retention.h"
#include "support/temp_dir.h"
#include "support/threaded_worker.h"

using namespace jobhost;
using namespace jobhost::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Every figure the book keeps equals the ledger's, for each job.
void check_equal(ledger::Store& store, const observe::JobBook& book,
                 const std::vector<std::string>& jobs) {
  for (const auto& job : jobs) {
    INFO("job " << job);
    auto want = store.job_stats(job);
    REQUIRE(want);
    auto window = store.window_runs({job});
    REQUIRE(window);
    const observe::JobBook::Entry* e = book.find(job);
    REQUIRE(e != nullptr);
    CHECK(book.name(*e) == job);
    const ledger::JobStats got = book.stats(*e);
    CHECK(got.job == job);
    CHECK(got.definition_hash == want->definition_hash);
    CHECK(got.last_fire == want->last_fire);
    CHECK(got.consecutive_failures == want->consecutive_failures);
    CHECK(got.last_outcome == want->last_outcome);
    CHECK(got.last_started == want->last_started);
    CHECK(got.window_runs == want->window_runs);
    CHECK(got.success_rate == want->success_rate);
    CHECK(got.mean_duration == want->mean_duration);
    CHECK(got.p50_duration == want->p50_duration);
    CHECK(got.p95_duration == want->p95_duration);
    CHECK(got.runs_in_flight == want->runs_in_flight);
    // The accessors the API filters and sorts by.
    CHECK(e->consecutive_failures() == want->consecutive_failures);
    CHECK(e->runs_in_flight() == want->runs_in_flight);
    CHECK(e->last_started() == want->last_started);
    CHECK(e->last_fire() == want->last_fire);
    CHECK(e->success_rate() == want->success_rate);
    CHECK(e->window_runs() == want->window_runs);
    std::vector<ledger::WindowRun> runs;
    if (!window->empty()) runs = window->front().second;
    // No window is kept for a job with no finished run in it.
    CHECK((e->window() == nullptr) == runs.empty());
    const auto kept =
        e->window() ? e->window()->newest(runs.size() + 1) : std::vector<ledger::WindowRun>{};
    REQUIRE(kept.size() == runs.size());
    for (std::size_t i = 0; i < runs.size(); ++i) {
      INFO("window run " << i);
      CHECK(kept[i].run_id == runs[i].run_id);
      CHECK(kept[i].started_at == runs[i].started_at);
      CHECK(kept[i].outcome == runs[i].outcome);
      CHECK(kept[i].duration == runs[i].duration);
    }
  }
}

// Writes each run to the ledger and tells the book, as the engine does.
struct Feed {
  ledger::Store& store;
  observe::JobBook& book;
  int n = 0;

  ledger::RunStart start(const std::string& job, TimePoint at,
                         ledger::Trigger trigger = ledger::Trigger::schedule, int attempt = 1,
                         std::optional<TimePoint> slot = std::nullopt, std::string trace = "") {
    ledger::RunStart s;
    s.run_id = fmt::format("r{:06}", ++n);
    s.trace_id = trace.empty() ? "t" + s.run_id : trace;
    s.definition_hash = "def-" + job;
    s.job = job;
    s.scheduled_for = slot.value_or(at);
    s.attempt = attempt;
    s.trigger = trigger;
    s.started_at = at;
    s.host_pid = 1;
    auto claimed = store.claim_and_start(s);
    INFO((claimed ? "" : claimed.error().message));
    REQUIRE(claimed);
    REQUIRE(*claimed);
    book.on_run_started(s, 0ms);
    return s;
  }
  ledger::RunEnd end_of(const ledger::RunStart& s, Outcome outcome,
                        std::optional<Duration> duration) {
    ledger::RunEnd e;
    e.run_id = s.run_id;
    e.finished_at = s.started_at + duration.value_or(1s);
    e.outcome = outcome;
    e.duration = duration;
    return e;
  }
  void finish(const ledger::RunStart& s, Outcome outcome, std::optional<Duration> duration) {
    auto e = end_of(s, outcome, duration);
    REQUIRE(store.finish_run(e).value());
    book.on_run_finished(s, e, exec::RunReport{});
  }
  void unstarted(const std::string& job, TimePoint at) {
    ledger::RunStart s;
    s.run_id = fmt::format("r{:06}", ++n);
    s.trace_id = "t" + s.run_id;
    s.job = job;
    s.scheduled_for = at;
    s.started_at = at;
    s.host_pid = 1;
    REQUIRE(store.claim_and_start(s).value());
    auto e = end_of(s, Outcome::failed, std::nullopt);
    e.message = "could not start";
    REQUIRE(store.finish_run(e).value());
    book.on_run_unstarted(s, e);
  }
  void skip(const std::string& job, TimePoint slot, ledger::Trigger trigger) {
    ledger::SkipRecord k;
    k.run_id = fmt::format("r{:06}", ++n);
    k.trace_id = "t" + k.run_id;
    k.job = job;
    k.scheduled_for = slot;
    k.trigger = trigger;
    k.reason = "concurrency";
    k.at = slot;
    k.host_pid = 1;
    REQUIRE(store.record_skipped(k).value());
    book.on_skipped(k);
  }
};

TEST_CASE("job book: fed the same runs, its figures equal the ledger's", "[observe][job_book]") {
  TempDir dir;
  auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(store);
  observe::JobBook book;
  REQUIRE(book.seed(**store, at_utc(8, 0, 0)));
  CHECK(book.size() == 0);
  Feed feed{**store, book};
  const TimePoint t0 = at_utc(8, 0, 0);
  const Outcome outcomes[] = {Outcome::succeeded, Outcome::failed,     Outcome::succeeded,
                              Outcome::timed_out, Outcome::cancelled,  Outcome::succeeded,
                              Outcome::crashed,   Outcome::interrupted};

  // "many": 130 runs (more than the window), durations out of order, some
  // unknown; every seventh finishes after the next one started and ended.
  std::optional<ledger::RunStart> late;
  for (int i = 0; i < 130; ++i) {
    auto s = feed.start("many", t0 + i * 1min);
    std::optional<Duration> d;
    if (i % 11 != 3) d = Duration((i * 7919) % 1000 + 1);
    if (i % 7 == 0 && !late) {
      late = s;
      continue;
    }
    feed.finish(s, outcomes[i % 8], d);
    if (late) {
      feed.finish(*late, Outcome::failed, 5s);
      late.reset();
    }
  }
  // "mixed": retries, a catch-up, manual runs, skips, an unstarted run, one
  // run still in flight, and a run finishing older than the whole window.
  auto old = feed.start("mixed", t0 - 10h, ledger::Trigger::manual);
  auto a = feed.start("mixed", t0, ledger::Trigger::schedule);
  feed.finish(a, Outcome::failed, 30ms);
  auto r = feed.start("mixed", t0 + 2s, ledger::Trigger::retry, 2, t0, a.trace_id);
  feed.finish(r, Outcome::failed, 40ms);
  feed.skip("mixed", t0 + 1min, ledger::Trigger::schedule);
  feed.skip("mixed", t0 + 3min, ledger::Trigger::catchup);
  feed.unstarted("mixed", t0 + 4min);
  auto c = feed.start("mixed", t0 + 2min, ledger::Trigger::catchup);
  feed.finish(c, Outcome::succeeded, 10ms);
  for (int i = 0; i < 105; ++i) {
    feed.finish(feed.start("mixed", t0 + 5min + i * 1s, ledger::Trigger::manual), outcomes[i % 8],
                Duration(100 - i % 50));
  }
  auto open = feed.start("mixed", t0 + 1h, ledger::Trigger::manual);
  feed.finish(old, Outcome::succeeded, 1ms);  // older than the window: not in it
  // "skips": only skipped fires.
  feed.skip("skips", t0, ledger::Trigger::schedule);
  // "none": a job row with no runs (upsert_job).
  REQUIRE((*store)->upsert_job("none", "hash", t0 + 1h, t0));

  const std::vector<std::string> jobs = {"many", "mixed", "skips"};
  check_equal(**store, book, jobs);
  CHECK(book.find("none") == nullptr);

  SECTION("seeded from the ledger, a book has the same figures") {
    observe::JobBook seeded;
    REQUIRE(seeded.seed(**store, at_utc(8, 0, 0)));
    check_equal(**store, seeded, jobs);
    REQUIRE(seeded.find("none") != nullptr);
    CHECK(seeded.find("none")->window_runs() == 0);
    // ... and goes on from there.
    feed.finish(open, Outcome::timed_out, 7ms);
    seeded.on_run_finished(open, feed.end_of(open, Outcome::timed_out, 7ms), exec::RunReport{});
    check_equal(**store, seeded, jobs);
    check_equal(**store, book, jobs);
  }
}

// Names come in any order and any bytes; definition hashes are kept as 32
// bytes when they are what config::compute_definition_hash makes (64
// lower-case hex digits) and as text otherwise: either way they come back
// exactly, live and seeded.
TEST_CASE("job book: any names, any definition hashes, kept exactly", "[observe][job_book]") {
  TempDir dir;
  auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(store);
  const TimePoint t0 = at_utc(8, 0, 0);
  observe::JobBook book;
  REQUIRE(book.seed(**store, t0));
  struct Case {
    std::string job;
    std::optional<std::string> definition;
  };
  const Case cases[] = {
      {"m", sha256_hex("m")},
      {"b", std::string(64, 'f')},
      {"a", std::string(64, 'F')},         // upper case: text
      {"aa", sha256_hex("aa").substr(1)},  // 63 digits: text
      {"c", ""},
      {"backup-database-nightly-with-a-long-name", "def-c"},
      {"\xc3\x9f-not-ascii", sha256_hex("x")},
      {"none", std::nullopt},  // a run without one: none yet
  };
  Feed feed{**store, book};
  int i = 0;
  for (const auto& c : cases) {
    ledger::RunStart s;
    s.run_id = fmt::format("r{:06}", ++feed.n);
    s.trace_id = "t" + s.run_id;
    s.definition_hash = c.definition;
    s.job = c.job;
    s.scheduled_for = s.started_at = t0 + ++i * 1s;
    s.host_pid = 1;
    REQUIRE((*store)->claim_and_start(s).value());
    book.on_run_started(s, 0ms);
    feed.finish(s, Outcome::succeeded, 5ms);
  }
  auto check = [&](const observe::JobBook& b) {
    CHECK(b.size() == std::size(cases));
    for (const auto& c : cases) {
      INFO("job " << c.job);
      const auto* e = b.find(c.job);
      REQUIRE(e != nullptr);
      CHECK(b.name(*e) == c.job);
      CHECK(b.definition_hash(*e) == c.definition);
      CHECK(b.stats(*e).definition_hash == c.definition);
    }
    CHECK(b.find("") == nullptr);
    CHECK(b.find("zz") == nullptr);
    CHECK(b.find("aaa") == nullptr);
    std::vector<std::string> names;
    b.for_each(
        [&](std::string_view name, const observe::JobBook::Entry&) { names.emplace_back(name); });
    CHECK(std::is_sorted(names.begin(), names.end()));
    CHECK(names.size() == std::size(cases));
  };
  check(book);
  observe::JobBook seeded;
  REQUIRE(seeded.seed(**store, t0));
  check(seeded);
  std::vector<std::string> jobs;
  for (const auto& c : cases) jobs.push_back(c.job);
  check_equal(**store, seeded, jobs);
}

// What the book costs a job: 48 bytes, its name, 32 bytes of definition
// hash; and a window only once it has finished runs, 40 bytes a run in an
// array that grows by doubling up to the window's 100 runs.
TEST_CASE("job book: its memory per job, with and without runs", "[observe][job_book]") {
  CHECK(sizeof(observe::JobBook::Entry) == 48);
  const TimePoint t0 = at_utc(8, 0, 0);
  // The window's array: 4, then doubled, up to 100.
  auto capacity = [](int runs) {
    const std::size_t want = std::min(runs, ledger::kStatsWindow);
    std::size_t c = 0;
    while (c < want)
      c = std::min<std::size_t>(ledger::kStatsWindow, std::max<std::size_t>(4, c * 2));
    return c;
  };

  SECTION("seeded from a ledger of jobs without runs: under 100 bytes a job") {
    TempDir dir;
    auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
    REQUIRE(store);
    for (int i = 0; i < 2000; ++i) {
      const std::string job = fmt::format("job{:04}", i);
      REQUIRE((*store)->upsert_job(job, sha256_hex(job), t0 + 1h, t0));
    }
    observe::JobBook book;
    REQUIRE(book.seed(**store, t0));
    REQUIRE(book.size() == 2000);
    CHECK(book.find("job0042")->window() == nullptr);
    // 48 + 4 (index) + 32 (hash) + 7 (name)
    CHECK(book.memory_bytes() == 2000 * (48 + 4 + 32 + 7));
  }
  SECTION("fed runs live") {
    struct Case {
      int jobs;
      int runs;  // finished runs a job
    };
    const Case cases[] = {{3000, 0}, {1000, 1}, {500, 5}, {200, 40}, {50, 130}};
    for (const auto& c : cases) {
      INFO(c.jobs << " jobs of " << c.runs << " runs");
      observe::JobBook book;
      int n = 0;
      for (int j = 0; j < c.jobs; ++j) {
        const std::string job = fmt::format("job{:04}", j);
        ledger::SkipRecord skip;
        skip.job = job;
        skip.definition_hash = sha256_hex(job);
        skip.scheduled_for = t0;
        book.on_skipped(skip);
        for (int r = 0; r < c.runs; ++r) {
          ledger::RunStart s;
          s.run_id = ledger::new_id(t0 + ++n * 1ms);
          s.job = job;
          s.started_at = s.scheduled_for = t0 + r * 1min;
          book.on_run_started(s, 0ms);
          ledger::RunEnd e;
          e.outcome = r % 3 ? Outcome::succeeded : Outcome::failed;
          e.duration = Duration(r);
          book.on_run_finished(s, e, exec::RunReport{});
        }
      }
      REQUIRE(book.size() == static_cast<std::size_t>(c.jobs));
      const std::size_t window = c.runs == 0 ? 0
                                             : sizeof(observe::RunWindow) +
                                                   capacity(c.runs) * observe::RunWindow::kRunBytes;
      // The entries' arrays grow by doubling: up to twice the bytes they use.
      const std::size_t per_job = 2 * (48 + 4 + 32 + 7) + window;
      CHECK(book.memory_bytes() <= static_cast<std::size_t>(c.jobs) * per_job);
      CHECK(book.memory_bytes() >= static_cast<std::size_t>(c.jobs) * ((48 + 4 + 32 + 7) + window));
      CHECK((book.find("job0000")->window() == nullptr) == (c.runs == 0));
    }
  }
}

// The book's last-hour figures equal Store::run_summary since
// hour_window_start(now), field by field.
void check_hour(ledger::Store& store, const observe::JobBook& book, TimePoint now) {
  INFO("now " << ledger::format_utc(now));
  auto want = store.run_summary(observe::hour_window_start(now));
  REQUIRE(want);
  const auto got = book.last_hour(now);
  CHECK(got.runs == want->runs);
  CHECK(got.failed == want->failed);
  CHECK(got.mean_duration == want->mean_duration);
}

TEST_CASE("job book: its last-hour figures equal the ledger's as the clock moves",
          "[observe][job_book][dashboard]") {
  TempDir dir;
  auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(store);
  const TimePoint t0 = at_utc(8, 0, 0);
  observe::JobBook book;
  REQUIRE(book.seed(**store, t0));
  Feed feed{**store, book};
  const Outcome outcomes[] = {Outcome::succeeded,  Outcome::failed,    Outcome::timed_out,
                              Outcome::cancelled,  Outcome::succeeded, Outcome::crashed,
                              Outcome::interrupted};
  // Runs every 37 s for 150 minutes, some with unknown durations, some
  // finishing after later ones; one started long before and finishing late;
  // skips and an unstarted run. Checked at several instants as it goes.
  std::optional<ledger::RunStart> late;
  auto old = feed.start("old", t0 - 3h, ledger::Trigger::manual);
  for (int i = 0; i * 37s < 150min; ++i) {
    const TimePoint at = t0 + i * 37s + std::chrono::milliseconds(i * 13 % 1000);
    auto s = feed.start(fmt::format("job{}", i % 3), at);
    std::optional<Duration> d;
    if (i % 5 != 2) d = Duration(i * 7919 % 2000 + 1);
    if (i % 9 == 4 && !late) {
      late = s;
    } else {
      feed.finish(s, outcomes[i % 7], d);
    }
    if (late && i % 9 == 6) {
      feed.finish(*late, Outcome::failed, 90s);
      late.reset();
    }
    if (i % 17 == 0) feed.skip("skipper", at, ledger::Trigger::schedule);
    if (i == 100) feed.unstarted("job1", at + 1s);
    if (i % 20 == 0) check_hour(**store, book, at + 1s);
  }
  feed.finish(old, Outcome::crashed, 3h);  // started outside every window
  if (late) feed.finish(*late, Outcome::succeeded, 1s);
  // The clock moves on past the runs: minute by minute they leave the window,
  // at a whole minute, just before and just after one.
  const TimePoint last = t0 + 150min;
  for (auto step = 0min; step <= 65min; step += 1min) {
    for (auto edge : {Duration(0), Duration(-1), Duration(1), Duration(30'000)}) {
      check_hour(**store, book, last + step + edge);
    }
  }
  CHECK(book.last_hour(last + 62min).runs == 0);
  CHECK(book.last_hour(last).runs > 0);

  SECTION("seeded from the ledger, a book has the same figures and goes on") {
    const TimePoint now = last + 20s;
    observe::JobBook seeded;
    REQUIRE(seeded.seed(**store, now));
    for (auto step = 0min; step <= 62min; step += 1min) check_hour(**store, seeded, now + step);
    Feed more{**store, seeded, 100000};
    more.finish(more.start("job0", now + 2min), Outcome::failed, 5ms);
    for (auto step = 2min; step <= 62min; step += 10min) check_hour(**store, seeded, now + step);
    more.finish(more.start("job0", now + 70min), Outcome::succeeded, std::nullopt);
    for (auto step = 70min; step <= 140min; step += 10min) check_hour(**store, seeded, now + step);
  }
}

// Retention deletes runs; told so, the book's windows equal the ledger's
// again.
TEST_CASE("job book: after a prune its windows equal the ledger's", "[observe][job_book]") {
  TempDir dir;
  auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(store);
  const TimePoint t0 = at_utc(8, 0, 0);
  observe::JobBook book;
  REQUIRE(book.seed(**store, t0));
  Feed feed{**store, book};
  const Outcome outcomes[] = {Outcome::succeeded, Outcome::failed, Outcome::succeeded,
                              Outcome::timed_out};
  for (int i = 0; i < 130; ++i) {
    for (const char* job : {"a", "b", "young"}) {
      const TimePoint at = (std::string(job) == "young" ? t0 + 10h : t0) + i * 1min;
      feed.finish(feed.start(job, at), outcomes[(i * 7) % 4], Duration(i * 31 % 500 + 1));
    }
  }
  const std::vector<std::string> jobs = {"a", "b", "young"};
  check_equal(**store, book, jobs);

  SECTION("by count: keep_last below the window") {
    REQUIRE((*store)->prune_excess("a", 30, 1000).value() == 100);
    book.on_runs_pruned(retention::PrunedRuns{"a", {}});
    check_equal(**store, book, jobs);
    CHECK(book.find("a")->window_runs() == 30);
    CHECK(book.find("b")->window_runs() == ledger::kStatsWindow);
  }
  SECTION("by age: every window reaching back before the cutoff") {
    // And one whose finished runs all go (its newest slot, kept, was
    // skipped): it has no window left.
    for (int i = 0; i < 3; ++i) {
      feed.finish(feed.start("gone", t0 - 1h + i * 1min), Outcome::failed, 5ms);
    }
    feed.skip("gone", t0 - 30min, ledger::Trigger::schedule);
    const TimePoint before = t0 + 100min;
    REQUIRE((*store)->prune(before, 1000).value().runs == 203);
    book.on_runs_pruned(retention::PrunedRuns{"", before});
    check_equal(**store, book, jobs);
    CHECK(book.find("a")->window_runs() == 30);
    CHECK(book.find("young")->window_runs() == ledger::kStatsWindow);
    CHECK((*store)->window_runs({"gone"}).value().empty());
    CHECK(book.find("gone")->window() == nullptr);
  }
  SECTION("through the Pruner's notice") {
    boost::asio::io_context io;
    ledger::StoreWorker worker(**store);
    retention::Pruner pruner(io, worker, retention::RetentionPolicy{}, [&] { return t0 + 20h; });
    pruner.on_pruned([&](const retention::PrunedRuns& pruned) { book.on_runs_pruned(pruned); });
    pruner.start();
    pruner.set_policy(retention::RetentionPolicy{Duration(0), {{"b", 7}}});
    io.run_for(std::chrono::milliseconds(300));
    pruner.stop();
    check_equal(**store, book, jobs);
    CHECK(book.find("b")->window_runs() == 7);
  }
}

namespace {

// The book's store on the loop (the one it is seeded from): once `armed`,
// reading windows there fails the test (they must come through the worker).
class NoWindowsOnLoop final : public observe::TimedStore {
 public:
  explicit NoWindowsOnLoop(ledger::Store& inner)
      : TimedStore(inner, [](observe::LedgerOp, double) {}) {}
  bool armed = false;
  Result<std::vector<std::pair<std::string, std::vector<ledger::WindowRun>>>> window_runs(
      const std::vector<std::string>& jobs) override {
    if (armed) FAIL("window_runs read on the loop");
    return TimedStore::window_runs(jobs);
  }
};

}  // namespace

// On PostgreSQL the book re-reads windows through a worker thread: its
// windows stay as they are until the answer is back on the loop; runs that
// end meanwhile are neither lost (the answer predates their write) nor
// counted twice (it has them); two rereads in flight apply in order.
TEST_CASE("job book: after a prune, windows are re-read through the worker",
          "[observe][job_book]") {
  TempDir dir;
  auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(store);
  NoWindowsOnLoop loop(**store);
  const TimePoint t0 = at_utc(8, 0, 0);
  observe::JobBook book;
  REQUIRE(book.seed(loop, t0));
  loop.armed = true;
  ThreadedWorker w(dir.path() / "jobhost.db");
  book.read_through(w.worker());
  Feed feed{**store, book};
  for (int i = 0; i < 130; ++i) {
    for (const char* job : {"a", "b"}) {
      feed.finish(feed.start(job, t0 + i * 1min), i % 3 ? Outcome::succeeded : Outcome::failed,
                  Duration(i * 31 % 500 + 1));
    }
  }
  const std::vector<std::string> jobs = {"a", "b"};
  check_equal(**store, book, jobs);

  w.hold();
  REQUIRE((*store)->prune_excess("a", 30, 1000).value() == 100);
  book.on_runs_pruned(retention::PrunedRuns{"a", {}});
  // Ends after the first question, written before either read.
  const auto first = feed.start("a", t0 + 200min);
  feed.finish(first, Outcome::succeeded, 5ms);
  // The next prune runs on the worker, as the daemon's retention does.
  w.worker().run([](ledger::Store& s) { return s.prune_excess("a", 20, 1000); },
                 [](Result<int> pruned) { CHECK(pruned.value() == 12); });
  book.on_runs_pruned(retention::PrunedRuns{"a", {}});
  // Ends after both questions, written before their reads: both answers have it.
  const auto both = feed.start("a", t0 + 202min);
  feed.finish(both, Outcome::failed, 7ms);
  w.release();
  w.wait_idle();
  // Ends after both questions, written after their reads: no answer has it.
  const auto late = feed.start("a", t0 + 203min);
  feed.finish(late, Outcome::succeeded, 9ms);
  CHECK(book.find("a")->window_runs() == ledger::kStatsWindow);  // no answer applied yet

  w.answer();
  check_equal(**store, book, jobs);
  CHECK(book.find("a")->window_runs() == 21);  // the second answer's 20 and `late`
  for (const auto& run : {first, both, late}) CHECK(book.find("a")->window()->contains(run.run_id));
}

// An answer that comes back after the book is gone (the daemon stopping) is
// dropped, not applied to freed memory.
TEST_CASE("job book: a reread answered after the book is gone is dropped", "[observe][job_book]") {
  TempDir dir;
  auto store = ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal);
  REQUIRE(store);
  ThreadedWorker w(dir.path() / "jobhost.db");
  {
    observe::JobBook book;
    Feed feed{**store, book};
    feed.finish(feed.start("a", at_utc(8, 0, 0)), Outcome::succeeded, 5ms);
    REQUIRE(book.seed(**store, at_utc(8, 1, 0)));
    book.read_through(w.worker());
    w.hold();
    book.on_runs_pruned(retention::PrunedRuns{"a", {}});
  }
  w.release();
  w.wait_idle();
  w.answer();
}

// The engine's own pruner, with the book watching the engine: after the
// prunes of a job with keep_last below the window, the book's figures equal
// the ledger's.
TEST_CASE("job book: the engine tells it of its pruner's deletions", "[observe][job_book]") {
  Rig rig(R"(
[jobs.busy]
plugin = "noop"
schedule = "* * * * * *"
keep_last = 5
)",
          Rig::Runs::fake);
  observe::JobBook book;
  REQUIRE(book.seed(rig.store(), at_utc(10, 0, 0, 500)));
  rig.observers.push_back(&book);
  rig.start(at_utc(10, 0, 0, 500));
  const Outcome outcomes[] = {Outcome::succeeded, Outcome::failed, Outcome::timed_out};
  int n = 0;
  for (int second = 1; second <= 40; ++second) {
    rig.run_until(at_utc(10, 0, 0, 500) + second * 1s);
    for (const auto& id : rig.fake().running_ids()) rig.fake().finish(id, outcomes[n++ % 3]);
    rig.settle();
  }
  // More runs than keep_last keeps: the pruner must delete some. (Not the
  // book's window before it does: its batches run on real timers, 20 ms
  // after the first record, which a slow machine reaches within the loop.)
  REQUIRE(n > 6);
  // The pruner's batches run on real timers (its first pass after 2 s).
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (rig.store().window_runs({"busy"}).value().front().second.size() > 6 ||
         book.find("busy")->window_runs() > 6) {
    REQUIRE(std::chrono::steady_clock::now() < give_up);
    rig.settle();
    std::this_thread::sleep_for(10ms);
  }
  rig.settle();
  check_equal(rig.store(), book, {"busy"});
}

// The engine's own runs, with the book watching it: GET jobs and status
// answer the same from the book as from the ledger's queries.
constexpr const char* kJobs = R"(
[jobs.alpha]
plugin = "noop"
schedule = "* * * * * *"
retry = { max_attempts = 3, initial_delay = "1s" }

[jobs.beta]
plugin = "noop"
schedule = "*/5 * * * * *"

[jobs.gamma]
plugin = "noop"
schedule = "@manual"
enabled = false
)";

std::string get(const observe::Router& router, const std::string& target) {
  observe::Request request;
  request.method = "GET";
  request.peer = "127.0.0.1:5000";
  auto q = target.find('?');
  request.path = target.substr(0, q);
  if (q != std::string::npos) {
    std::string rest = target.substr(q + 1);
    for (std::size_t i = 0; i <= rest.size();) {
      auto end = std::min(rest.find('&', i), rest.size());
      auto pair = rest.substr(i, end - i);
      auto eq = pair.find('=');
      request.query[pair.substr(0, eq)] = eq == std::string::npos ? "" : pair.substr(eq + 1);
      i = end + 1;
    }
  }
  std::optional<observe::Response> out;
  router.dispatch(request, [&](observe::Response response) { out = std::move(response); });
  REQUIRE(out);
  REQUIRE(out->status == 200);
  return out->body;
}

TEST_CASE("job book: the API answers jobs and status from it as from the ledger",
          "[observe][job_book][api]") {
  Rig rig(kJobs, Rig::Runs::fake);
  observe::JobBook book;
  REQUIRE(book.seed(rig.store(), at_utc(10, 0, 0, 500)));
  rig.observers.push_back(&book);
  rig.start(at_utc(10, 0, 0, 500));
  observe::Api ledger_api(rig.engine(), rig.store());
  observe::ApiHooks hooks;
  hooks.book = &book;
  observe::Api book_api(rig.engine(), rig.store(), hooks);
  observe::Router from_ledger, from_book;
  ledger_api.add_routes(from_ledger);
  book_api.add_routes(from_book);

  const Outcome outcomes[] = {Outcome::succeeded, Outcome::failed, Outcome::succeeded,
                              Outcome::timed_out, Outcome::crashed};
  int n = 0;
  auto compare = [&] {
    for (const char* target :
         {"/api/v1/jobs", "/api/v1/jobs?sort=-success_rate", "/api/v1/jobs?sort=next_fire",
          "/api/v1/jobs?sort=-last_run&limit=2", "/api/v1/jobs?state=failing",
          "/api/v1/jobs?state=running", "/api/v1/jobs?state=disabled", "/api/v1/jobs?q=et",
          "/api/v1/jobs?offset=1&limit=1", "/api/v1/status"}) {
      INFO(target);
      auto want = json::parse(get(from_ledger, target));
      auto diff = json::diff(want, json::parse(get(from_book, target)));
      INFO(diff.dump());
      CHECK(diff.empty());
    }
  };
  compare();
  for (int second = 1; second <= 150; ++second) {
    rig.run_until(at_utc(10, 0, 0, 500) + second * 1s);
    // Finish the runs newest first (out of start order); every third
    // second, leave the newest running.
    auto ids = rig.fake().running_ids();
    const std::size_t keep = second % 3 == 0 ? 1 : 0;
    for (std::size_t i = ids.size(); i-- > keep;) rig.fake().finish(ids[i], outcomes[n++ % 5]);
    rig.settle();
    if (second % 50 == 0) compare();
  }
  REQUIRE(rig.engine().pause("beta", "test"));
  compare();
  check_equal(rig.store(), book, {"alpha", "beta"});
}

}  // namespace
