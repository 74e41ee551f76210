#include "daemon/control.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <vector>

#include "daemon/daemon.h"
#include "daemon/pid_lock.h"
#include "support/harness.h"
#include "support/skip.h"

using namespace std::chrono_literals;
using jobhost::testing::TempDir;

TEST_CASE("control socket: a request gets the handler's reply", "[control]") {
  TempDir dir;
  boost::asio::io_context io;
  auto server = jobhost::daemon::ControlServer::listen(
      io, jobhost::daemon::control_socket_path(dir.path()), [](const nlohmann::json& request) {
        return nlohmann::json{{"ok", true}, {"echo", request.value("job", "")}};
      });
  REQUIRE(server);
  std::optional<nlohmann::json> reply;
  std::thread client([&] {
    auto r = jobhost::daemon::control_request(dir.path(), {{"op", "x"}, {"job", "backup"}}, 2s);
    if (r) reply = *r;
    io.stop();
  });
  io.run_for(5s);
  client.join();
  REQUIRE(reply);
  CHECK((*reply)["echo"] == "backup");
}

using Kind = jobhost::daemon::ControlError::Kind;

// A Unix socket bound at the control socket's path; listening or not.
int bind_control_socket(const std::filesystem::path& state_dir, bool listening) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, jobhost::daemon::control_socket_path(state_dir).c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  if (listening) REQUIRE(::listen(fd, 8) == 0);
  return fd;
}

TEST_CASE("control socket: no daemon is 'no_daemon'", "[control]") {
  TempDir dir;
  SECTION("no socket file") {
    auto r = jobhost::daemon::control_request(dir.path(), {{"op", "ping"}}, 1s);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Kind::no_daemon);
    CHECK(r.error().message.find("jobhost run") != std::string::npos);
  }
  SECTION("a stale socket file nobody listens on") {
    int fd = bind_control_socket(dir.path(), false);
    auto r = jobhost::daemon::control_request(dir.path(), {{"op", "ping"}}, 1s);
    ::close(fd);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == Kind::no_daemon);
  }
}

TEST_CASE("control socket: accepted but not answered in time is 'no_answer'", "[control]") {
  TempDir dir;
  // The kernel completes the connection into the listen backlog; nobody reads it.
  int fd = bind_control_socket(dir.path(), true);
  const auto before = std::chrono::steady_clock::now();
  auto r = jobhost::daemon::control_request(dir.path(), {{"op", "ping"}}, 300ms);
  const auto waited = std::chrono::steady_clock::now() - before;
  ::close(fd);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == Kind::no_answer);
  CHECK(r.error().message.find("did not answer within 300ms") != std::string::npos);
  CHECK(waited >= 300ms);
}

TEST_CASE("control socket: a connection closed without a reply is 'failed'", "[control]") {
  TempDir dir;
  boost::asio::io_context io;
  auto server = jobhost::daemon::ControlServer::listen_async(
      io, jobhost::daemon::control_socket_path(dir.path()),
      [](const nlohmann::json&, const jobhost::daemon::ControlServer::Respond&) {
        // never responds: the Respond is dropped, which closes the connection
      });
  REQUIRE(server);
  std::optional<jobhost::daemon::ControlError> error;
  std::thread client([&] {
    auto r = jobhost::daemon::control_request(dir.path(), {{"op", "x"}}, 3s);
    if (!r) error = r.error();
    io.stop();
  });
  io.run_for(5s);
  client.join();
  REQUIRE(error);
  CHECK(error->kind == Kind::failed);
  CHECK(error->message.find("closed the connection") != std::string::npos);
}

// fuzz/regressions/control_request/not-utf8: the parse error quoted the
// byte, and serializing that reply threw out of the loop (the daemon died).
TEST_CASE("control socket: a request that is not UTF-8 gets a bad-request reply", "[control]") {
  TempDir dir;
  boost::asio::io_context io;
  const auto path = jobhost::daemon::control_socket_path(dir.path());
  auto server = jobhost::daemon::ControlServer::listen(io, path, [](const nlohmann::json&) {
    return nlohmann::json{{"ok", true}};
  });
  REQUIRE(server);
  std::string reply;
  std::thread client([&] {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      const std::string request = "\"\xff\"\n";
      (void)::write(fd, request.data(), request.size());
      char buffer[4096];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof buffer)) > 0) reply.append(buffer, n);
    }
    ::close(fd);
    io.stop();
  });
  io.run_for(5s);
  client.join();
  INFO(reply);
  CHECK(reply.starts_with("{\"error\":\"bad request: "));
  CHECK(reply.ends_with("\n"));
  CHECK(nlohmann::json::parse(reply)["ok"] == false);
}

TEST_CASE("pid lock: one holder per state dir, released on destruction", "[pid_lock]") {
  TempDir dir;
  {
    auto first = jobhost::daemon::PidLock::acquire(dir.path() / "state");
    REQUIRE(first);
    CHECK(jobhost::daemon::PidLock::holder(dir.path() / "state") == getpid());
    // A second open file description conflicts even within one process (flock).
    auto second = jobhost::daemon::PidLock::acquire(dir.path() / "state");
    REQUIRE_FALSE(second);
    CHECK(second.error().message.find("already running") != std::string::npos);
    CHECK(second.error().message.find(std::to_string(getpid())) != std::string::npos);
  }
  CHECK(jobhost::daemon::PidLock::holder(dir.path() / "state") == 0);
  CHECK(jobhost::daemon::PidLock::acquire(dir.path() / "state"));
}

namespace {

// Runs `client` in a forked child that became uid nobody with primary group
// `gid` and supplementary `groups`, while `io` serves; returns what the child
// wrote to its pipe.
std::string as_nobody(boost::asio::io_context& io, gid_t gid, std::vector<gid_t> groups,
                      const std::function<std::string()>& client) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
        ::setuid(65534) != 0) {
      _exit(2);
    }
    const std::string out = client();
    (void)!::write(fds[1], out.data(), out.size());
    _exit(0);
  }
  ::close(fds[1]);
  io.restart();
  io.run_for(3s);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  return out;
}

// One request over a raw connection to `socket`; the reply line, or "errno N".
std::string raw_request(const std::filesystem::path& socket) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return "errno " + std::to_string(errno);
  }
  const std::string line = "{\"op\":\"ping\"}\n";
  (void)!::write(fd, line.data(), line.size());
  std::string reply;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') reply += c;
  ::close(fd);
  return reply;
}

}  // namespace

TEST_CASE("control socket: only root, the host's user and control_group may use it",
          "[control][needs-root]") {
  if (::geteuid() != 0 || ::getpwuid(65534) == nullptr) {
    JOBHOST_SKIP("switching to uid 65534 (nobody) needs root and that user");
  }
  TempDir dir;
  const auto path = jobhost::daemon::control_socket_path(dir.path());
  const gid_t members = 65534;  // nobody's usual group (nogroup)
  const gid_t outsiders = 54321;
  auto handler = [](const nlohmann::json&) { return nlohmann::json{{"ok", true}}; };
  boost::asio::io_context io;

  SECTION("no control_group: the socket file is 0600, nobody cannot connect") {
    auto server = jobhost::daemon::ControlServer::listen(io, path, handler);
    REQUIRE(server);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const std::string said = as_nobody(io, outsiders, {}, [&] {
      auto r = jobhost::daemon::control_request(dir.path(), {{"op", "ping"}}, 2s);
      return r ? r->dump() : r.error().message;
    });
    CHECK_THAT(said, Catch::Contains("permission denied on the control socket"));

    // Past the file mode, the peer check refuses them too, saying who may.
    REQUIRE(::chmod(path.c_str(), 0666) == 0);
    const std::string reply = as_nobody(io, outsiders, {}, [&] { return raw_request(path); });
    CHECK_THAT(reply, Catch::Contains("refused: uid 65534 may not use this control socket"));
    CHECK_THAT(reply, Catch::Contains("control_group"));
    CHECK_THAT(reply, Catch::Contains("\"ok\":false"));
  }

  SECTION("control_group: its members get in, by primary or supplementary group") {
    auto server = jobhost::daemon::ControlServer::listen(io, path, handler,
                                                         {.group = members, .group_name = "ng"});
    REQUIRE(server);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    CHECK(st.st_gid == members);
    CHECK(as_nobody(io, members, {}, [&] { return raw_request(path); }) == "{\"ok\":true}");
    CHECK(as_nobody(io, outsiders, {members}, [&] { return raw_request(path); }) ==
          "{\"ok\":true}");
    REQUIRE(::chmod(path.c_str(), 0666) == 0);
    const std::string reply = as_nobody(io, outsiders, {}, [&] { return raw_request(path); });
    CHECK_THAT(reply, Catch::Contains("refused: uid 65534"));
    CHECK_THAT(reply, Catch::Contains("members of control_group \\\"ng\\\""));
  }
}
