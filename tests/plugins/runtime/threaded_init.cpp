// Starts a thread from a static initialiser, which a process that forks must
// not have: the fork server, which loads plugins to spare its runs the work,
// has to notice and stop forking. The run itself succeeds.
#include <chrono>
#include <thread>

#include "common.h"

namespace {

const bool g_started = [] {
  std::thread([] {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }).detach();
  return true;
}();

class ThreadedInit {
 public:
  jobhost::Result run(jobhost::Context&) {
    return g_started ? jobhost::Result::ok : jobhost::Result::fail;
  }
};

}  // namespace

JOBHOST_PLUGIN(ThreadedInit, "threaded_init", "1.0.0", "test: starts a thread when loaded")
