// Who a run is, and where it keeps its state: dynamic users (a uid of the
// job's own from [host] dynamic_users when the host is root and the job names
// no user), the job's private state directory <state_dir>/jobs/<job>/, and the
// modes of the host's own files that runs must not touch. See
// docs/isolation.md "Users and privileges" and docs/security.md.
//
// Parent side (the daemon, or the CLI's run-once/replay) except
// enter_state_directory_in_child.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>

#include "common/error.h"
#include "exec/executor.h"
#include "exec/isolation.h"

namespace jobhost::exec {

// The credentials a run switches to. A named `user` (and `group`): as
// resolve_credentials. No user, a dynamic uid and the host is root: that uid,
// gid the same number (or the job's `group`), and no other group. Otherwise
// (no user and no dynamic uid, or not root): resolve_credentials, so the run
// keeps the host's user. Errors name the unknown user or group.
Result<Credentials> resolve_run_credentials(const RunRequest& request);

// Makes `dir` (a job's state directory, <state_dir>/jobs/<job>) ready for a
// run with `creds`: its parent `jobs` exists with mode 0711 (a run can reach
// its own directory, not list the others), `dir` exists with mode 0700 and,
// when creds.change, belongs to creds.uid:creds.gid. A directory that
// belonged to another uid (the job's dynamic uid moved) is handed over with
// everything in it (symbolic links are not followed). Fails when `dir` is not
// a directory or cannot be made or handed over.
Result<void> prepare_state_directory(const std::filesystem::path& dir, const Credentials& creds);

// The modes of the host's own files (docs/security.md): state_dir 0711 (runs
// pass through to their directory and to the shadow copies, list nothing),
// the ledger and its -wal and -shm 0600. Missing files are skipped; returns
// the first failure (the caller logs it as a warning).
Result<void> secure_state_dir(const std::filesystem::path& state_dir);

// Parent side: SIGKILLs every process whose real or effective uid is `uid`
// (found in /proc, signalled through a pidfd), in rounds until none is left
// (at most 20). For a dynamic user, whose uid only its job's runs have: in
// isolation mode none, what left the run's process group (setsid) dies with
// the run. Returns how many processes were signalled.
std::size_t kill_processes_of_uid(uid_t uid) noexcept;

// Child side, before dropping privileges: chdir(dir) when `dir` is not empty.
std::optional<ChildSetupError> enter_state_directory_in_child(const char* dir) noexcept;

}  // namespace jobhost::exec
