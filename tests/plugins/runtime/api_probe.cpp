// Exercises every host function once: logs at each level, reads a param and a
// secret, sends heartbeats, metrics, a message, and prints to stdout and stderr.
#include <cstdio>

#include "common.h"

namespace {

class ApiProbe {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.debug("debug line");
    ctx.info("param color=" + ctx.param_or("color", "(none)"));
    ctx.warn(std::string("secret token ") +
             (ctx.secret("token") == "s3cret" ? "matches" : "differs"));
    ctx.error("missing param is " + std::string(ctx.param("missing") ? "set" : "unset"));
    ctx.heartbeat(0.25);
    ctx.metric("rows", 42);
    ctx.metric("seconds", 1.5);
    std::printf("to stdout\n");
    std::fprintf(stderr, "to stderr\n");
    std::printf("no newline at the end");
    ctx.set_message("run " + ctx.run_id() + " attempt " + std::to_string(ctx.attempt()) + " slot " +
                    std::to_string(ctx.scheduled_for().time_since_epoch().count()) + " cancelled " +
                    std::to_string(ctx.cancelled()));
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(ApiProbe, "api_probe", "1.0.0", "test: calls every host function")
