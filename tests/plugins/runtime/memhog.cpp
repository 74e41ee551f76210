// Allocates and touches `chunk_mib` (default 8) MiB at a time until an
// allocation fails, or `max_mib` (default 1024, a safety cap for a host where
// no limit applies) is reached, which it reports as success. With
// `reserve_mib`, it first reserves that much address space without touching
// it (PROT_NONE, as the Go runtime and the JVM do at start).
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"

namespace {

class Memhog {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const auto chunk = static_cast<std::size_t>(test_plugin::param_number(ctx, "chunk_mib", 8))
                       << 20;
    const auto max = static_cast<std::size_t>(test_plugin::param_number(ctx, "max_mib", 1024))
                     << 20;
    if (const auto reserve =
            static_cast<std::size_t>(test_plugin::param_number(ctx, "reserve_mib", 0)) << 20) {
      void* area =
          mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (area == MAP_FAILED) {
        ctx.set_message("cannot reserve " + std::to_string(reserve >> 20) +
                        " MiB of address space: " + std::strerror(errno));
        return jobhost::Result::fail;
      }
    }
    std::vector<std::unique_ptr<char[]>> kept;
    std::size_t total = 0;
    while (total < max) {
      kept.emplace_back(new char[chunk]);
      std::memset(kept.back().get(), 0x5a, chunk);
      total += chunk;
      ctx.metric("allocated_mib", static_cast<double>(total >> 20));
    }
    ctx.set_message("allocated " + std::to_string(total >> 20) + " MiB without hitting a limit");
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Memhog, "memhog", "1.0.0", "test: allocates until it cannot")
