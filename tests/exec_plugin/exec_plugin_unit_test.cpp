// The exec plugin's run() called in this process with a fake host table:
// params the loader would never write (the plugin treats them as untrusted),
// more stdin than a pipe holds, and a cancel passed on to a command that left
// the run's process group.
#include <dlfcn.h>
#include <jobhost/plugin.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

namespace {

// What the fake host gives the run and what it keeps of it.
struct FakeRun {
  std::map<std::string, std::string> params;
  bool cancelled = false;
  int cancel_checks = 0;
  std::string kill_on_cancel;  // a command line ("sleep\0N\0") SIGKILLed after a while
  std::string message;
  std::map<std::string, double> metrics;
  int heartbeats = 0;
};
FakeRun* g_run = nullptr;
// About ten seconds of the plugin's wait (it looks every 250 ms).
constexpr int kCancelChecksBeforeKill = 40;

void fake_log(jobhost_run*, int32_t, const char*) {}
const char* fake_param(jobhost_run*, const char* key) {
  const auto it = g_run->params.find(key ? key : "");
  return it == g_run->params.end() ? nullptr : it->second.c_str();
}
const char* fake_secret(jobhost_run*, const char*) {
  return nullptr;
}
void fake_heartbeat(jobhost_run*, double) {
  ++g_run->heartbeats;
}
int32_t fake_cancelled(jobhost_run*) {
  if (g_run->cancelled && ++g_run->cancel_checks == kCancelChecksBeforeKill) {
    // The plugin has not passed the cancel on for a while: end the command
    // so that the test fails (on its message) rather than hang.
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::ifstream in(entry.path() / "cmdline", std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      if (!g_run->kill_on_cancel.empty() && text.str() == g_run->kill_on_cancel) {
        ::kill(std::stoi(entry.path().filename()), SIGKILL);
      }
    }
  }
  return g_run->cancelled ? 1 : 0;
}
void fake_metric(jobhost_run*, const char* name, double value) {
  g_run->metrics[name] = value;
}
void fake_set_message(jobhost_run*, const char* message) {
  g_run->message = message;
}
const char* fake_run_id(jobhost_run*) {
  return "run-1";
}
uint32_t fake_attempt(jobhost_run*) {
  return 1;
}
int64_t fake_scheduled_for(jobhost_run*) {
  return 0;
}
const char* fake_trigger_kind(jobhost_run*) {
  return "manual";
}
const char* fake_event(jobhost_run*) {
  return nullptr;
}

const jobhost_host_api kFakeApi = {
    sizeof(jobhost_host_api), fake_log,          fake_param,       fake_secret, fake_heartbeat,
    fake_cancelled,           fake_metric,       fake_set_message, fake_run_id, fake_attempt,
    fake_scheduled_for,       fake_trigger_kind, fake_event};

const jobhost_plugin& exec_plugin() {
  static const jobhost_plugin* plugin = [] {
    void* handle = ::dlopen(JOBHOST_PLUGIN_DIR "/exec.so", RTLD_NOW | RTLD_LOCAL);
    REQUIRE(handle != nullptr);
    auto entry = reinterpret_cast<jobhost_entry_fn>(::dlsym(handle, JOBHOST_ENTRY_SYMBOL));
    REQUIRE(entry != nullptr);
    return entry();
  }();
  return *plugin;
}

int32_t run(FakeRun& fake) {
  g_run = &fake;
  // As in a run's process (whatever this one inherited): the plugin must
  // take care of SIGPIPE itself.
  ::signal(SIGPIPE, SIG_DFL);
  const jobhost_plugin& plugin = exec_plugin();
  CHECK(std::string(plugin.name) == "exec");
  const int32_t result = plugin.run(&kFakeApi, reinterpret_cast<jobhost_run*>(&fake));
  g_run = nullptr;
  return result;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("exec plugin: unusable params fail the run with a reason, never crash",
          "[exec-plugin][unit]") {
  struct Case {
    std::map<std::string, std::string> params;
    const char* says;
  };
  const std::string not_argv =
      "the command param is not a JSON array of strings naming a program, like "
      "[\"/usr/local/bin/backup\", \"--full\"] (set command = [...] in the job, not in params)";
  const Case cases[] = {
      {{}, "no command: set command = [\"/path/to/program\", \"arg\"] in the job"},
      {{{"command", "/bin/date"}}, not_argv.c_str()},
      {{{"command", "[\"/bin/date\""}}, not_argv.c_str()},
      {{{"command", "[]"}}, not_argv.c_str()},
      {{{"command", "[1]"}}, not_argv.c_str()},
      {{{"command", "{\"argv\": [\"/bin/date\"]}"}}, not_argv.c_str()},
      {{{"command", "\"/bin/date\""}}, not_argv.c_str()},
      {{{"command", "[\"/bin/da\\u0000te\"]"}}, "an argument of the command contains a NUL byte"},
      {{{"command", "[\"\"]"}}, "the command's program (its first element) is empty"},
      {{{"command", "[\"/bin/date\"]"}, {"shell", "yes"}},
       "the shell param is \"yes\", not \"true\" or \"false\""},
      {{{"command", ""}, {"shell", "true"}}, "the command is empty"},
      {{{"command", "[\"/bin/date\"]"}, {"cwd", ""}}, "the cwd param is empty"},
  };
  for (const auto& c : cases) {
    FakeRun fake;
    fake.params = c.params;
    INFO((c.params.contains("command") ? c.params.at("command") : "(no command)"));
    CHECK(run(fake) == JOBHOST_FAIL);
    CHECK(fake.message == c.says);
    CHECK(fake.metrics.empty());
  }
  // shell = "false" is no shell.
  FakeRun plain;
  plain.params = {{"command", "[\"/bin/true\"]"}, {"shell", "false"}};
  CHECK(run(plain) == JOBHOST_OK);
  CHECK(plain.message == "exited with status 0");
}

TEST_CASE("exec plugin: stdin larger than a pipe holds, read or not", "[exec-plugin][unit]") {
  jobhost::testing::TempDir dir;
  const std::string out = (dir.path() / "count").string();
  FakeRun counted;
  counted.params = {{"command", "[\"/bin/sh\", \"-c\", \"wc -c > \\\"$0\\\"\", \"" + out + "\"]"},
                    {"stdin", std::string(1 << 20, 'x')}};
  CHECK(run(counted) == JOBHOST_OK);
  CHECK(read_file(out) == "1048576\n");

  // It closes its stdin without reading and lives on a while: the write
  // fails with EPIPE, and this process (the run's) is not killed by SIGPIPE.
  FakeRun deaf;
  deaf.params = {{"command", "[\"/bin/sh\", \"-c\", \"exec 0<&-; sleep 1\"]"},
                 {"stdin", std::string(1 << 20, 'x')}};
  CHECK(run(deaf) == JOBHOST_OK);
  CHECK(deaf.message == "exited with status 0");
  CHECK(deaf.metrics["exit_status"] == 0);
}

TEST_CASE("exec plugin: a cancel reaches a command in a session of its own",
          "[exec-plugin][unit]") {
  // The host signals the run's process group; this command left it, so only
  // the plugin can pass the cancel on. The fake host SIGKILLs it after a while.
  const std::string seconds = std::to_string(700000 + ::getpid() % 90000);
  FakeRun fake;
  fake.params = {{"command", "[\"setsid\", \"sleep\", \"" + seconds + "\"]"}};
  fake.cancelled = true;
  fake.kill_on_cancel = "sleep" + std::string(1, '\0') + seconds + std::string(1, '\0');
  CHECK(run(fake) == JOBHOST_FAIL);
  CHECK(fake.message == "killed by signal SIGTERM");
  CHECK(fake.metrics["exit_status"] == 128 + SIGTERM);
  CHECK(fake.heartbeats > 0);
}
