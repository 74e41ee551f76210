/* The same job in plain C: the ABI needs no C++. */
#include <jobhost/plugin.h>

#include <stdio.h>

static int32_t hello_run(const jobhost_host_api* host, jobhost_run* run) {
  const char* greeting = host->param(run, "greeting");
  char line[256];
  snprintf(line, sizeof line, "%s from C, run %s", greeting ? greeting : "hello",
           host->run_id(run));
  host->log(run, JOBHOST_LOG_INFO, line);
  host->set_message(run, "said hello from C");
  return JOBHOST_OK;
}

static const jobhost_plugin descriptor = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = JOBHOST_ABI_MAJOR,
    .abi_minor = JOBHOST_ABI_MINOR,
    .name = "hello_c",
    .version = "1.0.0",
    .description = "Logs its greeting param from plain C and succeeds",
    .run = hello_run,
};

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) { return &descriptor; }
