/* Built against the frozen ABI 1.0 header (tests/sdk/abi_1_0), not the SDK:
 * a plugin of the first ABI keeps running on every later 1.x host. Calls
 * the 1.0 host functions it reads and says what it saw. */
#include <jobhost/plugin.h>
#include <stdio.h>

#if JOBHOST_ABI_MINOR != 0
#error "built against the 1.0 header only"
#endif

static int32_t abi_1_0_run(const jobhost_host_api* host, jobhost_run* run) {
  char message[256];
  const char* color = host->param(run, "color");
  snprintf(message, sizeof message, "abi 1.0 attempt %u color %s table %s", host->attempt(run),
           color ? color : "(none)",
           host->struct_size >= sizeof(jobhost_host_api) ? "complete" : "short");
  host->log(run, JOBHOST_LOG_INFO, host->run_id(run));
  host->set_message(run, message);
  return host->scheduled_for(run) > 0 ? JOBHOST_OK : JOBHOST_FAIL;
}

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  static const jobhost_plugin descriptor = {sizeof(jobhost_plugin),
                                            JOBHOST_ABI_MAJOR,
                                            JOBHOST_ABI_MINOR,
                                            "abi_1_0",
                                            "1.0.0",
                                            "test: built against the ABI 1.0 header",
                                            NULL,
                                            abi_1_0_run,
                                            NULL};
  return &descriptor;
}
