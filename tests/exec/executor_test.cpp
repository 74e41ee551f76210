// The executor with real forks: the test plugins of tests/plugins/runtime run
// through Executor on an io_context, with the isolation this machine offers
// (detect_isolation with a parent cgroup of this test's own).
// CATCH_CONFIG_EXTERNAL_INTERFACES (the listener below) is defined for every
// test (tests/CMakeLists.txt).
#include "exec/fork_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <jobhost/plugin.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/skip.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace jobhost;
using namespace jobhost::exec;
using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

namespace {

std::string test_plugin(const std::string& name) {
  return std::string(JOBHOST_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

std::optional<IsolationCaps> g_caps;

// The isolation of this machine, under a parent cgroup only this test uses
// (removed when the test run ends).
const IsolationCaps& caps() {
  if (!g_caps) {
    DetectOptions o;
    o.parent_name = "jobhost-exec-test-" + std::to_string(::getpid());
    g_caps = detect_isolation(o);
    WARN("isolation: " << g_caps->description);
  }
  return *g_caps;
}

struct RemoveTestCgroups : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunEnded(const Catch::TestRunStats&) override {
    if (g_caps) remove_parent_cgroups(*g_caps);
  }
};
CATCH_REGISTER_LISTENER(RemoveTestCgroups)

struct Captured {
  std::string job, run_id, trace_id;
  LogStream stream;
  spdlog::level::level_enum level;
  std::string text;
};

struct Finished {
  RunReport report;
  std::vector<Captured> lines;
  std::chrono::duration<double> elapsed{};
  int reports = 0;
};

RunRequest request(const std::string& plugin, std::map<std::string, std::string> params = {}) {
  static int counter = 0;
  RunRequest r;
  r.job = "job-" + plugin;
  r.run_id = "run-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  r.trace_id = "trace-" + std::to_string(counter);
  r.attempt = 1;
  r.scheduled_for = TimePoint(Duration(1'700'000'000'000));
  r.plugin_path = test_plugin(plugin);
  r.params = std::move(params);
  r.timeout = 60s;
  r.kill_grace = 2s;
  return r;
}

ExecutorOptions options_with(std::vector<Captured>& lines,
                             const IsolationCaps& isolation = caps()) {
  ExecutorOptions o;
  o.isolation = isolation;
  o.log_sink = [&lines](const RunLogLine& l) {
    lines.push_back({std::string(l.job), std::string(l.run_id), std::string(l.trace_id), l.stream,
                     l.level, std::string(l.text)});
  };
  return o;
}

// Runs one request to the end on a fresh io_context; fails the test if it
// does not end within `deadline` (generous: this is a bound, not a speed test).
Finished run(RunRequest req, const IsolationCaps& isolation = caps(),
             std::chrono::seconds deadline = 120s) {
  Finished out;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(out.lines, isolation));
  const auto t0 = std::chrono::steady_clock::now();
  auto started = ex.start(std::move(req), [&](RunReport r) {
    out.report = std::move(r);
    ++out.reports;
  });
  REQUIRE(started);
  io.run_for(deadline);
  out.elapsed = std::chrono::steady_clock::now() - t0;
  REQUIRE(out.reports == 1);
  CHECK(ex.active() == 0);
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool any_line(const std::vector<Captured>& lines, LogStream stream, const std::string& part) {
  for (const auto& l : lines) {
    if (l.stream == stream && contains(l.text, part)) return true;
  }
  return false;
}

// "R", "S", "Z", ... for a pid, or "" when there is no such process.
std::string process_state(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return "";
  const auto paren = text.rfind(')');
  return paren == std::string::npos ? "" : text.substr(paren + 2, 1);
}

// A process that no longer runs: gone, or a zombie waiting for init.
bool dead(int pid) {
  const std::string s = process_state(pid);
  return s.empty() || s == "Z" || s == "X";
}

bool eventually_dead(int pid) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (!dead(pid)) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Live (non-zombie) processes whose process group is `pgid`.
std::vector<int> live_group_members(int pgid) {
  std::vector<int> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text;
    if (!std::getline(stat, text)) continue;
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(text.substr(paren + 2));
    std::string state;
    int ppid = 0, group = 0;
    rest >> state >> ppid >> group;
    if (group == pgid && state != "Z" && state != "X") out.push_back(std::stoi(name));
  }
  return out;
}

bool group_eventually_empty(int pgid) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (!live_group_members(pgid).empty()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Both ways a run can be contained: this machine's cgroups (if any), and the
// process group alone (mode none), which must be enough on its own.
const IsolationCaps& isolation_mode(bool with_cgroup) {
  static const IsolationCaps none;
  return with_cgroup ? caps() : none;
}

std::vector<int> read_pids(const fs::path& file) {
  std::vector<int> pids;
  std::ifstream in(file);
  for (int pid; in >> pid;) pids.push_back(pid);
  return pids;
}

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
}

}  // namespace

TEST_CASE("hello succeeds; its log line and param arrive", "[executor]") {
  RunRequest req = request("hello", {{"greeting", "bonjour"}});
  req.plugin_path = std::string(JOBHOST_PLUGIN_DIR) + "/hello.so";
  req.attempt = 2;
  const std::string run_id = req.run_id;
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::succeeded);
  CHECK(f.report.message == "said bonjour");
  CHECK(f.report.exit_code == 0);
  CHECK_FALSE(f.report.signal);
  CHECK(f.report.pid > 0);
  CHECK(f.report.finished >= f.report.started);
  const std::string expected = "bonjour from run " + run_id + " (attempt 2)";
  bool seen = false;
  for (const auto& l : f.lines) {
    if (l.stream == LogStream::plugin && l.text == expected) {
      seen = true;
      CHECK(l.job == "job-hello");
      CHECK(l.run_id == run_id);
      CHECK(l.trace_id == req.trace_id);
      CHECK(l.level == spdlog::level::info);
    }
  }
  CHECK(seen);
  CHECK(f.report.output_tail == "[info] " + expected + "\n");
}

TEST_CASE("output the host had buffered is not repeated by the run", "[executor]") {
  caps();                                                         // its WARN would flush stdout
  std::fputs("(buffered by the host before the fork) ", stdout);  // no newline: stays buffered
  const Finished f = run(request("api_probe"));
  std::fputs("\n", stdout);
  CHECK(f.report.outcome == Outcome::succeeded);
  CHECK_FALSE(contains(f.report.output_tail, "buffered by the host"));
  CHECK(contains(f.report.output_tail, "to stdout"));
}

TEST_CASE("ABI 1.1: the plugin reads its trigger and the trigger's payload", "[executor][abi]") {
  RunRequest req = request("trigger_probe");
  const Finished plain = run(req);
  CHECK(plain.report.outcome == Outcome::succeeded);
  CHECK(plain.report.message == "trigger=schedule attempt=1 event=none");
  req = request("trigger_probe");
  req.trigger_kind = "webhook";
  req.event = R"({"file":"a.csv","n":[1,2]})";
  req.attempt = 2;
  const Finished hooked = run(req);
  CHECK(hooked.report.message == R"(trigger=webhook attempt=2 event={"file":"a.csv","n":[1,2]})");
}

TEST_CASE("a plugin built against the ABI 1.0 header runs on this host", "[executor][abi]") {
  RunRequest req = request("abi_1_0", {{"color", "teal"}});
  req.event = R"({"ignored":true})";  // a 1.0 plugin cannot ask for it
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::succeeded);
  CHECK(f.report.message == "abi 1.0 attempt 1 color teal table complete");
  CHECK(any_line(f.lines, LogStream::plugin, req.run_id));
}

TEST_CASE("every host function reaches the host; secrets stay out of logs", "[executor]") {
  RunRequest req = request("api_probe", {{"color", "teal"}});
  req.secrets = {{"token", "s3cret"}};
  req.attempt = 3;
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::succeeded);
  CHECK(f.report.message == "run " + req.run_id + " attempt 3 slot 1700000000000 cancelled 0");
  CHECK(f.report.metrics.at("rows") == 42);
  CHECK(f.report.metrics.at("seconds") == 1.5);
  REQUIRE(f.report.last_progress);
  CHECK(*f.report.last_progress == 0.25);
  CHECK(any_line(f.lines, LogStream::plugin, "param color=teal"));
  CHECK(any_line(f.lines, LogStream::plugin, "secret token matches"));
  CHECK(any_line(f.lines, LogStream::plugin, "missing param is unset"));
  CHECK(any_line(f.lines, LogStream::output, "to stdout"));
  CHECK(any_line(f.lines, LogStream::output, "to stderr"));
  CHECK(any_line(f.lines, LogStream::output, "no newline at the end"));
  for (const auto& l : f.lines) {
    if (l.text == "debug line") CHECK(l.level == spdlog::level::debug);
    if (contains(l.text, "secret token")) CHECK(l.level == spdlog::level::warn);
    if (contains(l.text, "missing param")) CHECK(l.level == spdlog::level::err);
    CHECK_FALSE(contains(l.text, "s3cret"));
  }
  CHECK(contains(f.report.output_tail, "to stdout\n"));
  CHECK(contains(f.report.output_tail, "[warn] secret token matches\n"));
  CHECK_FALSE(contains(f.report.output_tail, "s3cret"));
}

namespace {

void check_clean_slate(bool as_nobody) {
  RunRequest req = request("inspect");
  req.limits.open_files = 100;
  if (as_nobody) {
    if (::geteuid() != 0 || ::getpwnam("nobody") == nullptr) {
      JOBHOST_SKIP("dropping privileges needs root and a user nobody");
    }
    req.user = "nobody";
  }
  // What the host has and the run must not inherit: a descriptor without
  // O_CLOEXEC, a blocked signal, an ignored signal.
  const int leaked = ::open("/dev/null", O_RDONLY);
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old_mask);
  struct sigaction ignore {
  }, old_int{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &old_int);
  const Finished f = run(req);
  sigaction(SIGINT, &old_int, nullptr);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::close(leaked);

  INFO(f.report.message);
  REQUIRE(f.report.outcome == Outcome::succeeded);
  const auto& m = f.report.metrics;
  const double uid = as_nobody ? ::getpwnam("nobody")->pw_uid : ::getuid();
  CHECK(m.at("uid") == uid);
  CHECK(m.at("euid") == uid);
  CHECK(m.at("pdeathsig") == SIGKILL);  // still set after the uid change
  CHECK(m.at("no_new_privs") == 1);
  CHECK(m.at("open_fds") == 4);  // stdin, stdout, stderr, control
  CHECK(m.at("stdin_is_dev_null") == 1);
  CHECK(m.at("blocked_signals") == 0);
  CHECK(m.at("non_default_dispositions") == 0);
  CHECK(m.at("sigterm_caught") == 1);  // SIGTERM = cancel request
  CHECK(m.at("sigterm_default_in_forked_child") == 1);
  CHECK(m.at("group_leader") == 1);
  CHECK(m.at("rlimit_nofile") == 100);
  CHECK(m.at("rlimit_core") == 0);
}

}  // namespace

TEST_CASE("the run's process starts with a clean slate", "[executor]") {
  check_clean_slate(false);
}

TEST_CASE("the run's process starts with a clean slate, as nobody", "[executor][needs-root]") {
  check_clean_slate(true);
}

TEST_CASE("timeout: timed_out, and the whole group is gone, grandchild included", "[executor]") {
  const bool with_cgroup = GENERATE(false, true);
  INFO("with the cgroup: " << with_cgroup);
  const fs::path pid_file = temp_file("grandchild.pid");
  fs::remove(pid_file);
  RunRequest req = request("sleeper", {{"seconds", "60"},
                                       {"grandchild", "1"},
                                       {"grandchild_ignores_term", "1"},
                                       {"grandchild_pid_file", pid_file.string()}});
  req.timeout = 1s;
  req.kill_grace = 20s;
  const Finished f = run(req, isolation_mode(with_cgroup));
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::timed_out);
  CHECK(contains(f.report.message, "exceeded timeout of 1s"));
  CHECK(f.report.retryable);
  // The sleeper honours cancel and returns; its grandchild ignores SIGTERM
  // and is SIGKILLed with the group when the leader exits, not after the grace.
  CHECK(f.elapsed < 15s);
  const auto pids = read_pids(pid_file);
  REQUIRE(pids.size() == 1);
  CHECK(eventually_dead(pids[0]));
  CHECK(group_eventually_empty(f.report.pid));
  CHECK(any_line(f.lines, LogStream::host, "stopping the run (timeout of 1s)"));
  fs::remove(pid_file);
}

TEST_CASE("a grandchild left behind by a run that succeeded does not survive it", "[executor]") {
  const bool with_cgroup = GENERATE(false, true);
  INFO("with the cgroup: " << with_cgroup);
  const fs::path pid_file = temp_file("daemonised.pid");
  fs::remove(pid_file);
  const Finished f = run(request("sleeper", {{"seconds", "0.1"},
                                             {"grandchild", "1"},
                                             {"grandchild_ignores_term", "1"},
                                             {"grandchild_pid_file", pid_file.string()}}),
                         isolation_mode(with_cgroup));
  CHECK(f.report.outcome == Outcome::succeeded);
  const auto pids = read_pids(pid_file);
  REQUIRE(pids.size() == 1);
  CHECK(eventually_dead(pids[0]));
  CHECK(group_eventually_empty(f.report.pid));
  fs::remove(pid_file);
}

TEST_CASE("a grandchild that left the group (setsid)", "[executor]") {
  const bool with_cgroup = GENERATE(false, true);
  INFO("with the cgroup: " << with_cgroup);
  const fs::path pid_file = temp_file("setsid.pid");
  fs::remove(pid_file);
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ExecutorOptions o = options_with(lines, isolation_mode(with_cgroup));
  o.drain_timeout = 500ms;
  ForkExecutor ex(io, o);
  std::optional<RunReport> report;
  REQUIRE(ex.start(request("sleeper", {{"seconds", "0.1"},
                                       {"grandchild", "1"},
                                       {"grandchild_setsid", "1"},
                                       {"grandchild_pid_file", pid_file.string()}}),
                   [&](RunReport r) { report = std::move(r); }));
  io.run_for(60s);
  REQUIRE(report);
  CHECK(report->outcome == Outcome::succeeded);
  const auto pids = read_pids(pid_file);
  REQUIRE(pids.size() == 1);
  if (isolation_mode(with_cgroup).mode != CgroupMode::none) {
    // The cgroup holds it whatever its process group: killed with the run.
    CHECK(eventually_dead(pids[0]));
    CHECK_FALSE(any_line(lines, LogStream::host, "output pipe still open"));
  } else {
    // Without a cgroup nothing can find it: the run still ends (the host stops
    // reading the pipe it holds after drain_timeout) and says so.
    CHECK(any_line(lines, LogStream::host, "output pipe still open"));
    ::kill(pids[0], SIGKILL);  // our own test's leftover
  }
  fs::remove(pid_file);
}

TEST_CASE("crashes are named", "[executor]") {
  SECTION("SIGSEGV") {
    const Finished f = run(request("segv"));
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::crashed);
    CHECK(f.report.signal_name == "SIGSEGV");
    CHECK(contains(f.report.message, "SIGSEGV"));
    CHECK(contains(f.report.message, "about to crash"));
    CHECK(f.report.retryable);
  }
  SECTION("SIGABRT") {
    const Finished f = run(request("abort"));
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::crashed);
    CHECK(f.report.signal_name == "SIGABRT");
    CHECK(contains(f.report.message, "SIGABRT"));
  }
}

TEST_CASE("results: exception, RETRY, FAIL, exit()", "[executor]") {
  SECTION("an exception's message becomes the message, not retryable") {
    const Finished f = run(request("throws"));
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::failed);
    CHECK(contains(f.report.message, "disk quota exceeded on /data"));
    CHECK_FALSE(f.report.retryable);
  }
  SECTION("RETRY is retryable") {
    const Finished f = run(request("retry"));
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::failed);
    CHECK(contains(f.report.message, "upstream answered 503"));
    CHECK(f.report.retryable);
    CHECK(f.report.result_code == JOBHOST_RETRY);
  }
  SECTION("FAIL is not") {
    const Finished f = run(request("fail"));
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::failed);
    CHECK(contains(f.report.message, "input file is corrupt"));
    CHECK_FALSE(f.report.retryable);
    CHECK(f.report.result_code == JOBHOST_FAIL);
  }
  SECTION("exit(7) without a result") {
    const Finished f = run(request("exit_code", {{"code", "7"}}));
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::failed);
    CHECK(f.report.exit_code == 7);
    CHECK(contains(f.report.message, "exited with code 7 without reporting a result"));
    CHECK(f.report.result_code == std::nullopt);
  }
}

TEST_CASE("a plugin that cannot be loaded fails the run, not retryable", "[executor]") {
  RunRequest req = request("noop");
  req.plugin_path = "/nonexistent/plugin.so";
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::failed);
  CHECK(contains(f.report.message, "could not start the plugin"));
  CHECK(contains(f.report.message, "/nonexistent/plugin.so"));
  CHECK_FALSE(f.report.retryable);
}

namespace {

// RLIMIT_AS makes the allocation fail (the child reports it from its
// new_handler). Under AddressSanitizer RLIMIT_AS is not set (ASan reserves
// terabytes of address space), so the run's memory cgroup must catch it
// (OOM kill, reported by RunCgroup::limit_hit).
void check_memory_limit(bool with_cgroup) {
  if (kAddressSanitizer && isolation_mode(with_cgroup).mode == CgroupMode::none) {
    JOBHOST_SKIP("AddressSanitizer build without a memory cgroup: no memory limit to test");
  }
  RunRequest req = request("memhog", {{"max_mib", "1024"}});
  req.limits.memory_bytes = 64ull << 20;
  const Finished f = run(req, isolation_mode(with_cgroup));
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::limit_exceeded);
  CHECK(contains(f.report.message, "memory limit (64MiB)"));
  CHECK(f.report.retryable);
}

}  // namespace

TEST_CASE("memory limit: limit_exceeded naming memory", "[executor][needs-cgroup]") {
  check_memory_limit(false);
}

TEST_CASE("memory limit: limit_exceeded naming memory, with the cgroup",
          "[executor][needs-cgroup]") {
  check_memory_limit(true);
}

TEST_CASE("memory: a runtime that reserves 8 GiB of address space works under the defaults",
          "[executor][needs-cgroup]") {
  // Where the run's cgroup limits memory, RLIMIT_AS is left off: what counts
  // is memory touched (10 MiB here), not address space reserved (8 GiB, as Go
  // and the JVM do). Past the default limit (512 MiB) the cgroup stops it.
  if (caps().mode == CgroupMode::none) {
    JOBHOST_SKIP(
        "no cgroup mode on this machine (RLIMIT_AS is the memory limit): " << caps().description);
  }
  const config::Limits defaults;
  REQUIRE(defaults.memory_bytes == 512ull << 20);
  SECTION("touching 10 MiB succeeds") {
    RunRequest req =
        request("memhog", {{"reserve_mib", "8192"}, {"max_mib", "10"}, {"chunk_mib", "1"}});
    const Finished f = run(req, caps());
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::succeeded);
    CHECK(f.report.metrics.at("allocated_mib") == 10);
  }
  SECTION("touching 600 MiB ends limit_exceeded memory") {
    RunRequest req = request("memhog", {{"reserve_mib", "8192"}, {"max_mib", "600"}});
    const Finished f = run(req, caps());
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::limit_exceeded);
    CHECK(contains(f.report.message, "memory limit (512MiB)"));
  }
}

TEST_CASE("memory: without a cgroup, RLIMIT_AS limits the address space", "[executor]") {
  RunRequest req = request("memhog", {{"reserve_mib", "8192"}, {"max_mib", "10"}});
  const Finished f = run(req, isolation_mode(false));
  INFO(f.report.message);
  if (kAddressSanitizer) {
    // Builds with AddressSanitizer never set RLIMIT_AS (docs/isolation.md).
    CHECK(f.report.outcome == Outcome::succeeded);
  } else {
    CHECK(f.report.outcome == Outcome::failed);
    CHECK(contains(f.report.message, "cannot reserve 8192 MiB"));
  }
}

TEST_CASE("fork bomb: contained, the host survives, nothing remains", "[executor]") {
  // With a pids cgroup (v1 or v2) fork fails at pids.max and the cgroup says
  // so: limit_exceeded. Without one (mode none, also tested here), as root
  // RLIMIT_NPROC is not enforced, so the plugin's own cap (200) stops it and
  // the timeout ends the run; as another user RLIMIT_NPROC makes fork fail.
  // Either way the group kill must leave no process behind.
  const bool with_cgroup = GENERATE(false, true);
  INFO("with the cgroup: " << with_cgroup);
  const fs::path pid_file = temp_file("forkbomb.pids");
  fs::remove(pid_file);
  RunRequest req = request("forkbomb", {{"max", "200"}, {"pid_file", pid_file.string()}});
  req.limits.processes = 16;
  req.timeout = 3s;
  req.kill_grace = 1s;
  const Finished f = run(req, isolation_mode(with_cgroup));
  INFO(f.report.message);
  if (isolation_mode(with_cgroup).mode != CgroupMode::none) {
    CHECK(f.report.outcome == Outcome::limit_exceeded);
    CHECK(contains(f.report.message, "process limit (16 processes)"));
    CHECK(contains(f.report.message, "fork failed"));
  } else if (::geteuid() == 0) {
    CHECK(f.report.outcome == Outcome::timed_out);
  } else {
    CHECK(f.report.outcome == Outcome::failed);
    CHECK(contains(f.report.message, "fork failed"));
  }
  const auto pids = read_pids(pid_file);
  CHECK_FALSE(pids.empty());
  for (int pid : pids) CHECK(eventually_dead(pid));
  CHECK(group_eventually_empty(f.report.pid));
  CHECK(::kill(::getpid(), 0) == 0);  // and we are still here
  fs::remove(pid_file);
}

TEST_CASE("100 MB of output: only the bounded tail is kept", "[executor]") {
  RunRequest req = request("flood", {{"mib", "100"}});
  req.limits.output_bytes = 64 * 1024;
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::succeeded);
  CHECK(f.report.output_bytes >= 100ull << 20);
  CHECK(f.report.output_tail.size() <= 64 * 1024);
  CHECK(f.report.output_tail.size() > 60 * 1024);
  const std::string last = "flood done\n";
  REQUIRE(f.report.output_tail.size() >= last.size());
  CHECK(f.report.output_tail.substr(f.report.output_tail.size() - last.size()) == last);
  CHECK(f.report.output_tail.rfind("line ", 0) == 0);  // starts with a whole line
  // The log got a rate-limited trickle, not a million lines.
  CHECK(f.lines.size() < 50'000);
  CHECK(any_line(f.lines, LogStream::host, "lines not logged (rate limit"));
}

TEST_CASE("a job ignoring SIGTERM is killed after the grace", "[executor]") {
  RunRequest req = request("ignores_term", {{"seconds", "60"}});
  req.timeout = 1s;
  req.kill_grace = 1s;
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::timed_out);
  CHECK(f.report.signal_name == "SIGKILL");
  CHECK(contains(f.report.message, "killed after the 1s grace"));
  // It cannot end before timeout + grace; the upper bound only proves it ended.
  CHECK(f.elapsed >= 1900ms);
  CHECK(f.elapsed < 30s);
  CHECK(group_eventually_empty(f.report.pid));
}

TEST_CASE("stall: no heartbeat is stalled, heartbeats keep a slow run alive", "[executor]") {
  SECTION("stalled") {
    RunRequest req = request("no_heartbeat", {{"seconds", "60"}});
    req.stall_timeout = 1s;
    const Finished f = run(req);
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::stalled);
    CHECK(contains(f.report.message, "no heartbeat for 1s"));
    CHECK(f.report.retryable);
  }
  SECTION("heartbeating for longer than the stall timeout") {
    RunRequest req = request("heartbeating", {{"seconds", "2"}});
    req.stall_timeout = 500ms;
    const Finished f = run(req);
    INFO(f.report.message);
    CHECK(f.report.outcome == Outcome::succeeded);
    REQUIRE(f.report.last_progress);
    CHECK(*f.report.last_progress > 0.5);
  }
}

TEST_CASE("a cancel-aware job returns by itself when cancelled", "[executor]") {
  RunRequest req = request("cancel_aware", {{"seconds", "60"}});
  req.timeout = 1s;
  req.kill_grace = 30s;
  const Finished f = run(req);
  INFO(f.report.message);
  CHECK(f.report.outcome == Outcome::timed_out);
  CHECK(f.report.exit_code == 0);  // it returned; it was not killed
  CHECK_FALSE(f.report.signal);
  CHECK(contains(f.report.message, "noticed the cancel request"));
  CHECK_FALSE(contains(f.report.message, "grace"));
  CHECK(any_line(f.lines, LogStream::plugin, "cancel requested, cleaning up"));
  CHECK(f.elapsed < 20s);
}

TEST_CASE("stop() for replace and shutdown; stop_all", "[executor]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::map<std::string, RunReport> reports;
  auto on_done = [&](RunReport r) { reports.emplace(r.run_id, std::move(r)); };
  RunRequest a = request("sleeper", {{"seconds", "60"}});
  RunRequest b = request("sleeper", {{"seconds", "60"}});
  RunRequest c = request("ignores_term", {{"seconds", "60"}});
  c.kill_grace = 0s;
  const std::string ida = a.run_id, idb = b.run_id, idc = c.run_id;
  REQUIRE(ex.start(a, on_done));
  REQUIRE(ex.start(b, on_done));
  REQUIRE(ex.start(c, on_done));
  CHECK(ex.active() == 3);
  boost::asio::steady_timer later(io, 300ms);
  later.async_wait([&](const boost::system::error_code&) {
    ex.stop(ida, StopReason::replace);
    ex.stop(ida, StopReason::shutdown);  // the first reason stays
    ex.stop("no-such-run", StopReason::shutdown);
    ex.stop_all(StopReason::shutdown);
  });
  io.run_for(60s);
  REQUIRE(reports.size() == 3);
  CHECK(ex.active() == 0);
  CHECK(reports.at(ida).outcome == Outcome::replaced);
  CHECK(reports.at(idb).outcome == Outcome::interrupted);
  CHECK(reports.at(idc).outcome == Outcome::interrupted);
  CHECK(reports.at(idc).signal_name == "SIGKILL");  // grace 0: killed at once
}

TEST_CASE("park: set up ahead, no plugin code until release; discard runs none of it",
          "[executor][parking]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::map<std::string, RunReport> reports;
  auto on_done = [&](RunReport r) { reports.emplace(r.run_id, std::move(r)); };
  // kept: released after 500 ms; its timeout (300 ms) counts from then.
  RunRequest kept = request("sleeper", {{"seconds", "0.1"}});
  kept.timeout = 300ms;
  RunRequest dropped = request("hello", {{"greeting", "never"}});
  dropped.plugin_path = std::string(JOBHOST_PLUGIN_DIR) + "/hello.so";
  const std::string id_kept = kept.run_id, id_dropped = dropped.run_id;
  // Two runs behind one gate (the same instant).
  const TimePoint instant = wall_now() + 1s;
  auto pid_kept = ex.park(kept, on_done, instant);
  auto pid_dropped = ex.park(dropped, on_done, instant);
  REQUIRE(pid_kept);
  REQUIRE(pid_dropped);
  CHECK(ex.active() == 2);
  TimePoint released_at{};
  boost::asio::steady_timer later(io, 500ms);
  later.async_wait([&](const boost::system::error_code&) {
    // Parked: alive, blocked, nothing of the plugin seen.
    CHECK(process_state(*pid_kept) == "S");
    CHECK(process_state(*pid_dropped) == "S");
    CHECK(lines.empty());
    ex.discard(id_dropped);
    ex.discard("no-such-run");
    released_at = wall_now();
    const std::vector<std::string> ids{id_kept};
    ex.release(ids);
    ex.release(ids);  // no-op: no longer parked
  });
  io.run_for(30s);
  REQUIRE(reports.size() == 1);
  const RunReport& r = reports.at(id_kept);
  INFO(r.message);
  CHECK(r.outcome == Outcome::succeeded);
  CHECK(r.started >= released_at);
  CHECK(ex.active() == 0);
  CHECK(eventually_dead(*pid_dropped));
  for (const auto& l : lines) CHECK(l.run_id != id_dropped);
}

TEST_CASE("park: runs behind one gate wake together; a partial release still starts each",
          "[executor][parking]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::map<std::string, RunReport> reports;
  auto on_done = [&](RunReport r) { reports.emplace(r.run_id, std::move(r)); };
  const TimePoint first = wall_now() + 1s, second = first + 1s;
  std::vector<std::string> gate1, gate2;
  for (int i = 0; i < 4; ++i) {
    RunRequest r = request("sleeper", {{"seconds", "0"}});
    gate1.push_back(r.run_id);
    REQUIRE(ex.park(r, on_done, first));
  }
  for (int i = 0; i < 3; ++i) {
    RunRequest r = request("sleeper", {{"seconds", "0"}});
    gate2.push_back(r.run_id);
    REQUIRE(ex.park(r, on_done, second));
  }
  boost::asio::steady_timer later(io, 300ms);
  later.async_wait([&](const boost::system::error_code&) {
    CHECK(reports.empty());
    ex.release(gate1);  // the whole gate: it opens
    // Two of three: their gate stays shut for the third; each gets its byte.
    ex.release(std::span<const std::string>(gate2.data(), 2));
  });
  io.run_for(3s);  // the third parked run keeps io busy until then
  CHECK(reports.size() == 6);
  for (const auto& [id, r] : reports) CHECK(r.outcome == Outcome::succeeded);
  CHECK_FALSE(reports.contains(gate2[2]));
  CHECK(ex.active() == 1);  // still parked
  ex.discard(gate2[2]);
  io.restart();
  io.run_for(5s);
  CHECK(ex.active() == 0);
  CHECK(reports.size() == 6);
}

TEST_CASE("park: a parked run killed from outside is reported before any release",
          "[executor][parking]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::optional<RunReport> report;
  RunRequest req = request("hello");
  req.plugin_path = std::string(JOBHOST_PLUGIN_DIR) + "/hello.so";
  auto pid = ex.park(
      req, [&](RunReport r) { report = std::move(r); }, wall_now() + 10s);
  REQUIRE(pid);
  boost::asio::steady_timer later(io, 300ms);
  later.async_wait([&](const boost::system::error_code&) { ::kill(*pid, SIGKILL); });
  io.run_for(30s);
  REQUIRE(report);
  CHECK(report->outcome == Outcome::crashed);
  CHECK(report->signal_name == "SIGKILL");
  CHECK(ex.active() == 0);
  for (const auto& l : lines) CHECK(l.stream != LogStream::plugin);  // hello never ran
}

TEST_CASE("start() errors start nothing and never call on_done", "[executor]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  int calls = 0;
  auto on_done = [&](RunReport) { ++calls; };
  SECTION("run id not a plain name") {
    RunRequest r = request("noop");
    r.run_id = "../escape";
    auto s = ex.start(r, on_done);
    REQUIRE_FALSE(s);
    CHECK(contains(s.error().message, "plain name"));
  }
  SECTION("unknown user") {
    RunRequest r = request("noop");
    r.user = "no-such-user-jobhost";
    auto s = ex.start(r, on_done);
    REQUIRE_FALSE(s);
    CHECK(contains(s.error().message, "no-such-user-jobhost"));
  }
  SECTION("run id already active") {
    RunRequest r = request("sleeper", {{"seconds", "60"}});
    REQUIRE(ex.start(r, on_done));
    auto again = ex.start(r, on_done);
    REQUIRE_FALSE(again);
    CHECK(contains(again.error().message, "already running"));
    ex.stop(r.run_id, StopReason::shutdown);
    io.run_for(60s);
    CHECK(calls == 1);
    calls = 0;
  }
  io.run_for(100ms);
  CHECK(calls == 0);
  CHECK(ex.active() == 0);
}

TEST_CASE("many runs at once are each reported exactly once", "[executor]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::map<std::string, int> reported;
  std::set<int> pids;
  for (int i = 0; i < 20; ++i) {
    RunRequest r = request(i % 2 ? "noop" : "fail");
    reported[r.run_id] = 0;
    auto pid = ex.start(r, [&](RunReport rep) {
      ++reported[rep.run_id];
      CHECK(rep.outcome == (rep.message.empty() || rep.message == "succeeded" ? Outcome::succeeded
                                                                              : Outcome::failed));
    });
    REQUIRE(pid);
    pids.insert(*pid);
  }
  CHECK(pids.size() == 20);
  io.run_for(60s);
  CHECK(ex.active() == 0);
  for (const auto& [id, n] : reported) CHECK(n == 1);
  // Every run was reaped (by the fork server, when we asked): none is left
  // as a zombie.
  for (int pid : pids) CHECK(process_state(pid).empty());
}

TEST_CASE("runs one after another reuse their cgroups", "[executor][needs-cgroup]") {
  if (caps().mode == CgroupMode::none) {
    JOBHOST_SKIP("no cgroup mode on this machine: " << caps().description);
  }
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ExecutorOptions options = options_with(lines);
  options.isolation = caps();
  ForkExecutor ex(io, options);
  constexpr int kRuns = 6;
  std::vector<Outcome> outcomes;
  std::function<void()> start_next = [&] {
    auto pid = ex.start(request("noop"), [&](RunReport rep) {
      outcomes.push_back(rep.outcome);
      if (outcomes.size() < kRuns) start_next();
    });
    REQUIRE(pid);
  };
  start_next();
  io.run_for(60s);
  CHECK(outcomes == std::vector<Outcome>(kRuns, Outcome::succeeded));
  // The next run starts before the last one's cgroup is given back, so two
  // take turns.
  CHECK(ex.cgroups_made() == 2);
}

TEST_CASE(
    "resources: CPU of the run and the children it waited for, peak memory; hostile "
    "metrics dropped",
    "[executor]") {
  const Finished f = run(
      request("resources", {{"own_cpu_ms", "100"}, {"child_cpu_ms", "300"}, {"touch_mib", "48"}}));
  INFO(f.report.message);
  REQUIRE(f.report.outcome == Outcome::succeeded);
  REQUIRE(f.report.cpu_seconds);
  CHECK(*f.report.cpu_seconds >= 0.39);
  CHECK(*f.report.cpu_seconds < 60);
  CHECK(f.report.max_rss_bytes >= (48u << 20));
  const auto& m = f.report.metrics;
  CHECK(m.at("cpu_ms") == 400);
  CHECK(m.at("touched_mib") == 48);
  CHECK(m.at("bad\xff\xfeutf8") == 2);
  CHECK(m.at("quote\"back\\slash\nnewline") == 3);
  CHECK_FALSE(m.contains("nan"));
  CHECK_FALSE(m.contains("inf"));
  CHECK_FALSE(m.contains(std::string(200, 'n')));
}

TEST_CASE("resources: CPU of a child the run never reaps is counted by the cgroup",
          "[executor][needs-cgroup]") {
  if (caps().mode == CgroupMode::none || (caps().mode == CgroupMode::v1 && !caps().v2_kill)) {
    JOBHOST_SKIP("no v2 cgroup per run (cpu.stat) on this machine: " << caps().description);
  }
  const Finished f = run(request("resources", {{"own_cpu_ms", "50"}, {"orphan_cpu_ms", "400"}}));
  INFO(f.report.message);
  REQUIRE(f.report.outcome == Outcome::succeeded);
  REQUIRE(f.report.cpu_seconds);
  CHECK(*f.report.cpu_seconds >= 0.44);
}

TEST_CASE("resources: a reused cgroup reports the peak memory of its new run only",
          "[executor][needs-cgroup]") {
  if (caps().mode == CgroupMode::none) {
    JOBHOST_SKIP("no cgroup mode on this machine: " << caps().description);
  }
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::vector<RunReport> reports;
  std::function<void(const char*)> start = [&](const char* mib) {
    auto pid = ex.start(
        request("resources", {{"own_cpu_ms", "0"}, {"touch_mib", mib}}), [&](RunReport rep) {
          reports.push_back(rep);
          // Later than the cgroup's release: the pool has it back.
          if (reports.size() == 1) {
            boost::asio::post(io, [&] { boost::asio::post(io, [&] { start("0"); }); });
          }
        });
    REQUIRE(pid);
  };
  start("96");
  io.run_for(60s);
  REQUIRE(reports.size() == 2);
  CHECK(ex.cgroups_made() == 1);
  CHECK(reports[0].max_rss_bytes >= (96u << 20));
  CHECK(reports[1].max_rss_bytes > 0);
  CHECK(reports[1].max_rss_bytes < (64u << 20));
}

TEST_CASE("a run's secrets do not reach the runs forked after it", "[executor]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  // Before the secret exists: the fork server is a copy of this process.
  ForkExecutor ex(io, options_with(lines));
  const std::string secret = "tok-" + std::to_string(::getpid()) + "-q7Zx";
  uint64_t hash = 0;
  for (unsigned char c : secret) hash = hash * 257 + c;  // memscan's hash
  const std::map<std::string, std::string> needle = {{"length", std::to_string(secret.size())},
                                                     {"hash", std::to_string(hash)}};
  auto run_one = [&](RunRequest r) {
    std::optional<RunReport> report;
    REQUIRE(ex.start(std::move(r), [&](RunReport done) { report = std::move(done); }));
    while (!report && io.run_one_for(60s) > 0) {
    }
    REQUIRE(report);
    INFO(report->message);
    REQUIRE(report->outcome == Outcome::succeeded);
    return report->metrics.at("found");
  };
  // A long parameter puts the secret far into the request, beyond where the
  // next (shorter) request overwrites the fork server's receive buffer.
  auto padded = needle;
  padded["pad"] = std::string(8000, 'p');
  RunRequest with_secret = request("memscan", padded);
  with_secret.secrets = {{"token", secret}};
  CHECK(run_one(with_secret) >= 1);  // the scan finds a run's own secret
  CHECK(run_one(request("memscan", needle)) == 0);
}

TEST_CASE("destroying the executor kills and reaps its runs", "[executor]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  int pid = 0;
  bool called = false;
  {
    ForkExecutor ex(io, options_with(lines));
    auto started =
        ex.start(request("ignores_term", {{"seconds", "60"}}), [&](RunReport) { called = true; });
    REQUIRE(started);
    pid = *started;
    io.run_for(200ms);
  }
  io.run_for(100ms);
  CHECK_FALSE(called);
  CHECK(process_state(pid).empty());  // killed and reaped, not left a zombie
}

namespace {

// The parent and process group of a live process, from /proc.
std::pair<int, int> parent_and_group(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string state;
  int ppid = 0, pgid = 0;
  rest >> state >> ppid >> pgid;
  return {ppid, pgid};
}

}  // namespace

TEST_CASE("runs are forked by a fork server in a group of its own", "[executor]") {
  std::vector<Captured> lines;
  boost::asio::io_context io;
  ForkExecutor ex(io, options_with(lines));
  std::optional<RunReport> report;
  auto pid = ex.start(request("sleeper", {{"seconds", "60"}}), [&](RunReport r) { report = r; });
  REQUIRE(pid);
  const auto [server, run_group] = parent_and_group(*pid);
  CHECK(run_group == *pid);
  REQUIRE(server != ::getpid());
  const auto [server_parent, server_group] = parent_and_group(server);
  CHECK(server_parent == ::getpid());
  CHECK(server_group == server);  // a Ctrl-C to our group does not reach it

  SECTION("when it dies, its runs end interrupted and the next run gets a new one") {
    REQUIRE(::kill(server, SIGKILL) == 0);
    io.run_for(30s);
    REQUIRE(report);
    CHECK(report->outcome == Outcome::interrupted);
    CHECK_THAT(report->message, Catch::Contains("exit status unknown"));
    CHECK(eventually_dead(*pid));  // its death signal took the run with it

    std::optional<RunReport> next;
    auto again = ex.start(request("noop"), [&](RunReport r) { next = r; });
    REQUIRE(again);
    CHECK(parent_and_group(*again).first != server);
    io.restart();
    io.run_for(30s);
    REQUIRE(next);
    CHECK(next->outcome == Outcome::succeeded);
    CHECK(process_state(server).empty());  // the dead server was reaped
  }
  SECTION("a plugin unfit to preload retires the server, not the run") {
    // One that starts a thread when loaded; one that maps over the budget.
    const std::string plugin = GENERATE(as<std::string>{}, "threaded_init", "big_map");
    INFO(plugin);
    // Runs the loop until `done` (the sleeper keeps it busy for a minute).
    auto run_until = [&](const auto& done) {
      const auto end = std::chrono::steady_clock::now() + 30s;
      while (!done() && std::chrono::steady_clock::now() < end) io.run_one_for(100ms);
    };
    std::optional<RunReport> first, second;
    auto a = ex.start(request(plugin), [&](RunReport r) { first = r; });
    REQUIRE(a);
    const int new_server = parent_and_group(*a).first;
    CHECK(new_server != server);  // the old one may not fork any more
    run_until([&] { return first.has_value(); });
    REQUIRE(first);
    CHECK(first->outcome == Outcome::succeeded);
    auto b = ex.start(request(plugin), [&](RunReport r) { second = r; });
    REQUIRE(b);
    CHECK(parent_and_group(*b).first == new_server);  // not preloaded again
    run_until([&] { return second.has_value(); });
    REQUIRE(second);
    CHECK(second->outcome == Outcome::succeeded);
    CHECK(!process_state(server).empty());  // retired, still reaping its run
    ex.stop_all(StopReason::shutdown);
    run_until([&] { return report.has_value() && process_state(server).empty(); });
    REQUIRE(report);
    CHECK(report->outcome == Outcome::interrupted);
    CHECK(process_state(server).empty());  // let go once its last run was reaped
  }
  SECTION("a request over its size limit is refused, and the server stays") {
    auto big = ex.start(request("noop", {{"blob", std::string(200 * 1024, 'x')}}),
                        [&](RunReport) { FAIL("refused runs never report"); });
    REQUIRE_FALSE(big);
    CHECK_THAT(big.error().message, Catch::Contains("params and secrets"));
    ex.stop_all(StopReason::shutdown);
    io.run_for(30s);
    REQUIRE(report);
    CHECK(report->outcome == Outcome::interrupted);
    CHECK(!process_state(server).empty());
  }
}

TEST_CASE("run_blocking", "[executor]") {
  ExecutorOptions o;
  o.isolation = caps();
  o.log_sink = [](const RunLogLine&) {};
  auto report = run_blocking(request("noop"), o);
  REQUIRE(report);
  CHECK(report->outcome == Outcome::succeeded);
  RunRequest bad = request("noop");
  bad.run_id = "";
  CHECK_FALSE(run_blocking(bad, o));
}

namespace {

// True while `pid` exists and is not a zombie.
bool alive_not_zombie(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return false;
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

// A dynamic uid that no account has (the test's own choice in the range).
uid_t unknown_uid() {
  for (uid_t id = 61999; id < 65500; ++id) {
    if (::getpwuid(id) == nullptr && ::getgrgid(id) == nullptr) return id;
  }
  return 0;
}

}  // namespace

TEST_CASE("a dynamic user's run: its uid, no capability, its own state directory",
          "[executor][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("dynamic users need root");
  const uid_t uid = unknown_uid();
  REQUIRE(uid != 0);
  jobhost::testing::TempDir dir;
  const auto state = dir.path() / "var" / "jobs" / "x";
  // Mode none (no cgroup): what leaves the process group is killed by uid.
  const IsolationCaps none;
  const auto isolation = GENERATE(as<std::string>{}, "none", "this machine's");
  INFO("isolation: " << isolation);
  RunRequest req = request("hostile", {{"mode", "escape"}, {"job", "x"}});
  req.dynamic_uid = uid;
  req.state_directory = state;
  const Finished f = run(req, isolation == "none" ? none : caps());
  INFO(f.report.message);
  REQUIRE(f.report.outcome == Outcome::succeeded);
  const auto& m = f.report.metrics;
  CHECK(m.at("uid") == uid);
  CHECK(m.at("euid") == uid);
  CHECK(m.at("gid") == uid);
  CHECK(m.at("groups") == 1);
  CHECK(m.at("cap_eff") == 0);
  CHECK(m.at("cap_bnd") == 0);
  CHECK(m.at("cwd_is_job") == 1);
  struct stat st {};
  REQUIRE(::stat(state.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(st.st_uid == uid);
  CHECK(st.st_gid == uid);
  REQUIRE(::stat(state.parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0711);
  const auto escapee = static_cast<pid_t>(m.at("escapee_pid"));
  REQUIRE(escapee > 0);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = !alive_not_zombie(escapee);
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  if (!gone) ::kill(escapee, SIGKILL);
  CHECK(gone);

  // The uid moved (another dynamic uid): the directory and what is in it follow.
  const uid_t moved = uid + 1;
  {
    std::ofstream(state / "kept") << "x";
    REQUIRE(::chown((state / "kept").c_str(), uid, uid) == 0);
  }
  RunRequest again = request("hostile", {{"mode", "keep"}, {"job", "x"}});
  again.dynamic_uid = moved;
  again.state_directory = state;
  const Finished g = run(again, none);
  INFO(g.report.message);
  REQUIRE(g.report.outcome == Outcome::succeeded);
  CHECK(g.report.metrics.at("kept_found") == 1);
  CHECK(g.report.metrics.at("kept_written") == 1);
  REQUIRE(::stat((state / "kept").c_str(), &st) == 0);
  CHECK(st.st_uid == moved);
}
