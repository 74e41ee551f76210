#include "ledger/store_worker.h"

namespace jobhost::ledger {

StoreWorker::StoreWorker(Store& store) : store_(store) {}

StoreWorker::StoreWorker(Store& store, Deliver deliver)
    : store_(store), deliver_(std::move(deliver)), shared_(std::make_shared<Shared>()) {
  thread_ = std::thread([this] { loop(); });
}

StoreWorker::~StoreWorker() {
  if (!shared_) return;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->changed.notify_all();
  thread_.join();
}

void StoreWorker::submit(Work work) {
  if (!shared_) {
    work(store_)();
    return;
  }
  {
    std::lock_guard lock(shared_->mutex);
    shared_->work.push_back(std::move(work));
  }
  shared_->changed.notify_all();
}

void StoreWorker::loop() {
  Shared& s = *shared_;
  std::unique_lock lock(s.mutex);
  for (;;) {
    s.changed.wait(lock, [&] { return s.stopping || !s.work.empty(); });
    if (s.work.empty()) return;  // stopping, and nothing left to run
    Work work = std::move(s.work.front());
    s.work.pop_front();
    s.busy = true;
    lock.unlock();
    Completion done = work(store_);
    lock.lock();
    s.busy = false;
    s.done.push_back(std::move(done));
    s.changed.notify_all();
    // One delivery per result; each drains what is there (the later ones
    // may find nothing). The worker may be gone by then: shared state.
    lock.unlock();
    deliver_([weak = std::weak_ptr<Shared>(shared_)] {
      if (auto shared = weak.lock()) drain(*shared);
    });
    lock.lock();
  }
}

void StoreWorker::drain(Shared& shared) {
  for (;;) {
    Completion done;
    {
      std::lock_guard lock(shared.mutex);
      if (shared.done.empty()) return;
      done = std::move(shared.done.front());
      shared.done.pop_front();
    }
    done();  // may give the worker more work
  }
}

std::size_t StoreWorker::pending() const {
  if (!shared_) return 0;
  std::lock_guard lock(shared_->mutex);
  return shared_->work.size();
}

void StoreWorker::drop_pending() {
  if (!shared_) return;
  std::lock_guard lock(shared_->mutex);
  shared_->work.clear();
}

void StoreWorker::settle() {
  if (!shared_) return;
  {
    std::unique_lock lock(shared_->mutex);
    shared_->changed.wait(lock, [&] { return shared_->work.empty() && !shared_->busy; });
  }
  drain(*shared_);
}

}  // namespace jobhost::ledger
