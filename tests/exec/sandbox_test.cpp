// The sandbox options with real runs (tests/plugins/sandbox/sandbox_probe):
// each case runs the probe with the option and without it, so it shows what
// the option changes. Root only: the namespaces need it.
#include <arpa/inet.h>
#include <linux/audit.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "exec/fork_executor.h"
#include "exec/sandbox.h"
#include "support/skip.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace jobhost;
using namespace jobhost::exec;
using namespace std::chrono_literals;
using jobhost::testing::TempDir;

namespace {

RunRequest probe(const std::string& what, std::map<std::string, std::string> params = {}) {
  static int counter = 0;
  RunRequest r;
  r.job = "sandbox";
  r.run_id = "sandbox-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  r.trace_id = r.run_id;
  r.plugin_path = std::string(JOBHOST_TEST_PLUGIN_DIR) + "/sandbox_probe.so";
  params["try"] = what;
  r.params = std::move(params);
  r.timeout = 60s;
  return r;
}

RunReport run(RunRequest r) {
  auto report = run_blocking(std::move(r));
  REQUIRE(report);
  INFO(report->message << "\n" << report->output_tail);
  return *report;
}

// Ran to the end: the probe's "worked" metric (1: the call worked).
bool worked(const RunReport& r) {
  INFO(r.message << "\n" << r.output_tail);
  REQUIRE(r.outcome == Outcome::succeeded);
  REQUIRE(r.metrics.contains("worked"));
  return r.metrics.at("worked") == 1;
}

int error_of(const RunReport& r) {
  return static_cast<int>(r.metrics.at("errno"));
}

#define NEED_ROOT()                                                                   \
  do {                                                                                \
    if (::geteuid() != 0) JOBHOST_SKIP("the sandbox options need root (namespaces)"); \
  } while (false)

// A TCP listener on 127.0.0.1 in the test's (the host's) network namespace.
struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 8) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd); }
};

}  // namespace

TEST_CASE("network = none: no route to the host's loopback, only lo", "[sandbox][needs-root]") {
  NEED_ROOT();
  Listener listener;
  const std::map<std::string, std::string> port{{"port", std::to_string(listener.port)}};

  CHECK(worked(run(probe("connect", port))));  // the host's network: reachable

  RunRequest isolated = probe("connect", port);
  isolated.sandbox.network = config::Network::none;
  const RunReport r = run(std::move(isolated));
  CHECK_FALSE(worked(r));
  CHECK(error_of(r) == ECONNREFUSED);  // loopback is up, with nothing listening

  RunRequest listing = probe("interfaces");
  listing.sandbox.network = config::Network::none;
  const RunReport names = run(std::move(listing));
  REQUIRE(names.outcome == Outcome::succeeded);
  CHECK(names.message == "lo");
  CHECK(names.metrics.at("interfaces") == 1);
}

TEST_CASE("read_only: writes fail with EROFS but for the state directory and read_write_paths",
          "[sandbox][needs-root]") {
  NEED_ROOT();
  TempDir outside, state, allowed;
  auto write = [&](const fs::path& path, bool read_only) {
    RunRequest r = probe("write", {{"path", path.string()}});
    r.sandbox.read_only = read_only;
    r.sandbox.read_write_paths = {allowed.path().string()};
    r.state_directory = state.path();
    return run(std::move(r));
  };
  CHECK(worked(write(outside / "file", false)));  // without the option: writable
  fs::remove(outside / "file");

  const RunReport denied = write(outside / "file", true);
  CHECK_FALSE(worked(denied));
  CHECK(error_of(denied) == EROFS);
  CHECK_FALSE(fs::exists(outside / "file"));

  CHECK(worked(write(state / "file", true)));
  CHECK(worked(write(allowed / "file", true)));
  std::ifstream in(allowed / "file");
  std::string text;
  std::getline(in, text);
  CHECK(text == "sandbox");  // on the host's file system, not a copy

  const fs::path in_etc = "/etc/jobhost-sandbox-test";
  const RunReport etc = write(in_etc, true);
  CHECK(error_of(etc) == EROFS);
  CHECK_FALSE(fs::exists(in_etc));
  fs::remove(in_etc);  // had the test failed
}

TEST_CASE("read_only: a missing read_write_path fails the run naming it", "[sandbox][needs-root]") {
  NEED_ROOT();
  TempDir dir;
  RunRequest r = probe("write", {{"path", (dir / "file").string()}});
  r.sandbox.read_only = true;
  r.sandbox.read_write_paths = {"/nonexistent/jobhost-sandbox"};
  const RunReport report = run(std::move(r));
  CHECK(report.outcome == Outcome::failed);
  CHECK_THAT(report.message, Catch::Contains("/nonexistent/jobhost-sandbox") &&
                                 Catch::Contains("No such file or directory"));
}

TEST_CASE("private_tmp: the run's /tmp is its own, writable even under read_only",
          "[sandbox][needs-root]") {
  NEED_ROOT();
  const fs::path file = "/tmp/jobhost-sandbox-test-" + std::to_string(::getpid());
  fs::remove(file);
  auto write = [&](bool private_tmp, bool read_only) {
    RunRequest r = probe("write", {{"path", file.string()}});
    r.sandbox.private_tmp = private_tmp;
    r.sandbox.read_only = read_only;
    return run(std::move(r));
  };
  CHECK(worked(write(false, false)));
  CHECK(fs::exists(file));  // without the option the host sees it
  fs::remove(file);

  CHECK(worked(write(true, false)));
  CHECK_FALSE(fs::exists(file));
  CHECK(worked(write(true, true)));
  CHECK_FALSE(fs::exists(file));
  const RunReport shared = write(false, true);  // read_only alone: /tmp is read-only too
  CHECK(error_of(shared) == EROFS);

  SECTION("owned by the run's user, sticky and world-writable") {
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) return;
    RunRequest r = probe("tmp");
    r.user = "nobody";
    r.sandbox.private_tmp = true;
    r.limits.memory_bytes = 96ull << 20;
    const RunReport tmp = run(std::move(r));
    REQUIRE(tmp.outcome == Outcome::succeeded);
    CHECK(tmp.metrics.at("uid") == nobody->pw_uid);
    CHECK(tmp.metrics.at("tmp_uid") == nobody->pw_uid);
    CHECK(tmp.metrics.at("tmp_mode") == 01777);
    CHECK(tmp.metrics.at("tmp_size") == 96 << 20);  // bounded by the memory limit
  }
}

TEST_CASE("syscall_filter = default: a denied call ends the run crashed, SIGSYS, naming it",
          "[sandbox][needs-root]") {
  NEED_ROOT();
  struct Case {
    const char* what;
    const char* syscall;
  };
  for (const Case c : {Case{"ptrace", "ptrace"}, Case{"bpf", "bpf"}, Case{"clone_ns", "unshare"}}) {
    INFO(c.what);
    RunRequest off = probe(c.what);
    off.sandbox.syscall_filter = config::SyscallFilter::none;
    const RunReport allowed = run(std::move(off));
    CHECK(allowed.outcome == Outcome::succeeded);  // the call returned (and may have failed)

    const RunReport r = run(probe(c.what));  // the default filter
    CHECK(r.outcome == Outcome::crashed);
    CHECK(r.signal_name == "SIGSYS");
    CHECK_THAT(r.message, Catch::Contains(std::string("blocked system call ") + c.syscall));
    CHECK(r.retryable);
  }
}

TEST_CASE("an ordinary plugin runs with every sandbox option on", "[sandbox][needs-root]") {
  NEED_ROOT();
  // Not under /tmp, which the private /tmp hides (the build tree may be there).
  const fs::path state = "/run/jobhost-sandbox-state-" + std::to_string(::getpid());
  fs::create_directories(state);
  struct Remove {
    fs::path p;
    ~Remove() { fs::remove_all(p); }
  } remove{state};
  RunRequest r;
  r.job = "hello";
  r.run_id = "sandbox-hello-" + std::to_string(::getpid());
  r.plugin_path = std::string(JOBHOST_TEST_PLUGIN_DIR) + "/inspect.so";
  r.timeout = 60s;
  r.state_directory = state;
  r.sandbox.network = config::Network::none;
  r.sandbox.private_tmp = true;
  r.sandbox.read_only = true;
  const RunReport report = run(std::move(r));
  INFO(report.message << "\n" << report.output_tail);
  CHECK(report.outcome == Outcome::succeeded);  // it forks, reads /proc, ...
}

TEST_CASE("the default filter compiles and names what it denies", "[sandbox]") {
  auto program = build_default_filter();
  REQUIRE(program);
  CHECK(program->size() > 10);
  CHECK(program->size() <= BPF_MAXINSNS);
#if defined(__x86_64__)
  CHECK(syscall_name(101, AUDIT_ARCH_X86_64) == "ptrace");
  CHECK(syscall_name(-5, AUDIT_ARCH_X86_64) == "system call -5");
#endif
  CHECK(syscall_name(101, 0x1234) == "system call 101");  // an arch the child made up
}
