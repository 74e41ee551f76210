/* A plugin that claims ABI major 99: the host (ABI 1) must refuse it. */
#include <jobhost/plugin.h>

static int32_t abi99_run(const jobhost_host_api* host, jobhost_run* run) {
  (void)host;
  (void)run;
  return JOBHOST_OK;
}

static const jobhost_plugin descriptor = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = 99,
    .abi_minor = 0,
    .name = "abi99",
    .version = "99.0.0",
    .description = "Built for an ABI this host does not speak",
    .run = abi99_run,
};

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  return &descriptor;
}
