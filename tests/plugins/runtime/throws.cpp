// Throws a C++ exception; the SDK wrapper turns it into FAIL with its message.
#include <stdexcept>

#include "common.h"

namespace {

class Throws {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    throw std::runtime_error(ctx.param_or("what", "disk quota exceeded on /data"));
  }
};

}  // namespace

JOBHOST_PLUGIN(Throws, "throws", "1.0.0", "test: throws an exception")
