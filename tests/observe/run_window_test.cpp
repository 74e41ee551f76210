// observe::RunWindow, the JobBook's compact stats window: run ids packed and
// given back exactly (table-driven), and a window fed runs in any order
// equal, run by run and figure by figure, to a plain model of the ledger's
// window (the newest kStatsWindow runs by started_at, then run_id).
#include "observe/run_window.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <tuple>

#include "ledger/ids.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace std::chrono_literals;

namespace {

// The ledger's window, kept the plain way: every run, newest first.
struct Model {
  std::vector<ledger::WindowRun> runs;

  static bool newer(const ledger::WindowRun& a, const ledger::WindowRun& b) {
    return std::tie(a.started_at, a.run_id) > std::tie(b.started_at, b.run_id);
  }
  void add(const ledger::WindowRun& run) {
    runs.insert(std::lower_bound(runs.begin(), runs.end(), run, newer), run);
    if (runs.size() > static_cast<std::size_t>(ledger::kStatsWindow)) runs.pop_back();
  }
};

void check_same(const RunWindow& w, const Model& m) {
  REQUIRE(w.size() == m.runs.size());
  CHECK(w.empty() == m.runs.empty());
  const auto got = w.newest(m.runs.size() + 5);
  REQUIRE(got.size() == m.runs.size());
  int succeeded = 0;
  int64_t total = 0;
  std::vector<Duration> durations;
  for (std::size_t i = 0; i < m.runs.size(); ++i) {
    INFO("run " << i);
    const auto& want = m.runs[i];
    CHECK(got[i].run_id == want.run_id);
    CHECK(got[i].started_at == want.started_at);
    CHECK(got[i].outcome == want.outcome);
    CHECK(got[i].duration == want.duration);
    CHECK(w.at(i).run_id == want.run_id);
    if (want.outcome == Outcome::succeeded) ++succeeded;
    if (want.duration) {
      total += want.duration->count();
      durations.push_back(*want.duration);
    }
  }
  CHECK(w.succeeded() == succeeded);
  if (m.runs.empty()) {
    CHECK_FALSE(w.last_outcome());
  } else {
    CHECK(w.last_outcome() == m.runs.front().outcome);
    CHECK(w.oldest_started() == m.runs.back().started_at);
  }
  if (durations.empty()) {
    CHECK_FALSE(w.mean_duration());
    CHECK_FALSE(w.p50_duration());
    CHECK_FALSE(w.p95_duration());
  } else {
    std::sort(durations.begin(), durations.end());
    CHECK(w.mean_duration() == Duration(total / static_cast<int64_t>(durations.size())));
    CHECK(w.p50_duration() == ledger::percentile(durations, 50));
    CHECK(w.p95_duration() == ledger::percentile(durations, 95));
  }
}

std::string ulid(uint64_t ms, uint8_t fill) {
  std::array<uint8_t, ledger::kIdRandomBytes> random{};
  for (std::size_t i = 0; i < random.size(); ++i) random[i] = static_cast<uint8_t>(fill + i * 37);
  return ledger::encode_id(ms, random);
}

}  // namespace

TEST_CASE("run ids: the engine's ULIDs pack into 16 bytes and come back exactly",
          "[observe][job_book]") {
  struct Case {
    std::string id;
    bool packs;
  };
  const Case cases[] = {
      {ulid(0, 0), true},
      {ulid(1'800'000'000'000, 0x5A), true},
      {ulid((uint64_t{1} << 48) - 1, 0xFF), true},
      {"00000000000000000000000000", true},
      {"7ZZZZZZZZZZZZZZZZZZZZZZZZZ", true},  // the largest: 128 bits set
      {"01JEJ6ZC0W5V7Q9N2M4K8H3G1F", true},
      {"8ZZZZZZZZZZZZZZZZZZZZZZZZZ", false},   // more than 128 bits
      {"01jej6zc0w5v7q9n2m4k8h3g1f", false},   // lower case: kept as given
      {"01JEJ6ZC0W5V7Q9N2M4K8H3G1", false},    // 25 characters
      {"01JEJ6ZC0W5V7Q9N2M4K8H3G1FF", false},  // 27
      {"01JEJ6ZC0W5V7Q9N2M4K8H3GIL", false},   // I and L are not in the alphabet
      {"01JEJ6ZC0W5V7Q9N2M4K8H3GOU", false},   // nor O and U
      {"", false},
      {"r000001", false},
  };
  for (const auto& c : cases) {
    INFO("id \"" << c.id << "\"");
    const auto packed = pack_run_id(c.id);
    CHECK(packed.has_value() == c.packs);
    if (packed) CHECK(unpack_run_id(*packed) == c.id);
  }
  // Packed ids order as their text does (so the window's order needs no text).
  const std::string a = ulid(1000, 1), b = ulid(1000, 2), c = ulid(1001, 0);
  CHECK(a < b);
  CHECK(b < c);
  CHECK(*pack_run_id(a) < *pack_run_id(b));
  CHECK(*pack_run_id(b) < *pack_run_id(c));
}

TEST_CASE("run window: a run takes 40 bytes; any id is kept exactly, and found by it",
          "[observe][job_book]") {
  CHECK(RunWindow::kRunBytes == 40);
  struct Case {
    std::string id;
    bool wide;  // kept as a string beside the runs
  };
  const Case cases[] = {
      {ulid(1'800'000'000'000, 9), false},
      {"r000001", false},
      {"", false},
      {"exactly-16-bytes", false},
      {"seventeen-bytes!!", true},
      {"01jej6zc0w5v7q9n2m4k8h3g1f", true},
      {std::string("nul\0byte", 8), false},
      {std::string(200, 'x'), true},
  };
  for (const auto& c : cases) {
    INFO("id \"" << c.id << "\"");
    RunWindow w;
    const TimePoint t0 = TimePoint(Duration(1'800'000'000'000));
    REQUIRE(w.add({ulid(1, 1), t0, Outcome::succeeded, 5ms}));
    REQUIRE(w.add({c.id, t0 + 1s, Outcome::failed, std::nullopt}));
    CHECK(w.wide() == c.wide);
    CHECK(w.at(0).run_id == c.id);
    CHECK(w.at(1).run_id == ulid(1, 1));
    CHECK(w.at(0).outcome == Outcome::failed);
    CHECK_FALSE(w.at(0).duration);
    CHECK(w.at(1).duration == 5ms);
    CHECK(w.contains(c.id));
    CHECK(w.contains(ulid(1, 1)));
    CHECK_FALSE(w.contains(c.id + "x"));
    CHECK_FALSE(w.contains(ulid(1, 2)));
  }
}

TEST_CASE("run window: fed runs in any order, it equals the ledger's window",
          "[observe][job_book]") {
  const TimePoint t0 = TimePoint(Duration(1'800'000'000'000));
  const Outcome outcomes[] = {Outcome::succeeded, Outcome::failed,        Outcome::timed_out,
                              Outcome::crashed,   Outcome::interrupted,   Outcome::cancelled,
                              Outcome::replaced,  Outcome::limit_exceeded};
  struct Case {
    const char* name;
    int runs;
    int shuffle;     // how far a run may finish out of start order
    int same_start;  // every n-th run starts in the same millisecond as the one before
    int short_ids;   // every n-th id is short text (0: none)
    int wide_ids;    // every n-th id is long text (0: none)
  };
  const Case cases[] = {
      {"in order, engine ids", 250, 0, 0, 0, 0},
      {"out of order, engine ids", 250, 30, 0, 0, 0},
      {"ties broken by id", 250, 5, 3, 0, 0},
      {"short ids", 180, 10, 4, 2, 0},
      {"a long id makes it wide", 220, 10, 4, 3, 50},
      {"few runs", 7, 3, 2, 0, 0},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    std::mt19937 rng(42);
    std::vector<ledger::WindowRun> runs;
    for (int i = 0; i < c.runs; ++i) {
      ledger::WindowRun r;
      const bool tie = c.same_start > 0 && i % c.same_start == 1;
      r.started_at = tie ? runs.back().started_at : t0 + i * 1s + Duration(rng() % 900);
      if (c.wide_ids > 0 && i % c.wide_ids == c.wide_ids - 1) {
        r.run_id = "a-run-id-longer-than-sixteen-bytes-" + std::to_string(rng() % 1000);
      } else if (c.short_ids > 0 && i % c.short_ids == 0) {
        r.run_id = "s" + std::to_string(rng() % 100000);
      } else {
        r.run_id = ulid(static_cast<uint64_t>(r.started_at.time_since_epoch().count()),
                        static_cast<uint8_t>(rng()));
      }
      r.outcome = outcomes[rng() % std::size(outcomes)];
      if (rng() % 7 != 0) r.duration = Duration(rng() % 5000);
      runs.push_back(r);
    }
    // Runs end in start order but for a bounded shuffle.
    for (std::size_t i = 0; c.shuffle > 0 && i < runs.size(); ++i) {
      const std::size_t j = std::min(runs.size() - 1, i + rng() % c.shuffle);
      std::swap(runs[i], runs[j]);
    }
    RunWindow w;
    Model m;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const bool older_than_all = m.runs.size() == static_cast<std::size_t>(ledger::kStatsWindow) &&
                                  Model::newer(m.runs.back(), runs[i]);
      CHECK(w.add(runs[i]) == !older_than_all);
      m.add(runs[i]);
      if (i % 17 == 0 || i + 1 == runs.size()) check_same(w, m);
    }
    CHECK(w.size() == std::min<std::size_t>(runs.size(), ledger::kStatsWindow));
    // Built from the ledger's answer (newest first), it is the same window.
    RunWindow seeded(m.runs);
    check_same(seeded, m);
    // Built from more runs than fit, it keeps the newest.
    Model all;
    for (const auto& r : runs) all.runs.push_back(r);
    std::sort(all.runs.begin(), all.runs.end(), Model::newer);
    RunWindow from_all(all.runs);
    all.runs.resize(std::min<std::size_t>(all.runs.size(), ledger::kStatsWindow));
    check_same(from_all, all);
  }
}
