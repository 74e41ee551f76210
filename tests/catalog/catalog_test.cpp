// Catalog::scan() over temporary plugin directories seeded with the example
// plugins and every bad plugin: reasons, duplicates, permissions, the probe
// cache and the shadow copies.
#include <sys/stat.h>
#include <unistd.h>

#include <jobhost/plugin.h>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>

#include "catalog/catalog.h"
#include "catalog/fixture.h"
#include "common/sha256.h"
#include "support/skip.h"

using namespace jobhost::catalog;
using namespace jobhost::catalog::testing;
using namespace std::chrono_literals;

namespace {

// A plugin dir and a shadow dir side by side in one temporary directory.
struct Dirs {
  TempDir root;
  fs::path plugins = root / "plugins";
  fs::path shadow = root / "state" / "plugins";
  Dirs() {
    fs::create_directory(plugins);
    fs::permissions(plugins, fs::perms(0755));  // whatever the umask
  }
};

std::map<std::string, std::string> reasons_by_file(const ScanResult& r) {
  std::map<std::string, std::string> out;
  for (const auto& rej : r.rejected) out[rej.path.filename().string()] = rej.reason;
  return out;
}

std::string sha_of(const fs::path& p) {
  auto sha = jobhost::sha256_file(p);
  REQUIRE(sha.has_value());
  return *sha;
}

std::size_t incoming_files(const fs::path& shadow_dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(shadow_dir)) {
    if (e.path().filename().string().starts_with(".incoming")) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("scan accepts the examples and rejects each bad plugin with its reason",
          "[catalog][scan]") {
  Dirs d;
  copy_with_mode(example_plugin("hello"), d.plugins / "hello.so", 0755);
  copy_with_mode(example_plugin("hello_c"), d.plugins / "hello_c.so");
  copy_with_mode(test_plugin("no_entry"), d.plugins / "no_entry.so");
  copy_with_mode(test_plugin("abi_major_99"), d.plugins / "abi99.so");
  copy_with_mode(test_plugin("crash_in_init"), d.plugins / "crash.so");
  copy_with_mode(test_plugin("unresolved_symbol"), d.plugins / "unresolved.so");
  copy_with_mode(test_plugin("entry_is_data"), d.plugins / "entry_is_data.so");
  write_text(d.plugins / "x.so", "just text\n");
  copy_with_mode(example_plugin("hello"), d.plugins / "world_writable.so", 0666);
  // Ignored: not *.so, or hidden (deploy tools write temporaries like these).
  write_text(d.plugins / "README.txt", "not a plugin");
  write_text(d.plugins / ".hello.so.tmp", "half written");
  write_text(d.plugins / ".partial.so", "half written");
  copy_with_mode(example_plugin("hello"), d.plugins / "libhello.so.1");

  Catalog catalog(d.plugins, d.shadow);
  const ScanResult result = catalog.scan();

  REQUIRE(result.accepted.size() == 2);
  CHECK(result.accepted[0].name == "hello");
  CHECK(result.accepted[1].name == "hello_c");
  const PluginInfo* hello = result.find("hello");
  REQUIRE(hello != nullptr);
  CHECK(hello->version == "1.0.0");
  CHECK(hello->description == "Logs its greeting param and succeeds");
  CHECK(hello->abi_major == 1);
  CHECK(hello->abi_minor == JOBHOST_ABI_MINOR);
  CHECK(hello->path == d.plugins / "hello.so");
  CHECK(result.find("hello_c") == &result.accepted[1]);
  CHECK(result.find("nope") == nullptr);
  CHECK(result.find("abi99") == nullptr);

  const auto reasons = reasons_by_file(result);
  const std::map<std::string, std::string> expected = {
      {"x.so", "not an ELF file"},
      {"no_entry.so", "missing entry symbol: the file does not export jobhost_plugin_v1"},
      {"abi99.so", "ABI major mismatch: built for ABI 99, this host speaks ABI 1"},
      {"crash.so", "crashed while loading (SIGSEGV) — probably in a static initialiser"},
      {"unresolved.so", "unresolved symbol jobhost_test_missing_symbol"},
      {"entry_is_data.so", "exported as data, not as a function"},
      {"world_writable.so", "unsafe permissions: group- and world-writable (mode 0666)"},
  };
  CHECK(reasons.size() == expected.size());
  for (const auto& [file, fragment] : expected) {
    INFO(file);
    REQUIRE(reasons.count(file) == 1);
    CHECK_THAT(reasons.at(file), Catch::Contains(fragment));
  }
  CHECK_THAT(reasons.at("world_writable.so"),
             Catch::Contains("chmod go-w " + (d.plugins / "world_writable.so").string()));
  // Sorted by path, each path in plugin_dir.
  for (std::size_t i = 1; i < result.rejected.size(); ++i) {
    CHECK(result.rejected[i - 1].path < result.rejected[i].path);
  }
  for (const auto& r : result.rejected) CHECK(r.path.parent_path() == d.plugins);
  // Only the files that passed the cheap checks were probed: not x.so, not the writable one.
  CHECK(catalog.probes_run() == 7);
  CHECK(incoming_files(d.shadow) == 0);  // rejected probe copies are removed
}

TEST_CASE("accepted plugins get read-only, content-addressed shadow copies", "[catalog][shadow]") {
  Dirs d;
  copy_with_mode(example_plugin("hello"), d.plugins / "hello.so");
  copy_with_mode(example_plugin("hello_c"), d.plugins / "hello_c.so");
  Catalog catalog(d.plugins, d.shadow);
  const auto result = catalog.scan();
  REQUIRE(result.accepted.size() == 2);
  for (const auto& p : result.accepted) {
    INFO(p.name);
    CHECK(p.sha256 == sha_of(p.path));
    CHECK(p.shadow_path == d.shadow / (p.sha256 + ".so"));
    CHECK(sha_of(p.shadow_path) == p.sha256);
    CHECK(mode_of(p.shadow_path) == 0444);
  }
  CHECK(result.accepted[0].sha256 != result.accepted[1].sha256);
  CHECK(mode_of(d.shadow) == 0755);

  SECTION("a new catalog (a restart) reuses an intact shadow copy") {
    const ino_t before = inode_of(result.accepted[0].shadow_path);
    Catalog again(d.plugins, d.shadow);
    const auto second = again.scan();
    REQUIRE(second.accepted.size() == 2);
    CHECK(inode_of(second.accepted[0].shadow_path) == before);
    CHECK(again.probes_run() == 2);  // probe results live in memory only
  }
  SECTION("a deleted shadow copy is written again without a new probe") {
    fs::remove(result.accepted[0].shadow_path);
    const auto second = catalog.scan();
    REQUIRE(second.accepted.size() == 2);
    CHECK(sha_of(second.accepted[0].shadow_path) == second.accepted[0].sha256);
    CHECK(catalog.probes_run() == 2);
  }
  SECTION("a damaged shadow copy is replaced") {
    const fs::path shadow = result.accepted[1].shadow_path;
    ::chmod(shadow.c_str(), 0644);
    write_text(shadow, "damaged", 0444);
    Catalog again(d.plugins, d.shadow);
    const auto second = again.scan();
    REQUIRE(second.accepted.size() == 2);
    CHECK(sha_of(shadow) == second.accepted[1].sha256);
  }
}

TEST_CASE("a second scan of unchanged files forks no probe", "[catalog][cache]") {
  Dirs d;
  copy_with_mode(example_plugin("hello"), d.plugins / "hello.so");
  copy_with_mode(test_plugin("crash_in_init"), d.plugins / "crash.so");
  Catalog catalog(d.plugins, d.shadow);
  const auto first = catalog.scan();
  CHECK(catalog.probes_run() == 2);
  const auto second = catalog.scan();
  CHECK(catalog.probes_run() == 2);  // accepted and rejected verdicts are both cached
  REQUIRE(second.accepted.size() == 1);
  REQUIRE(second.rejected.size() == 1);
  CHECK(second.rejected[0].reason == first.rejected[0].reason);

  SECTION("a file overwritten in place is probed again and gets a new shadow copy") {
    copy_with_mode(example_plugin("hello_c"), d.plugins / "hello.so");
    const auto third = catalog.scan();
    CHECK(catalog.probes_run() == 3);
    REQUIRE(third.accepted.size() == 1);
    CHECK(third.accepted[0].name == "hello_c");
    CHECK(third.accepted[0].shadow_path != first.accepted[0].shadow_path);
    CHECK(fs::exists(first.accepted[0].shadow_path));  // a run in flight may still use it
  }
  SECTION("the same content under another name reuses the verdict") {
    auto info = catalog.probe_file(d.plugins / "crash.so");
    REQUIRE_FALSE(info.has_value());
    copy_with_mode(example_plugin("hello"), d.root / "elsewhere.so");
    auto other = catalog.probe_file(d.root / "elsewhere.so");
    REQUIRE(other.has_value());
    CHECK(other->name == "hello");
    CHECK(other->path == d.root / "elsewhere.so");
    CHECK(catalog.probes_run() == 2);
  }
}

TEST_CASE("a hung probe is not cached: the next scan tries again", "[catalog][cache]") {
  Dirs d;
  copy_with_mode(test_plugin("hang_in_init"), d.plugins / "hang.so");
  Catalog catalog(d.plugins, d.shadow, 300ms);
  const auto first = catalog.scan();
  REQUIRE(first.rejected.size() == 1);
  CHECK_THAT(first.rejected[0].reason, Catch::Contains("hung while loading"));
  catalog.scan();
  CHECK(catalog.probes_run() == 2);
  CHECK(incoming_files(d.shadow) == 0);
}

TEST_CASE("of several files with one plugin name, the first by file name wins",
          "[catalog][duplicates]") {
  Dirs d;
  copy_with_mode(example_plugin("hello"), d.plugins / "b_hello.so");
  copy_with_mode(example_plugin("hello"), d.plugins / "a_hello.so");
  copy_with_mode(example_plugin("hello"), d.plugins / "c_hello.so");
  Catalog catalog(d.plugins, d.shadow);
  const auto result = catalog.scan();
  REQUIRE(result.accepted.size() == 1);
  CHECK(result.accepted[0].path == d.plugins / "a_hello.so");
  REQUIRE(result.rejected.size() == 2);
  for (const auto& [index, file] : {std::pair{0, "b_hello.so"}, std::pair{1, "c_hello.so"}}) {
    CHECK(result.rejected[index].path == d.plugins / file);
    CHECK_THAT(result.rejected[index].reason,
               Catch::Contains("duplicate plugin name \"hello\": a_hello.so has the same name"));
  }
  CHECK(catalog.probes_run() == 1);  // one content, one probe
}

TEST_CASE("several plugin directories: scanned in order, the earlier one wins a name",
          "[catalog][duplicates][dirs]") {
  Dirs d;
  const fs::path shipped = d.root / "shipped";
  fs::create_directory(shipped);
  fs::permissions(shipped, fs::perms(0755));
  // The user's directory first: its hello replaces the shipped one.
  copy_with_mode(example_plugin("hello"), d.plugins / "z_hello.so");
  copy_with_mode(example_plugin("hello"), shipped / "a_hello.so");
  copy_with_mode(example_plugin("hello_c"), shipped / "hello_c.so");
  Catalog catalog(std::vector<fs::path>{d.plugins, shipped}, d.shadow);
  CHECK(catalog.dir_rank(d.plugins) == 0);
  CHECK(catalog.dir_rank(shipped) == 1);
  CHECK(catalog.dir_rank(d.root / "elsewhere") == 2);
  const auto result = catalog.scan();
  REQUIRE(result.accepted.size() == 2);
  CHECK(result.accepted[0].path == d.plugins / "z_hello.so");  // not a_hello.so, first by name
  CHECK(result.accepted[1].path == shipped / "hello_c.so");
  REQUIRE(result.rejected.size() == 1);
  CHECK(result.rejected[0].path == shipped / "a_hello.so");
  CHECK_THAT(result.rejected[0].reason,
             Catch::Contains("duplicate plugin name \"hello\": " +
                             (d.plugins / "z_hello.so").string() + " has the same name") &&
                 Catch::Contains("the directory listed first in [host] plugin_dir wins"));

  SECTION("the other order: the shipped one wins") {
    Catalog reversed(std::vector<fs::path>{shipped, d.plugins}, d.shadow);
    const auto other = reversed.scan();
    REQUIRE(other.find("hello") != nullptr);
    CHECK(other.find("hello")->path == shipped / "a_hello.so");
    REQUIRE(other.rejected.size() == 1);
    CHECK(other.rejected[0].path == d.plugins / "z_hello.so");
  }
  SECTION("a bad directory is refused alone; the others still load") {
    ::chmod(d.plugins.c_str(), 0777);
    const auto other = catalog.scan();
    REQUIRE(other.accepted.size() == 2);
    CHECK(other.find("hello")->path == shipped / "a_hello.so");
    REQUIRE(other.rejected.size() == 1);
    CHECK(other.rejected[0].path == d.plugins);
    CHECK_THAT(other.rejected[0].reason, Catch::StartsWith("plugin directory: unsafe permissions"));
  }
  SECTION("a missing directory is refused alone") {
    Catalog missing(std::vector<fs::path>{d.root / "nope", shipped}, d.shadow);
    const auto other = missing.scan();
    CHECK(other.accepted.size() == 2);
    REQUIRE(other.rejected.size() == 1);
    CHECK(other.rejected[0].path == d.root / "nope");
    CHECK_THAT(other.rejected[0].reason, Catch::Contains("does not exist"));
  }
}

TEST_CASE("scan refuses symbolic links and unsafe permissions", "[catalog][permissions]") {
  Dirs d;
  copy_with_mode(example_plugin("hello"), d.root / "real_hello.so");
  fs::create_symlink(d.root / "real_hello.so", d.plugins / "link.so");
  copy_with_mode(example_plugin("hello_c"), d.plugins / "group_writable.so", 0664);
  Catalog catalog(d.plugins, d.shadow);

  SECTION("files") {
    const auto result = catalog.scan();
    CHECK(result.accepted.empty());
    const auto reasons = reasons_by_file(result);
    REQUIRE(reasons.size() == 2);
    CHECK_THAT(reasons.at("link.so"),
               Catch::Contains("is a symbolic link (to " + (d.root / "real_hello.so").string()));
    CHECK_THAT(reasons.at("group_writable.so"),
               Catch::Contains("group-writable (mode 0664)") && Catch::Contains("chmod go-w"));
    CHECK(catalog.probes_run() == 0);  // refused before any plugin code could run
  }
  SECTION("world-writable plugin_dir") {
    ::chmod(d.plugins.c_str(), 0777);
    const auto result = catalog.scan();
    CHECK(result.accepted.empty());
    REQUIRE(result.rejected.size() == 1);
    CHECK(result.rejected[0].path == d.plugins);
    CHECK_THAT(result.rejected[0].reason,
               Catch::StartsWith("plugin directory: unsafe permissions: ") &&
                   Catch::Contains("world-writable (mode 0777)") &&
                   Catch::Contains("chmod go-w " + d.plugins.string()));
  }
  SECTION("group-writable plugin_dir") {
    ::chmod(d.plugins.c_str(), 0775);
    const auto result = catalog.scan();
    REQUIRE(result.rejected.size() == 1);
    CHECK_THAT(result.rejected[0].reason, Catch::Contains("group-writable (mode 0775)"));
  }
  SECTION("missing plugin_dir") {
    Catalog missing(d.root / "nope", d.shadow);
    const auto result = missing.scan();
    REQUIRE(result.rejected.size() == 1);
    CHECK(result.rejected[0].path == d.root / "nope");
    CHECK_THAT(result.rejected[0].reason, Catch::Contains("does not exist"));
  }
  SECTION("a shadow directory that is a file") {
    fs::create_directories(d.shadow.parent_path());
    write_text(d.shadow, "in the way");
    const auto result = catalog.scan();
    REQUIRE(result.rejected.size() == 1);
    CHECK(result.rejected[0].path == d.shadow);
    CHECK_THAT(result.rejected[0].reason, Catch::Contains("is not a directory"));
  }
  SECTION("a world-writable shadow directory") {
    fs::create_directories(d.shadow);
    ::chmod(d.shadow.c_str(), 0777);
    const auto result = catalog.scan();
    REQUIRE(result.rejected.size() == 1);
    CHECK(result.rejected[0].path == d.shadow);
    CHECK_THAT(result.rejected[0].reason, Catch::Contains("shadow directory"));
  }
}

TEST_CASE("scan refuses a file owned by another user", "[catalog][permissions][needs-root]") {
  if (::geteuid() != 0) {
    JOBHOST_SKIP(
        "not root: cannot chown a file to another user; covered by the check_file_safety table");
  }
  Dirs d;
  copy_with_mode(example_plugin("hello"), d.plugins / "foreign.so");
  REQUIRE(::chown((d.plugins / "foreign.so").c_str(), 4242, 4242) == 0);
  Catalog catalog(d.plugins, d.shadow);
  const auto result = catalog.scan();
  REQUIRE(result.rejected.size() == 1);
  CHECK_THAT(result.rejected[0].reason,
             Catch::Contains("unsafe owner: owned by uid 4242") && Catch::Contains("chown root"));
  CHECK(catalog.probes_run() == 0);
}

TEST_CASE("probe_file checks one file without scanning the directory", "[catalog][probe_file]") {
  Dirs d;
  copy_with_mode(example_plugin("hello_c"), d.plugins / "hello_c.so");
  Catalog catalog(d.plugins, d.shadow);
  auto info = catalog.probe_file(d.plugins / "hello_c.so");
  REQUIRE(info.has_value());
  CHECK(info->name == "hello_c");
  CHECK(fs::exists(info->shadow_path));

  auto missing = catalog.probe_file(d.plugins / "gone.so");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().path == d.plugins / "gone.so");
  CHECK_THAT(missing.error().reason, Catch::Contains("cannot be read"));
}
