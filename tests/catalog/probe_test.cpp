// probe() against real plugins: the examples load, each bad plugin fails with
// its reason, and this process survives and leaves no child behind.
#include <jobhost/plugin.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <fstream>

#include "catalog/fixture.h"
#include "catalog/probe.h"

using namespace jobhost::catalog;
using namespace jobhost::catalog::testing;
using namespace std::chrono_literals;

namespace {

// True when this process has no child left to reap (every probe reaped its own).
bool no_children_left() {
  return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

std::string reason_of(const ProbeResult& r) {
  return r ? std::string("(accepted)") : r.error().reason;
}

}  // namespace

TEST_CASE("probe reads the example plugins' descriptors", "[catalog][probe]") {
  struct Case {
    const char* file;
    const char* name;
  };
  for (const auto& c : {Case{"hello", "hello"}, Case{"hello_c", "hello_c"}}) {
    SECTION(c.file) {
      auto d = probe(example_plugin(c.file));
      INFO(reason_of(d));
      REQUIRE(d.has_value());
      CHECK(d->name == c.name);
      CHECK(d->version == "1.0.0");
      CHECK(d->abi_major == 1);
      CHECK(d->abi_minor == JOBHOST_ABI_MINOR);
      CHECK(d->struct_size == sizeof(jobhost_plugin));
      CHECK(d->has_run);
      CHECK(check_descriptor(*d).has_value());
    }
  }
  CHECK(no_children_left());
}

TEST_CASE("probe fails each bad plugin with its reason and survives it", "[catalog][probe]") {
  TempDir dir;
  write_text(dir / "x.so", "this is not a shared library\n");
  struct Case {
    std::filesystem::path file;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {dir / "x.so", "not an ELF file (it starts with \"this is not a sh...\")"},
      {test_plugin("no_entry"), "missing entry symbol"},
      {test_plugin("unresolved_symbol"), "unresolved symbol jobhost_test_missing_symbol"},
      {test_plugin("crash_in_init"),
       "crashed while loading (SIGSEGV) — probably in a static initialiser"},
      {test_plugin("entry_is_data"), "exported as data, not as a function"},
  };
  for (const auto& c : cases) {
    SECTION(c.file.filename().string()) {
      auto d = probe(c.file);
      REQUIRE_FALSE(d.has_value());
      CHECK_THAT(d.error().reason, Catch::Contains(c.expected));
      CHECK_FALSE(d.error().transient);
      CHECK(no_children_left());
    }
  }
}

TEST_CASE("probe reads a foreign-ABI descriptor without trusting its strings", "[catalog][probe]") {
  auto d = probe(test_plugin("abi_major_99"));
  REQUIRE(d.has_value());
  CHECK(d->abi_major == 99);
  CHECK_FALSE(d->name.has_value());  // another major may lay strings out differently
  auto checked = check_descriptor(*d);
  REQUIRE_FALSE(checked.has_value());
  CHECK_THAT(checked.error().message, Catch::Contains("built for ABI 99, this host speaks ABI 1"));
}

TEST_CASE("probe kills a plugin that hangs while loading", "[catalog][probe]") {
  const auto start = std::chrono::steady_clock::now();
  auto d = probe(test_plugin("hang_in_init"), 300ms);
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(d.has_value());
  CHECK_THAT(d.error().reason, Catch::Contains("hung while loading: no answer within 300ms"));
  CHECK(d.error().transient);
  CHECK(took < 3s);
  CHECK(no_children_left());
}

TEST_CASE("probe rejects a half-written copy before loading it", "[catalog][probe]") {
  // Loading a cut-off library would map pages past its end and die of SIGBUS.
  TempDir dir;
  std::ifstream in(example_plugin("hello_c"), std::ios::binary);
  std::string head(1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  write_text(dir / "cut.so", head);
  auto d = probe(dir / "cut.so");
  REQUIRE_FALSE(d.has_value());
  CHECK_THAT(d.error().reason, Catch::Contains("truncated") && Catch::Contains("half-written"));
}

TEST_CASE("probe passes the loader's reason on, without the probed path", "[catalog][probe]") {
  // A position-independent executable is ET_DYN like a library, but glibc refuses to load it.
  const std::filesystem::path pie = "/usr/bin/true";
  auto d = probe(pie, 5s, "deployed.so");
  REQUIRE_FALSE(d.has_value());
  CHECK_THAT(d.error().reason, Catch::StartsWith("cannot be loaded: "));
  CHECK_THAT(d.error().reason, !Catch::Contains(pie.string()));
  CHECK_FALSE(d.error().transient);
}

TEST_CASE("probe of a missing file says so", "[catalog][probe]") {
  auto d = probe("/nonexistent/jobhost/none.so");
  REQUIRE_FALSE(d.has_value());
  CHECK_THAT(d.error().reason, Catch::Contains("cannot be read"));
}
