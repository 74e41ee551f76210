// Prints how long recording one run takes (claim_and_start + finish_run),
// each its own transaction or, as the engine writes them, in write groups.
// Hidden from the default run; `ledger_tests "[bench]"` runs it. Figures only,
// no timed assertions.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <vector>

#include "ledger/ledger_test_util.h"

using namespace jobhost;
using namespace jobhost::ledger;
using namespace jobhost::ledger::testing;

namespace {

// `checkpoint_every` > 0: call Store::checkpoint() after that many runs, as an
// idle engine would; those calls are timed apart. `grouped`: as the engine
// with one run in flight, the end of the previous run and the claim of the
// next in one write group (one commit a run instead of two).
void bench(config::Durability durability, const char* label, int runs, int checkpoint_every = 0,
           bool grouped = false) {
  TempDir dir;
  auto store = open_store(dir.db(), durability);
  std::vector<double> micros, checkpoints;
  micros.reserve(runs);
  std::optional<RunEnd> previous;
  for (int i = 0; i < runs; ++i) {
    auto start = make_start("job" + std::to_string(i % 20), i * 1000, i * 1000);
    auto end = make_end(start, i % 7 ? Outcome::succeeded : Outcome::failed);
    end.output_tail = std::string(512, 'o');
    auto t0 = std::chrono::steady_clock::now();
    if (grouped) {
      REQUIRE(store->begin_group());
      if (previous) REQUIRE(store->finish_run(*previous).value());
      REQUIRE(store->claim_and_start(start).value());
      REQUIRE(store->commit_group());
      previous = end;
    } else {
      REQUIRE(store->claim_and_start(start).value());
      REQUIRE(store->finish_run(end).value());
    }
    auto t1 = std::chrono::steady_clock::now();
    micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (checkpoint_every > 0 && (i + 1) % checkpoint_every == 0) {
      auto c0 = std::chrono::steady_clock::now();
      REQUIRE(store->checkpoint().has_value());
      auto c1 = std::chrono::steady_clock::now();
      checkpoints.push_back(std::chrono::duration<double, std::micro>(c1 - c0).count());
    }
  }
  // Spikes are WAL checkpoints (they fsync the database file even with NORMAL).
  auto slow = std::count_if(micros.begin(), micros.end(), [](double us) { return us > 10000; });
  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) { return micros[static_cast<std::size_t>(p * (micros.size() - 1))]; };
  std::printf(
      "ledger %-22s %d runs: claim_and_start+finish_run median %.0f us, p90 %.0f us, "
      "p99 %.0f us, over 10 ms: %ld\n",
      label, runs, pct(0.5), pct(0.9), pct(0.99), static_cast<long>(slow));
  if (!checkpoints.empty()) {
    std::sort(checkpoints.begin(), checkpoints.end());
    std::printf("ledger %-22s %zu checkpoint() calls: median %.0f us, max %.0f us\n", label,
                checkpoints.size(), checkpoints[checkpoints.size() / 2], checkpoints.back());
  }
}

}  // namespace

TEST_CASE("bench: recording a run", "[.][bench][ledger]") {
  bench(config::Durability::normal, "synchronous=NORMAL", 2000);
  bench(config::Durability::full, "synchronous=FULL", 2000);
  bench(config::Durability::normal, "NORMAL+checkpoint/20", 2000, 20);
  bench(config::Durability::normal, "NORMAL, grouped", 2000, 0, true);
  bench(config::Durability::full, "FULL, grouped", 2000, 0, true);
  bench(config::Durability::normal, "NORMAL+ckpt/20, grouped", 2000, 20, true);
}
