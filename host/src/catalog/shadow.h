// Shadow copies: private, read-only, content-addressed copies of accepted
// plugins (<shadow_dir>/<sha256>.so). Runs load these, never the file in
// plugin_dir, so a file overwritten in place cannot change code that is mapped.
#pragma once

#include <filesystem>
#include <string_view>

#include "common/error.h"

namespace jobhost::catalog {

// Creates `dir` (and its parents, mode 0755) when missing; checks that it is
// a directory owned by this user or root that others cannot write.
Result<void> prepare_shadow_dir(const std::filesystem::path& dir);

// <dir>/<sha256>.so
std::filesystem::path shadow_path_for(const std::filesystem::path& dir, std::string_view sha256);

// True when `file` is a regular file whose content hashes to `sha256`.
bool is_intact_copy(const std::filesystem::path& file, std::string_view sha256);

// Writes `bytes` to a new temporary file in `dir` (mode 0444, fsynced). The
// caller commits it with commit_copy() or removes it.
Result<std::filesystem::path> write_temp_copy(const std::filesystem::path& dir,
                                              std::string_view bytes);

// Renames `temp` to `final_path` (same directory) and syncs the directory.
Result<void> commit_copy(const std::filesystem::path& temp,
                         const std::filesystem::path& final_path);

}  // namespace jobhost::catalog
