// The run's environment (exec/environment.h) and its secrets (exec/secrets.h):
// pure tables first, then real runs of environ_dump through the executor,
// started from a process whose environment holds things no run may see.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "exec/environment.h"
#include "exec/fork_executor.h"
#include "exec/secrets.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace jobhost;
using namespace jobhost::exec;
using config::SecretConfig;

namespace {

std::string test_plugin(const std::string& name) {
  return std::string(JOBHOST_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

void write_secret(const fs::path& file, const std::string& value, mode_t mode = 0600) {
  std::ofstream(file, std::ios::trunc | std::ios::binary) << value;
  ::chmod(file.c_str(), mode);
}

// Entries after `prefix` ("env: ", "procenv: ") in the output tail.
std::set<std::string> entries(const std::string& tail, const std::string& prefix) {
  std::set<std::string> out;
  std::size_t at = 0;
  while (at < tail.size()) {
    std::size_t end = tail.find('\n', at);
    if (end == std::string::npos) end = tail.size();
    const std::string line = tail.substr(at, end - at);
    if (line.starts_with(prefix)) out.insert(line.substr(prefix.size()));
    at = end + 1;
  }
  return out;
}

RunRequest dump_request(std::string run_id) {
  RunRequest r;
  r.job = "envjob";
  r.run_id = std::move(run_id);
  r.trace_id = "t";
  r.plugin_path = test_plugin("environ_dump");
  r.timeout = std::chrono::seconds(20);
  r.limits.output_bytes = 64 * 1024;
  r.limits.memory_bytes = 0;  // ASan builds
  return r;
}

struct Ran {
  RunReport report;
  std::string logged;  // every log line, one per line
};

Ran run(RunRequest request) {
  Ran out;
  ExecutorOptions options;
  options.log_sink = [&](const RunLogLine& line) { out.logged += std::string(line.text) + "\n"; };
  auto report = run_blocking(std::move(request), options);
  if (!report) FAIL(report.error().message);
  out.report = std::move(*report);
  return out;
}

}  // namespace

TEST_CASE("run_environment is the documented set plus the job's env") {
  struct Case {
    const char* what;
    std::string state_dir, zone;
    std::map<std::string, std::string> env;
    std::set<std::string> expected;
  };
  const std::string path = std::string("PATH=") + kRunPath;
  const Case cases[] = {
      {"no state dir, no zone",
       "",
       "",
       {},
       {path, "HOME=/", "LANG=C.UTF-8", "JOBHOST_JOB=j", "JOBHOST_RUN_ID=r1"}},
      {"state dir and zone",
       "/var/lib/jh/jobs/j",
       "Europe/Berlin",
       {},
       {path, "HOME=/var/lib/jh/jobs/j", "LANG=C.UTF-8", "TZ=Europe/Berlin", "JOBHOST_JOB=j",
        "JOBHOST_RUN_ID=r1", "JOBHOST_STATE_DIRECTORY=/var/lib/jh/jobs/j"}},
      {"env adds and overrides, but never JOBHOST_*",
       "",
       "UTC",
       {{"A", "1"},
        {"PATH", "/opt/bin"},
        {"LANG", "de_DE.UTF-8"},
        {"JOBHOST_JOB", "evil"},
        {"JOBHOST_X", "y"},
        {"B=C", "d"}},
       {"A=1", "PATH=/opt/bin", "HOME=/", "LANG=de_DE.UTF-8", "TZ=UTC", "JOBHOST_JOB=j",
        "JOBHOST_RUN_ID=r1"}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    RunRequest r;
    r.job = "j";
    r.run_id = "r1";
    r.state_directory = c.state_dir;
    r.time_zone = c.zone;
    r.env = c.env;
    const auto env = run_environment(r);
    CHECK(std::set<std::string>(env.begin(), env.end()) == c.expected);
    CHECK(std::is_sorted(env.begin(), env.end()));
  }
}

TEST_CASE("SecretRedactor replaces whole values, however the stream is cut") {
  const std::map<std::string, std::string> secrets = {
      {"db", "hunter2-db-pass"}, {"key", "abcabd\n"}, {"pin", "123"}};
  struct Case {
    std::string in, out;
    std::string cut_out = {};  // also right when streamed, cut just before the newline
  };
  const Case cases[] = {
      {"x hunter2-db-pass y", "x [secret:db] y"},
      {"hunter2-db-passhunter2-db-pass", "[secret:db][secret:db]"},
      {"abcabd\n!", "[secret:key]!", "[secret:key]\n!"},  // the value as it is
      {"[abcabd]", "[[secret:key]]"},                     // and without its trailing newline
      {"abcababcabd", "abcab[secret:key]"},               // overlapping start (KMP)
      {"pin 123 stays", "pin 123 stays"},                 // under kMinRedactedBytes
      {"hunter2-db-pas", "hunter2-db-pas"},               // a prefix alone is not the value
  };
  for (const Case& c : cases) {
    INFO(c.in);
    SecretRedactor whole(secrets);
    std::string text = c.in;
    whole.redact(text);
    CHECK(text == c.out);
    // Streamed in two pieces, at every cut, and byte by byte.
    for (std::size_t cut = 0; cut <= c.in.size(); ++cut) {
      SecretRedactor stream(secrets);
      std::string got = stream.feed(c.in.substr(0, cut));
      got += stream.feed(c.in.substr(cut));
      got += stream.finish();
      INFO("cut " << cut << ": " << got);
      CHECK((got == c.out || got == c.cut_out));
    }
    SecretRedactor bytes(secrets);
    std::string got;
    for (char ch : c.in) got += bytes.feed(std::string(1, ch));
    got += bytes.finish();
    CHECK((got == c.out || got == c.cut_out));
  }
  SecretRedactor none;
  CHECK(none.empty());
  CHECK(none.feed("hunter2-db-pass") == "hunter2-db-pass");
}

TEST_CASE("read_secret checks file, env and credential sources and never shows the value") {
  testing::TempDir dir;
  const std::string value = "v4lue-Never-Shown";
  write_secret(dir.path() / "ok", value);
  write_secret(dir.path() / "open", value, 0644);
  write_secret(dir.path() / "big", std::string(kMaxSecretBytes + 1, 'x'));
  fs::create_symlink(dir.path() / "ok", dir.path() / "link");
  ::setenv("JOBHOST_TEST_SECRET_ENV", value.c_str(), 1);
  struct Case {
    SecretConfig secret;
    const char* says;  // "" = read fine
  };
  const auto file = [&](const char* name) {
    return SecretConfig{"s", {}, SecretConfig::Source::file, (dir.path() / name).string()};
  };
  const Case cases[] = {
      {file("ok"), ""},
      {file("open"), "is open to group or others (mode 0644); run `chmod 600"},
      {file("missing"), "cannot open secret \"s\" (file"},
      {file("big"), "over the 64 KiB a secret may have"},
      {file("link"), "is a symbolic link"},
      {{"s", {}, SecretConfig::Source::env, "JOBHOST_TEST_SECRET_ENV"}, ""},
      {{"s", {}, SecretConfig::Source::env, "JOBHOST_TEST_UNSET_ENV"},
       "the variable is not set in the daemon's environment"},
  };
  for (const Case& c : cases) {
    INFO(c.secret.location);
    auto got = read_secret(c.secret);
    if (*c.says == '\0') {
      REQUIRE(got.has_value());
      CHECK(*got == value);
    } else {
      REQUIRE_FALSE(got.has_value());
      CHECK_THAT(got.error().message, Catch::Contains(c.says));
      CHECK(got.error().message.find(value) == std::string::npos);
    }
  }
  // systemd's credentials: $CREDENTIALS_DIRECTORY/NAME.
  const SecretConfig cred{"s", {}, SecretConfig::Source::credential, "ok"};
  ::unsetenv("CREDENTIALS_DIRECTORY");
  CHECK_THAT(read_secret(cred).error().message,
             Catch::Contains("$CREDENTIALS_DIRECTORY is not set"));
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  CHECK(read_secret(cred).value_or("") == value);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  ::unsetenv("JOBHOST_TEST_SECRET_ENV");
}

TEST_CASE("a run sees only the documented environment and its env, nothing of the host's") {
  // The host's environment holds what no run may see.
  ::setenv("JOBHOST_TEST_LEAK", "xyz-leak", 1);
  ::setenv("JOBHOST_TEST_SECRET_ENV", "env-secret-value", 1);
  testing::TempDir state;
  RunRequest r = dump_request("env-1");
  r.state_directory = state.path();
  r.time_zone = "Europe/Berlin";
  r.env = {{"GREETING", "hello world"}};
  const Ran ran = run(r);
  ::unsetenv("JOBHOST_TEST_LEAK");
  ::unsetenv("JOBHOST_TEST_SECRET_ENV");
  const std::string& tail = ran.report.output_tail;
  INFO(tail);
  REQUIRE(ran.report.outcome == Outcome::succeeded);
  const std::set<std::string> expected = {std::string("PATH=") + kRunPath,
                                          "HOME=" + state.path().string(),
                                          "LANG=C.UTF-8",
                                          "TZ=Europe/Berlin",
                                          "GREETING=hello world",
                                          "JOBHOST_JOB=envjob",
                                          "JOBHOST_RUN_ID=env-1",
                                          "JOBHOST_STATE_DIRECTORY=" + state.path().string()};
  CHECK(entries(tail, "env: ") == expected);
  // The process image's own block is the fork server's: it was exec'd with
  // an empty environment (a sanitizer build passes its *SAN_OPTIONS).
  for (const std::string& entry : entries(tail, "procenv: ")) {
    CHECK_THAT(entry, Catch::Contains("SAN_OPTIONS="));
  }
  CHECK(tail.find("xyz-leak") == std::string::npos);
  CHECK(tail.find("env-secret-value") == std::string::npos);
}

TEST_CASE("a run reads its secret, not another's; the value is redacted everywhere") {
  testing::TempDir dir;
  const std::string value = "s3cr3t-Value-0042";
  write_secret(dir.path() / "mine", value);
  write_secret(dir.path() / "theirs", "other-jobs-secret");
  RunRequest r = dump_request("sec-1");
  r.secret_sources = {{"mine", {}, SecretConfig::Source::file, (dir.path() / "mine").string()}};
  r.params = {{"secret", "mine"}, {"other", "theirs"}, {"expect", value}};
  const Ran ran = run(r);
  const RunReport& report = ran.report;
  INFO(report.message << "\n" << report.output_tail << "\n" << ran.logged);
  REQUIRE(report.outcome == Outcome::succeeded);
  CHECK(report.metrics.at("has_secret") == 1);
  CHECK(report.metrics.at("secret_matches") == 1);
  CHECK(report.metrics.at("other_visible") == 0);
  // Logged, printed (split across two writes) and returned as the message:
  // each is kept as [secret:mine].
  CHECK(report.message == "message with [secret:mine]");
  CHECK_THAT(report.output_tail, Catch::Contains("[info] the secret is [secret:mine]"));
  // (the log record may land inside the printed line: two channels)
  CHECK_THAT(report.output_tail, Catch::Contains("[secret:mine] here"));
  CHECK_THAT(ran.logged, Catch::Contains("the secret is [secret:mine]"));
  CHECK_THAT(ran.logged, Catch::Contains("printed [secret:mine] here"));
  for (const std::string& text : {report.message, report.output_tail, ran.logged}) {
    CHECK(text.find(value) == std::string::npos);
  }

  // Rotated: the next run reads the new value, no reload.
  const std::string rotated = "r0tated-Value-0043";
  write_secret(dir.path() / "mine", rotated);
  r.run_id = "sec-2";
  r.params["expect"] = rotated;
  const Ran again = run(r);
  CHECK(again.report.metrics.at("secret_matches") == 1);
  CHECK(again.report.output_tail.find(rotated) == std::string::npos);
}

TEST_CASE("a secret that cannot be read fails the start, naming it and not its value") {
  testing::TempDir dir;
  RunRequest r = dump_request("sec-3");
  r.secret_sources = {{"db", {}, SecretConfig::Source::file, (dir.path() / "gone").string()}};
  auto missing = run_blocking(r);
  REQUIRE_FALSE(missing.has_value());
  CHECK_THAT(missing.error().message, Catch::Contains("secret \"db\""));
  CHECK_THAT(missing.error().message, Catch::Contains("No such file"));

  write_secret(dir.path() / "open", "visible-Value-0044", 0644);
  r.secret_sources[0].location = (dir.path() / "open").string();
  auto open = run_blocking(r);
  REQUIRE_FALSE(open.has_value());
  CHECK_THAT(open.error().message, Catch::Contains("chmod 600"));
  CHECK(open.error().message.find("visible-Value-0044") == std::string::npos);
}
