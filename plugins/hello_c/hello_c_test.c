/* Unit test of the hello_c plugin, written with the SDK's test kit: it loads
 * the built hello_c.so (its path is the first argument) as the host does and
 * calls it through the fake host. Exit 0 when every check passes. */
#include <jobhost/testing.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "failed: %s\n", what);
    ++failures;
  }
}

int main(int argc, char** argv) {
  char error[512];
  const jobhost_plugin* plugin = jobhost_test_load(argc > 1 ? argv[1] : "", error, sizeof error);
  jobhost_test_run* jt;
  if (plugin == NULL) {
    fprintf(stderr, "cannot load the plugin: %s\n", error);
    return 1;
  }
  jt = jobhost_test_new();

  jobhost_test_param(jt, "greeting", "bonjour");
  jobhost_test_set_run_id(jt, "r-7");
  check(jobhost_test_call(jt, plugin) == JOBHOST_OK, "the run succeeds");
  check(jobhost_test_logged(jt, JOBHOST_LOG_INFO, "bonjour from C, run r-7"), "it greets");
  check(strcmp(jobhost_test_last_message(jt), "said hello from C") == 0, "its message");

  jobhost_test_param(jt, "greeting", NULL);
  check(jobhost_test_call(jt, plugin) == JOBHOST_OK, "the run succeeds without a greeting");
  check(jobhost_test_logged(jt, JOBHOST_LOG_INFO, "hello from C"), "it says hello");

  jobhost_test_free(jt);
  return failures ? 1 : 0;
}
