// A run's environment: a small documented set, plus the job's own `env`, and
// never the daemon's (docs/security.md "Environment and secrets").
//
// Runs are forked from the fork server, not executed, so `environ` is the
// only thing that decides what getenv() sees in a run; the fork server itself
// is started by exec with an empty environment (fork_server.h), so nothing of
// the daemon's environment is in a run's memory or /proc/<pid>/environ.
#pragma once

#include <string>
#include <vector>

namespace jobhost::exec {

struct RunRequest;

// PATH of every run unless the job's env sets it (systemd's default).
inline constexpr char kRunPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// LANG of every run unless the job's env sets it: the same on every host.
inline constexpr char kRunLang[] = "C.UTF-8";

// "NAME=value" entries, sorted by name, of the run's environment:
//   PATH=kRunPath, HOME=<state directory> (or "/" without one), LANG=kRunLang,
//   TZ=<the job's time zone> (when the request has one), JOBHOST_JOB,
//   JOBHOST_RUN_ID, JOBHOST_STATE_DIRECTORY (when there is one),
// then the job's env, which may replace PATH, HOME, LANG and TZ but never a
// JOBHOST_* name (such entries, and names with '=' or NUL, are left out).
std::vector<std::string> run_environment(const RunRequest& request);

// In the run's child, after fork: makes `envp` (a NULL-terminated array the
// fork server built before the fork; nullptr = empty) the process's
// environment. Only a pointer is written.
void apply_environment_in_child(char* const* envp) noexcept;

}  // namespace jobhost::exec
