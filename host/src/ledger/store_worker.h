// Store calls off the caller's thread, so that the daemon's loop never waits
// on a database across the network (docs/cluster.md). A threaded worker runs
// the work given to it on a thread of its own, in order, against a store
// (a connection) that only it uses; each result is handed back through
// `deliver` (the daemon posts it to its io_context), in the same order. An
// inline worker runs the work at once on the caller's thread and hands the
// result back before run() returns: the daemon uses one over SQLite, a
// local file, so that a turn of its loop sees its own commits.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include "ledger/store.h"

namespace jobhost::ledger {

class StoreWorker {
 public:
  // Hands a result back to the caller's thread (e.g. posts it to a loop).
  using Deliver = std::function<void(std::function<void()>)>;

  // Inline over `store`.
  explicit StoreWorker(Store& store);
  // On a thread of its own over `store`, which nothing else may use while
  // the worker lives.
  StoreWorker(Store& store, Deliver deliver);
  // Runs the work still queued, then joins; results not yet handed back are
  // dropped (settle() first to have them).
  ~StoreWorker();
  StoreWorker(const StoreWorker&) = delete;
  StoreWorker& operator=(const StoreWorker&) = delete;

  // Runs `work(store)` on the worker, then `done(result)` on the caller's
  // thread. `done` runs even when `work` failed: Store calls return errors.
  template <class Work, class Done>
  void run(Work work, Done done) {
    submit([work = std::move(work), done = std::move(done)](Store& store) mutable {
      using R = std::invoke_result_t<Work&, Store&>;
      if constexpr (std::is_void_v<R>) {
        work(store);
        return Completion([done = std::move(done)]() mutable { done(); });
      } else {
        return Completion(
            [result = work(store), done = std::move(done)]() mutable { done(std::move(result)); });
      }
    });
  }

  // Blocks until every work given so far has run, then runs their `done`
  // here, in order. For a shutdown, which must see its writes through.
  void settle();
  // Work given and not started yet (0 inline).
  std::size_t pending() const;
  // Drops the work not started yet (their `done` never runs): for reads
  // nobody waits for any more, at a shutdown.
  void drop_pending();
  bool threaded() const { return shared_ != nullptr; }

 private:
  using Completion = std::function<void()>;
  using Work = std::function<Completion(Store&)>;
  struct Shared {
    mutable std::mutex mutex;
    std::condition_variable changed;
    std::deque<Work> work;        // not started, oldest first
    std::deque<Completion> done;  // not handed back yet, oldest first
    bool busy = false;            // a work is running
    bool stopping = false;
  };

  void submit(Work work);
  void loop();
  // Runs the completions handed back so far (on the caller's thread).
  static void drain(Shared& shared);

  Store& store_;
  Deliver deliver_;
  std::shared_ptr<Shared> shared_;  // null: inline
  std::thread thread_;
};

}  // namespace jobhost::ledger
