// A plugin whose static initialiser never returns: the probe must time out and kill it.
#include <jobhost/plugin.hpp>

#include <unistd.h>

namespace {

struct Hang {
  Hang() {
    for (;;) pause();
  }
};
Hang hang_on_load;

class Never {
 public:
  jobhost::Result run(jobhost::Context&) { return jobhost::Result::ok; }
};

}  // namespace

JOBHOST_PLUGIN(Never, "hang_in_init", "1.0.0", "Hangs in a static initialiser")
