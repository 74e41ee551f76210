// Sends one heartbeat, then works `seconds` (default 60) without another one
// (but stops when cancelled): stuck, as far as the host can tell.
#include "common.h"

namespace {

class NoHeartbeat {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.heartbeat(0.1);
    test_plugin::nap(&ctx, test_plugin::param_number(ctx, "seconds", 60));
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(NoHeartbeat, "no_heartbeat", "1.0.0", "test: never heartbeats")
