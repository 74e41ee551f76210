// The smallest useful C++ job: logs its `greeting` param and succeeds.
#include <jobhost/plugin.hpp>

// Test builds override it (tests/plugins/runtime: hello_v2) to exercise hot reload.
#ifndef HELLO_VERSION
#define HELLO_VERSION "1.0.0"
#endif

namespace {

class Hello {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    std::string greeting = ctx.param_or("greeting", "hello");
    ctx.info(greeting + " from run " + ctx.run_id() + " (attempt " + std::to_string(ctx.attempt()) +
             ")");
    ctx.set_message("said " + greeting);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Hello, "hello", HELLO_VERSION, "Logs its greeting param and succeeds")
