/* The plugin of bench/burst: returns at once, the cheapest possible run. */
#include <jobhost/plugin.h>

static int32_t noop_run(const jobhost_host_api* host, jobhost_run* run) {
  (void)host;
  (void)run;
  return JOBHOST_OK;
}

static const jobhost_plugin descriptor = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = JOBHOST_ABI_MAJOR,
    .abi_minor = JOBHOST_ABI_MINOR,
    .name = "bench_noop",
    .version = "1.0.0",
    .description = "bench/burst: does nothing",
    .run = noop_run,
};

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  return &descriptor;
}
