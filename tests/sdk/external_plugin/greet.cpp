// An out-of-tree job built against the installed jobhost SDK.
#include <jobhost/plugin.hpp>

#include <string>

namespace {

class Greet {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const std::string who = ctx.param_or("who", "world");
    ctx.info("hello, " + who);
    ctx.set_message("greeted " + who);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Greet, "greet", "2.3.4", "An out-of-tree plugin built with find_package(jobhost)")
