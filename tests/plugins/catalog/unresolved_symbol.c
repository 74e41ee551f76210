/* A plugin that calls a function no library defines: RTLD_NOW must fail and
 * the reason must name jobhost_test_missing_symbol. */
#include <jobhost/plugin.h>

int jobhost_test_missing_symbol(void);

static int32_t unresolved_run(const jobhost_host_api* host, jobhost_run* run) {
  (void)host;
  (void)run;
  return jobhost_test_missing_symbol() == 0 ? JOBHOST_OK : JOBHOST_FAIL;
}

static const jobhost_plugin descriptor = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = JOBHOST_ABI_MAJOR,
    .abi_minor = JOBHOST_ABI_MINOR,
    .name = "unresolved",
    .version = "1.0.0",
    .description = "Calls a function no library defines",
    .run = unresolved_run,
};

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  return &descriptor;
}
