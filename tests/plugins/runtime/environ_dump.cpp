// Prints what a run sees of its environment and its secrets, for the tests of
// the clean environment and of secret redaction (tests/exec/environment_test,
// tests/daemon/secrets_test):
//  - "env: NAME=value" for each entry of environ, then "procenv: NAME=value"
//    for each entry of /proc/self/environ (the process image's own block);
//  - with param `secret` = NAME: reads secret(NAME), logs it with log(),
//    prints it split over two writes 50 ms apart (a value split across reads
//    of the output pipe), and returns it in its message; metric has_secret;
//    metric secret_size; with param `expect`: metric secret_matches = (the value == expect);
//  - with param `other` = NAME: metric other_visible = secret(NAME) != NULL.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common.h"

extern char** environ;

namespace {

class EnvironDump {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) std::printf("env: %s\n", *e);
    std::fflush(stdout);
    const int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    std::string block;
    char buf[4096];
    for (ssize_t n; fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0;) block.append(buf, n);
    if (fd >= 0) close(fd);
    for (std::size_t at = 0; at < block.size();) {
      const std::size_t end = block.find('\0', at);
      const std::string entry = block.substr(at, end == std::string::npos ? end : end - at);
      if (!entry.empty()) std::printf("procenv: %s\n", entry.c_str());
      if (end == std::string::npos) break;
      at = end + 1;
    }
    std::fflush(stdout);
    if (const auto other = ctx.param("other")) {
      ctx.metric("other_visible", ctx.secret(*other).has_value() ? 1 : 0);
    }
    const auto name = ctx.param("secret");
    if (!name) return jobhost::Result::ok;
    const auto value = ctx.secret(*name);
    ctx.metric("has_secret", value.has_value() ? 1 : 0);
    if (value) ctx.metric("secret_size", static_cast<double>(value->size()));
    if (const auto expect = ctx.param("expect")) ctx.metric("secret_matches", value == *expect);
    if (!value) {
      ctx.set_message("no secret " + *name);
      return jobhost::Result::fail;
    }
    ctx.info("the secret is " + *value);
    const std::string line = "printed " + *value + " here\n";
    const std::size_t half = 8 + value->size() / 2;  // inside the value
    (void)!write(STDOUT_FILENO, line.data(), half);
    test_plugin::nap(nullptr, 0.05);
    (void)!write(STDOUT_FILENO, line.data() + half, line.size() - half);
    ctx.set_message("message with " + *value);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(EnvironDump, "environ_dump", "1.0.0",
               "test: prints its environment, and logs and prints its secret")
