// Writes to a page mapped without access: a real SIGSEGV (no sanitizer
// check catches this one first, and the host reset the sanitizer's handler).
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

namespace {

class Segv {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.set_message("about to crash");
    void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *static_cast<volatile int*>(page) = 1;
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(Segv, "segv", "1.0.0", "test: segfaults")
