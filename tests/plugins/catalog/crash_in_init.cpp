// A plugin whose static initialiser segfaults: loading it must only fail the probe.
#include <jobhost/plugin.hpp>

#include <cstdint>

namespace {

struct Crash {
  Crash() {
    // A real SIGSEGV (not raise()): a store to an unmapped, non-null address,
    // so UBSan's null check does not turn it into an exit(1).
    volatile std::uintptr_t unmapped = 16;  // volatile: the compiler cannot see the value
    *reinterpret_cast<volatile int*>(unmapped) = 1;
  }
};
Crash crash_on_load;

class Never {
 public:
  jobhost::Result run(jobhost::Context&) { return jobhost::Result::ok; }
};

}  // namespace

JOBHOST_PLUGIN(Never, "crash_in_init", "1.0.0", "Segfaults in a static initialiser")
