// Helpers shared by the test-only runtime plugins (header-only, static).
#pragma once

#include <jobhost/plugin.hpp>

#include <time.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace test_plugin {

inline double param_number(jobhost::Context& ctx, const std::string& key, double fallback) {
  const auto v = ctx.param(key);
  return v ? std::strtod(v->c_str(), nullptr) : fallback;
}

inline bool param_flag(jobhost::Context& ctx, const std::string& key) {
  const auto v = ctx.param(key);
  return v && (*v == "1" || *v == "true");
}

// Sleeps `seconds` in slices. Returns early when `until_cancelled` and the
// host asks to stop (true then). Interrupted slices (EINTR) simply continue.
inline bool nap(jobhost::Context* ctx, double seconds, bool heartbeat = false) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (ctx && ctx->cancelled()) return true;
    if (ctx && heartbeat) ctx->heartbeat();
    timespec slice{0, 20'000'000};
    nanosleep(&slice, nullptr);
  }
  return false;
}

}  // namespace test_plugin
