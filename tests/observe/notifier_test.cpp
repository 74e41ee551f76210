// The notifiers (observe/notifier.h): a command run isolated with the
// notice on stdin and in JOBHOST_* variables, and a webhook POSTed over
// HTTPS to a server in this process whose certificate is signed by a CA
// made for the test (openssl CLI).
#include <fmt/format.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "observe/notifier.h"
#include "support/skip.h"
#include "support/temp_dir.h"

using namespace jobhost;
using namespace jobhost::observe;
using namespace std::chrono_literals;
using jobhost::testing::TempDir;
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path script(const fs::path& dir, const std::string& name, const std::string& body) {
  const fs::path p = dir / name;
  std::ofstream(p) << "#!/bin/sh\n" << body;
  fs::permissions(p, fs::perms::owner_all);
  return p;
}

nlohmann::json sample_notice() {
  return {{"event", "alert"},
          {"kind", "failing"},
          {"job", "backup"},
          {"message", "job backup failed 3 times in a row"},
          {"since", "2026-12-06T05:00:00.000Z"},
          {"at", "2026-12-06T05:00:01.000Z"},
          {"host", "test"},
          {"run_id", "r1"},
          {"notifier", "ops"}};
}

// Runs `io` until the delivery is done (or 30 s pass).
Delivery deliver(asio::io_context& io, Notifier& n, const nlohmann::json& notice) {
  std::optional<Delivery> result;
  n.send(notice, [&](Delivery d) { result = std::move(d); });
  io.restart();
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (!result && std::chrono::steady_clock::now() < until) io.run_for(50ms);
  REQUIRE(result.has_value());
  return *result;
}

config::NotifierConfig command_config(std::vector<std::string> argv, Duration timeout = 10s) {
  config::NotifierConfig c;
  c.name = "ops";
  c.type = config::NotifierConfig::Type::command;
  c.command = std::move(argv);
  c.timeout = timeout;
  // These tests write into root-only temp dirs: keep the daemon's user (the
  // privilege drop has its own test).
  if (::geteuid() == 0) c.user = "root";
  return c;
}

bool run_ok(const std::string& command) {
  return std::system(command.c_str()) == 0;
}

}  // namespace

TEST_CASE("command notifier: JSON on stdin, JOBHOST_* variables, a clean environment",
          "[observe][notifier]") {
  ::signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  const auto out = dir.path() / "out";
  const auto exe = script(dir.path(), "notify",
                          "cat >> \"$1\"\n"
                          "env | sort > \"$1.env\"\n"
                          "ls /proc/self/fd > \"$1.fds\"\n"
                          "ps -o pgid= -p $$ | tr -d ' ' > \"$1.pgid\"\n");
  setenv("JOBHOST_TEST_SECRET", "leak", 1);
  asio::io_context io;
  auto n = make_command_notifier(io, command_config({exe.string(), out.string()}));
  auto result = deliver(io, *n, sample_notice());
  unsetenv("JOBHOST_TEST_SECRET");
  INFO(result.error);
  CHECK(result.ok);
  CHECK(nlohmann::json::parse(slurp(out)) == sample_notice());
  const std::string env = slurp(out.string() + ".env");
  CHECK(env.find("JOBHOST_ALERT_KIND=failing\n") != std::string::npos);
  CHECK(env.find("JOBHOST_ALERT_EVENT=alert\n") != std::string::npos);
  CHECK(env.find("JOBHOST_JOB=backup\n") != std::string::npos);
  CHECK(env.find("JOBHOST_ALERT_MESSAGE=job backup failed 3 times in a row\n") !=
        std::string::npos);
  CHECK(env.find("JOBHOST_TEST_SECRET") == std::string::npos);  // not the daemon's environment
  CHECK(env.find("PATH=/usr/bin:/bin\n") != std::string::npos);
  // Only stdin, stdout, stderr (and the descriptor ls opens to list them).
  std::istringstream fds(slurp(out.string() + ".fds"));
  int count = 0;
  for (std::string line; std::getline(fds, line);) ++count;
  CHECK(count <= 4);
  // A process group of its own, not ours.
  const std::string pgid = slurp(out.string() + ".pgid");
  CHECK(std::stoi(pgid) != ::getpgrp());
  CHECK(n->in_flight() == 0);
}

TEST_CASE("command notifier: a failing command is reported with its status and output",
          "[observe][notifier]") {
  ::signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  const auto exe = script(dir.path(), "fails", "echo 'cannot reach pager' >&2\nexit 3\n");
  asio::io_context io;
  auto n = make_command_notifier(io, command_config({exe.string()}));
  auto result = deliver(io, *n, sample_notice());
  CHECK_FALSE(result.ok);
  CHECK(result.error == "exited with status 3: cannot reach pager");

  auto missing = make_command_notifier(io, command_config({(dir.path() / "nope").string()}));
  auto not_started = deliver(io, *missing, sample_notice());
  CHECK_FALSE(not_started.ok);
  CHECK(not_started.error.find("cannot start") != std::string::npos);
}

TEST_CASE("command notifier: the timeout kills the whole group", "[observe][notifier]") {
  ::signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  const auto pids = dir.path() / "pids";
  const auto exe = script(dir.path(), "hangs", "sleep 60 &\necho $! > \"$1\"\nsleep 60\n");
  asio::io_context io;
  auto n = make_command_notifier(io, command_config({exe.string(), pids.string()}, 300ms));
  const auto started = std::chrono::steady_clock::now();
  auto result = deliver(io, *n, sample_notice());
  CHECK_FALSE(result.ok);
  CHECK(result.error.starts_with("timed out after 300ms"));
  CHECK(std::chrono::steady_clock::now() - started < 20s);
  const pid_t grandchild = std::stoi(slurp(pids));
  // Killed with its group (it is reparented, so not our zombie to reap).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string line;
    std::getline(stat, line);
    gone = !stat || line.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(20ms);
  }
  CHECK(gone);
}

TEST_CASE("command notifier: runs as nobody when root, or as its user",
          "[observe][notifier][SKIPPABLE][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("needs root to change users");
  const passwd* nobody = ::getpwnam("nobody");
  if (!nobody) JOBHOST_SKIP("no nobody user");
  const uid_t nobody_uid = nobody->pw_uid;  // getpwnam's result is overwritten by the next call
  const passwd* daemon_user = ::getpwnam("daemon");
  if (!daemon_user) JOBHOST_SKIP("no daemon user");
  const uid_t daemon_uid = daemon_user->pw_uid;
  TempDir dir;
  // Others may enter the directory and run the script, but not write in `protected`.
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::others_read |
                                  fs::perms::others_exec | fs::perms::group_read |
                                  fs::perms::group_exec);
  const fs::path protected_dir = dir.path() / "protected";
  fs::create_directory(protected_dir);
  fs::permissions(protected_dir, fs::perms::owner_all | fs::perms::others_read |
                                     fs::perms::others_exec | fs::perms::group_read |
                                     fs::perms::group_exec);
  const auto exe = script(dir.path(), "whoami",
                          "(id -u > \"$1/uid\") 2>/dev/null\n"
                          "echo \"uid=$(id -u)\"\n"
                          "exit 1\n");
  fs::permissions(exe, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  asio::io_context io;

  SECTION("no user: nobody, which cannot write in a root-only directory") {
    auto config = command_config({exe.string(), protected_dir.string()});
    config.user.reset();
    auto n = make_command_notifier(io, config);
    auto result = deliver(io, *n, sample_notice());
    CHECK(result.error == fmt::format("exited with status 1: uid={}", nobody_uid));
    CHECK_FALSE(fs::exists(protected_dir / "uid"));
  }
  SECTION("a named user") {
    auto config = command_config({exe.string(), protected_dir.string()});
    config.user = "daemon";
    auto n = make_command_notifier(io, config);
    auto result = deliver(io, *n, sample_notice());
    CHECK(result.error == fmt::format("exited with status 1: uid={}", daemon_uid));
    CHECK_FALSE(fs::exists(protected_dir / "uid"));
  }
  SECTION("user = root keeps root") {
    auto config = command_config({exe.string(), protected_dir.string()});
    config.user = "root";
    auto n = make_command_notifier(io, config);
    auto result = deliver(io, *n, sample_notice());
    CHECK(result.error == "exited with status 1: uid=0");
    CHECK(slurp(protected_dir / "uid") == "0\n");
  }
  SECTION("an unknown user is a failed delivery that names it") {
    auto config = command_config({exe.string(), protected_dir.string()});
    config.user = "no-such-user-jobhost";
    auto n = make_command_notifier(io, config);
    auto result = deliver(io, *n, sample_notice());
    CHECK_FALSE(result.ok);
    CHECK_THAT(result.error, Catch::Contains("unknown user \"no-such-user-jobhost\""));
  }
}

TEST_CASE("notice_environment: bounded values without NUL bytes", "[observe][notifier]") {
  auto notice = sample_notice();
  notice["message"] = std::string("a\0b", 3) + std::string(10000, 'x');
  auto env = notice_environment(notice);
  bool found = false;
  for (const auto& e : env) {
    if (!e.starts_with("JOBHOST_ALERT_MESSAGE=")) continue;
    found = true;
    CHECK(e.find('\0') == std::string::npos);
    CHECK(e.size() <= std::string("JOBHOST_ALERT_MESSAGE=").size() + 4096);
    CHECK(e.starts_with("JOBHOST_ALERT_MESSAGE=abxxx"));
  }
  CHECK(found);
}

TEST_CASE("webhook backoff doubles up to its bound", "[observe][notifier]") {
  CHECK(webhook_backoff(1) == 1s);
  CHECK(webhook_backoff(2) == 2s);
  CHECK(webhook_backoff(3) == 4s);
  CHECK(webhook_backoff(30) == kWebhookMaxBackoff);
}

namespace {

// A CA and a server certificate for 127.0.0.1 and localhost, made with the
// openssl command line; false if it is missing.
bool make_certificates(const fs::path& dir) {
  const std::string d = dir.string();
  std::ofstream(dir / "san.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  std::ofstream(dir / "elsewhere.cnf") << "subjectAltName=DNS:elsewhere.example\n";
  return run_ok("cd '" + d +
                "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                "-keyout ca.key -out ca.pem "
                "-days 2 -subj '/CN=jobhost test CA' >/dev/null 2>&1 && "
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
                "server.key -out server.csr "
                "-subj '/CN=localhost' >/dev/null 2>&1 && "
                "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                "-out server.pem -days 2 -extfile san.cnf >/dev/null 2>&1 && "
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
                "elsewhere.key -out elsewhere.csr "
                "-subj '/CN=elsewhere.example' >/dev/null 2>&1 && "
                "openssl x509 -req -in elsewhere.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                "-out elsewhere.pem -days 2 -extfile elsewhere.cnf >/dev/null 2>&1");
}

// An HTTPS server on 127.0.0.1 on a thread of its own: answers each request
// with the next status of `statuses` (the last one repeats) and keeps the
// bodies it received. Blocking calls on its own thread; polls for stop().
class TlsServer {
 public:
  TlsServer(const fs::path& dir, std::vector<unsigned> statuses,
            const std::string& certificate = "server")
      : ctx_(asio::ssl::context::tls_server), acceptor_(io_), statuses_(std::move(statuses)) {
    ctx_.use_certificate_chain_file((dir / (certificate + ".pem")).string());
    ctx_.use_private_key_file((dir / (certificate + ".key")).string(), asio::ssl::context::pem);
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    acceptor_.non_blocking(true);
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }
  int handshakes_failed() const { return handshakes_failed_; }

 private:
  void serve() {
    std::size_t served = 0;
    while (!stop_) {
      boost::system::error_code ec;
      asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) {
        std::this_thread::sleep_for(10ms);
        continue;
      }
      socket.non_blocking(false);
      asio::ssl::stream<asio::ip::tcp::socket> stream(std::move(socket), ctx_);
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (ec) {
        ++handshakes_failed_;
        continue;
      }
      beast::flat_buffer buffer;
      http::request<http::string_body> request;
      http::read(stream, buffer, request, ec);
      if (ec) continue;
      {
        std::lock_guard lock(mutex_);
        bodies_.push_back(request.body());
      }
      const unsigned status = statuses_[std::min(served++, statuses_.size() - 1)];
      http::response<http::string_body> response{static_cast<http::status>(status), 11};
      response.body() = "{}";
      response.prepare_payload();
      http::write(stream, response, ec);
      stream.shutdown(ec);
    }
  }

  asio::io_context io_;
  asio::ssl::context ctx_;
  asio::ip::tcp::acceptor acceptor_;
  std::vector<unsigned> statuses_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_failed_{0};
  std::mutex mutex_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

// Threads of this process (/proc/self/task).
std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

config::NotifierConfig webhook_config(uint16_t port, const fs::path& ca_file, int retries = 0) {
  config::NotifierConfig c;
  c.name = "hook";
  c.type = config::NotifierConfig::Type::webhook;
  c.url = "https://127.0.0.1:" + std::to_string(port) + "/hooks/jobhost?x=1";
  c.ca_file = ca_file;
  c.timeout = 5s;
  c.retries = retries;
  c.headers = {{"X-Token", "secret"}};
  return c;
}

}  // namespace

TEST_CASE("webhook over HTTPS: delivered with ca_file, refused without it, retried on 500",
          "[observe][notifier][needs-openssl]") {
  // Made once for every section (Catch runs the test case once per section).
  static TempDir dir;
  static const bool made = make_certificates(dir.path());
  if (!made) JOBHOST_SKIP("the openssl command line is not installed");
  asio::io_context io;

  SECTION("delivered when the certificate verifies against ca_file") {
    TlsServer server(dir.path(), {200});
    auto n = make_webhook_notifier(io, webhook_config(server.port(), dir.path() / "ca.pem"));
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    INFO(result.error);
    CHECK(result.ok);
    CHECK(result.attempts == 1);
    auto bodies = server.bodies();
    REQUIRE(bodies.size() == 1);
    CHECK(nlohmann::json::parse(bodies[0]) == sample_notice());
  }
  SECTION("refused without ca_file: the system CAs do not know the test CA") {
    TlsServer server(dir.path(), {200});
    auto n = make_webhook_notifier(io, webhook_config(server.port(), {}, 3));
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    CHECK_FALSE(result.ok);
    CHECK(result.attempts == 1);  // not retried: it would fail the same way
    CHECK(result.error.find("certificate verification failed") != std::string::npos);
    CHECK(server.bodies().empty());
  }
  SECTION("a host name in the URL is checked against the certificate, with SNI") {
    TlsServer server(dir.path(), {200});
    auto config = webhook_config(server.port(), dir.path() / "ca.pem");
    config.url = "https://localhost:" + std::to_string(server.port()) + "/";
    const std::size_t threads_before = thread_count();
    auto n = make_webhook_notifier(io, config);
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    INFO(result.error);
    CHECK(result.ok);
    // Resolving "localhost" started no thread (the daemon must stay
    // single-threaded for its forks): the server's thread is the only extra.
    CHECK(thread_count() == threads_before);
  }
  SECTION("a certificate the CA signed for another name is refused") {
    TlsServer server(dir.path(), {200}, "elsewhere");
    auto n = make_webhook_notifier(io, webhook_config(server.port(), dir.path() / "ca.pem", 3));
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    CHECK_FALSE(result.ok);
    CHECK(result.attempts == 1);
    CHECK_THAT(result.error,
               Catch::Contains("certificate verification failed") && Catch::Contains("mismatch"));
    CHECK(server.bodies().empty());
  }
  SECTION("a 500 is tried again after a backoff, then delivered") {
    TlsServer server(dir.path(), {500, 200});
    auto n = make_webhook_notifier(io, webhook_config(server.port(), dir.path() / "ca.pem", 2));
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    INFO(result.error);
    CHECK(result.ok);
    CHECK(result.attempts == 2);
    CHECK(server.bodies().size() == 2);
  }
  SECTION("retries are bounded: every attempt answered 503") {
    TlsServer server(dir.path(), {503});
    auto n = make_webhook_notifier(io, webhook_config(server.port(), dir.path() / "ca.pem", 1));
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    CHECK_FALSE(result.ok);
    CHECK(result.attempts == 2);
    CHECK(result.error == "HTTP 503");
    CHECK(server.bodies().size() == 2);
  }
  SECTION("a 4xx is final") {
    TlsServer server(dir.path(), {404});
    auto n = make_webhook_notifier(io, webhook_config(server.port(), dir.path() / "ca.pem", 3));
    REQUIRE(n.has_value());
    auto result = deliver(io, **n, sample_notice());
    CHECK_FALSE(result.ok);
    CHECK(result.attempts == 1);
    CHECK(result.error == "HTTP 404");
  }
}

TEST_CASE("webhook: nothing listening is a connection error, tried again", "[observe][notifier]") {
  asio::io_context io;
  // A port that was just free: bind, read it, close.
  asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = probe.local_endpoint().port();
  probe.close();
  config::NotifierConfig c;
  c.name = "hook";
  c.type = config::NotifierConfig::Type::webhook;
  c.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  c.timeout = 2s;
  c.retries = 1;
  auto n = make_webhook_notifier(io, c);
  REQUIRE(n.has_value());
  auto result = deliver(io, **n, sample_notice());
  CHECK_FALSE(result.ok);
  CHECK(result.attempts == 2);
  CHECK(result.error.starts_with("connecting: "));
}
