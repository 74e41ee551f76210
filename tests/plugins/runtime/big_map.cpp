// Maps 100 MiB when loaded (zeroed static storage: address space, no memory
// used): more than the fork server may preload for every run. The run itself
// succeeds.
#include "common.h"

// External linkage and written below, so the compiler cannot drop it.
char big_map_storage[100 << 20];

namespace {

class BigMap {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    big_map_storage[ctx.attempt() * 4096 % sizeof big_map_storage] = 1;  // one page, not 100 MiB
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(BigMap, "big_map", "1.0.0", "test: maps 100 MiB when loaded")
