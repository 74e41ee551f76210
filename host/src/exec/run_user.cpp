#include "exec/run_user.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/pidfd.h"

namespace jobhost::exec {
namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

// nftw has no user pointer: the ids of the hand-over in progress.
uid_t g_chown_uid = 0;
gid_t g_chown_gid = 0;
int g_chown_errno = 0;

int chown_entry(const char* path, const struct stat*, int, FTW*) {
  if (::lchown(path, g_chown_uid, g_chown_gid) != 0 && g_chown_errno == 0) g_chown_errno = errno;
  return 0;
}

}  // namespace

Result<Credentials> resolve_run_credentials(const RunRequest& request) {
  if (request.user || !request.dynamic_uid || ::geteuid() != 0) {
    return resolve_credentials(request.user, request.group);
  }
  Credentials creds;
  creds.uid = *request.dynamic_uid;
  creds.gid = *request.dynamic_uid;
  if (request.group) {
    auto named = resolve_credentials(std::nullopt, request.group);
    if (!named) return named;
    creds.gid = named->gid;
  }
  creds.groups = {creds.gid};
  creds.change = true;
  return creds;
}

Result<void> prepare_state_directory(const std::filesystem::path& dir, const Credentials& creds) {
  const std::filesystem::path jobs = dir.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(jobs, ec);
  if (ec) {
    return fail(
        fmt::format("cannot create {}: {}: check that state_dir is writable by the user "
                    "jobhost runs as",
                    jobs.string(), ec.message()));
  }
  if (::chmod(jobs.c_str(), 0711) != 0) {
    return fail(fmt::format("cannot set mode 0711 on {}: {}", jobs.string(), errno_text(errno)));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(fmt::format("cannot create the job's state directory {}: {}", dir.string(),
                            errno_text(errno)));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return fail(fmt::format("cannot read the job's state directory {}: {}", dir.string(),
                            errno_text(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(
        fmt::format("the job's state directory {} is not a directory: move it away", dir.string()));
  }
  if (creds.change && (st.st_uid != creds.uid || st.st_gid != creds.gid)) {
    // The job's uid changed (another dynamic uid, or a user set): whatever
    // the job kept becomes the new owner's. Not across mounts, not via links.
    g_chown_uid = creds.uid;
    g_chown_gid = creds.gid;
    g_chown_errno = 0;
    ::nftw(dir.c_str(), chown_entry, 16, FTW_PHYS | FTW_MOUNT);
    if (g_chown_errno != 0) {
      return fail(fmt::format("cannot hand the job's state directory {} over to uid {}: {}",
                              dir.string(), creds.uid, errno_text(g_chown_errno)));
    }
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) {
    return fail(fmt::format("cannot set mode 0700 on the job's state directory {}: {}",
                            dir.string(), errno_text(errno)));
  }
  return {};
}

Result<void> secure_state_dir(const std::filesystem::path& state_dir) {
  struct Want {
    std::filesystem::path path;
    mode_t mode;
  };
  const Want wants[] = {{state_dir, 0711},
                        {state_dir / "jobhost.db", 0600},
                        {state_dir / "jobhost.db-wal", 0600},
                        {state_dir / "jobhost.db-shm", 0600}};
  for (const auto& want : wants) {
    if (::chmod(want.path.c_str(), want.mode) != 0 && errno != ENOENT) {
      return fail(fmt::format("cannot set mode {:04o} on {}: {}", want.mode, want.path.string(),
                              errno_text(errno)));
    }
  }
  return {};
}

std::size_t kill_processes_of_uid(uid_t uid) noexcept {
  std::size_t killed = 0;
  for (int round = 0; round < 20; ++round) {
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return killed;
    std::size_t found = 0;
    while (const dirent* entry = ::readdir(proc)) {
      char* end = nullptr;
      const long pid = std::strtol(entry->d_name, &end, 10);
      if (pid <= 0 || *end != '\0') continue;
      // The pidfd first: the uid read next is then that process's, not a
      // later one's with the same pid.
      const int pidfd = pidfd_open(static_cast<pid_t>(pid));
      if (pidfd < 0) continue;
      char path[64];
      std::snprintf(path, sizeof path, "/proc/%ld/status", pid);
      bool match = false;
      if (FILE* status = std::fopen(path, "re")) {
        char line[256];
        unsigned real = 0, effective = 0;
        while (std::fgets(line, sizeof line, status) != nullptr) {
          if (std::strncmp(line, "State:\tZ", 8) == 0) break;  // a zombie: nothing to kill
          if (std::sscanf(line, "Uid: %u %u", &real, &effective) == 2) {
            match = real == uid || effective == uid;
            break;
          }
        }
        std::fclose(status);
      }
      if (match && pidfd_send_signal(pidfd, SIGKILL) == 0) ++found;
      ::close(pidfd);
    }
    ::closedir(proc);
    killed += found;
    if (found == 0) break;
  }
  return killed;
}

std::optional<ChildSetupError> enter_state_directory_in_child(const char* dir) noexcept {
  if (dir == nullptr || dir[0] == '\0') return std::nullopt;
  if (::chdir(dir) != 0) return ChildSetupError{errno, "chdir(the job's state directory)"};
  return std::nullopt;
}

}  // namespace jobhost::exec
