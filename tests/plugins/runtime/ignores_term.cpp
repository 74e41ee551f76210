// Ignores SIGTERM and the cancel request, and sleeps `seconds` (default 60).
#include <signal.h>

#include "common.h"

namespace {

class IgnoresTerm {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    signal(SIGTERM, SIG_IGN);
    test_plugin::nap(nullptr, test_plugin::param_number(ctx, "seconds", 60));
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(IgnoresTerm, "ignores_term", "1.0.0", "test: ignores SIGTERM")
