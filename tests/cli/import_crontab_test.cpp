// `jobhost import-crontab` end to end: each crontab of the table imports,
// the result passes `jobhost validate` with the exec plugin in plugin_dir,
// and `jobhost next` gives the instants cron runs the line at (worked out by
// hand in tests/crontab/crontab_cases.h).
#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "crontab/crontab_cases.h"
#include "support/harness.h"

using namespace jobhost::testing;
using nlohmann::json;

namespace {

fs::path write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// A temp dir whose plugins/ holds the exec plugin, as a packaged host's does.
void install_exec(const fs::path& dir) {
  const fs::path exec = fs::path(JOBHOST_PLUGIN_DIR) / "exec.so";
  INFO("the exec plugin is built by the `exec` target: " << exec);
  REQUIRE(fs::exists(exec));
  install_plugins(dir, {"exec.so"});
}

}  // namespace

TEST_CASE("import-crontab: every case validates and fires at cron's instants", "[cli][crontab]") {
  int index = 0;
  for (const auto& c : crontab_cases::cases()) {
    ++index;
    INFO("case " << index << ":\n" << c.crontab);
    TempDir dir;
    install_exec(dir.path());
    const fs::path crontab = write_file(dir / "crontab", c.crontab);
    std::vector<std::string> args = {"import-crontab", crontab.string()};
    if (c.system) args.push_back("--system");
    const auto imported = run_jobhost(args);
    INFO(imported.err);
    REQUIRE(imported.exit_code == 0);
    INFO(imported.out);

    const fs::path config = write_config(dir.path(), imported.out);
    const auto valid = run_jobhost({"validate", "--config", config.string()});
    INFO(valid.out << valid.err);
    REQUIRE(valid.exit_code == 0);
    if (c.instants.empty()) continue;

    const auto next =
        run_jobhost({"next", "--config", config.string(), c.name, "--from", crontab_cases::kFrom,
                     "--count", std::to_string(c.instants.size()), "--json"});
    INFO(next.err);
    REQUIRE(next.exit_code == 0);
    std::vector<std::string> expected(c.instants.begin(), c.instants.end());
    CHECK(json::parse(next.out).get<std::vector<std::string>>() == expected);
  }
}

TEST_CASE("import-crontab: a line it cannot carry is reported, the rest still printed",
          "[cli][crontab]") {
  TempDir dir;
  install_exec(dir.path());
  const fs::path crontab = write_file(dir / "crontab",
                                      "MAILTO=ops@example.com\n"
                                      "0 0 30 2 * /usr/local/bin/never\n"
                                      "0 9 1-7 * 1 /usr/local/bin/first-week\n"
                                      "0 22-2 * * * /usr/local/bin/night\n");
  const auto r = run_jobhost({"import-crontab", crontab.string(), "--timezone", "UTC"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(crontab.string() + ":2: error: ") != std::string::npos);
  CHECK(r.err.find("never fires") != std::string::npos);
  CHECK(r.err.find(crontab.string() + ":4: error: cron accepts this line but never runs it") !=
        std::string::npos);
  CHECK(r.out.find("# line 2 not imported: ") != std::string::npos);
  CHECK(r.out.find("# line 4 not imported: ") != std::string::npos);
  CHECK(r.out.find("[jobs.first-week]") != std::string::npos);
  CHECK(r.out.find("# line 1: MAILTO=ops@example.com: not carried") != std::string::npos);
  // What it printed is a config all the same.
  const fs::path config = write_config(dir.path(), r.out);
  const auto valid = run_jobhost({"validate", "--config", config.string()});
  INFO(valid.err);
  CHECK(valid.exit_code == 0);
}

TEST_CASE("import-crontab: stdin, stable output, flags", "[cli][crontab]") {
  TempDir dir;
  const std::string text =
      "CRON_TZ=Asia/Tokyo\n0 5 * * * /usr/local/bin/a\n0 6 * * * b > /dev/null\n";
  const fs::path crontab = write_file(dir / "crontab", text);

  SECTION("- reads stdin; the same input gives the same output") {
    const std::string cmd =
        fmt::format("'{}' import-crontab - < '{}'", JOBHOST_BIN, crontab.string());
    std::string out;
    FILE* pipe = ::popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    const int status = ::pclose(pipe);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(out.starts_with(
        "# Jobs imported by `jobhost import-crontab` from <stdin> (a user crontab)."));
    const auto again = run_jobhost({"import-crontab", crontab.string()});
    CHECK(again.exit_code == 0);
    // The same but for the source named in the header.
    auto body = [](const std::string& s) { return s.substr(s.find('\n')); };
    CHECK(body(again.out) == body(out));
    CHECK(run_jobhost({"import-crontab", crontab.string()}).out == again.out);
  }
  SECTION("--user and --system exclude each other; a missing file is exit 1") {
    CHECK(run_jobhost({"import-crontab", crontab.string(), "--system", "--user", "alice"})
              .exit_code == 2);
    CHECK(run_jobhost({"import-crontab"}).exit_code == 2);
    const auto missing = run_jobhost({"import-crontab", (dir / "nope").string()});
    CHECK(missing.exit_code == 1);
    CHECK(missing.err.find("cannot read the crontab") != std::string::npos);
    const auto zone = run_jobhost({"import-crontab", crontab.string(), "--timezone", "Mars/Base"});
    CHECK(zone.exit_code == 1);
  }
  SECTION("jobs without CRON_TZ: a note on stderr, unless --timezone") {
    const fs::path plain = write_file(dir / "plain", "0 5 * * * /usr/local/bin/a\n");
    const auto r = run_jobhost({"import-crontab", plain.string()});
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("note: 1 job(s) have no CRON_TZ") != std::string::npos);
    const auto pinned =
        run_jobhost({"import-crontab", plain.string(), "--timezone", "Europe/Berlin"});
    CHECK(pinned.exit_code == 0);
    CHECK(pinned.err.empty());
    CHECK(pinned.out.find("timezone = \"Europe/Berlin\"") != std::string::npos);
  }
}
