// Forks children that sleep, in a loop, until fork fails (then returns FAIL
// saying so) or `max` children (default 300, a safety cap for a host where no
// limit applies) exist; then it waits to be stopped. Writes each child's pid,
// one per line, to `pid_file` when given.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common.h"

namespace {

class Forkbomb {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const int max = static_cast<int>(test_plugin::param_number(ctx, "max", 300));
    std::ofstream pids;
    if (auto file = ctx.param("pid_file")) pids.open(*file);
    for (int n = 0; n < max; ++n) {
      const pid_t pid = fork();
      if (pid < 0) {
        ctx.set_message("fork failed after " + std::to_string(n) +
                        " children: " + std::strerror(errno));
        return jobhost::Result::fail;
      }
      if (pid == 0) {
        for (;;) pause();
      }
      if (pids.is_open()) pids << pid << std::endl;
    }
    ctx.set_message("forked " + std::to_string(max) + " children; nothing stopped it");
    test_plugin::nap(&ctx, 3600);
    return jobhost::Result::fail;
  }
};

}  // namespace

JOBHOST_PLUGIN(Forkbomb, "forkbomb", "1.0.0", "test: forks in a loop")
