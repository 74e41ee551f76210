// Returns RETRY with a message.
#include "common.h"

namespace {

class Retry {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.set_message("upstream answered 503");
    return jobhost::Result::retry;
  }
};

}  // namespace

JOBHOST_PLUGIN(Retry, "retry", "1.0.0", "test: returns RETRY")
