/* The plugin of bench/lateness: at the entry of run() it reads CLOCK_REALTIME
 * and reports it as the metric "entered_unix_us" (microseconds since the Unix
 * epoch; a double holds them exactly until the year 2255), which the daemon
 * records with the run in the ledger (run_metrics). The bench subtracts the
 * run's slot (scheduled_for) from it: the fire's lateness. Its probe calls
 * the same run() through a host table of its own. With the param hold_ms
 * (bench_lateness --hold) it then sleeps that many milliseconds (at most
 * 10 s); nothing else is done. */
#include <jobhost/plugin.h>
#include <stdlib.h>
#include <time.h>

static int32_t lateness_run(const jobhost_host_api* host, jobhost_run* run) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  host->metric(run, "entered_unix_us", (double)now.tv_sec * 1e6 + (double)(now.tv_nsec / 1000));
  const char* hold = host->param(run, "hold_ms");
  const long ms = hold != NULL ? strtol(hold, NULL, 10) : 0;
  if (ms > 0 && ms <= 10000) {
    const struct timespec pause = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&pause, NULL);
  }
  return JOBHOST_OK;
}

static const jobhost_plugin descriptor = {
    .struct_size = sizeof(jobhost_plugin),
    .abi_major = JOBHOST_ABI_MAJOR,
    .abi_minor = JOBHOST_ABI_MINOR,
    .name = "bench_lateness",
    .version = "1.0.0",
    .description = "bench/lateness: reports when run() was entered",
    .run = lateness_run,
};

JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {
  return &descriptor;
}
