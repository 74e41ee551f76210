// Shared helpers for the catalog tests: the plugins and files.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "support/temp_dir.h"

namespace jobhost::catalog::testing {

namespace fs = std::filesystem;

inline const fs::path kPluginDir = JOBHOST_PLUGIN_DIR;
inline const fs::path kTestPluginDir = JOBHOST_TEST_PLUGIN_DIR;

inline fs::path example_plugin(const std::string& name) {
  return kPluginDir / (name + ".so");
}
inline fs::path test_plugin(const std::string& name) {
  return kTestPluginDir / ("catalog_" + name + ".so");
}

using jobhost::testing::TempDir;

// Copies `from` to `to` and sets `mode` (umask does not apply).
inline void copy_with_mode(const fs::path& from, const fs::path& to, mode_t mode = 0644) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  if (::chmod(to.c_str(), mode) != 0) throw std::runtime_error("chmod failed: " + to.string());
}

inline void write_text(const fs::path& to, const std::string& text, mode_t mode = 0644) {
  std::ofstream(to, std::ios::binary | std::ios::trunc) << text;
  if (::chmod(to.c_str(), mode) != 0) throw std::runtime_error("chmod failed: " + to.string());
}

inline mode_t mode_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

inline ino_t inode_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace jobhost::catalog::testing
