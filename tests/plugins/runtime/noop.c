/* Returns OK at once: the cheapest possible run, for bench/dispatch. */
#include <jobhost/plugin.h>

static int32_t noop_run(const jobhost_host_api* host, jobhost_run* run) {
  (void)host;
  (void)run;
  return JOBHOST_OK;
}

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  static const jobhost_plugin descriptor = {sizeof(jobhost_plugin),
                                            JOBHOST_ABI_MAJOR,
                                            JOBHOST_ABI_MINOR,
                                            "noop",
                                            "1.0.0",
                                            "test: does nothing",
                                            NULL,
                                            noop_run,
                                            NULL};
  return &descriptor;
}
