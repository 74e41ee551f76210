// Returns FAIL with a message.
#include "common.h"

namespace {

class Fail {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.set_message("input file is corrupt");
    return jobhost::Result::fail;
  }
};

}  // namespace

JOBHOST_PLUGIN(Fail, "fail", "1.0.0", "test: returns FAIL")
