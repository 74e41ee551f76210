// Works `seconds` (default 2), sending a heartbeat with progress every 20 ms,
// then succeeds: slow, not stuck.
#include "common.h"

namespace {

class Heartbeating {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const double seconds = test_plugin::param_number(ctx, "seconds", 2);
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const double done =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (done >= seconds || ctx.cancelled()) break;
      ctx.heartbeat(done / seconds);
      test_plugin::nap(nullptr, 0.02);
    }
    ctx.heartbeat(1.0);
    ctx.set_message("done");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Heartbeating, "heartbeating", "1.0.0", "test: heartbeats while it works")
