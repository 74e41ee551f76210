// bench_claims: how many slots per second the ledger claims and records
// (Store::claim_and_start + finish_run, one transaction each, as a run
// outside a write group costs), on SQLite and on PostgreSQL with one host
// and with three hosts racing for every slot (three connections in three
// threads, each trying every slot in the same order, as hosts firing the
// same schedule do). One run: R repetitions (--reps), each of the three
// parts in turn (interleaved), on a fresh ledger each; medians and ratios.
// PostgreSQL is a throwaway server the bench starts on loopback
// (scripts/pg-test-server.sh; fsync off, as the tests have it: the figures
// are the protocol's and the server's CPU, not a disk's). Figures only.
//
// usage: bench_claims [--slots 2000] [--reps 5]
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ledger/ids.h"
#include "ledger/pg_store.h"
#include "ledger/sqlite_store.h"
#include "support/daemon_bench.h"

using namespace jobhost;
using namespace jobhost::bench;

namespace {

ledger::RunStart start_of(int slot, TimePoint now) {
  ledger::RunStart r;
  r.started_at = now;
  r.run_id = ledger::new_id(now);
  r.trace_id = ledger::new_id(now);
  r.job = "bench";
  r.scheduled_for = TimePoint(std::chrono::seconds(1'800'000'000) + std::chrono::seconds(slot));
  r.plugin = "bench";
  r.definition_hash = "d";
  r.host_pid = 1;
  return r;
}

// Tries every slot in order on `store`: claims won (each recorded as ended).
int claim_all(ledger::Store& store, int slots) {
  int won = 0;
  for (int i = 0; i < slots; ++i) {
    const auto start = start_of(i, wall_now());
    auto claimed = store.claim_and_start(start);
    if (!claimed) throw std::runtime_error(claimed.error().message);
    if (!*claimed) continue;
    ++won;
    ledger::RunEnd end;
    end.run_id = start.run_id;
    end.finished_at = wall_now();
    end.duration = Duration(1);
    if (auto f = store.finish_run(end); !f) throw std::runtime_error(f.error().message);
  }
  return won;
}

std::unique_ptr<ledger::Store> open_or_throw(Result<std::unique_ptr<ledger::Store>> store) {
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

// Slots claimed per second with `hosts` stores racing; checks each slot was
// won once.
double race(const std::vector<std::unique_ptr<ledger::Store>>& stores, int slots) {
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  std::exception_ptr failure;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& store : stores) {
    threads.emplace_back([&, s = store.get()] {
      try {
        won += claim_all(*s, slots);
      } catch (...) {
        failure = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (failure) std::rethrow_exception(failure);
  if (won != slots)
    throw std::runtime_error(fmt::format("{} claims won for {} slots", won.load(), slots));
  return slots / seconds;
}

}  // namespace

int main(int argc, char** argv) try {
  int slots = 2000, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--slots") {
      slots = std::atoi(argv[i + 1]);
    } else if (flag == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else {
      fmt::print(stderr, "usage: bench_claims [--slots N] [--reps R]\n");
      return 2;
    }
  }
  PgServer server;
  std::vector<double> sqlite, pg1, pg3;
  for (int rep = 0; rep < reps; ++rep) {
    {
      TempDir dir("bench-claims");
      std::vector<std::unique_ptr<ledger::Store>> one;
      one.push_back(open_or_throw(
          ledger::open_sqlite_store(dir.path() / "jobhost.db", config::Durability::normal)));
      sqlite.push_back(race(one, slots));
    }
    {
      std::vector<std::unique_ptr<ledger::Store>> one;
      one.push_back(open_or_throw(
          ledger::open_pg_store(server.fresh_database(), ledger::Access::read_write, "h0")));
      pg1.push_back(race(one, slots));
    }
    {
      const std::string url = server.fresh_database();
      std::vector<std::unique_ptr<ledger::Store>> three;
      for (int h = 0; h < 3; ++h) {
        three.push_back(open_or_throw(
            ledger::open_pg_store(url, ledger::Access::read_write, fmt::format("h{}", h))));
      }
      pg3.push_back(race(three, slots));
    }
    fmt::print("rep {}: sqlite {:.0f}/s, postgresql 1 host {:.0f}/s, 3 hosts {:.0f}/s\n", rep + 1,
               sqlite.back(), pg1.back(), pg3.back());
  }
  const double s = median(sqlite), p1 = median(pg1), p3 = median(pg3);
  fmt::print(
      "medians over {} reps of {} slots (claim + record the end, one transaction each):\n"
      "  sqlite (durability normal)   {:8.0f} slots/s\n"
      "  postgresql, 1 host           {:8.0f} slots/s  ({:.2f} x sqlite)\n"
      "  postgresql, 3 hosts racing   {:8.0f} slots/s  ({:.2f} x 1 host)\n",
      reps, slots, s, p1, p1 / s, p3, p3 / p1);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_claims: {}\n", e.what());
  return 1;
}
