// Uses CPU and memory in known amounts and reports hostile metrics, for the
// run-resources tests (tests/exec, tests/engine, tests/observe):
//   own_cpu_ms     CPU the run's own process burns (default 100)
//   child_cpu_ms   CPU a child burns; the run waits for it (default 0)
//   orphan_cpu_ms  CPU a child burns; the run lets it end but never reaps it,
//                  so only the run's cgroup can count it (default 0)
//   touch_mib      MiB the run allocates and touches (default 0)
//   outcome        "fail" returns FAIL, "retry" RETRY (default: OK)
// Metrics: cpu_ms (own + child + orphan), and hostile names and values:
// NaN, infinity, a 200-byte name, invalid UTF-8, quotes and a newline.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "common.h"

namespace {

double cpu_ms_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void burn(double ms) {
  const double until = cpu_ms_now() + ms;
  volatile unsigned long sink = 0;
  while (cpu_ms_now() < until) {
    for (int i = 0; i < 10000; ++i) sink = sink + static_cast<unsigned long>(i);
  }
}

// Forks a child that burns `ms` of CPU and exits.
pid_t burning_child(double ms) {
  const pid_t pid = fork();
  if (pid == 0) {
    burn(ms);
    _exit(0);
  }
  return pid;
}

class Resources {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const double own = test_plugin::param_number(ctx, "own_cpu_ms", 100);
    const double child = test_plugin::param_number(ctx, "child_cpu_ms", 0);
    const double orphan = test_plugin::param_number(ctx, "orphan_cpu_ms", 0);
    const auto touch = static_cast<std::size_t>(test_plugin::param_number(ctx, "touch_mib", 0))
                       << 20;
    if (child > 0) {
      const pid_t pid = burning_child(child);
      if (pid > 0) waitpid(pid, nullptr, 0);
    }
    if (orphan > 0) {
      const pid_t pid = burning_child(orphan);
      // Waits until it has exited, without reaping it.
      siginfo_t info{};
      if (pid > 0) waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
    }
    burn(own);
    std::unique_ptr<char[]> memory;
    if (touch > 0) {
      memory.reset(new char[touch]);
      std::memset(memory.get(), 0x5a, touch);
    }
    ctx.metric("cpu_ms", own + child + orphan);
    ctx.metric("nan", std::numeric_limits<double>::quiet_NaN());
    ctx.metric("inf", std::numeric_limits<double>::infinity());
    ctx.metric(std::string(200, 'n').c_str(), 1);
    ctx.metric("bad\xff\xfeutf8", 2);
    ctx.metric("quote\"back\\slash\nnewline", 3);
    ctx.metric("touched_mib", static_cast<double>(touch >> 20));
    if (auto outcome = ctx.param("outcome"); outcome && *outcome == "fail") {
      ctx.set_message("failing as asked");
      return jobhost::Result::fail;
    }
    if (auto outcome = ctx.param("outcome"); outcome && *outcome == "retry") {
      ctx.set_message("asking for a retry");
      return jobhost::Result::retry;
    }
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Resources, "resources", "1.0.0", "test: uses known CPU and memory")
