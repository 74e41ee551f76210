// ABI 1.1: says what made the run and its payload in its message, as
// "trigger=KIND attempt=N event=JSON" ("event=none" without one). With the
// param fail_first = "true", its first attempt asks for a retry.
#include "common.h"

namespace {

class TriggerProbe {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.set_message("trigger=" + ctx.trigger_kind() + " attempt=" + std::to_string(ctx.attempt()) +
                    " event=" + ctx.event().value_or("none"));
    if (ctx.param_or("fail_first", "") == "true" && ctx.attempt() == 1) {
      return jobhost::Result::retry;
    }
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(TriggerProbe, "trigger_probe", "1.0.0", "test: reports its trigger and event")
