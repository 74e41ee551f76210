// Sleeps `seconds` (default 30), returning early when cancelled unless
// `ignore_cancel` is set. With `grandchild = 1` it first forks a child that
// sleeps too, ignores SIGTERM when `grandchild_ignores_term = 1`, and writes
// its pid to `grandchild_pid_file` so a test can check it is gone afterwards.
// With `grandchild_setsid = 1` the grandchild leaves the process group
// (setsid), as a daemon would, still holding stdout.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "common.h"

namespace {

class Sleeper {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    if (test_plugin::param_flag(ctx, "grandchild")) {
      const bool ignore_term = test_plugin::param_flag(ctx, "grandchild_ignores_term");
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        if (ignore_term) signal(SIGTERM, SIG_IGN);
        if (test_plugin::param_flag(ctx, "grandchild_setsid")) setsid();
        for (;;) pause();
      }
      if (auto file = ctx.param("grandchild_pid_file")) {
        std::ofstream(*file) << pid << "\n";
      }
      ctx.info("forked grandchild " + std::to_string(pid));
    }
    const double seconds = test_plugin::param_number(ctx, "seconds", 30);
    const bool honour_cancel = !test_plugin::param_flag(ctx, "ignore_cancel");
    const bool cancelled = test_plugin::nap(honour_cancel ? &ctx : nullptr, seconds);
    ctx.set_message(cancelled ? "cancelled while sleeping" : "slept");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Sleeper, "sleeper", "1.0.0", "test: sleeps, optionally with a grandchild")
