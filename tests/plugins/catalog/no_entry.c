/* A well-formed shared library that does not export jobhost_plugin_v1. */
#include <jobhost/plugin.h>

JOBHOST_EXPORT int jobhost_plugin_v0(void) {
  return 0;
}
