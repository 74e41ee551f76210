// Sleeps `seconds` (default 1) and reports, in its message, the version it
// was built as: proves which build a run really executed across a hot reload.
#include "common.h"

#ifndef NAPPER_VERSION
#define NAPPER_VERSION "1.0.0"
#endif

namespace {

class Napper {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    test_plugin::nap(&ctx, test_plugin::param_number(ctx, "seconds", 1));
    ctx.set_message("napper " NAPPER_VERSION " slept");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Napper, "napper", NAPPER_VERSION, "test: sleeps and reports its build version")
