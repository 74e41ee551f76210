/*
 * jobhost plugin ABI, version 1.1 (1.0 plus the host functions marked "1.1").
 *
 * A jobhost job is a shared library that exports exactly one symbol:
 *
 *     const jobhost_plugin* jobhost_plugin_v1(void);
 *
 * a function (not a data symbol) returning a pointer to a static descriptor
 * that lives as long as the library is loaded.
 *
 * Rules of this ABI, which hold for every plugin ever built against it:
 *
 *  1. Plain C only: fixed-width integers, `const char*` strings that are
 *     NUL-terminated UTF-8, function pointers. No C++ types, no exceptions
 *     and no longjmp across the boundary.
 *  2. Every struct starts with `struct_size`, set to `sizeof` the struct as
 *     the side that fills it was compiled. Fields are only ever appended.
 *     A reader copies min(its size, struct_size) bytes into a zeroed struct
 *     of its own, so a field the other side does not know is zero / NULL.
 *  3. `abi_major` changes only when an existing field changes meaning; the
 *     host refuses a plugin whose major differs from its own. `abi_minor`
 *     grows when fields are appended; the host refuses a plugin whose minor
 *     is newer than its own (the plugin might depend on a host function the
 *     host does not have).
 *  4. Strings the host returns (param, secret, run_id) are owned by the host
 *     and valid until `run` returns. Strings the plugin passes in are copied
 *     by the host before the call returns.
 *  5. Each run happens in its own process: `init`, `run` and `shutdown` are
 *     called once each, in that order, in a child forked for that run. Global
 *     state does not survive from one run to the next. The daemon itself never
 *     runs plugin code, not even static initialisers.
 *  6. Static initialisers should do no work. They run whenever the library is
 *     loaded, which is not once per run:
 *     - in the catalog's probe child, a short-lived process that loads the
 *       file, reads the descriptor and exits;
 *     - in the fork server (the process that forks the runs), the first time
 *       it forks a run of that plugin version: it loads the plugin once and
 *       keeps it loaded, and every run child it forks (that first one too)
 *       inherits the initialised globals by fork, as a copy-on-write copy. What a run changes in them
 *       reaches neither the server nor any other run; what the initialiser
 *       did is not redone per run;
 *     - in the run child itself only when the server did not keep it loaded:
 *       its 64 MiB budget for loaded plugins was already spent, or loading
 *       the plugin left the server with a thread, took it over that budget or
 *       killed it (that server then forks no more; a new one takes over and
 *       no longer loads this plugin).
 *     A new plugin version (hot reload) is a new file (a content-addressed
 *     copy), loaded by the same fork server on its first run; the old version
 *     stays loaded there. A new fork server (after one died or stopped
 *     forking) loads plugins afresh. Threads do not survive fork: a thread
 *     an initialiser starts is never in a run forked by the server. Static
 *     destructors and atexit handlers never run: run children, probe children
 *     and the fork server end with _exit() and never unload a plugin. Put
 *     per-run setup in `init` and cleanup in `shutdown`.
 */
#ifndef JOBHOST_PLUGIN_H_
#define JOBHOST_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JOBHOST_ABI_MAJOR 1
#define JOBHOST_ABI_MINOR 1

/* The one symbol a plugin exports. */
#define JOBHOST_ENTRY_SYMBOL "jobhost_plugin_v1"

#if defined(__GNUC__)
#define JOBHOST_EXPORT __attribute__((visibility("default")))
#else
#define JOBHOST_EXPORT
#endif

/* What `run` returns. */
typedef enum jobhost_result {
  JOBHOST_OK = 0,    /* succeeded */
  JOBHOST_RETRY = 1, /* transient failure: retry per the job's retry policy */
  JOBHOST_FAIL = 2   /* permanent failure: do not retry */
} jobhost_result;

typedef enum jobhost_log_level {
  JOBHOST_LOG_DEBUG = 0,
  JOBHOST_LOG_INFO = 1,
  JOBHOST_LOG_WARN = 2,
  JOBHOST_LOG_ERROR = 3
} jobhost_log_level;

/* Opaque per-run handle; pass it back to every host function. */
typedef struct jobhost_run jobhost_run;

/*
 * Functions the host offers to a running job. Valid only during `run`.
 * Every function is safe to call with any argument: NULL strings are
 * treated as "".
 */
typedef struct jobhost_host_api {
  uint32_t struct_size;

  /* Writes one log line, tagged with the job, run id and trace id. */
  void (*log)(jobhost_run* run, int32_t level, const char* message);
  /* The job's `params` value for `key`, or NULL when not set. */
  const char* (*param)(jobhost_run* run, const char* key);
  /* A secret by name, or NULL. Never logged or recorded by the host. */
  const char* (*secret)(jobhost_run* run, const char* name);
  /* Says the run is alive; `progress` is 0..1, or negative when unknown.
   * Resets the stall timer. */
  void (*heartbeat)(jobhost_run* run, double progress);
  /* Non-zero once the host has asked the run to stop (timeout, shutdown,
   * replace). A long job should check it and return soon. */
  int32_t (*cancelled)(jobhost_run* run);
  /* Records a named numeric figure for this run. */
  void (*metric)(jobhost_run* run, const char* name, double value);
  /* Sets the human message recorded with the run's outcome. */
  void (*set_message)(jobhost_run* run, const char* message);
  /* This run's id (sortable, unique). */
  const char* (*run_id)(jobhost_run* run);
  /* 1 for the first attempt of a fire, 2 for its first retry, ... */
  uint32_t (*attempt)(jobhost_run* run);
  /* The slot this run belongs to, in milliseconds since the Unix epoch (UTC). */
  int64_t (*scheduled_for)(jobhost_run* run);

  /* 1.1: what made this run: "schedule", "manual", "retry", "catchup",
   * "reboot", "replay", "file", "webhook" or "chain" (a retry says "retry"
   * whatever fired its first attempt). Later minors may add kinds. */
  const char* (*trigger_kind)(jobhost_run* run);
  /* 1.1: the trigger's payload, a JSON document (the webhook's body, the
   * files that changed, the upstream run of a chain), or NULL when the
   * trigger has none. Every attempt and a replay get the first attempt's. */
  const char* (*event)(jobhost_run* run);
} jobhost_host_api;

/* The static descriptor a plugin returns from jobhost_plugin_v1(). */
typedef struct jobhost_plugin {
  uint32_t struct_size;
  uint16_t abi_major; /* JOBHOST_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor; /* JOBHOST_ABI_MINOR the plugin was built with */
  const char* name;        /* required: [A-Za-z0-9_.-], what config `plugin =` names */
  const char* version;     /* required: free-form, e.g. "1.4.2" */
  const char* description; /* optional */

  /* Optional. Called once in the run's child before `run`; non-zero fails the run. */
  int32_t (*init)(const jobhost_host_api* host, jobhost_run* run);
  /* Required. Does the job's work. Returns a jobhost_result. */
  int32_t (*run)(const jobhost_host_api* host, jobhost_run* run);
  /* Optional. Called once in the run's child after `run`. */
  void (*shutdown)(void);
} jobhost_plugin;

/* The entry function's type. */
typedef const jobhost_plugin* (*jobhost_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* JOBHOST_PLUGIN_H_ */
