// Calls exit(`code`) (default 3) from run, without returning a result.
#include <cstdlib>

#include "common.h"

namespace {

class ExitCode {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    std::exit(static_cast<int>(test_plugin::param_number(ctx, "code", 3)));
  }
};

}  // namespace

JOBHOST_PLUGIN(ExitCode, "exit_code", "1.0.0", "test: calls exit()")
