/* The C side of the Go job: the descriptor, static C memory (cgo forbids Go
 * pointers in C memory, and the host reads it long after any Go call), and
 * the entry function, in C too, so that reading the descriptor (the catalog's
 * probe) never enters Go. run() calls the Go function hello.go exports. */
#include <jobhost/plugin.h>

#include "_cgo_export.h"

static int32_t go_hello_run_shim(const jobhost_host_api* host, jobhost_run* run) {
  /* cgo declares exported functions without const. */
  return goHelloRun((jobhost_host_api*)host, run);
}

static const jobhost_plugin descriptor = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = JOBHOST_ABI_MAJOR,
    .abi_minor = JOBHOST_ABI_MINOR,
    .name = "go_hello",
    .version = "1.0.0",
    .description = "Says its greeting param from Go; ends as its outcome param says",
    .run = go_hello_run_shim,
};

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  return &descriptor;
}
