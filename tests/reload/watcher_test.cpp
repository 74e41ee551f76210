// The watcher on real directories: which files of the include patterns ask
// for a config reload, with inotify and with polling, as the patterns change.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "reload/watcher.h"
#include "support/temp_dir.h"

using namespace jobhost::reload;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& file, std::string_view text) {
  std::ofstream(file) << text;
}

// Two plugin directories, a config file and jobs.d/ watched with include "jobs.d/*.toml".
class Rig {
 public:
  explicit Rig(bool polling)
      : watcher_(
            io_, std::vector<fs::path>{dir_ / "plugins", dir_ / "more"}, dir_ / "jobhost.toml",
            [this](ChangeSet changes) {
              config_reloads_ += changes.config ? 1 : 0;
              plugin_files_.insert(changes.plugin_files.begin(), changes.plugin_files.end());
            },
            WatcherOptions{.quiet = 10ms,
                           .max_wait = 100ms,
                           .poll_interval = 50ms,
                           .force_polling = polling}) {
    fs::create_directories(dir_ / "plugins");
    fs::create_directories(dir_ / "more");
    fs::create_directories(jobs());
    write(dir_ / "jobhost.toml", "");
    watcher_.watch_includes({jobs() / "*.toml"});
    watcher_.start();
  }

  fs::path dir() const { return dir_.path(); }
  fs::path jobs() const { return dir_ / "jobs.d"; }
  Watcher& watcher() { return watcher_; }

  // Runs the loop until a config reload is asked, for at most `how_long`.
  bool config_reloaded_within(std::chrono::milliseconds how_long) {
    config_reloads_ = 0;
    const auto end = std::chrono::steady_clock::now() + how_long;
    while (config_reloads_ == 0 && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(10ms);
    }
    return config_reloads_ > 0;
  }

  // Runs the loop until the plugin files reported are `want` (paths), for
  // at most `how_long`; what was reported.
  std::set<std::string> plugin_files_within(const std::set<std::string>& want,
                                            std::chrono::milliseconds how_long) {
    plugin_files_.clear();
    const auto end = std::chrono::steady_clock::now() + how_long;
    while (plugin_files_ != want && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(10ms);
    }
    return plugin_files_;
  }

 private:
  jobhost::testing::TempDir dir_;
  boost::asio::io_context io_;
  int config_reloads_ = 0;
  std::set<std::string> plugin_files_;
  Watcher watcher_;
};

}  // namespace

TEST_CASE("watcher: files the include patterns match reload the config, others do not",
          "[watcher]") {
  const bool polling = GENERATE(false, true);
  INFO((polling ? "polling" : "inotify"));
  Rig rig(polling);
  REQUIRE(rig.watcher().polling() == polling);
  const auto settle = polling ? 400ms : 150ms;

  write(rig.jobs() / "a.toml", "[jobs.a]\n");
  CHECK(rig.config_reloaded_within(1s));
  // An editor's swap and backup files, a hidden file: the glob does not match them.
  write(rig.jobs() / ".a.toml.swp", "x");
  write(rig.jobs() / "a.toml~", "x");
  write(rig.jobs() / ".b.toml", "x");
  CHECK_FALSE(rig.config_reloaded_within(settle));
  // A file renamed in, a symbolic link made, a file removed.
  write(rig.jobs() / ".c.toml.tmp", "[jobs.c]\n");
  fs::rename(rig.jobs() / ".c.toml.tmp", rig.jobs() / "c.toml");
  CHECK(rig.config_reloaded_within(1s));
  write(rig.dir() / "d.toml", "[jobs.d]\n");
  fs::create_symlink("../d.toml", rig.jobs() / "d.toml");
  CHECK(rig.config_reloaded_within(1s));
  fs::remove(rig.jobs() / "a.toml");
  CHECK(rig.config_reloaded_within(1s));

  // The patterns change: the old directory no longer counts, the new one does.
  fs::create_directories(rig.dir() / "more.d");
  write(rig.dir() / "more.d" / "x.conf", "[jobs.x]\n");
  rig.watcher().watch_includes({rig.dir() / "more.d" / "*.conf"});
  CHECK_FALSE(rig.config_reloaded_within(settle));  // what is there was just read
  write(rig.jobs() / "e.toml", "[jobs.e]\n");
  CHECK_FALSE(rig.config_reloaded_within(settle));
  write(rig.dir() / "more.d" / "y.conf", "[jobs.y]\n");
  CHECK(rig.config_reloaded_within(1s));
}

TEST_CASE("watcher: plugin files of each plugin directory are reported by path", "[watcher]") {
  const bool polling = GENERATE(false, true);
  INFO((polling ? "polling" : "inotify"));
  Rig rig(polling);
  REQUIRE(rig.watcher().polling() == polling);
  const auto wait = polling ? 2s : 1s;
  const fs::path first = rig.dir() / "plugins" / "a.so";
  const fs::path second = rig.dir() / "more" / "a.so";
  write(second, "x");
  CHECK(rig.plugin_files_within({second.string()}, wait) == std::set<std::string>{second.string()});
  write(first, "x");
  CHECK(rig.plugin_files_within({first.string()}, wait) == std::set<std::string>{first.string()});
  fs::remove(second);
  CHECK(rig.plugin_files_within({second.string()}, wait) == std::set<std::string>{second.string()});
}
