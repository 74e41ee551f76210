#include "catalog/checks.h"

#include <elf.h>
#include <jobhost/plugin.h>
#include <link.h>
#include <pwd.h>
#include <sys/stat.h>

#include <fmt/core.h>
#include <bit>
#include <boost/core/demangle.hpp>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "catalog/text.h"

namespace jobhost::catalog {
namespace {

constexpr std::uint32_t kAbiFieldsSize = offsetof(jobhost_plugin, abi_minor) + sizeof(uint16_t);

std::string user_label(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(4096);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) {
    return fmt::format("uid {} ({})", uid, found->pw_name);
  }
  return fmt::format("uid {}", uid);
}

std::string user_name_or_uid(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(4096);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

std::string file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISREG(mode)) return "a regular file";
  return "not a regular file";
}

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string join_and(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += (i + 1 == parts.size()) ? " and " : ", ";
    out += parts[i];
  }
  return out;
}

std::string machine_name(unsigned machine) {
  switch (machine) {
    case EM_X86_64:
      return "x86-64";
    case EM_386:
      return "i386";
    case EM_AARCH64:
      return "aarch64";
    case EM_ARM:
      return "arm";
    case EM_RISCV:
      return "riscv";
    case EM_PPC64:
      return "ppc64";
    case EM_S390:
      return "s390";
    default:
      return fmt::format("ELF machine {}", machine);
  }
}

#if defined(__x86_64__)
constexpr unsigned kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kHostMachine = EM_AARCH64;
#elif defined(__i386__)
constexpr unsigned kHostMachine = EM_386;
#elif defined(__arm__)
constexpr unsigned kHostMachine = EM_ARM;
#elif defined(__riscv)
constexpr unsigned kHostMachine = EM_RISCV;
#else
constexpr unsigned kHostMachine = 0;  // unknown: the loader decides
#endif

}  // namespace

std::uint32_t min_descriptor_size() {
  return offsetof(jobhost_plugin, run) + sizeof(jobhost_plugin::run);
}

Result<void> check_descriptor(const Descriptor& d) {
  if (d.struct_size < kAbiFieldsSize) {
    return fail(fmt::format(
        "descriptor struct_size is {} bytes, too small to even hold the ABI version: "
        "jobhost_plugin_v1 must return a jobhost_plugin with struct_size = sizeof(jobhost_plugin)",
        d.struct_size));
  }
  if (d.abi_major != JOBHOST_ABI_MAJOR) {
    return fail(fmt::format(
        "ABI major mismatch: built for ABI {}, this host speaks ABI {}: rebuild the plugin "
        "against the jobhost SDK for ABI {}",
        d.abi_major, JOBHOST_ABI_MAJOR, JOBHOST_ABI_MAJOR));
  }
  if (d.abi_minor > JOBHOST_ABI_MINOR) {
    return fail(fmt::format(
        "built for ABI {}.{}, newer than this host's ABI {}.{}: upgrade jobhost, or build the "
        "plugin against an older SDK",
        d.abi_major, d.abi_minor, JOBHOST_ABI_MAJOR, JOBHOST_ABI_MINOR));
  }
  if (d.struct_size < min_descriptor_size()) {
    return fail(fmt::format(
        "descriptor struct_size is {} bytes, too small to hold the required fields (name, "
        "version and run need {}): set struct_size = sizeof(jobhost_plugin)",
        d.struct_size, min_descriptor_size()));
  }
  std::vector<std::string> missing;
  if (!d.name || d.name->empty()) missing.emplace_back("name");
  if (!d.version || d.version->empty()) missing.emplace_back("version");
  if (!d.has_run) missing.emplace_back("run");
  if (!missing.empty()) {
    return fail(fmt::format("descriptor has no {}: set {} in the jobhost_plugin it returns",
                            join_and(missing), missing.size() == 1 ? "it" : "them"));
  }
  for (const auto& [field, value] : {std::pair{"name", d.name}, std::pair{"version", d.version},
                                     std::pair{"description", d.description}}) {
    if (value && value->size() > kMaxDescriptorString) {
      return fail(fmt::format("descriptor {} is longer than {} bytes or not NUL-terminated", field,
                              kMaxDescriptorString));
    }
  }
  for (char c : *d.name) {
    if (!valid_name_char(c)) {
      return fail(fmt::format(
          "plugin name \"{}\" has characters other than A-Z a-z 0-9 _ . -: rename it (config "
          "`plugin = ...` refers to this name)",
          printable(*d.name, 64)));
    }
  }
  return {};
}

Result<void> check_file_safety(const std::filesystem::path& path, mode_t mode, uid_t owner,
                               uid_t host_euid, Expect expect) {
  if (S_ISLNK(mode)) {
    return fail(
        Error::Kind::symbolic_link,
        "is a symbolic link: jobhost loads only regular files, so that no link can swap the code "
        "under it; copy the file into place instead");
  }
  if (expect == Expect::plugin_file && !S_ISREG(mode)) {
    return fail(fmt::format("is {}, not a regular file: only regular *.so files are loaded",
                            file_type_name(mode)));
  }
  if (expect == Expect::plugin_dir && !S_ISDIR(mode)) {
    return fail(fmt::format("is {}, not a directory: set [host] plugin_dir to a directory",
                            file_type_name(mode)));
  }
  std::vector<std::string> problems;
  std::vector<std::string> fixes;
  const bool bad_owner = owner != host_euid && owner != 0;
  if (bad_owner) {
    problems.push_back(fmt::format("owned by {}, not by root or by the user jobhost runs as, {}",
                                   user_label(owner), user_label(host_euid)));
    fixes.push_back(fmt::format("chown {} {}", user_name_or_uid(host_euid), shell_quote(path)));
  }
  const bool group_w = (mode & S_IWGRP) != 0;
  const bool world_w = (mode & S_IWOTH) != 0;
  if (group_w || world_w) {
    problems.push_back(fmt::format("{} (mode {:04o})",
                                   group_w && world_w ? "group- and world-writable"
                                   : group_w          ? "group-writable"
                                                      : "world-writable",
                                   mode & 07777));
    fixes.push_back(fmt::format("chmod go-w {}", shell_quote(path)));
  }
  if (problems.empty()) return {};
  const char* what = bad_owner && (group_w || world_w) ? "unsafe owner and permissions"
                     : bad_owner                       ? "unsafe owner"
                                                       : "unsafe permissions";
  const char* risk = expect == Expect::plugin_dir
                         ? "other users could add or replace the plugins jobhost runs"
                         : "other users could replace the code jobhost runs";
  std::string fix;
  for (const auto& f : fixes) fix += (fix.empty() ? "" : " && ") + f;
  return fail(fmt::format("{}: {}, so {}: run {}", what, join_and(problems), risk, fix));
}

Result<void> check_elf_header(std::string_view content) {
  if (content.empty()) {
    return fail("is empty (0 bytes), not a shared library: a half-written copy?");
  }
  if (content.size() < SELFMAG || std::memcmp(content.data(), ELFMAG, SELFMAG) != 0) {
    return fail(fmt::format(
        "not an ELF file (it starts with \"{}\"): jobhost loads shared libraries built with "
        "jobhost_add_plugin; is it a text file or a half-written copy?",
        printable(content, 16)));
  }
  if (content.size() < sizeof(ElfW(Ehdr))) {
    return fail(
        fmt::format("is a truncated ELF file ({} bytes): a half-written copy?", content.size()));
  }
  ElfW(Ehdr) ehdr;
  std::memcpy(&ehdr, content.data(), sizeof ehdr);
  const unsigned char host_class = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
  if (ehdr.e_ident[EI_CLASS] != host_class) {
    return fail(fmt::format(
        "is a {}-bit ELF file and this host runs {}-bit code: rebuild the plugin for this machine",
        ehdr.e_ident[EI_CLASS] == ELFCLASS64 ? 64 : 32, sizeof(void*) * 8));
  }
  const unsigned char host_data =
      std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  if (ehdr.e_ident[EI_DATA] != host_data) {
    return fail(
        "has the other byte order than this host (big- vs little-endian): rebuild the plugin for "
        "this machine");
  }
  switch (ehdr.e_type) {
    case ET_DYN:
      break;
    case ET_REL:
      return fail(
          "is an object file (ELF relocatable), not a shared library: link it as one "
          "(jobhost_add_plugin does)");
    case ET_EXEC:
      return fail(
          "is an executable, not a shared library: build it with jobhost_add_plugin (a MODULE "
          "library)");
    case ET_CORE:
      return fail("is a core dump, not a shared library");
    default:
      return fail(fmt::format("is not a shared library (ELF type {})", unsigned{ehdr.e_type}));
  }
  if (kHostMachine != 0 && ehdr.e_machine != kHostMachine) {
    return fail(
        fmt::format("was built for {}, this host is {}: rebuild the plugin for this machine",
                    machine_name(ehdr.e_machine), machine_name(kHostMachine)));
  }
  // A cut-off copy maps pages past the end of the file: the loader dies of
  // SIGBUS. Check that the program headers and loaded segments are all there.
  const std::uint64_t size = content.size();
  const std::uint64_t headers_end =
      std::uint64_t{ehdr.e_phoff} + std::uint64_t{ehdr.e_phnum} * sizeof(ElfW(Phdr));
  if (ehdr.e_phentsize != sizeof(ElfW(Phdr)) || headers_end > size) {
    return fail(fmt::format(
        "is a truncated or damaged ELF file: its program headers end at byte {} of {}: a "
        "half-written copy?",
        headers_end, size));
  }
  for (std::size_t i = 0; i < ehdr.e_phnum; ++i) {
    ElfW(Phdr) phdr;
    std::memcpy(&phdr, content.data() + ehdr.e_phoff + i * sizeof phdr, sizeof phdr);
    const std::uint64_t end = std::uint64_t{phdr.p_offset} + phdr.p_filesz;
    if (phdr.p_type == PT_LOAD && end > size) {
      return fail(fmt::format(
          "is truncated: it has {} bytes but its code and data need {}: a half-written copy?", size,
          end));
    }
  }
  return {};
}

std::string explain_load_error(std::string_view dlerror_text, std::string_view probed_path,
                               std::string_view shown_name) {
  std::string text(dlerror_text);
  if (!probed_path.empty()) {
    const std::string prefix = std::string(probed_path) + ": ";
    if (text.starts_with(prefix)) text.erase(0, prefix.size());
    text = replace_all(text, probed_path, shown_name);
  }

  constexpr std::string_view kUndefined = "undefined symbol: ";
  if (auto pos = text.find(kUndefined); pos != std::string::npos) {
    const auto begin = pos + kUndefined.size();
    const auto end = text.find_first_of(" \t\n,()", begin);
    const std::string symbol = text.substr(begin, end == std::string::npos ? end : end - begin);
    const std::string demangled =
        symbol.starts_with("_Z") ? boost::core::demangle(symbol.c_str()) : symbol;
    const std::string shown =
        demangled == symbol ? symbol : fmt::format("{} ({})", demangled, symbol);
    return fmt::format(
        "unresolved symbol {}: nothing loaded with the plugin defines it; link the library that "
        "does into the plugin (target_link_libraries), or remove the reference",
        shown);
  }

  constexpr std::string_view kCannotOpen = ": cannot open shared object file";
  if (auto pos = text.find(kCannotOpen); pos != std::string::npos) {
    std::string library = text.substr(0, pos);
    if (auto colon = library.rfind(": "); colon != std::string::npos) library.erase(0, colon + 2);
    return fmt::format(
        "needs {}, which the dynamic loader cannot find: install it, or link the plugin with a "
        "RUNPATH to it",
        library);
  }

  constexpr std::string_view kVersion = "version `";
  if (auto pos = text.find(kVersion); pos != std::string::npos) {
    const auto begin = pos + kVersion.size();
    const auto end = text.find('\'', begin);
    if (end != std::string::npos && text.compare(end, 12, "' not found ") == 0) {
      std::string library = pos >= 2 ? text.substr(0, pos - 2) : std::string();
      if (auto slash = library.rfind('/'); slash != std::string::npos) library.erase(0, slash + 1);
      return fmt::format(
          "needs symbol version {}{}, which this machine does not have: build the plugin against "
          "this system's libraries",
          text.substr(begin, end - begin), library.empty() ? "" : " of " + library);
    }
  }
  if (text.find("failed to map segment from shared object") != std::string::npos) {
    return fmt::format(
        "cannot be loaded: {}: is the shadow directory on a noexec mount? Put state_dir on a "
        "filesystem that allows executable mappings",
        text);
  }
  return "cannot be loaded: " + text;
}

}  // namespace jobhost::catalog
