// `jobhost run-plugin FILE.so` (docs/cli.md): one isolated run of a plugin
// file, its output on the terminal, its outcome as the exit code, nothing
// recorded. Through the real binary, on the test plugins.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <utility>

#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost::testing;

namespace {

const std::string kPlugins = JOBHOST_PLUGIN_DIR;
const std::string kTestPlugins = JOBHOST_TEST_PLUGIN_DIR;

CommandResult run_plugin(const std::string& file, std::vector<std::string> options = {},
                         std::optional<uid_t> as_user = std::nullopt) {
  std::vector<std::string> args = {"run-plugin", file};
  args.insert(args.end(), options.begin(), options.end());
  return run_jobhost(args, std::chrono::seconds(60), as_user);
}

// A secret file as the host wants one: the test's user's, mode 0600.
fs::path secret_file(const fs::path& dir, const std::string& name, const std::string& value) {
  const fs::path file = dir / name;
  std::ofstream(file) << value;
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  return file;
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `jobhost run-plugin ARGS...` in the background, stdout and stderr into
// `out`; with TMPDIR=`tmp` when given, as user `as_user` when given (root only).
class Spawned {
 public:
  explicit Spawned(pid_t pid) : pid_(pid) {}
  ~Spawned() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  void signal(int signo) const { ::kill(pid_, signo); }
  // Its exit code; -1 when a signal killed it.
  int wait() {
    int status = 0;
    ::waitpid(std::exchange(pid_, -1), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_;
};

Spawned spawn_run_plugin(std::vector<std::string> args, const fs::path& out,
                         const std::optional<fs::path>& tmp = std::nullopt,
                         std::optional<uid_t> as_user = std::nullopt) {
  args.insert(args.begin(), {JOBHOST_BIN, "run-plugin"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    if (tmp) ::setenv("TMPDIR", tmp->c_str(), 1);
    if (as_user && (setgroups(0, nullptr) != 0 || setgid(*as_user) != 0 || setuid(*as_user) != 0)) {
      _exit(126);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) throw std::runtime_error("fork failed");
  return Spawned(pid);
}

std::set<std::string> temp_state_dirs() {
  std::set<std::string> out;
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path())) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("jobhost-run-plugin-")) out.insert(name);
  }
  return out;
}

}  // namespace

TEST_CASE("run-plugin runs a plugin file with params, output on stdout, exit 0", "[cli]") {
  const auto before = temp_state_dirs();
  auto r = run_plugin(kPlugins + "/hello.so", {"--param", "greeting=bonjour"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  // The plugin's log line as it came, then the summary.
  CHECK_THAT(r.out, Catch::Contains("[info] bonjour from run "));
  CHECK_THAT(r.out, Catch::Contains("\nhello 1.0.0: succeeded in "));
  CHECK_THAT(r.out, Catch::EndsWith(": said bonjour\n"));
  CHECK(r.err.empty());
  // Nothing left behind: the state directory was a temporary one.
  CHECK(temp_state_dirs() == before);
}

TEST_CASE("run-plugin: every host function reaches the plugin; output and metrics shown", "[cli]") {
  TempDir dir;
  const auto token = secret_file(dir.path(), "token", "s3cret");
  auto r = run_plugin(
      kTestPlugins + "/api_probe.so",
      {"--param", "color=blue", "--param", "shape=round", "--secret", "token=" + token.string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("[debug] debug line\n"));
  CHECK_THAT(r.out, Catch::Contains("[info] param color=blue\n"));
  CHECK_THAT(r.out, Catch::Contains("[warn] secret token matches\n"));
  CHECK_THAT(r.out, Catch::Contains("[error] missing param is unset\n"));
  CHECK_THAT(r.out, Catch::Contains("to stdout\n"));
  CHECK_THAT(r.out, Catch::Contains("to stderr\n"));
  CHECK_THAT(r.out, Catch::Contains("no newline at the end\n"));
  CHECK_THAT(r.out, Catch::Contains("api_probe 1.0.0: succeeded in "));
  CHECK_THAT(r.out, Catch::Contains(" attempt 1 "));
  CHECK_THAT(r.out, Catch::EndsWith(" (metrics: rows=42, seconds=1.5)\n"));

  SECTION("a secret the host would not read is named, and nothing runs") {
    fs::permissions(token, fs::perms::group_read, fs::perm_options::add);
    auto bad = run_plugin(kTestPlugins + "/api_probe.so", {"--secret", "token=" + token.string()});
    CHECK(bad.exit_code == 125);
    CHECK_THAT(bad.err, Catch::Contains("could not start the run"));
    CHECK_THAT(bad.err, Catch::Contains("token"));
    CHECK(bad.out.find("param color") == std::string::npos);
  }
}

TEST_CASE("run-plugin: the exit code says how the run ended", "[cli]") {
  struct Case {
    std::string plugin;
    std::vector<std::string> options;
    int exit_code;
    std::string summary;
  };
  const std::vector<Case> cases = {
      {"fail.so", {}, 1, "fail 1.0.0: failed in "},
      {"retry.so", {}, 75, "retry 1.0.0: failed in "},
      {"segv.so", {}, 1, "segv 1.0.0: crashed in "},
      {"sleeper.so",
       {"--timeout", "1s", "--param", "seconds=60"},
       124,
       "sleeper 1.0.0: timed_out in "},
  };
  for (const auto& c : cases) {
    auto r = run_plugin(kTestPlugins + "/" + c.plugin, c.options);
    INFO(c.plugin << "\n" << r.out << r.err);
    CHECK(r.exit_code == c.exit_code);
    CHECK_THAT(r.out, Catch::Contains(c.summary));
  }
}

TEST_CASE("run-plugin: --trigger and --event are what trigger_kind() and event() give", "[cli]") {
  TempDir dir;
  auto r = run_plugin(kTestPlugins + "/trigger_probe.so");
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::EndsWith(": trigger=manual attempt=1 event=none\n"));

  const fs::path event = dir.path() / "event.json";
  std::ofstream(event) << R"({ "files": ["/in/a.csv"] })";
  r = run_plugin(kTestPlugins + "/trigger_probe.so",
                 {"--trigger", "file", "--event", event.string()});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out,
             Catch::EndsWith(": trigger=file attempt=1 event={\"files\":[\"/in/a.csv\"]}\n"));
}

TEST_CASE("run-plugin: a file the catalog refuses gets the catalog's reason", "[cli]") {
  TempDir dir;
  const fs::path text = dir.path() / "notes.so";
  std::ofstream(text) << "not an ELF file\n";
  auto r = run_plugin(text.string());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 126);
  CHECK_THAT(r.err, Catch::StartsWith(text.string() + ": "));
  CHECK_THAT(r.err, Catch::Contains("ELF"));
  CHECK(r.out.empty());

  r = run_plugin(kTestPlugins + "/catalog_no_entry.so");
  CHECK(r.exit_code == 126);
  CHECK_THAT(r.err, Catch::Contains("jobhost_plugin_v1"));

  r = run_plugin(kTestPlugins + "/catalog_abi_major_99.so");
  CHECK(r.exit_code == 126);
  CHECK_THAT(r.err, Catch::Contains("99"));

  // Writable by others: the daemon would not load it, nor does run-plugin.
  const fs::path open = dir.path() / "hello.so";
  fs::copy_file(kPlugins + "/hello.so", open);
  fs::permissions(open, fs::perms::others_write, fs::perm_options::add);
  r = run_plugin(open.string());
  CHECK(r.exit_code == 126);
  CHECK_THAT(r.err, Catch::Contains("chmod"));

  r = run_plugin((dir.path() / "missing.so").string());
  CHECK(r.exit_code == 126);
  CHECK_THAT(r.err, Catch::Contains("missing.so: "));
}

TEST_CASE("run-plugin: usage errors", "[cli]") {
  const std::string hello = kPlugins + "/hello.so";
  // Options may come before FILE; each --param takes one word.
  auto r = run_jobhost({"run-plugin", "--param", "greeting=hey", hello});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("[info] hey from run "));
  r = run_jobhost({"run-plugin", hello, "--param", "greeting=hey", "extra=1"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("extra=1"));

  const std::vector<std::vector<std::string>> cases = {
      {"--param", "novalue"}, {"--param", "=v"},     {"--secret", "token"},      {"--timeout", "0"},
      {"--timeout", "soon"},  {"--trigger", "cron"}, {"--event", "/nonexistent"}};
  for (const auto& options : cases) {
    auto r = run_plugin(hello, options);
    INFO(options[0] << " " << options[1] << "\n" << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(options[0]));
    CHECK(r.out.empty());
  }
}

TEST_CASE("run-plugin: the run is isolated as the daemon's runs are", "[cli]") {
  auto r = run_plugin(kTestPlugins + "/inspect.so");
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("no_new_privs=1"));
  CHECK_THAT(r.out, Catch::Contains("stdin_is_dev_null=1"));
  CHECK_THAT(r.out, Catch::Contains("group_leader=1"));
  CHECK_THAT(r.out, Catch::Contains("rlimit_nofile=256"));
  if (::geteuid() == 0) {
    // A dynamic user of the plugin's own, not root.
    CHECK_THAT(r.out, Catch::Contains(" uid="));
    CHECK(r.out.find(" uid=0,") == std::string::npos);
    CHECK(r.out.find(" uid=0)") == std::string::npos);
  }
}

TEST_CASE("run-plugin as a user that is not root", "[cli][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("needs root to run jobhost as another user");
  TempDir dir;
  const fs::path tmp = dir.path() / "tmp";
  fs::create_directory(tmp);
  REQUIRE(::chown(tmp.c_str(), 65534, 65534) == 0);
  Spawned run = spawn_run_plugin({kPlugins + "/hello.so", "--param", "greeting=hej"},
                                 dir.path() / "out", tmp, 65534);
  const int status = run.wait();
  const std::string out = read_file(dir.path() / "out");
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("[info] hej from run "));
  CHECK_THAT(out, Catch::Contains("hello 1.0.0: succeeded in "));
  CHECK(fs::is_empty(tmp));  // its temporary state directory is gone
}

TEST_CASE("run-plugin: SIGINT cancels the run; the plugin sees cancelled()", "[cli]") {
  TempDir dir;
  const fs::path started = run_writable_dir(dir.path()) / "started";
  Spawned run = spawn_run_plugin(
      {kTestPlugins + "/cancel_aware.so", "--param", "started_file=" + started.string()},
      dir.path() / "out");
  // Under way once the plugin's run wrote its file.
  const bool under_way = wait_for([&] { return fs::exists(started); }, std::chrono::seconds(30));
  run.signal(SIGINT);
  const int status = run.wait();
  const std::string out = read_file(dir.path() / "out");
  INFO(out);
  REQUIRE(under_way);
  CHECK(status == 130);
  CHECK_THAT(out, Catch::Contains("[info] cancel requested, cleaning up\n"));
  CHECK_THAT(out, Catch::Contains("cancel_aware 1.0.0: cancelled in "));
}
