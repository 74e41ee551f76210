// The CLI's side of the control socket: one request line out, one reply line
// back, on a private io_context bounded by the caller's timeout.
#include <fmt/core.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "config/config.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "daemon/pid_lock.h"

namespace jobhost::daemon {

int running_daemon_pid(const std::filesystem::path& state_dir) {
  return PidLock::holder(state_dir);
}

std::expected<nlohmann::json, ControlError> control_request(const std::filesystem::path& state_dir,
                                                            const nlohmann::json& request,
                                                            Duration timeout) {
  using boost::asio::local::stream_protocol;
  using Kind = ControlError::Kind;
  const auto path = control_socket_path(state_dir);
  auto fail = [&](Kind kind, std::string message) {
    return std::unexpected(ControlError{kind, std::move(message)});
  };
  if (path.string().size() >= sizeof(sockaddr_un::sun_path)) {
    return fail(Kind::failed, path.string() + ": socket path too long");
  }

  boost::asio::io_context io;
  stream_protocol::socket socket(io);
  const std::string line = request.dump() + "\n";
  std::string reply;
  bool connected = false;
  bool done = false;
  boost::system::error_code error;  // of the step that ended the exchange
  socket.async_connect(path.string(), [&](const boost::system::error_code& ec) {
    if (ec) {
      error = ec;
      done = true;
      return;
    }
    connected = true;
    boost::asio::async_write(
        socket, boost::asio::buffer(line), [&](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            error = ec;
            done = true;
            return;
          }
          boost::asio::async_read_until(socket, boost::asio::dynamic_buffer(reply), '\n',
                                        [&](const boost::system::error_code& ec, std::size_t) {
                                          error = ec;
                                          done = true;
                                        });
        });
  });
  io.run_for(timeout);

  if (!connected && done && error == boost::asio::error::access_denied) {
    return fail(Kind::failed,
                fmt::format("permission denied on the control socket {}: only root, the user "
                            "jobhost runs as and members of [host] control_group may use it",
                            path.string()));
  }
  if (!connected && done) {
    return fail(
        Kind::no_daemon,
        fmt::format("no jobhost daemon is reachable on {} ({}); start it with `jobhost run`",
                    path.string(), error.message()));
  }
  if (!done) {
    const int pid = running_daemon_pid(state_dir);
    return fail(Kind::no_answer,
                fmt::format("the jobhost daemon{} on {} did not answer within {}; the request "
                            "may still take effect: see the daemon's log",
                            pid ? fmt::format(" (pid {})", pid) : "", path.string(),
                            config::format_duration(timeout)));
  }
  if (error) {
    return fail(Kind::failed, fmt::format("the jobhost daemon on {} closed the connection without "
                                          "answering ({}): see the daemon's log",
                                          path.string(), error.message()));
  }
  try {
    return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
  } catch (const std::exception& e) {
    return fail(Kind::failed, fmt::format("bad reply from the daemon: {}", e.what()));
  }
}

}  // namespace jobhost::daemon
