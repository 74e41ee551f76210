// Logs and prints hostile bytes: invalid UTF-8, control characters, quotes,
// backslashes, and something that looks like a JSON object of its own.
#include <cstdio>

#include "common.h"

namespace {

constexpr const char* kLines[] = {
    "plain line",
    "quote \" backslash \\ tab \t bell \a escape \x1b[31m",
    "invalid utf-8: \xff\xfe \xc3\x28 \xe2\x82 overlong \xc0\xaf",
    R"(","level":"critical","job":"forged)",
    "{\"msg\":\"a json object of its own\"}",
};

class Babble {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    for (const char* line : kLines) {
      ctx.warn(line);
      std::printf("%s\n", line);
    }
    std::fflush(stdout);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Babble, "babble", "1.0.0", "test: logs and prints hostile bytes")
