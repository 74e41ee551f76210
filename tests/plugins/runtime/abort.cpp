// Calls abort(): SIGABRT.
#include <cstdlib>

#include "common.h"

namespace {

class Abort {
 public:
  jobhost::Result run(jobhost::Context&) { std::abort(); }
};

}  // namespace

JOBHOST_PLUGIN(Abort, "abort", "1.0.0", "test: aborts")
