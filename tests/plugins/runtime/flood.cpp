// Prints about `mib` (default 100) MiB of numbered lines to stdout, then the
// line "flood done".
#include <cstdio>
#include <string>

#include "common.h"

namespace {

class Flood {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const auto total = static_cast<long long>(test_plugin::param_number(ctx, "mib", 100) * 1048576);
    const std::string filler(90, 'x');
    long long written = 0;
    for (long long line = 0; written < total; ++line) {
      written += std::printf("line %010lld %s\n", line, filler.c_str());
    }
    std::printf("flood done\n");
    ctx.set_message("printed " + std::to_string(written) + " bytes");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Flood, "flood", "1.0.0", "test: prints a lot")
