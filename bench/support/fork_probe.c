/* bench_fork_probe: the physical-limit probes of bench/lateness and
 * bench/burst, in a process as small as one can be (C, libc and the dynamic
 * loader only): how fast a process forks and how soon a parked process runs
 * depend on the size of the parent, and the benches themselves are large
 * C++ programs. The benches start it once per repetition and read its
 * figures on stdout.
 *
 *   bench_fork_probe burst RUNS IN_FLIGHT [PLUGIN]
 *     RUNS processes, IN_FLIGHT at a time: fork, the child _exits (after
 *     dlopen of PLUGIN and a call of its run, when given), waitpid.
 *     Prints "RUNS_PER_SECOND FAILED".
 *   bench_fork_probe wake N INSTANTS PLUGIN
 *     INSTANTS times: N processes forked ahead, each loads PLUGIN (dlopen,
 *     RTLD_NOW) and parks reading a pipe; once all are parked the parent
 *     sleeps until an instant 20 ms ahead (CLOCK_REALTIME, absolute) and
 *     closes the pipe's write end, which wakes them all; each calls the
 *     plugin's run(), whose metric() gives the time it was entered. Prints
 *     one line per process and instant, "LATENESS_US" (entered - instant),
 *     "lost" for a process that reported nothing or did not exit 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <jobhost/plugin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The run handle: the SDK leaves jobhost_run to the host. */
struct jobhost_run {
  double* entered_us; /* where metric("entered_unix_us") writes */
  int64_t slot_ms;
};

static void probe_log(jobhost_run* run, int32_t level, const char* message) {
  (void)run, (void)level, (void)message;
}
static const char* probe_param(jobhost_run* run, const char* key) {
  (void)run, (void)key;
  return NULL;
}
static void probe_heartbeat(jobhost_run* run, double progress) {
  (void)run, (void)progress;
}
static int32_t probe_cancelled(jobhost_run* run) {
  (void)run;
  return 0;
}
static void probe_metric(jobhost_run* run, const char* name, double value) {
  if (run != NULL && strcmp(name, "entered_unix_us") == 0) *run->entered_us = value;
}
static void probe_set_message(jobhost_run* run, const char* message) {
  (void)run, (void)message;
}
static const char* probe_run_id(jobhost_run* run) {
  (void)run;
  return "probe";
}
static uint32_t probe_attempt(jobhost_run* run) {
  (void)run;
  return 1;
}
static int64_t probe_scheduled_for(jobhost_run* run) {
  return run != NULL ? run->slot_ms : 0;
}

static const jobhost_host_api api = {
    .struct_size = sizeof(jobhost_host_api),
    .log = probe_log,
    .param = probe_param,
    .secret = probe_param,
    .heartbeat = probe_heartbeat,
    .cancelled = probe_cancelled,
    .metric = probe_metric,
    .set_message = probe_set_message,
    .run_id = probe_run_id,
    .attempt = probe_attempt,
    .scheduled_for = probe_scheduled_for,
};

static const jobhost_plugin* load(const char* path) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) return NULL;
  void* symbol = dlsym(handle, JOBHOST_ENTRY_SYMBOL);
  if (symbol == NULL) return NULL;
  jobhost_entry_fn entry; /* ISO C has no cast from an object to a function pointer */
  memcpy(&entry, &symbol, sizeof entry);
  return entry();
}

static double seconds_since(const struct timespec* t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void die(const char* what) {
  perror(what);
  exit(1);
}

static int burst(int runs, int in_flight, const char* plugin) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int started = 0, running = 0, failed = 0;
  while (started < runs || running > 0) {
    while (running < in_flight && started < runs) {
      const pid_t pid = fork();
      if (pid < 0) die("fork");
      if (pid == 0) {
        if (plugin == NULL) _exit(0);
        const jobhost_plugin* p = load(plugin);
        if (p == NULL) _exit(2);
        _exit(p->run(&api, NULL) == JOBHOST_OK ? 0 : 3);
      }
      ++started;
      ++running;
    }
    int status = 0;
    if (waitpid(-1, &status, 0) > 0) {
      --running;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    } else if (errno != EINTR) {
      die("waitpid");
    }
  }
  printf("%.1f %d\n", runs / seconds_since(&t0), failed);
  return 0;
}

static int wake(int n, int instants, const char* plugin) {
  /* Shared with the children: the instant (first 64 bytes), then where
   * each writes when it entered run(). */
  const size_t bytes = 64 + sizeof(double) * (size_t)n;
  void* shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) die("mmap");
  _Atomic int64_t* slot_ms = (_Atomic int64_t*)shared;
  double* entered_us = (double*)((char*)shared + 64);
  pid_t* pids = calloc((size_t)n, sizeof(pid_t));
  if (pids == NULL) die("calloc");
  for (int k = 0; k < instants; ++k) {
    for (int i = 0; i < n; ++i) entered_us[i] = NAN;
    int ready[2], release[2];
    if (pipe(ready) != 0 || pipe(release) != 0) die("pipe");
    for (int i = 0; i < n; ++i) {
      const pid_t pid = fork();
      if (pid < 0) die("fork");
      if (pid == 0) {
        close(release[1]);
        close(ready[0]);
        const jobhost_plugin* p = load(plugin);
        if (p == NULL) _exit(2);
        struct jobhost_run run = {&entered_us[i], 0};
        char byte = 1;
        if (write(ready[1], &byte, 1) != 1) _exit(4);
        /* Parked until the parent closes the last write end: EOF. */
        while (read(release[0], &byte, 1) > 0) {
        }
        run.slot_ms = atomic_load(slot_ms);
        _exit(p->run(&api, &run) == JOBHOST_OK ? 0 : 5);
      }
      pids[i] = pid;
    }
    close(release[0]);
    close(ready[1]);
    int parked = 0;
    char buf[256];
    while (parked < n) {
      const ssize_t got = read(ready[0], buf, sizeof buf);
      if (got <= 0) break; /* a child died before it parked */
      parked += (int)got;
    }
    close(ready[0]);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const int64_t instant = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 21;
    atomic_store(slot_ms, instant);
    const struct timespec at = {(time_t)(instant / 1000), (long)(instant % 1000) * 1000000};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR) {
    }
    close(release[1]);
    for (int i = 0; i < n; ++i) {
      int status = 0;
      const int exited =
          waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!exited || isnan(entered_us[i])) {
        puts("lost");
      } else {
        printf("%.0f\n", entered_us[i] - (double)instant * 1000);
      }
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 4 && strcmp(argv[1], "burst") == 0) {
    return burst(atoi(argv[2]), atoi(argv[3]), argc >= 5 ? argv[4] : NULL);
  }
  if (argc == 5 && strcmp(argv[1], "wake") == 0) {
    return wake(atoi(argv[2]), atoi(argv[3]), argv[4]);
  }
  fprintf(stderr,
          "usage: bench_fork_probe burst RUNS IN_FLIGHT [PLUGIN]\n"
          "       bench_fork_probe wake N INSTANTS PLUGIN\n");
  return 2;
}
