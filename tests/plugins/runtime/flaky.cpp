// Fails at random, for the chaos test. Params (all optional):
//   retry_percent, fail_percent: chance (0-100) of returning RETRY
//     ("flaky: transient failure") or FAIL ("flaky: permanent failure");
//   max_sleep_ms: sleeps a uniform [0, max_sleep_ms] first, returning early
//     when cancelled;
//   grandchild_percent: chance of first forking a grandchild that sleeps 60 s
//     (until the host kills the run's process group);
//   pid_log: a file to which the run's process and its grandchild each append
//     "pid starttime\n" (starttime: field 22 of /proc/self/stat, so that a
//     test can tell a survivor from a recycled pid);
//   stamp, tag: a file to which each execution appends "tag slot_ms attempt
//     pid\n" first thing (the cluster chaos test: no attempt runs twice).
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#include "common.h"

namespace {

std::string self_start_time() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  auto pos = line.rfind(')');
  if (pos == std::string::npos) return "0";
  // Fields after the command: state is field 3, starttime is field 22.
  std::string rest = line.substr(pos + 2);
  std::size_t start = 0;
  for (int field = 3; field < 22; ++field) {
    start = rest.find(' ', start);
    if (start == std::string::npos) return "0";
    ++start;
  }
  return rest.substr(start, rest.find(' ', start) - start);
}

// One write() with O_APPEND: lines of concurrent runs never interleave.
void append_line(const std::optional<std::string>& file, const std::string& line) {
  if (!file) return;
  const int fd = open(file->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) return;
  [[maybe_unused]] auto n = write(fd, line.data(), line.size());
  close(fd);
}

void log_pid(const std::optional<std::string>& file) {
  append_line(file, std::to_string(getpid()) + " " + self_start_time() + "\n");
}

class Flaky {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    std::random_device entropy;
    std::mt19937 rng(entropy());
    auto chance = [&](const char* key) {
      return std::uniform_real_distribution<double>(0, 100)(rng) <
             test_plugin::param_number(ctx, key, 0);
    };
    append_line(ctx.param("stamp"),
                ctx.param("tag").value_or("?") + " " +
                    std::to_string(ctx.scheduled_for().time_since_epoch().count()) + " " +
                    std::to_string(ctx.attempt()) + " " + std::to_string(getpid()) + "\n");
    const auto pid_log = ctx.param("pid_log");
    log_pid(pid_log);
    if (chance("grandchild_percent")) {
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        log_pid(pid_log);
        sleep(60);
        _exit(0);
      }
    }
    const double max_ms = test_plugin::param_number(ctx, "max_sleep_ms", 0);
    const double ms = std::uniform_real_distribution<double>(0, max_ms)(rng);
    if (test_plugin::nap(&ctx, ms / 1000.0)) {
      ctx.set_message("flaky: cancelled");
      return jobhost::Result::ok;
    }
    if (chance("fail_percent")) {
      ctx.set_message("flaky: permanent failure");
      return jobhost::Result::fail;
    }
    if (chance("retry_percent")) {
      ctx.set_message("flaky: transient failure");
      return jobhost::Result::retry;
    }
    ctx.set_message("flaky: ok");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Flaky, "flaky", "1.0.0", "test: fails, retries and forks at random")
