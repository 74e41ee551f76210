// ThreadedWorker: a ledger::StoreWorker on a thread of its own, as the
// daemon has on PostgreSQL, over its own connection to a test's SQLite
// ledger. Its answers wait in `io` until the test runs them (answer()), so
// that a test sees what the loop has before and after; hold() keeps the
// thread busy until release(), so that work queues behind it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>

#include "ledger/sqlite_store.h"
#include "ledger/store_worker.h"

namespace jobhost::testing {

class ThreadedWorker {
 public:
  explicit ThreadedWorker(const std::filesystem::path& db) {
    auto opened = ledger::open_sqlite_store(db, config::Durability::normal);
    REQUIRE(opened);
    store_ = std::move(*opened);
    worker_.emplace(*store_, [this](std::function<void()> answer) {
      boost::asio::post(io_, std::move(answer));
    });
  }
  ~ThreadedWorker() {
    if (held_) release();  // a failed check left it held: let its thread end
    worker_.reset();
  }
  ThreadedWorker(const ThreadedWorker&) = delete;
  ThreadedWorker& operator=(const ThreadedWorker&) = delete;

  ledger::StoreWorker& worker() { return *worker_; }

  // Returns once the thread is held (the holding work is not pending).
  void hold() {
    held_ = true;
    std::promise<void> holding;
    worker_->run(
        [&holding, gate = gate_.get_future().share()](ledger::Store&) {
          holding.set_value();
          gate.wait();
        },
        [] {});
    holding.get_future().wait();
  }
  void release() {
    held_ = false;
    gate_.set_value();
  }
  // Waits until the thread has run every work given so far (their answers
  // are posted, not run).
  void wait_idle() {
    std::promise<void> reached;
    worker_->run([&reached](ledger::Store&) { reached.set_value(); }, [] {});
    reached.get_future().wait();
  }
  // Runs the answers posted so far, here.
  void answer() {
    io_.restart();
    io_.poll();
  }

 private:
  boost::asio::io_context io_;
  std::unique_ptr<ledger::Store> store_;
  std::optional<ledger::StoreWorker> worker_;
  std::promise<void> gate_;
  bool held_ = false;
};

}  // namespace jobhost::testing
