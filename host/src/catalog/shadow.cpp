#include "catalog/shadow.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "catalog/checks.h"
#include "common/sha256.h"

namespace jobhost::catalog {
namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

Result<void> prepare_shadow_dir(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return fail(
          fmt::format("shadow directory {} cannot be read: {}", dir.string(), errno_text(errno)));
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return fail(
          fmt::format("cannot create the shadow directory {}: {}: check that state_dir "
                      "is writable by the user jobhost runs as",
                      dir.string(), ec.message()));
    }
    // Runs may load shadow copies after dropping privileges: others may read.
    ::chmod(dir.c_str(), 0755);
    if (::stat(dir.c_str(), &st) != 0) {
      return fail(
          fmt::format("shadow directory {} cannot be read: {}", dir.string(), errno_text(errno)));
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(
        fmt::format("shadow directory {} is not a directory: move it away, or set [host] "
                    "state_dir elsewhere",
                    dir.string()));
  }
  if (auto ok = check_file_safety(dir, st.st_mode, st.st_uid, ::geteuid(), Expect::plugin_dir);
      !ok) {
    return fail(fmt::format("shadow directory {}: {}", dir.string(), ok.error().message));
  }
  return {};
}

std::filesystem::path shadow_path_for(const std::filesystem::path& dir, std::string_view sha256) {
  return dir / (std::string(sha256) + ".so");
}

bool is_intact_copy(const std::filesystem::path& file, std::string_view sha256) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  auto actual = sha256_file(file);
  return actual && *actual == sha256;
}

Result<std::filesystem::path> write_temp_copy(const std::filesystem::path& dir,
                                              std::string_view bytes) {
  std::string name = (dir / ".incoming-XXXXXX").string();
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return fail(
        fmt::format("cannot write a shadow copy in {}: {}", dir.string(), errno_text(errno)));
  }
  auto failed = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(name.c_str());
    return fail(
        fmt::format("cannot write the shadow copy {}: {}: {}", name, what, errno_text(err)));
  };
  std::string_view left = bytes;
  while (!left.empty()) {
    const ssize_t n = ::write(fd, left.data(), left.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return failed("write");
    left.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fchmod(fd, 0444) != 0) return failed("chmod");
  if (::fsync(fd) != 0) return failed("fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(name.c_str());
    return fail(fmt::format("cannot write the shadow copy {}: close: {}", name, errno_text(err)));
  }
  return std::filesystem::path(name);
}

Result<void> commit_copy(const std::filesystem::path& temp,
                         const std::filesystem::path& final_path) {
  if (::rename(temp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return fail(
        fmt::format("cannot install the shadow copy {}: {}", final_path.string(), errno_text(err)));
  }
  const auto dir = final_path.parent_path();
  if (int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dfd >= 0) {
    ::fsync(dfd);  // the rename is durable once the directory is
    ::close(dfd);
  }
  return {};
}

}  // namespace jobhost::catalog
