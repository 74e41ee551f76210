/* The plugin test kit's C form (jobhost/testing.h), compiled as strict C11
 * with -Wpedantic -Werror: a C plugin's tests can use it as they are. Exit 0
 * when every check passes; each failed check is printed. */
#include <jobhost/testing.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

#define CHECK_STR(got, want) CHECK((got) != NULL && strcmp((got), (want)) == 0)

static int32_t job_init(const jobhost_host_api* host, jobhost_run* run) {
  return host->param(run, "fail_init") ? 5 : 0;
}

static int32_t job_run(const jobhost_host_api* host, jobhost_run* run) {
  const char* who = host->param(run, "who");
  const char* key = host->secret(run, "key");
  char line[256];
  snprintf(line, sizeof line, "hi %s, key %s, run %s attempt %u trigger %s event %s",
           who ? who : "(none)", key ? key : "(none)", host->run_id(run),
           (unsigned)host->attempt(run), host->trigger_kind(run),
           host->event(run) ? host->event(run) : "(none)");
  host->log(run, JOBHOST_LOG_WARN, line);
  host->log(run, JOBHOST_LOG_INFO, NULL);
  host->metric(run, "n", 1);
  host->metric(run, "n", 2);
  host->heartbeat(run, 0.5);
  host->heartbeat(run, NAN);
  while (!host->cancelled(run)) {
  }
  host->set_message(run, NULL);
  host->set_message(run, "done");
  return JOBHOST_RETRY;
}

static int shutdowns = 0;
static void job_shutdown(void) {
  ++shutdowns;
}

static const jobhost_plugin job = {sizeof(jobhost_plugin),
                                   JOBHOST_ABI_MAJOR,
                                   JOBHOST_ABI_MINOR,
                                   "c_job",
                                   "1.0",
                                   NULL,
                                   job_init,
                                   job_run,
                                   job_shutdown};

int main(void) {
  jobhost_test_run* jt = jobhost_test_new();
  jobhost_plugin bad = job;
  double value = 0;
  char error[256];

  jobhost_test_param(jt, "who", "ada");
  jobhost_test_secret(jt, "key", "k1");
  jobhost_test_set_run_id(jt, "r9");
  jobhost_test_set_attempt(jt, 2);
  jobhost_test_set_trigger_kind(jt, "file");
  jobhost_test_set_event(jt, "[\"/in/a.csv\"]");
  jobhost_test_cancel_after(jt, 3);

  CHECK(jobhost_test_call(jt, &job) == JOBHOST_RETRY);
  CHECK_STR(jobhost_test_error(jt), "");
  CHECK(jobhost_test_init_called(jt) && jobhost_test_run_called(jt));
  CHECK(jobhost_test_shutdown_called(jt) && shutdowns == 1);
  CHECK(jobhost_test_log_count(jt) == 2);
  CHECK(jobhost_test_log_level(jt, 0) == JOBHOST_LOG_WARN);
  CHECK_STR(jobhost_test_log_text(jt, 0),
            "hi ada, key k1, run r9 attempt 2 trigger file event [\"/in/a.csv\"]");
  CHECK_STR(jobhost_test_log_text(jt, 1), ""); /* NULL is "" */
  CHECK(jobhost_test_logged(jt, JOBHOST_LOG_WARN, "key k1"));
  CHECK(!jobhost_test_logged(jt, JOBHOST_LOG_ERROR, "key k1"));
  CHECK(jobhost_test_metric_count(jt) == 2);
  CHECK_STR(jobhost_test_metric_name(jt, 1), "n");
  CHECK(jobhost_test_metric(jt, "n", &value) && value == 2);
  CHECK(!jobhost_test_metric(jt, "m", &value));
  CHECK(jobhost_test_heartbeat_count(jt) == 2);
  CHECK(jobhost_test_heartbeat(jt, 0) == 0.5 && jobhost_test_heartbeat(jt, 1) == -1);
  CHECK(jobhost_test_message_count(jt) == 2);
  CHECK_STR(jobhost_test_message(jt, 0), "");
  CHECK_STR(jobhost_test_last_message(jt), "done");
  CHECK(jobhost_test_cancelled_calls(jt) == 4);
  /* Out of range: NULL or 0, never a crash. */
  CHECK(jobhost_test_log_text(jt, 99) == NULL && jobhost_test_message(jt, 99) == NULL);
  CHECK(jobhost_test_metric_name(jt, 99) == NULL && jobhost_test_heartbeat(jt, 99) == 0);

  /* Missing params and secrets are NULL; init failing stops the run. */
  jobhost_test_param(jt, "who", NULL);
  jobhost_test_secret(jt, "key", NULL);
  jobhost_test_param(jt, "fail_init", "1");
  CHECK(jobhost_test_call(jt, &job) == JOBHOST_FAIL);
  CHECK(!jobhost_test_run_called(jt) && shutdowns == 1);
  CHECK_STR(jobhost_test_last_message(jt), "init failed (returned 5)");
  jobhost_test_param(jt, "fail_init", NULL);
  jobhost_test_cancel(jt);
  CHECK(jobhost_test_call(jt, &job) == JOBHOST_RETRY);
  CHECK(jobhost_test_cancelled_calls(jt) == 1);
  CHECK_STR(jobhost_test_log_text(jt, 0),
            "hi (none), key (none), run r9 attempt 2 trigger file event [\"/in/a.csv\"]");

  /* A descriptor the host would refuse. */
  bad.abi_major = 7;
  CHECK(jobhost_test_call(jt, &bad) == JOBHOST_TEST_BAD_PLUGIN);
  CHECK(strstr(jobhost_test_error(jt), "ABI 7.") != NULL);
  CHECK(jobhost_test_call(jt, NULL) == JOBHOST_TEST_BAD_PLUGIN);

  /* NULL everywhere is safe. */
  CHECK(jobhost_test_call(NULL, &job) == JOBHOST_TEST_BAD_PLUGIN);
  jobhost_test_param(NULL, "a", "b");
  jobhost_test_param(jt, NULL, NULL);
  jobhost_test_set_run_id(jt, NULL);
  CHECK(jobhost_test_log_count(NULL) == 0 && jobhost_test_last_message(NULL) == NULL);
  CHECK(jobhost_test_load(NULL, error, sizeof error) == NULL && error[0] != '\0');
  CHECK(jobhost_test_load("/nonexistent/x.so", NULL, 0) == NULL);
  jobhost_test_free(NULL);

  jobhost_test_free(jt);
  if (failures) fprintf(stderr, "%d checks failed\n", failures);
  return failures ? 1 : 0;
}
