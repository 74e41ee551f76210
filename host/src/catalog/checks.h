// The pure checks behind plugin validation: file safety, the ELF header, the
// descriptor a plugin returns, and turning loader errors into reasons a user
// can act on. No I/O: every input is passed in, so each is tested with a table.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace jobhost::catalog {

// The descriptor fields a probe child read from a plugin (strings copied).
// A string is nullopt when the pointer was NULL, or when it was not read
// because the ABI major differs (a different major may have a different layout).
struct Descriptor {
  uint32_t struct_size = 0;
  uint16_t abi_major = 0;
  uint16_t abi_minor = 0;
  std::optional<std::string> name;
  std::optional<std::string> version;
  std::optional<std::string> description;
  bool has_init = false;
  bool has_run = false;
  bool has_shutdown = false;
};

// Longest string read from a descriptor; a longer one (or one without a NUL
// within this many bytes) is rejected.
inline constexpr std::size_t kMaxDescriptorString = 4096;

// Smallest struct_size that holds every required field (up to and including `run`).
std::uint32_t min_descriptor_size();

// Checks a descriptor against this host's ABI (JOBHOST_ABI_MAJOR/MINOR): the
// major must match, the minor must not be newer, struct_size must hold the
// required fields, name/version/run must be set, the name must match
// [A-Za-z0-9_.-]+. The error is the rejection reason.
Result<void> check_descriptor(const Descriptor& d);

// What a path is expected to be.
enum class Expect { plugin_file, plugin_dir };

// Checks the lstat (for files) or stat (for plugin_dir) of `path`: the right
// type, owned by `host_euid` or root, not group- or world-writable. The error
// says what is wrong and the command that fixes it (chmod go-w ..., chown ...).
Result<void> check_file_safety(const std::filesystem::path& path, mode_t mode, uid_t owner,
                               uid_t host_euid, Expect expect);

// Checks a file's whole `content` before any loader sees it: ELF magic, this
// host's class, byte order and machine, a shared object (ET_DYN), and no
// loaded segment past the end (a half-written copy). The error names what the
// file is instead.
Result<void> check_elf_header(std::string_view content);

// Turns a dlopen error text into a reason: names an unresolved symbol
// (demangled when it is C++), a missing library, a missing symbol version.
// `probed_path` (the copy that was loaded) is replaced by `shown_name`.
std::string explain_load_error(std::string_view dlerror_text, std::string_view probed_path,
                               std::string_view shown_name);

}  // namespace jobhost::catalog
