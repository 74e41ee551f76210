// The pure parts of hot reload: job-table diff, plugin diff, which build is
// in service, restart-only settings, shadow-copy collection, inotify event
// meaning, debounce and polling decisions.
#include <sys/inotify.h>

#include <catch2/catch.hpp>

#include "reload/reload.h"
#include "reload/watcher.h"

using namespace jobhost;
using namespace jobhost::reload;
using jobhost::config::diff_jobs;
using jobhost::config::JobDiff;
using namespace std::chrono_literals;

namespace {

config::JobConfig job(const std::string& name, const std::string& hash) {
  config::JobConfig j;
  j.name = name;
  j.definition_hash = hash;
  return j;
}

catalog::PluginInfo build(const std::string& name, const std::string& version,
                          const std::string& sha, const std::string& file) {
  catalog::PluginInfo p;
  p.name = name;
  p.version = version;
  p.sha256 = sha;
  p.path = "/p/" + file;
  p.shadow_path = "/s/" + sha + ".so";
  return p;
}

std::string sha_of(char c) {
  return std::string(64, c);
}

}  // namespace

TEST_CASE("diff_jobs sorts jobs into added, removed, changed and unchanged", "[reload]") {
  struct Case {
    std::vector<config::JobConfig> before, after;
    std::vector<std::string> added, removed, changed, unchanged;
  };
  auto [c] = GENERATE(table<Case>({
      {Case{{}, {}, {}, {}, {}, {}}},
      {Case{{job("a", "1")}, {job("a", "1")}, {}, {}, {}, {"a"}}},
      {Case{{job("a", "1")}, {job("a", "2")}, {}, {}, {"a"}, {}}},
      {Case{{job("a", "1")}, {job("b", "1")}, {"b"}, {"a"}, {}, {}}},
      {Case{{job("a", "1"), job("b", "1"), job("c", "1")},
            {job("c", "2"), job("d", "1"), job("a", "1")},
            {"d"},
            {"b"},
            {"c"},
            {"a"}}},
  }));
  JobDiff diff = diff_jobs(c.before, c.after);
  CHECK(diff.added == c.added);
  CHECK(diff.removed == c.removed);
  CHECK(diff.changed == c.changed);
  CHECK(diff.unchanged == c.unchanged);
  CHECK(diff.empty() == (c.added.empty() && c.removed.empty() && c.changed.empty()));
}

TEST_CASE("diff_plugins lists only plugins whose build changes", "[reload]") {
  catalog::ScanResult before, after;
  before.accepted = {build("hello", "1.0.0", sha_of('a'), "hello.so"),
                     build("gone", "1.0.0", sha_of('b'), "gone.so"),
                     build("same", "1.0.0", sha_of('c'), "same.so")};
  after.accepted = {build("hello", "2.0.0", sha_of('d'), "hello.so"),
                    build("same", "1.0.0", sha_of('c'), "same.so"),
                    build("new", "0.1.0", sha_of('e'), "new.so")};
  auto changes = diff_plugins(before, after);
  REQUIRE(changes.size() == 3);
  CHECK(changes[0].name == "gone");
  CHECK(changes[0].before);
  CHECK_FALSE(changes[0].after);
  CHECK(describe(changes[0]) == "gone removed (was 1.0.0 (sha256 bbbbbbbbbbbb))");
  CHECK(changes[1].name == "hello");
  CHECK(describe(changes[1]) == "hello 1.0.0 (sha256 aaaaaaaaaaaa) -> 2.0.0 (sha256 dddddddddddd)");
  CHECK(changes[2].name == "new");
  CHECK(describe(changes[2]) == "new added: 0.1.0 (sha256 eeeeeeeeeeee)");
}

TEST_CASE("served_plugins keeps the last good build of a rejected file", "[reload]") {
  std::map<std::string, PluginFile> files;
  files["a_hello.so"] = {"/p/a_hello.so", build("hello", "1.0.0", sha_of('a'), "a_hello.so"),
                         "not an ELF file"};
  files["b_new.so"] = {"/p/b_new.so", std::nullopt, "crashed while loading (SIGSEGV)"};
  files["c_dup.so"] = {"/p/c_dup.so", build("hello", "3.0.0", sha_of('c'), "c_dup.so"),
                       std::nullopt};
  files["d_ok.so"] = {"/p/d_ok.so", build("ok", "1.0.0", sha_of('d'), "d_ok.so"), std::nullopt};
  auto served = served_plugins(files);
  REQUIRE(served.accepted.size() == 2);
  CHECK(served.find("hello")->version == "1.0.0");  // first by file name wins
  CHECK(served.find("ok"));
  REQUIRE(served.rejected.size() == 3);
  CHECK(served.rejected[0].path == "/p/a_hello.so");
  CHECK_THAT(served.rejected[0].reason,
             Catch::StartsWith("not an ELF file") &&
                 Catch::Contains("build in service: 1.0.0 (sha256 aaaaaaaaaaaa)"));
  CHECK(served.rejected[1].path == "/p/b_new.so");
  CHECK(served.rejected[1].reason == "crashed while loading (SIGSEGV)");
  CHECK(served.rejected[2].path == "/p/c_dup.so");
  CHECK_THAT(served.rejected[2].reason, Catch::StartsWith("duplicate plugin name \"hello\""));
}

TEST_CASE("served_plugins: of two directories, the earlier one's file wins a name", "[reload]") {
  auto in_dir = [](catalog::PluginInfo p, const std::string& path) {
    p.path = path;
    return p;
  };
  std::map<std::string, PluginFile> files;
  // Keyed by path: "/a/..." sorts first, but "/z/" is the first directory.
  files["/a/hello.so"] = {"/a/hello.so",
                          in_dir(build("hello", "1.0.0", sha_of('a'), "x"), "/a/hello.so"),
                          std::nullopt, 1};
  files["/z/zz.so"] = {"/z/zz.so", in_dir(build("hello", "2.0.0", sha_of('b'), "x"), "/z/zz.so"),
                       std::nullopt, 0};
  auto served = served_plugins(files);
  REQUIRE(served.accepted.size() == 1);
  CHECK(served.find("hello")->version == "2.0.0");
  REQUIRE(served.rejected.size() == 1);
  CHECK(served.rejected[0].path == "/a/hello.so");
  CHECK_THAT(served.rejected[0].reason,
             Catch::Contains("duplicate plugin name \"hello\": /z/zz.so has the same name"));
}

TEST_CASE("settings_needing_restart names what cannot change live", "[reload]") {
  config::Config running;
  running.host.state_dir = "/var/a";
  running.host.plugin_dirs = {"/p/a"};
  config::Config loaded = running;
  CHECK(settings_needing_restart(running, loaded).empty());
  loaded.host.max_concurrency = 9;  // live
  loaded.host.timezone = "Europe/Berlin";
  loaded.host.include = {"/etc/jobhost/jobs.d/*.toml"};  // only changes jobs
  CHECK(settings_needing_restart(running, loaded).empty());
  loaded.host.state_dir = "/var/b";
  loaded.host.log_format = config::LogFormat::json;
  loaded.http.listen = "";
  CHECK(settings_needing_restart(running, loaded) ==
        std::vector<std::string>{"state_dir", "log_format", "http.listen"});
  loaded.host.plugin_dirs = {"/p/a", "/p/b"};
  CHECK(settings_needing_restart(running, loaded) ==
        std::vector<std::string>{"state_dir", "plugin_dir", "log_format", "http.listen"});
}

TEST_CASE("shadow_files_to_remove keeps what is in use or young", "[reload]") {
  const auto now = std::chrono::system_clock::time_point(std::chrono::hours(1000));
  const auto old = now - 2h;
  const auto young = now - 10min;
  std::vector<ShadowFile> files = {
      {sha_of('a') + ".so", old},    // kept: in use
      {sha_of('b') + ".so", old},    // removed
      {sha_of('c') + ".so", young},  // kept: young
      {".incoming-AbC123", old},     // removed: a copy a crash left
      {".incoming-Young1", young},   // kept: may be in progress
      {"notes.txt", old},            // not ours: never touched
      {"ABC.so", old},               // not a shadow name
  };
  auto doomed = shadow_files_to_remove(files, {sha_of('a')}, now, 1h);
  CHECK(doomed == std::vector<std::string>{".incoming-AbC123", sha_of('b') + ".so"});
}

TEST_CASE("classify_event: what an inotify event asks to reload", "[watcher]") {
  struct Case {
    std::string name;
    uint32_t mask;
    bool plugin_dir, config_dir;
    std::set<std::string> plugins;
    bool all, config;
    std::vector<std::string> include_globs = {};  // of the patterns in this directory
  };
  auto [c] = GENERATE(table<Case>({
      {Case{"hello.so", IN_CLOSE_WRITE, true, false, {"hello.so"}, false, false}},
      {Case{"hello.so", IN_MOVED_TO, true, false, {"hello.so"}, false, false}},
      {Case{"hello.so", IN_MOVED_FROM, true, false, {"hello.so"}, false, false}},
      {Case{"hello.so", IN_DELETE, true, false, {"hello.so"}, false, false}},
      {Case{"hello.so", IN_MODIFY, true, false, {}, false, false}},  // still being written
      {Case{"hello.so", IN_ATTRIB, true, false, {"hello.so"}, false, false}},  // chmod, chown
      {Case{"", IN_ATTRIB | IN_ISDIR, true, false, {}, true, false}},          // plugin_dir's own
      {Case{"jobhost.toml", IN_ATTRIB, false, true, {}, false, false}},        // touch
      {Case{".hello.so.tmp", IN_CLOSE_WRITE, true, false, {}, false, false}},
      {Case{".hello.so", IN_CLOSE_WRITE, true, false, {}, false, false}},  // hidden
      {Case{"hello.so.part", IN_CLOSE_WRITE, true, false, {}, false, false}},
      {Case{"jobhost.toml", IN_MOVED_TO, false, true, {}, false, true}},
      {Case{"jobhost.toml", IN_CLOSE_WRITE, false, true, {}, false, true}},
      {Case{"jobhost.toml~", IN_CLOSE_WRITE, false, true, {}, false, false}},
      {Case{"other.toml", IN_CLOSE_WRITE, false, true, {}, false, false}},
      {Case{"..data", IN_MOVED_TO, false, true, {}, false, true}},  // a ConfigMap update
      {Case{"..data", IN_MOVED_TO, true, false, {}, false, false}},
      {Case{"jobhost.toml", IN_CLOSE_WRITE, true, false, {}, false, false}},  // not its dir
      {Case{"x.so", IN_CLOSE_WRITE, true, true, {"x.so"}, false, false}},     // one dir for both
      {Case{"", IN_Q_OVERFLOW, false, false, {}, true, true}},
      {Case{"", IN_DELETE_SELF, true, false, {}, true, false}},
      // An include directory: the patterns' globs decide, not the suffix.
      {Case{"b.toml", IN_CLOSE_WRITE, false, false, {}, false, true, {"*.toml"}}},
      {Case{"b.toml", IN_MOVED_TO, false, false, {}, false, true, {"*.toml"}}},
      {Case{"b.toml", IN_MOVED_FROM, false, false, {}, false, true, {"*.toml"}}},
      {Case{"b.toml", IN_DELETE, false, false, {}, false, true, {"*.toml"}}},
      {Case{"b.toml", IN_CREATE, false, false, {}, false, false, {"*.toml"}}},  // being written
      {Case{"b.toml", IN_ATTRIB, false, false, {}, false, false, {"*.toml"}}},
      {Case{".b.toml.swp", IN_CLOSE_WRITE, false, false, {}, false, false, {"*.toml"}}},
      {Case{"b.toml~", IN_CLOSE_WRITE, false, false, {}, false, false, {"*.toml"}}},
      {Case{"4913", IN_CLOSE_WRITE, false, false, {}, false, false, {"*.toml"}}},
      {Case{"b.conf", IN_CLOSE_WRITE, false, false, {}, false, true, {"*.toml", "*.conf"}}},
      {Case{"..data", IN_MOVED_TO, false, false, {}, false, true, {"*.toml"}}},
      {Case{"", IN_DELETE_SELF, false, false, {}, false, true, {"*.toml"}}},
      // The config's own directory, included too.
      {Case{"jobhost.toml", IN_CLOSE_WRITE, false, true, {}, false, true, {"jobs-*.toml"}}},
      {Case{"jobs-a.toml", IN_CLOSE_WRITE, false, true, {}, false, true, {"jobs-*.toml"}}},
      {Case{"other.toml", IN_CLOSE_WRITE, false, true, {}, false, false, {"jobs-*.toml"}}},
  }));
  INFO(c.name << " mask " << c.mask);
  ChangeSet changes =
      classify_event(c.name, c.mask, c.plugin_dir, c.config_dir, "jobhost.toml", c.include_globs);
  CHECK(changes.plugin_files == c.plugins);
  CHECK(changes.all_plugins == c.all);
  CHECK(changes.config == c.config);
}

TEST_CASE("reload_due: a quiet period, bounded by a maximum wait", "[watcher]") {
  using T = std::chrono::steady_clock::time_point;
  const T t0{std::chrono::seconds(100)};
  struct Case {
    std::chrono::milliseconds last_after_first, due_after_first;
  };
  auto [c] = GENERATE(table<Case>({
      {Case{0ms, 50ms}},       // one event: a quiet period after it
      {Case{30ms, 80ms}},      // another event extends the quiet period
      {Case{960ms, 1000ms}},   // a steady trickle: no later than max_wait
      {Case{5000ms, 1000ms}},  // (already overdue: at once)
  }));
  CHECK(reload_due(t0, t0 + c.last_after_first, 50ms, 1000ms) == t0 + c.due_after_first);
}

TEST_CASE("stable_changes: polling reports a file once it stopped changing", "[watcher]") {
  const FileStamp a{1, 100, 10}, a_growing{1, 200, 20}, b{2, 50, 30};
  struct Case {
    DirSnapshot reported, previous, current;
    std::set<std::string> expected;
  };
  auto [c] = GENERATE_COPY(table<Case>({
      {Case{{{"x.so", a}}, {{"x.so", a}}, {{"x.so", a}}, {}}},          // nothing new
      {Case{{{"x.so", a}}, {{"x.so", a}}, {{"x.so", a_growing}}, {}}},  // being written
      {Case{{{"x.so", a}}, {{"x.so", a_growing}}, {{"x.so", a_growing}}, {"x.so"}}},  // settled
      {Case{{}, {}, {{"y.so", b}}, {}}},                   // new: wait one poll
      {Case{{}, {{"y.so", b}}, {{"y.so", b}}, {"y.so"}}},  // new, settled
      {Case{{{"x.so", a}}, {{"x.so", a}}, {}, {}}},        // gone once: wait
      {Case{{{"x.so", a}}, {}, {}, {"x.so"}}},             // gone twice
  }));
  CHECK(stable_changes(c.reported, c.previous, c.current) == c.expected);
}

TEST_CASE("ChangeSet::merge accumulates a burst", "[watcher]") {
  ChangeSet a;
  a.plugin_files = {"a.so"};
  ChangeSet b;
  b.plugin_files = {"b.so"};
  b.config = true;
  CHECK_FALSE(b.empty());
  a.merge(b);
  CHECK(a.plugin_files == std::set<std::string>{"a.so", "b.so"});
  CHECK(a.config);
  CHECK_FALSE(a.all_plugins);
  CHECK(ChangeSet{}.empty());
}
