// The pure checks, table-driven: descriptor/ABI, file safety, ELF header,
// loader messages and probe reports.
#include <elf.h>
#include <jobhost/plugin.h>
#include <link.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "catalog/checks.h"
#include "catalog/probe.h"

using namespace jobhost::catalog;

namespace {

Descriptor valid_descriptor() {
  Descriptor d;
  d.struct_size = sizeof(jobhost_plugin);
  d.abi_major = JOBHOST_ABI_MAJOR;
  d.abi_minor = JOBHOST_ABI_MINOR;
  d.name = "hello";
  d.version = "1.0.0";
  d.description = "says hello";
  d.has_run = true;
  return d;
}

// Checks `result` is ok when `expected` is empty, else that its error contains
// every fragment of `expected`.
void require_outcome(const jobhost::Result<void>& result,
                     const std::vector<std::string>& expected) {
  if (expected.empty()) {
    INFO("unexpected error: " << (result ? std::string() : result.error().message));
    REQUIRE(result.has_value());
    return;
  }
  REQUIRE_FALSE(result.has_value());
  for (const auto& fragment : expected) {
    INFO("error: " << result.error().message);
    CHECK_THAT(result.error().message, Catch::Contains(fragment));
  }
}

}  // namespace

TEST_CASE("check_descriptor accepts only what this host's ABI can run", "[catalog][abi]") {
  struct Case {
    const char* label;
    std::function<void(Descriptor&)> change;
    std::vector<std::string> expected;  // empty: accepted
  };
  const std::string too_long(kMaxDescriptorString + 1, 'a');
  const std::vector<Case> cases = {
      {"valid", [](Descriptor&) {}, {}},
      {"no description is fine", [](Descriptor& d) { d.description.reset(); }, {}},
      {"init and shutdown are optional",
       [](Descriptor& d) { d.has_init = d.has_shutdown = true; },
       {}},
      {"name with all allowed characters", [](Descriptor& d) { d.name = "Az09_.-x"; }, {}},
      {"struct_size exactly the required fields",
       [](Descriptor& d) { d.struct_size = min_descriptor_size(); },
       {}},
      {"struct_size larger than the host's struct",
       [](Descriptor& d) { d.struct_size = sizeof(jobhost_plugin) + 64; },
       {}},
      {"ABI major 99",
       [](Descriptor& d) { d.abi_major = 99; },
       {"ABI major mismatch", "built for ABI 99, this host speaks ABI 1", "rebuild"}},
      {"ABI major 0", [](Descriptor& d) { d.abi_major = 0; }, {"built for ABI 0, this host"}},
      {"ABI major checked before missing fields",
       [](Descriptor& d) {
         d.abi_major = 2;
         d.name.reset();
       },
       {"built for ABI 2"}},
      {"ABI minor newer than the host's",
       [](Descriptor& d) { d.abi_minor = JOBHOST_ABI_MINOR + 1; },
       {"built for ABI 1." + std::to_string(JOBHOST_ABI_MINOR + 1),
        "newer than this host's ABI 1." + std::to_string(JOBHOST_ABI_MINOR), "upgrade jobhost"}},
      {"struct_size cannot hold the ABI version",
       [](Descriptor& d) { d.struct_size = 4; },
       {"struct_size is 4 bytes", "too small to even hold the ABI version"}},
      {"struct_size cannot hold run",
       [](Descriptor& d) { d.struct_size = min_descriptor_size() - 8; },
       {"too small to hold the required fields", "need " + std::to_string(min_descriptor_size())}},
      {"NULL name", [](Descriptor& d) { d.name.reset(); }, {"descriptor has no name"}},
      {"empty name", [](Descriptor& d) { d.name = ""; }, {"descriptor has no name"}},
      {"NULL version", [](Descriptor& d) { d.version.reset(); }, {"descriptor has no version"}},
      {"NULL run", [](Descriptor& d) { d.has_run = false; }, {"descriptor has no run"}},
      {"all required fields missing",
       [](Descriptor& d) {
         d.name.reset();
         d.version.reset();
         d.has_run = false;
       },
       {"descriptor has no name, version and run", "set them"}},
      {"name with a space",
       [](Descriptor& d) { d.name = "hello world"; },
       {"plugin name \"hello world\"", "characters other than A-Z a-z 0-9 _ . -"}},
      {"name with a slash", [](Descriptor& d) { d.name = "a/b"; }, {"characters other than"}},
      {"name with non-ASCII", [](Descriptor& d) { d.name = "h\xc3\xa9llo"; }, {"h\\xc3\\xa9llo"}},
      {"name not NUL-terminated in time",
       [&](Descriptor& d) { d.name = too_long; },
       {"name is longer than 4096 bytes"}},
      {"description too long",
       [&](Descriptor& d) { d.description = too_long; },
       {"description is longer than 4096 bytes"}},
  };
  for (const auto& c : cases) {
    SECTION(c.label) {
      Descriptor d = valid_descriptor();
      c.change(d);
      require_outcome(check_descriptor(d), c.expected);
    }
  }
}

TEST_CASE("check_file_safety refuses links, odd types, foreign owners, writable modes",
          "[catalog][permissions]") {
  struct Case {
    const char* label;
    mode_t mode;
    uid_t owner;
    uid_t euid;
    Expect expect;
    std::string path;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"root's file, host is root", S_IFREG | 0644, 0, 0, Expect::plugin_file, "/p/a.so", {}},
      {"own file, host is a user", S_IFREG | 0755, 1000, 1000, Expect::plugin_file, "/p/a.so", {}},
      {"root's file, host is a user", S_IFREG | 0444, 0, 1000, Expect::plugin_file, "/p/a.so", {}},
      {"safe directory", S_IFDIR | 0755, 0, 0, Expect::plugin_dir, "/p", {}},
      {"symbolic link",
       S_IFLNK | 0777,
       0,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"is a symbolic link", "only regular files"}},
      {"directory named *.so",
       S_IFDIR | 0755,
       0,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"is a directory, not a regular file"}},
      {"FIFO", S_IFIFO | 0644, 0, 0, Expect::plugin_file, "/p/a.so", {"is a FIFO"}},
      {"plugin_dir is a file",
       S_IFREG | 0644,
       0,
       0,
       Expect::plugin_dir,
       "/p",
       {"not a directory", "plugin_dir"}},
      {"group-writable file",
       S_IFREG | 0664,
       0,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"unsafe permissions: group-writable (mode 0664)", "replace the code",
        "run chmod go-w /p/a.so"}},
      {"world-writable file",
       S_IFREG | 0646,
       0,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"unsafe permissions: world-writable (mode 0646)", "chmod go-w /p/a.so"}},
      {"group- and world-writable file",
       S_IFREG | 0666,
       0,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"group- and world-writable (mode 0666)"}},
      {"world-writable directory",
       S_IFDIR | 0777,
       0,
       0,
       Expect::plugin_dir,
       "/p",
       {"world-writable (mode 0777)", "add or replace the plugins", "chmod go-w /p"}},
      {"sticky world-writable directory",
       S_IFDIR | 01777,
       0,
       0,
       Expect::plugin_dir,
       "/tmp",
       {"world-writable (mode 1777)"}},
      {"path needing quotes",
       S_IFREG | 0666,
       0,
       0,
       Expect::plugin_file,
       "/p/my job's.so",
       {"chmod go-w '/p/my job'\\''s.so'"}},
      {"file of another user, host is root",
       S_IFREG | 0644,
       4242,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"unsafe owner: owned by uid 4242", "the user jobhost runs as, uid 0 (root)",
        "run chown root /p/a.so"}},
      {"root-owned is fine but another user's is not, host is a user",
       S_IFREG | 0644,
       4243,
       4242,
       Expect::plugin_file,
       "/p/a.so",
       {"owned by uid 4243", "chown 4242 /p/a.so"}},
      {"foreign owner and writable",
       S_IFREG | 0666,
       4242,
       0,
       Expect::plugin_file,
       "/p/a.so",
       {"unsafe owner and permissions", "chown root /p/a.so && chmod go-w /p/a.so"}},
  };
  for (const auto& c : cases) {
    SECTION(c.label) {
      const auto result = check_file_safety(c.path, c.mode, c.owner, c.euid, c.expect);
      require_outcome(result, c.expected);
      // The catalog names a link's target by this kind, not by the message text.
      if (!result) {
        CHECK(result.error().kind == (S_ISLNK(c.mode) ? jobhost::Error::Kind::symbolic_link
                                                      : jobhost::Error::Kind::other));
      }
    }
  }
}

namespace {

std::string elf_header(std::function<void(ElfW(Ehdr) &)> change = {}) {
  ElfW(Ehdr) h{};
  std::memcpy(h.e_ident, ELFMAG, SELFMAG);
  h.e_ident[EI_CLASS] = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
  h.e_ident[EI_DATA] = ELFDATA2LSB;
  h.e_ident[EI_VERSION] = EV_CURRENT;
  h.e_type = ET_DYN;
#if defined(__x86_64__)
  h.e_machine = EM_X86_64;
#elif defined(__aarch64__)
  h.e_machine = EM_AARCH64;
#endif
  h.e_phentsize = sizeof(ElfW(Phdr));
  if (change) change(h);
  return std::string(reinterpret_cast<const char*>(&h), sizeof h);
}

// A header followed by one PT_LOAD program header for [offset, offset + size).
std::string elf_with_segment(std::uint64_t offset, std::uint64_t size) {
  std::string out = elf_header([](auto& h) {
    h.e_phoff = sizeof(ElfW(Ehdr));
    h.e_phnum = 1;
  });
  ElfW(Phdr) p{};
  p.p_type = PT_LOAD;
  p.p_offset = offset;
  p.p_filesz = size;
  out.append(reinterpret_cast<const char*>(&p), sizeof p);
  out.resize(std::max<std::size_t>(out.size(), 200), '\0');
  return out;
}

}  // namespace

TEST_CASE("check_elf_header says what a file is when it is not a loadable library",
          "[catalog][elf]") {
  struct Case {
    const char* label;
    std::string head;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
    {"shared object for this host", elf_header(), {}},
    {"empty file", "", {"is empty (0 bytes)"}},
    {"text file", "hello world\nmore", {"not an ELF file", "starts with \"hello world\\x0amor"}},
    {"shorter than the magic",
     "\x7f"
     "EL",
     {"not an ELF file"}},
    {"truncated after the magic",
     "\x7f"
     "ELF\x02",
     {"truncated ELF file (5 bytes)"}},
    {"32-bit",
     elf_header([](auto& h) { h.e_ident[EI_CLASS] = ELFCLASS32; }),
     {"is a 32-bit ELF file"}},
    {"big-endian",
     elf_header([](auto& h) { h.e_ident[EI_DATA] = ELFDATA2MSB; }),
     {"other byte order"}},
    {"object file",
     elf_header([](auto& h) { h.e_type = ET_REL; }),
     {"is an object file", "not a shared library"}},
    {"executable", elf_header([](auto& h) { h.e_type = ET_EXEC; }), {"is an executable"}},
    {"core dump", elf_header([](auto& h) { h.e_type = ET_CORE; }), {"is a core dump"}},
#if defined(__x86_64__) || defined(__aarch64__)
    {"program headers past the end",
     elf_header([](auto& h) {
       h.e_phoff = sizeof(ElfW(Ehdr));
       h.e_phnum = 1;
     }),
     {"truncated or damaged ELF file", "a half-written copy?"}},
    {"a loaded segment past the end",
     elf_with_segment(4096, 100),
     {"is truncated: it has", "need 4196"}},
    {"loaded segments within the file", elf_with_segment(0, 100), {}},
    {"another CPU",
     elf_header([](auto& h) { h.e_machine = h.e_machine == EM_X86_64 ? EM_AARCH64 : EM_X86_64; }),
     {"was built for", "rebuild the plugin for this machine"}},
#endif
  };
  for (const auto& c : cases) {
    SECTION(c.label) {
      require_outcome(check_elf_header(c.head), c.expected);
    }
  }
}

TEST_CASE("explain_load_error turns dlerror text into an actionable reason", "[catalog][dlerror]") {
  const std::string probed = "/var/jobhost/plugins/.incoming-Ab12Cd";
  struct Case {
    std::string dlerror;
    std::vector<std::string> expected;
    std::vector<std::string> absent;
  };
  const std::vector<Case> cases = {
      {probed + ": undefined symbol: jobhost_test_missing_symbol",
       {"unresolved symbol jobhost_test_missing_symbol:", "target_link_libraries"},
       {probed}},
      {probed + ": undefined symbol: _ZN3foo3barEv",
       {"unresolved symbol foo::bar() (_ZN3foo3barEv)"},
       {}},
      {probed + ": undefined symbol: foo, version BAR_1", {"unresolved symbol foo:"}, {}},
      {"libmissing.so.3: cannot open shared object file: No such file or directory",
       {"needs libmissing.so.3, which the dynamic loader cannot find"},
       {}},
      {"/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.99' not found (required by " +
           probed + ")",
       {"needs symbol version GLIBCXX_3.4.99 of libstdc++.so.6"},
       {probed}},
      {probed + ": file too short", {"cannot be loaded: file too short"}, {probed}},
      {probed + ": failed to map segment from shared object", {"noexec", "state_dir"}, {probed}},
      {"something else mentioning " + probed,
       {"cannot be loaded: something else mentioning my.so"},
       {probed}},
  };
  for (const auto& c : cases) {
    SECTION(c.dlerror) {
      const std::string reason = explain_load_error(c.dlerror, probed, "my.so");
      for (const auto& fragment : c.expected) CHECK_THAT(reason, Catch::Contains(fragment));
      for (const auto& fragment : c.absent) CHECK_THAT(reason, !Catch::Contains(fragment));
    }
  }
}

TEST_CASE("interpret_probe_report names the failure and where it happened", "[catalog][probe]") {
  using namespace std::chrono_literals;
  const std::string descriptor_line =
      R"({"descriptor":{"abi_major":1,"abi_minor":0,"description":null,"init":false,)"
      R"("name":"hello","run":true,"shutdown":true,"struct_size":56,"version":"1.2.3"}})"
      "\n";
  const std::string load = "{\"stage\":\"load\"}\n";
  const std::string entry = "{\"stage\":\"entry\"}\n";
  const std::string read = "{\"stage\":\"descriptor\"}\n";
  const int segv = W_EXITCODE(0, SIGSEGV);
  struct Case {
    const char* label;
    ProbeReport report;
    std::vector<std::string> expected;  // empty: a descriptor
    bool transient = false;
  };
  const std::vector<Case> cases = {
      {"answered", {load + entry + read + descriptor_line, 0}, {}},
      {"answered, then killed by the parent",
       {load + entry + read + descriptor_line, W_EXITCODE(0, SIGKILL)},
       {}},
      {"crashed in a static initialiser",
       {load, segv},
       {"crashed while loading (SIGSEGV) — probably in a static initialiser"}},
      {"aborted in the entry function",
       {load + entry, W_EXITCODE(0, SIGABRT)},
       {"crashed in jobhost_plugin_v1() (SIGABRT)"}},
      {"crashed reading strings",
       {load + entry + read, segv},
       {"crashed while its descriptor was read (SIGSEGV)", "NUL-terminated"}},
      {"torn answer line",
       {load + entry + read + descriptor_line.substr(0, 20), segv},
       {"crashed while its descriptor was read"}},
      {"died before saying anything",
       {"", W_EXITCODE(0, SIGKILL)},
       {"crashed while the probe started (SIGKILL)"}},
      {"called exit()", {load, W_EXITCODE(3, 0)}, {"exited with status 3 while loading"}},
      {"hung while loading",
       {load, std::nullopt},
       {"hung while loading: no answer within 5s", "static initialiser that blocks", "killed"},
       true},
      {"hung in the entry function",
       {load + entry, std::nullopt},
       {"hung in jobhost_plugin_v1(): no answer within 5s"},
       true},
      {"no entry symbol",
       {load + "{\"error\":\"no_entry\"}\n", 0},
       {"missing entry symbol", "JOBHOST_PLUGIN"}},
      {"entry is data",
       {load + "{\"error\":\"not_a_function\"}\n", 0},
       {"exported as data, not as a function"}},
      {"NULL descriptor",
       {load + entry + "{\"error\":\"null_descriptor\"}\n", 0},
       {"returned NULL"}},
      {"dlopen failed",
       {load + R"({"error":"load","message":"/tmp/p.so: undefined symbol: nope"})"
               "\n",
        0},
       {"unresolved symbol nope"}},
      {"garbage lines are skipped", {"not json\n" + load, segv}, {"crashed while loading"}},
  };
  for (const auto& c : cases) {
    SECTION(c.label) {
      auto result = interpret_probe_report(c.report, 5000ms, "/tmp/p.so", "p.so");
      if (c.expected.empty()) {
        REQUIRE(result.has_value());
        CHECK(result->name == "hello");
        CHECK(result->version == "1.2.3");
        CHECK_FALSE(result->description.has_value());
        CHECK(result->struct_size == 56);
        CHECK(result->abi_major == 1);
        CHECK(result->has_run);
        CHECK(result->has_shutdown);
        CHECK_FALSE(result->has_init);
      } else {
        REQUIRE_FALSE(result.has_value());
        for (const auto& fragment : c.expected) {
          CHECK_THAT(result.error().reason, Catch::Contains(fragment));
        }
        CHECK(result.error().transient == c.transient);
      }
    }
  }
}
