/* A common mistake: jobhost_plugin_v1 exported as the descriptor itself (data),
 * not as a function returning it. Calling it would jump into data. */
#include <jobhost/plugin.h>

static int32_t data_run(const jobhost_host_api* host, jobhost_run* run) {
  (void)host;
  (void)run;
  return JOBHOST_OK;
}

JOBHOST_EXPORT const jobhost_plugin jobhost_plugin_v1 = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = JOBHOST_ABI_MAJOR,
    .abi_minor = JOBHOST_ABI_MINOR,
    .name = "entry_is_data",
    .version = "1.0.0",
    .run = data_run,
};
