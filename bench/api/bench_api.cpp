// bench_api: what the JSON API's answers cost with many jobs.
//
// Builds a ledger with N jobs (default 10,000) of R finished runs each
// (default 20; one in ten failed) and a config naming them, then times the
// API's handlers called directly (no sockets): GET /api/v1/jobs (first page,
// sorted by success rate, a name search), GET /api/v1/jobs/{name},
// GET /api/v1/runs (first page and one deep in), GET /api/v1/events and
// GET /api/v1/status. Prints the median of each over `--reps`; never fails on
// time. Twice: the API reading the ledger at each request (no JobBook), then
// the API as the daemon runs it, from a JobBook seeded from the same ledger
// (the seed's time is printed too). The engine is not started, so the book
// run shows no next fires. The handlers run on the daemon's loop, so these are the figures a
// fire can be delayed by while one is answered.
//
// usage: bench_api [--jobs N] [--runs R] [--reps K]
#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/engine.h"
#include "ledger/sqlite_store.h"
#include "observe/api.h"
#include "observe/job_book.h"

using namespace jobhost;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

class NullExecutor final : public exec::Executor {
 public:
  Result<int> start(exec::RunRequest, std::function<void(exec::RunReport)>) override {
    return fail("bench: no runs");
  }
  Result<int> park(exec::RunRequest, std::function<void(exec::RunReport)>, TimePoint) override {
    return fail("no runs here");
  }
  void release(std::span<const std::string>) override {}
  void discard(std::string_view) override {}
  void stop(std::string_view, exec::StopReason) override {}
  void stop_all(exec::StopReason) override {}
  std::size_t active() const override { return 0; }
};

// Inserts the runs with plain SQL in one transaction (the Store would take
// one transaction per run).
void fill_ledger(const fs::path& db_path, int jobs, int runs) {
  SQLite::Database db(db_path.string(), SQLite::OPEN_READWRITE);
  SQLite::Transaction tx(db);
  SQLite::Statement job(db, "INSERT INTO jobs (name, next_fire, updated_at) VALUES (?, ?, 0)");
  SQLite::Statement slot(db,
                         "INSERT INTO slots (job, scheduled_for, trigger, trace_id, claimed_at) "
                         "VALUES (?, ?, 'schedule', ?, ?)");
  SQLite::Statement run(
      db,
      "INSERT INTO runs (run_id, job, scheduled_for, attempt, trace_id, trigger, started_at, "
      "finished_at, outcome, duration_ms, message, host_pid) "
      "VALUES (?, ?, ?, 1, ?, 'schedule', ?, ?, ?, ?, '', 1)");
  const int64_t base = 1'800'000'000'000;
  for (int j = 0; j < jobs; ++j) {
    const std::string name = fmt::format("job-{:05}", j);
    job.bind(1, name);
    job.bind(2, base + 3'600'000 + j);
    job.exec();
    job.reset();
    for (int r = 0; r < runs; ++r) {
      const int64_t t = base + r * 60'000 + j;
      const std::string id = fmt::format("r{:05}x{:04}", j, r);
      slot.bind(1, name);
      slot.bind(2, t);
      slot.bind(3, id);
      slot.bind(4, t);
      slot.exec();
      slot.reset();
      run.bind(1, id);
      run.bind(2, name);
      run.bind(3, t);
      run.bind(4, id);
      run.bind(5, t);
      run.bind(6, t + 100 + r);
      run.bind(7, (r + j) % 10 == 0 ? "failed" : "succeeded");
      run.bind(8, 100 + r);
      run.exec();
      run.reset();
    }
  }
  tx.commit();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 10000, runs = 20, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--jobs")) jobs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("bench_api.{}", getpid());
  fs::create_directories(dir / "plugins");
  fs::create_directories(dir / "var");
  {
    std::ofstream toml(dir / "jobhost.toml");
    // dynamic_users: as root, each job without `user` needs a uid of its own
    // (the default range has 4,336).
    toml << fmt::format(
        "[host]\nplugin_dir = \"{}\"\nstate_dir = \"{}\"\ndynamic_users = \"100000-{}\"\n\n",
        (dir / "plugins").string(), (dir / "var").string(), 100000 + 2 * jobs + 1000);
    for (int j = 0; j < jobs; ++j) {
      toml << fmt::format("[jobs.job-{:05}]\nplugin = \"noop\"\nschedule = \"*/5 * * * *\"\n\n", j);
    }
  }
  auto config = config::load_config(dir / "jobhost.toml");
  if (!config) {
    fmt::print(stderr, "config: {}\n", config.error().front().to_string());
    return 1;
  }
  const fs::path db = dir / "var" / "jobhost.db";
  auto store = ledger::open_sqlite_store(db, config::Durability::normal);
  if (!store) {
    fmt::print(stderr, "{}\n", store.error().message);
    return 1;
  }
  auto filled = Clock::now();
  fill_ledger(db, jobs, runs);
  fmt::print("ledger: {} jobs x {} runs written in {:.1f} s\n", jobs, runs,
             std::chrono::duration<double>(Clock::now() - filled).count());

  boost::asio::io_context io;
  NullExecutor executor;
  engine::Engine engine(io, *config, catalog::ScanResult{}, **store, executor, 1);
  observe::Api api(engine, **store);
  observe::Router ledger_router;
  api.add_routes(ledger_router);
  observe::Router* router = &ledger_router;

  auto time_of = [&](const std::string& target) {
    observe::Request request;
    request.method = "GET";
    auto q = target.find('?');
    request.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string rest = target.substr(q + 1);
      for (std::size_t i = 0; i <= rest.size();) {
        auto end = std::min(rest.find('&', i), rest.size());
        auto pair = rest.substr(i, end - i);
        auto eq = pair.find('=');
        request.query[pair.substr(0, eq)] = pair.substr(eq + 1);
        i = end + 1;
      }
    }
    std::vector<double> ms;
    std::size_t bytes = 0;
    int status = 0;
    for (int r = 0; r < reps; ++r) {
      auto start = Clock::now();
      router->dispatch(request, [&](observe::Response response) {
        status = response.status;
        bytes = response.body.size();
      });
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    fmt::print("{:<48} {:>3} {:>9} B  median {:8.2f} ms\n", target, status, bytes, median(ms));
  };
  auto time_all = [&] {
    time_of("/api/v1/jobs");
    time_of("/api/v1/jobs?sort=-success_rate&limit=100");
    time_of("/api/v1/jobs?q=job-0999&state=failing");
    time_of("/api/v1/jobs?offset=9950&sort=last_run");
    time_of("/api/v1/jobs?sort=next_fire");
    time_of("/api/v1/jobs/job-04242");
    time_of("/api/v1/runs");
    time_of("/api/v1/runs?job=job-04242&outcome=failed");
    time_of("/api/v1/runs?cursor=1800000600000.r00000x0010&limit=100");
    time_of("/api/v1/events?since=0&limit=1000");
    time_of("/api/v1/status");
  };
  fmt::print("-- from the ledger at each request (no JobBook)\n");
  time_all();

  observe::JobBook book;
  auto seeding = Clock::now();
  if (auto seeded = book.seed(**store, wall_now()); !seeded) {
    fmt::print(stderr, "seed: {}\n", seeded.error().message);
    return 1;
  }
  fmt::print("-- from a JobBook (seeded with {} jobs in {:.0f} ms)\n", book.size(),
             std::chrono::duration<double, std::milli>(Clock::now() - seeding).count());
  observe::ApiHooks hooks;
  hooks.book = &book;
  observe::Api book_api(engine, **store, hooks);
  observe::Router book_router;
  book_api.add_routes(book_router);
  router = &book_router;
  time_all();
  if (std::getenv("BENCH_API_KEEP")) {
    fmt::print("kept {}\n", dir.string());
  } else {
    fs::remove_all(dir);
  }
  return 0;
}
