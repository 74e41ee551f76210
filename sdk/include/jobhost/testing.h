/*
 * jobhost plugin test kit (C): a fake host, so a plugin's own unit tests call
 * its `init`, `run` and `shutdown` without a jobhost, as collectd's
 * plugin_mock.c lets a collectd plugin be tested alone. Header-only; C11 or
 * C++ (jobhost/testing.hpp wraps it).
 *
 *     jobhost_test_run* jt = jobhost_test_new();
 *     jobhost_test_param(jt, "greeting", "hi");
 *     int32_t r = jobhost_test_call(jt, jobhost_plugin_v1());
 *     assert(r == JOBHOST_OK);
 *     assert(strcmp(jobhost_test_last_message(jt), "said hi") == 0);
 *     jobhost_test_free(jt);
 *
 * Two ways to reach the plugin (docs/plugins.md "Testing a plugin"):
 *  - compile the plugin's source into the test and call its
 *    jobhost_plugin_v1() directly;
 *  - load the built .so (jobhost_add_plugin makes a MODULE that exports
 *    only jobhost_plugin_v1) with jobhost_test_load(). It uses dlopen: link
 *    the CMake target jobhost::testing (it adds ${CMAKE_DL_LIBS}).
 *
 * The fake host keeps the ABI's rules (plugin.h): every host function
 * accepts NULL (as ""), log levels out of range become INFO, heartbeat
 * progress is clamped to [0, 1] or -1 (unknown), strings it returns stay
 * valid until the call returns, a NULL run handle is ignored. Unlike the
 * real host it runs the plugin in the calling process: a crash is the
 * test's crash, and nothing limits time, memory or output.
 *
 * The kit only records what the plugin asked for. What a real run does with
 * it (the last message and the last value of each metric are recorded, one
 * heartbeat per 50 ms is sent on, output is captured) is the host's, and
 * `jobhost run-plugin FILE.so` shows it (docs/cli.md).
 *
 * Every jobhost_test_* function but jobhost_test_cancel is for the test's
 * own thread. The host functions the plugin calls may come from any thread.
 */
#ifndef JOBHOST_TESTING_H_
#define JOBHOST_TESTING_H_

#include <jobhost/plugin.h>

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What jobhost_test_call returns when it did not call the plugin: the
 * descriptor is unusable (jobhost_test_error says why; it is "" when the
 * plugin itself returned -1). */
#define JOBHOST_TEST_BAD_PLUGIN (-1)

/* The entry point, for a test that compiles the plugin's source in and
 * calls it directly. */
const jobhost_plugin* jobhost_plugin_v1(void);

typedef struct jobhost_test_log_entry_ {
  int32_t level; /* a jobhost_log_level */
  char* text;
} jobhost_test_log_entry_;

typedef struct jobhost_test_metric_entry_ {
  char* name;
  double value;
} jobhost_test_metric_entry_;

typedef struct jobhost_test_pair_ {
  char* key;
  char* value;
} jobhost_test_pair_;

/* The fake run: settings (params, secrets, ids, cancel) and what the plugin
 * did (logs, messages, metrics, heartbeats). Its fields are the kit's; use
 * the functions below. */
typedef struct jobhost_test_run {
  uint32_t magic;
  jobhost_host_api api;
  jobhost_test_pair_* params;
  size_t param_count;
  jobhost_test_pair_* secrets;
  size_t secret_count;
  char* run_id;
  uint32_t attempt;
  int64_t scheduled_for;
  char* trigger_kind;
  char* event;              /* NULL: none */
  int32_t cancel_flag;      /* atomic */
  int64_t cancel_after;     /* cancelled() turns true after this many calls; -1: never */
  uint32_t cancelled_calls; /* atomic */
  int32_t lock;             /* atomic: guards what is captured below */
  jobhost_test_log_entry_* logs;
  size_t log_count, log_cap;
  char** messages;
  size_t message_count, message_cap;
  jobhost_test_metric_entry_* metrics;
  size_t metric_count, metric_cap;
  double* heartbeats;
  size_t heartbeat_count, heartbeat_cap;
  int init_called, run_called, shutdown_called;
  char error[256];
} jobhost_test_run;

#define JOBHOST_TEST_MAGIC 0x6a687472u /* "jhtr" */

/* --- internals ------------------------------------------------------------ */

static inline void* jobhost_test_xrealloc_(void* p, size_t size) {
  void* q = realloc(p, size ? size : 1);
  if (q == NULL) {
    fputs("jobhost test kit: out of memory\n", stderr);
    abort();
  }
  return q;
}

static inline char* jobhost_test_strdup_(const char* s) {
  size_t n;
  char* copy;
  if (s == NULL) s = "";
  n = strlen(s) + 1;
  copy = (char*)jobhost_test_xrealloc_(NULL, n);
  memcpy(copy, s, n);
  return copy;
}

/* Makes room for one more element of `size` bytes in a growing array. */
static inline void* jobhost_test_grow_(void* items, size_t count, size_t* cap, size_t size) {
  if (count < *cap) return items;
  *cap = *cap ? *cap * 2 : 8;
  return jobhost_test_xrealloc_(items, *cap * size);
}

static inline void jobhost_test_lock_(jobhost_test_run* jt) {
  while (__atomic_exchange_n(&jt->lock, 1, __ATOMIC_ACQUIRE)) {
  }
}

static inline void jobhost_test_unlock_(jobhost_test_run* jt) {
  __atomic_store_n(&jt->lock, 0, __ATOMIC_RELEASE);
}

/* The fake run behind a handle the plugin passed back, or NULL. */
static inline jobhost_test_run* jobhost_test_of_(jobhost_run* run) {
  jobhost_test_run* jt = (jobhost_test_run*)(void*)run;
  return jt != NULL && jt->magic == JOBHOST_TEST_MAGIC ? jt : NULL;
}

static inline const char* jobhost_test_find_(const jobhost_test_pair_* pairs, size_t count,
                                             const char* key) {
  size_t i;
  if (key == NULL) key = "";
  for (i = 0; i < count; ++i) {
    if (strcmp(pairs[i].key, key) == 0) return pairs[i].value;
  }
  return NULL;
}

static inline void jobhost_test_set_pair_(jobhost_test_pair_** pairs, size_t* count,
                                          const char* key, const char* value) {
  size_t i;
  if (key == NULL) key = "";
  for (i = 0; i < *count; ++i) {
    if (strcmp((*pairs)[i].key, key) == 0) break;
  }
  if (i < *count) {
    free((*pairs)[i].value);
    if (value != NULL) {
      (*pairs)[i].value = jobhost_test_strdup_(value);
      return;
    }
    free((*pairs)[i].key);
    (*pairs)[i] = (*pairs)[*count - 1];
    --*count;
    return;
  }
  if (value == NULL) return;
  *pairs = (jobhost_test_pair_*)jobhost_test_xrealloc_(*pairs, (*count + 1) * sizeof **pairs);
  (*pairs)[*count].key = jobhost_test_strdup_(key);
  (*pairs)[*count].value = jobhost_test_strdup_(value);
  ++*count;
}

static inline void jobhost_test_clear_captured_(jobhost_test_run* jt) {
  size_t i;
  for (i = 0; i < jt->log_count; ++i) free(jt->logs[i].text);
  for (i = 0; i < jt->message_count; ++i) free(jt->messages[i]);
  for (i = 0; i < jt->metric_count; ++i) free(jt->metrics[i].name);
  jt->log_count = jt->message_count = jt->metric_count = jt->heartbeat_count = 0;
  jt->init_called = jt->run_called = jt->shutdown_called = 0;
  __atomic_store_n(&jt->cancelled_calls, 0, __ATOMIC_RELAXED);
  jt->error[0] = '\0';
}

/* --- the fake host functions ----------------------------------------------- */

static inline void jobhost_test_api_log_(jobhost_run* run, int32_t level, const char* message) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  jobhost_test_log_entry_ line;
  if (jt == NULL) return;
  if (level < JOBHOST_LOG_DEBUG || level > JOBHOST_LOG_ERROR) level = JOBHOST_LOG_INFO;
  line.level = level;
  line.text = jobhost_test_strdup_(message);
  jobhost_test_lock_(jt);
  jt->logs = (jobhost_test_log_entry_*)jobhost_test_grow_(jt->logs, jt->log_count, &jt->log_cap,
                                                          sizeof *jt->logs);
  jt->logs[jt->log_count++] = line;
  jobhost_test_unlock_(jt);
}

static inline const char* jobhost_test_api_param_(jobhost_run* run, const char* key) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jobhost_test_find_(jt->params, jt->param_count, key) : NULL;
}

static inline const char* jobhost_test_api_secret_(jobhost_run* run, const char* name) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jobhost_test_find_(jt->secrets, jt->secret_count, name) : NULL;
}

static inline void jobhost_test_api_heartbeat_(jobhost_run* run, double progress) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  if (jt == NULL) return;
  if (!(progress >= 0)) progress = -1; /* NaN and negatives: unknown */
  if (progress > 1) progress = 1;
  jobhost_test_lock_(jt);
  jt->heartbeats = (double*)jobhost_test_grow_(jt->heartbeats, jt->heartbeat_count,
                                               &jt->heartbeat_cap, sizeof *jt->heartbeats);
  jt->heartbeats[jt->heartbeat_count++] = progress;
  jobhost_test_unlock_(jt);
}

static inline int32_t jobhost_test_api_cancelled_(jobhost_run* run) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  uint32_t calls;
  if (jt == NULL) return 0;
  calls = __atomic_add_fetch(&jt->cancelled_calls, 1, __ATOMIC_RELAXED);
  if (jt->cancel_after >= 0 && (int64_t)calls > jt->cancel_after) return 1;
  return __atomic_load_n(&jt->cancel_flag, __ATOMIC_RELAXED) ? 1 : 0;
}

static inline void jobhost_test_api_metric_(jobhost_run* run, const char* name, double value) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  jobhost_test_metric_entry_ metric;
  if (jt == NULL) return;
  metric.name = jobhost_test_strdup_(name);
  metric.value = value;
  jobhost_test_lock_(jt);
  jt->metrics = (jobhost_test_metric_entry_*)jobhost_test_grow_(
      jt->metrics, jt->metric_count, &jt->metric_cap, sizeof *jt->metrics);
  jt->metrics[jt->metric_count++] = metric;
  jobhost_test_unlock_(jt);
}

static inline void jobhost_test_api_set_message_(jobhost_run* run, const char* message) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  char* copy;
  if (jt == NULL) return;
  copy = jobhost_test_strdup_(message);
  jobhost_test_lock_(jt);
  jt->messages = (char**)jobhost_test_grow_(jt->messages, jt->message_count, &jt->message_cap,
                                            sizeof *jt->messages);
  jt->messages[jt->message_count++] = copy;
  jobhost_test_unlock_(jt);
}

static inline const char* jobhost_test_api_run_id_(jobhost_run* run) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jt->run_id : "";
}

static inline uint32_t jobhost_test_api_attempt_(jobhost_run* run) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jt->attempt : 0;
}

static inline int64_t jobhost_test_api_scheduled_for_(jobhost_run* run) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jt->scheduled_for : 0;
}

static inline const char* jobhost_test_api_trigger_kind_(jobhost_run* run) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jt->trigger_kind : "";
}

static inline const char* jobhost_test_api_event_(jobhost_run* run) {
  jobhost_test_run* jt = jobhost_test_of_(run);
  return jt ? jt->event : NULL;
}

/* --- setting up a run ------------------------------------------------------ */

/* A new fake run: no params or secrets, run id "test-run", attempt 1,
 * scheduled for now (whole seconds), trigger "schedule", no event, not
 * cancelled. Free it with jobhost_test_free. Aborts when out of memory. */
static inline jobhost_test_run* jobhost_test_new(void) {
  jobhost_test_run* jt = (jobhost_test_run*)jobhost_test_xrealloc_(NULL, sizeof *jt);
  memset(jt, 0, sizeof *jt);
  jt->magic = JOBHOST_TEST_MAGIC;
  jt->api.struct_size = sizeof jt->api;
  jt->api.log = jobhost_test_api_log_;
  jt->api.param = jobhost_test_api_param_;
  jt->api.secret = jobhost_test_api_secret_;
  jt->api.heartbeat = jobhost_test_api_heartbeat_;
  jt->api.cancelled = jobhost_test_api_cancelled_;
  jt->api.metric = jobhost_test_api_metric_;
  jt->api.set_message = jobhost_test_api_set_message_;
  jt->api.run_id = jobhost_test_api_run_id_;
  jt->api.attempt = jobhost_test_api_attempt_;
  jt->api.scheduled_for = jobhost_test_api_scheduled_for_;
  jt->api.trigger_kind = jobhost_test_api_trigger_kind_;
  jt->api.event = jobhost_test_api_event_;
  jt->run_id = jobhost_test_strdup_("test-run");
  jt->attempt = 1;
  jt->scheduled_for = (int64_t)time(NULL) * 1000;
  jt->trigger_kind = jobhost_test_strdup_("schedule");
  jt->cancel_after = -1;
  return jt;
}

/* Frees the run and everything captured; NULL is a no-op. */
static inline void jobhost_test_free(jobhost_test_run* jt) {
  size_t i;
  if (jt == NULL) return;
  jobhost_test_clear_captured_(jt);
  for (i = 0; i < jt->param_count; ++i) {
    free(jt->params[i].key);
    free(jt->params[i].value);
  }
  for (i = 0; i < jt->secret_count; ++i) {
    free(jt->secrets[i].key);
    free(jt->secrets[i].value);
  }
  free(jt->params);
  free(jt->secrets);
  free(jt->logs);
  free(jt->messages);
  free(jt->metrics);
  free(jt->heartbeats);
  free(jt->run_id);
  free(jt->trigger_kind);
  free(jt->event);
  jt->magic = 0;
  free(jt);
}

/* Sets param `key` (what the job's `params` table gives); value NULL unsets it.
 * An unset param reads as NULL in the plugin. */
static inline void jobhost_test_param(jobhost_test_run* jt, const char* key, const char* value) {
  if (jt) jobhost_test_set_pair_(&jt->params, &jt->param_count, key, value);
}

/* Sets secret `name`; value NULL unsets it. An unset secret reads as NULL. */
static inline void jobhost_test_secret(jobhost_test_run* jt, const char* name, const char* value) {
  if (jt) jobhost_test_set_pair_(&jt->secrets, &jt->secret_count, name, value);
}

/* What run_id() returns (NULL: ""). */
static inline void jobhost_test_set_run_id(jobhost_test_run* jt, const char* run_id) {
  if (jt == NULL) return;
  free(jt->run_id);
  jt->run_id = jobhost_test_strdup_(run_id);
}

/* What attempt() returns: 1 for a fire's first attempt, 2 for its first retry. */
static inline void jobhost_test_set_attempt(jobhost_test_run* jt, uint32_t attempt) {
  if (jt) jt->attempt = attempt;
}

/* What scheduled_for() returns: milliseconds since the Unix epoch (UTC). */
static inline void jobhost_test_set_scheduled_for(jobhost_test_run* jt, int64_t ms) {
  if (jt) jt->scheduled_for = ms;
}

/* ABI 1.1: what trigger_kind() returns ("schedule", "webhook", ...; NULL: ""). */
static inline void jobhost_test_set_trigger_kind(jobhost_test_run* jt, const char* kind) {
  if (jt == NULL) return;
  free(jt->trigger_kind);
  jt->trigger_kind = jobhost_test_strdup_(kind);
}

/* ABI 1.1: what event() returns, a JSON document; NULL: none (event() gives NULL). */
static inline void jobhost_test_set_event(jobhost_test_run* jt, const char* json) {
  if (jt == NULL) return;
  free(jt->event);
  jt->event = json ? jobhost_test_strdup_(json) : NULL;
}

/* Asks the run to stop: cancelled() returns 1 from now on. Safe from any
 * thread, also while the plugin runs (as a timeout would). */
static inline void jobhost_test_cancel(jobhost_test_run* jt) {
  if (jt) __atomic_store_n(&jt->cancel_flag, 1, __ATOMIC_RELAXED);
}

/* cancelled() returns 0 for its first `calls` calls in each
 * jobhost_test_call, then 1: a run stopped midway, at the same point every
 * time. */
static inline void jobhost_test_cancel_after(jobhost_test_run* jt, uint32_t calls) {
  if (jt) jt->cancel_after = calls;
}

/* The fake host function table and the run handle to pass with it, for a
 * test that calls a plugin's functions itself. */
static inline const jobhost_host_api* jobhost_test_api(jobhost_test_run* jt) {
  return jt ? &jt->api : NULL;
}
static inline jobhost_run* jobhost_test_handle(jobhost_test_run* jt) {
  return (jobhost_run*)(void*)jt;
}

/* --- running --------------------------------------------------------------- */

/* Checks `plugin` as the host's catalog does (struct_size holds up to `run`,
 * abi_major is this SDK's, abi_minor not newer, name and version set, run
 * set), then calls it as a run's child does: init (when set; non-zero fails
 * the run: RETRY stays RETRY, anything else is FAIL, and run and shutdown
 * are not called), run, shutdown (when set). Returns what the run returned
 * (JOBHOST_OK, JOBHOST_RETRY, JOBHOST_FAIL, or any other value the plugin
 * gave), or JOBHOST_TEST_BAD_PLUGIN without calling anything when the
 * descriptor is unusable (jobhost_test_error says why). Clears what an
 * earlier call captured first; the settings and a cancel stay. */
static inline int32_t jobhost_test_call(jobhost_test_run* jt, const jobhost_plugin* plugin) {
  jobhost_plugin d;
  int32_t result;
  if (jt == NULL) return JOBHOST_TEST_BAD_PLUGIN;
  jobhost_test_clear_captured_(jt);
  if (plugin == NULL) {
    snprintf(jt->error, sizeof jt->error, "the entry point returned NULL, not a descriptor");
    return JOBHOST_TEST_BAD_PLUGIN;
  }
  if (plugin->struct_size < offsetof(jobhost_plugin, run) + sizeof plugin->run) {
    snprintf(jt->error, sizeof jt->error, "struct_size %u is too small for a descriptor",
             (unsigned)plugin->struct_size);
    return JOBHOST_TEST_BAD_PLUGIN;
  }
  /* Rule 2 of plugin.h: copy what both sides know into a zeroed struct. */
  memset(&d, 0, sizeof d);
  memcpy(&d, plugin, plugin->struct_size < sizeof d ? plugin->struct_size : sizeof d);
  if (d.abi_major != JOBHOST_ABI_MAJOR || d.abi_minor > JOBHOST_ABI_MINOR) {
    snprintf(jt->error, sizeof jt->error, "built for ABI %u.%u; this SDK is %u.%u",
             (unsigned)d.abi_major, (unsigned)d.abi_minor, (unsigned)JOBHOST_ABI_MAJOR,
             (unsigned)JOBHOST_ABI_MINOR);
    return JOBHOST_TEST_BAD_PLUGIN;
  }
  if (d.name == NULL || d.name[0] == '\0' || d.version == NULL || d.version[0] == '\0' ||
      d.run == NULL) {
    snprintf(jt->error, sizeof jt->error, "the descriptor has no %s",
             d.name == NULL || d.name[0] == '\0'         ? "name"
             : d.version == NULL || d.version[0] == '\0' ? "version"
                                                         : "run function");
    return JOBHOST_TEST_BAD_PLUGIN;
  }
  if (d.init != NULL) {
    int32_t rc;
    jt->init_called = 1;
    rc = d.init(&jt->api, jobhost_test_handle(jt));
    if (rc != 0) {
      if (jt->message_count == 0) {
        char text[64];
        snprintf(text, sizeof text, "init failed (returned %d)", (int)rc);
        jobhost_test_api_set_message_(jobhost_test_handle(jt), text);
      }
      return rc == JOBHOST_RETRY ? JOBHOST_RETRY : JOBHOST_FAIL;
    }
  }
  jt->run_called = 1;
  result = d.run(&jt->api, jobhost_test_handle(jt));
  if (d.shutdown != NULL) {
    jt->shutdown_called = 1;
    d.shutdown();
  }
  return result;
}

/* Why the last jobhost_test_call returned JOBHOST_TEST_BAD_PLUGIN; "" otherwise. */
static inline const char* jobhost_test_error(const jobhost_test_run* jt) {
  return jt ? jt->error : "";
}

/* Whether the last call reached init, run and shutdown (1) or not (0). */
static inline int jobhost_test_init_called(const jobhost_test_run* jt) {
  return jt ? jt->init_called : 0;
}
static inline int jobhost_test_run_called(const jobhost_test_run* jt) {
  return jt ? jt->run_called : 0;
}
static inline int jobhost_test_shutdown_called(const jobhost_test_run* jt) {
  return jt ? jt->shutdown_called : 0;
}

/* --- what the plugin did (since the last jobhost_test_call began) ----------- *
 * Strings stay valid until the next jobhost_test_call or jobhost_test_free.
 * An index out of range gives NULL, or 0 for numbers. Read them once the
 * plugin's threads are done. */

static inline size_t jobhost_test_log_count(const jobhost_test_run* jt) {
  return jt ? jt->log_count : 0;
}
static inline int32_t jobhost_test_log_level(const jobhost_test_run* jt, size_t i) {
  return jt && i < jt->log_count ? jt->logs[i].level : 0;
}
static inline const char* jobhost_test_log_text(const jobhost_test_run* jt, size_t i) {
  return jt && i < jt->log_count ? jt->logs[i].text : NULL;
}
/* 1 when a log line of `level` (any level: -1) contains `needle`. */
static inline int jobhost_test_logged(const jobhost_test_run* jt, int32_t level,
                                      const char* needle) {
  size_t i;
  if (jt == NULL) return 0;
  if (needle == NULL) needle = "";
  for (i = 0; i < jt->log_count; ++i) {
    if ((level < 0 || jt->logs[i].level == level) && strstr(jt->logs[i].text, needle) != NULL) {
      return 1;
    }
  }
  return 0;
}

/* Every set_message, in order; the host records the last one. */
static inline size_t jobhost_test_message_count(const jobhost_test_run* jt) {
  return jt ? jt->message_count : 0;
}
static inline const char* jobhost_test_message(const jobhost_test_run* jt, size_t i) {
  return jt && i < jt->message_count ? jt->messages[i] : NULL;
}
/* The message the host would record, or NULL when none was set. */
static inline const char* jobhost_test_last_message(const jobhost_test_run* jt) {
  return jt && jt->message_count ? jt->messages[jt->message_count - 1] : NULL;
}

/* Every metric call, in order; the host records the last value of each name. */
static inline size_t jobhost_test_metric_count(const jobhost_test_run* jt) {
  return jt ? jt->metric_count : 0;
}
static inline const char* jobhost_test_metric_name(const jobhost_test_run* jt, size_t i) {
  return jt && i < jt->metric_count ? jt->metrics[i].name : NULL;
}
static inline double jobhost_test_metric_value(const jobhost_test_run* jt, size_t i) {
  return jt && i < jt->metric_count ? jt->metrics[i].value : 0;
}
/* The last value of metric `name` into *value: 1, or 0 when never set. */
static inline int jobhost_test_metric(const jobhost_test_run* jt, const char* name, double* value) {
  size_t i;
  if (jt == NULL) return 0;
  if (name == NULL) name = "";
  for (i = jt->metric_count; i > 0; --i) {
    if (strcmp(jt->metrics[i - 1].name, name) == 0) {
      if (value) *value = jt->metrics[i - 1].value;
      return 1;
    }
  }
  return 0;
}

/* Every heartbeat's progress, in order (-1: unknown). The real host passes
 * on at most one per 50 ms; the kit keeps them all. */
static inline size_t jobhost_test_heartbeat_count(const jobhost_test_run* jt) {
  return jt ? jt->heartbeat_count : 0;
}
static inline double jobhost_test_heartbeat(const jobhost_test_run* jt, size_t i) {
  return jt && i < jt->heartbeat_count ? jt->heartbeats[i] : 0;
}

/* How often the plugin called cancelled(). */
static inline uint32_t jobhost_test_cancelled_calls(const jobhost_test_run* jt) {
  return jt ? __atomic_load_n(&jt->cancelled_calls, __ATOMIC_RELAXED) : 0;
}

/* --- loading a built plugin ------------------------------------------------ */

/* Loads the plugin .so at `path` (dlopen, RTLD_NOW | RTLD_LOCAL, as the host
 * does), calls its jobhost_plugin_v1 and returns the descriptor, or NULL
 * with why in `error` (`error_size` bytes; may be NULL). The library stays
 * loaded for the life of the process; its static initialisers have run. */
static inline const jobhost_plugin* jobhost_test_load(const char* path, char* error,
                                                      size_t error_size) {
  void* handle;
  void* symbol;
  jobhost_entry_fn entry;
  const jobhost_plugin* plugin;
  if (error && error_size) error[0] = '\0';
  if (path == NULL) path = "";
  handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    const char* why = dlerror();
    if (error && error_size) snprintf(error, error_size, "%s", why ? why : "dlopen failed");
    return NULL;
  }
  symbol = dlsym(handle, JOBHOST_ENTRY_SYMBOL);
  if (symbol == NULL) {
    if (error && error_size) {
      snprintf(error, error_size, "%s does not export %s", path, JOBHOST_ENTRY_SYMBOL);
    }
    return NULL;
  }
  /* An object pointer to a function pointer, without ISO C's complaint. */
  memcpy(&entry, &symbol, sizeof entry);
  plugin = entry();
  if (plugin == NULL && error && error_size) {
    snprintf(error, error_size, "%s: %s returned NULL", path, JOBHOST_ENTRY_SYMBOL);
  }
  return plugin;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* JOBHOST_TESTING_H_ */
