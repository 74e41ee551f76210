#include "engine/control.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "engine/pid_lock.h"
#include "support/harness.h"

using namespace std::chrono_literals;
using jobhost::testing::TempDir;

TEST_CASE("control socket: a request gets the handler's reply", "[control]") {
  TempDir dir;
  boost::asio::io_context io;
  auto server = jobhost::engine::ControlServer::listen(
      io, jobhost::engine::control_socket_path(dir.path()), [](const nlohmann::json& request) {
        return nlohmann::json{{"ok", true}, {"echo", request.value("job", "")}};
      });
  REQUIRE(server);
  std::optional<nlohmann::json> reply;
  std::thread client([&] {
    auto r = jobhost::engine::control_request(dir.path(), {{"op", "x"}, {"job", "backup"}}, 2s);
    if (r) reply = *r;
    io.stop();
  });
  io.run_for(5s);
  client.join();
  REQUIRE(reply);
  CHECK((*reply)["echo"] == "backup");
}

TEST_CASE("control socket: no daemon is 'unreachable'", "[control]") {
  TempDir dir;
  auto r = jobhost::engine::control_request(dir.path(), {{"op", "ping"}}, 1s);
  REQUIRE_FALSE(r);
  CHECK(r.error().unreachable);
  CHECK(r.error().message.find("jobhost run") != std::string::npos);
}

TEST_CASE("pid lock: one holder per state dir, released on destruction", "[pid_lock]") {
  TempDir dir;
  {
    auto first = jobhost::engine::PidLock::acquire(dir.path() / "state");
    REQUIRE(first);
    CHECK(jobhost::engine::PidLock::holder(dir.path() / "state") == getpid());
    // A second open file description conflicts even within one process (flock).
    auto second = jobhost::engine::PidLock::acquire(dir.path() / "state");
    REQUIRE_FALSE(second);
    CHECK(second.error().message.find("already running") != std::string::npos);
    CHECK(second.error().message.find(std::to_string(getpid())) != std::string::npos);
  }
  CHECK(jobhost::engine::PidLock::holder(dir.path() / "state") == 0);
  CHECK(jobhost::engine::PidLock::acquire(dir.path() / "state"));
}
