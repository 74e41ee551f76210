/* Coverage feedback for libFuzzer from code built by GCC.
 *
 * GCC has no -fsanitize=fuzzer; its -fsanitize-coverage=trace-pc calls
 * __sanitizer_cov_trace_pc() at the start of every basic block, and
 * libFuzzer 14 (clang's) only stubs that hook. The fuzz targets are linked
 * with --wrap=__sanitizer_cov_trace_pc, so GCC's calls land here: each
 * (previous block, this block) edge bumps one byte of a 64 KiB map, as AFL
 * does, and the map is handed to libFuzzer as a module of inline 8-bit
 * counters. GCC's -fsanitize-coverage=trace-cmp hooks go to libFuzzer as
 * they are. Compiled without instrumentation (see fuzz/CMakeLists.txt). */
#include <stddef.h>
#include <stdint.h>

void __sanitizer_cov_8bit_counters_init(uint8_t* start, uint8_t* stop);

enum { kMapSize = 1 << 16 };
static uint8_t counters[kMapSize] __attribute__((aligned(64)));
static __thread uintptr_t previous;

void __wrap___sanitizer_cov_trace_pc(void) {
  const uintptr_t pc = (uintptr_t)__builtin_return_address(0);
  const uintptr_t block = ((pc ^ (pc >> 15)) * (uintptr_t)0x9E3779B97F4A7C15ull) >> 48;
  counters[(block ^ previous) & (kMapSize - 1)]++;
  previous = block >> 1;
}

__attribute__((constructor)) static void register_counters(void) {
  __sanitizer_cov_8bit_counters_init(counters, counters + kMapSize);
}

/* GCC's trace-cmp also reports float and double comparisons, which libFuzzer
 * has no hooks for: ignored. */
void __sanitizer_cov_trace_cmpf(float a, float b) {
  (void)a;
  (void)b;
}
void __sanitizer_cov_trace_cmpd(double a, double b) {
  (void)a;
  (void)b;
}
