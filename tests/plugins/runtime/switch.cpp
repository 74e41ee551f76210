// Fails on demand: returns RETRY ("switch: failing on purpose") while the file
// named by param fail_file exists, OK otherwise. For the alert tests.
#include <sys/stat.h>

#include "common.h"

namespace {

class Switch {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const auto file = ctx.param("fail_file");
    struct stat st {};
    if (file && ::stat(file->c_str(), &st) == 0) {
      ctx.set_message("switch: failing on purpose");
      return jobhost::Result::retry;  // retried per the job's policy, then failed
    }
    ctx.set_message("switch: ok");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Switch, "switch", "1.0.0", "test: fails while a file exists")
