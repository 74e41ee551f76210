// Fuzz target: the fork server's plan decoder (exec/fork_plan.h), which
// turns the bytes of a spawn request into a run's request. Whatever decodes
// encodes to a plan that decodes to the same thing again. The input is the
// request after its op byte, as the server hands it to the decoder.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "exec/fork_plan.h"

using namespace jobhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  exec::Plan plan;
  bool preload = false;
  if (!exec::decode_plan(text, plan, preload)) return 0;
  const std::string once =
      exec::encode_plan(plan.request, plan.cgroup_procs, plan.credentials, preload);
  exec::Plan again;
  bool preload_again = false;
  // encode_plan starts with the op byte, which the server strips.
  if (!exec::decode_plan(std::string_view(once).substr(1), again, preload_again)) std::abort();
  const std::string twice =
      exec::encode_plan(again.request, again.cgroup_procs, again.credentials, preload_again);
  if (once != twice) std::abort();
  return 0;
}
