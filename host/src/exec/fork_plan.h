// The plan of a run as it crosses the fork server's socket (fork_server.h):
// a flat binary record, numbers in host byte order, strings as a 32-bit
// length and the bytes. Internal to exec: only fork_server.cpp, its tests and
// the fuzz target (fuzz/targets/fork_plan.cpp) use it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "exec/executor.h"
#include "exec/isolation.h"
#include "exec/sandbox.h"

namespace jobhost::exec {

// What the server needs to fork one run.
struct Plan {
  RunRequest request;
  std::vector<std::string> cgroup_procs;
  Credentials credentials;
  // sandbox: prepared from request.sandbox by the server before the fork.
  SandboxPlan sandbox;
  // Environment (issue 13): the run's "NAME=value" entries, and the
  // NULL-terminated array over them its child makes its environ.
  std::vector<std::string> environment;
  std::vector<char*> envp;
};

// The spawn request for `request`; `preload`: whether the server should keep
// the plugin loaded.
std::string encode_plan(const RunRequest& request, const std::vector<std::string>& cgroup_procs,
                        const Credentials& credentials, bool preload);

// Decodes what encode_plan made into `plan` and `preload`. False on a
// malformed plan (short, trailing bytes, a count larger than the bytes left);
// `plan` is then partly filled. Never throws for any input but bad_alloc.
bool decode_plan(std::string_view text, Plan& plan, bool& preload);

}  // namespace jobhost::exec
