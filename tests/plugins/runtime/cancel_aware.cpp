// Loops until cancelled() (or `seconds`, default 60), then logs and returns
// OK with the message "noticed the cancel request". With `started_file`, it
// first writes that file, so a test knows the run is under way.
#include <fstream>

#include "common.h"

namespace {

class CancelAware {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    if (auto file = ctx.param("started_file")) std::ofstream(*file) << "started\n";
    if (!test_plugin::nap(&ctx, test_plugin::param_number(ctx, "seconds", 60))) {
      ctx.set_message("never cancelled");
      return jobhost::Result::ok;
    }
    ctx.info("cancel requested, cleaning up");
    ctx.set_message("noticed the cancel request");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(CancelAware, "cancel_aware", "1.0.0", "test: returns when cancelled")
