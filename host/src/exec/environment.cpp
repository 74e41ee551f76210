#include "exec/environment.h"

#include <unistd.h>

#include <map>

#include "exec/executor.h"

namespace jobhost::exec {

std::vector<std::string> run_environment(const RunRequest& request) {
  std::map<std::string, std::string> env;
  env["PATH"] = kRunPath;
  env["HOME"] =
      request.state_directory.empty() ? std::string("/") : request.state_directory.string();
  env["LANG"] = kRunLang;
  if (!request.time_zone.empty()) env["TZ"] = request.time_zone;
  for (const auto& [name, value] : request.env) {
    // The loader refuses these; a request built elsewhere is checked here too.
    if (name.empty() || name.starts_with("JOBHOST_") ||
        name.find_first_of(std::string_view("=\0", 2)) != std::string::npos ||
        value.find('\0') != std::string::npos) {
      continue;
    }
    env[name] = value;
  }
  env["JOBHOST_JOB"] = request.job;
  env["JOBHOST_RUN_ID"] = request.run_id;
  if (!request.state_directory.empty()) {
    env["JOBHOST_STATE_DIRECTORY"] = request.state_directory.string();
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

void apply_environment_in_child(char* const* envp) noexcept {
  static char* empty[] = {nullptr};
  environ = envp != nullptr ? const_cast<char**>(envp) : empty;
}

}  // namespace jobhost::exec
