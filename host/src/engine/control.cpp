#include "engine/control.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <istream>

namespace jobhost::engine {
namespace {

using boost::asio::local::stream_protocol;
constexpr std::size_t kMaxRequest = 64 * 1024;

// One connection: read a line, answer a line, close.
void serve(std::shared_ptr<stream_protocol::socket> socket, ControlServer::AsyncHandler handler) {
  auto buffer = std::make_shared<boost::asio::streambuf>(kMaxRequest);
  boost::asio::async_read_until(
      *socket, *buffer, '\n',
      [socket, buffer, handler = std::move(handler)](const boost::system::error_code& ec,
                                                     std::size_t) {
        if (ec) return;
        std::istream in(buffer.get());
        std::string line;
        std::getline(in, line);
        auto respond = [socket](nlohmann::json reply) {
          auto text = std::make_shared<std::string>(reply.dump() + "\n");
          boost::asio::async_write(
              *socket, boost::asio::buffer(*text),
              [socket, text](const boost::system::error_code&, std::size_t) {});
        };
        nlohmann::json request;
        try {
          request = nlohmann::json::parse(line);
        } catch (const std::exception& e) {
          return respond({{"ok", false}, {"error", fmt::format("bad request: {}", e.what())}});
        }
        try {
          handler(request, respond);
        } catch (const std::exception& e) {
          respond({{"ok", false}, {"error", fmt::format("bad request: {}", e.what())}});
        }
      });
}

}  // namespace

std::filesystem::path control_socket_path(const std::filesystem::path& state_dir) {
  return state_dir / "jobhost.sock";
}

ControlServer::ControlServer(boost::asio::io_context& io, std::filesystem::path path,
                             AsyncHandler handler)
    : acceptor_(io), path_(std::move(path)), handler_(std::move(handler)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(boost::asio::io_context& io,
                                                             const std::filesystem::path& socket,
                                                             Handler handler) {
  return listen_async(
      io, socket,
      [handler = std::move(handler)](const nlohmann::json& request, const Respond& respond) {
        respond(handler(request));
      });
}

Result<std::unique_ptr<ControlServer>> ControlServer::listen_async(
    boost::asio::io_context& io, const std::filesystem::path& socket, AsyncHandler handler) {
  std::unique_ptr<ControlServer> server(new ControlServer(io, socket, std::move(handler)));
  std::error_code ignored;
  std::filesystem::remove(socket, ignored);
  boost::system::error_code ec;
  stream_protocol::endpoint endpoint(socket.string());
  server->acceptor_.open(endpoint.protocol(), ec);
  if (!ec) server->acceptor_.bind(endpoint, ec);
  if (!ec) server->acceptor_.listen(16, ec);
  if (ec) return fail(fmt::format("{}: cannot listen: {}", socket.string(), ec.message()));
  ::fcntl(server->acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
  server->accept();
  return server;
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket s) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) serve(std::make_shared<stream_protocol::socket>(std::move(s)), handler_);
    accept();
  });
}

ControlServer::~ControlServer() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

std::expected<nlohmann::json, ControlError> control_request(const std::filesystem::path& state_dir,
                                                            const nlohmann::json& request,
                                                            Duration timeout) {
  auto path = control_socket_path(state_dir);
  auto unreachable = [&](const std::string& why) {
    return std::unexpected(ControlError{
        true, fmt::format("no jobhost daemon is reachable on {} ({}); start it with `jobhost run`",
                          path.string(), why)});
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path) {
    return std::unexpected(ControlError{false, path.string() + ": socket path too long"});
  }
  std::strcpy(addr.sun_path, path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::unexpected(ControlError{false, std::strerror(errno)});
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return unreachable(why);
  }
  std::string line = request.dump() + "\n";
  std::string reply;
  bool sent =
      ::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
  char buf[4096];
  while (sent && reply.find('\n') == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (reply.find('\n') == std::string::npos) {
    return unreachable(sent ? "no reply in time" : "send failed");
  }
  try {
    return nlohmann::json::parse(reply);
  } catch (const std::exception& e) {
    return std::unexpected(ControlError{false, fmt::format("bad reply from daemon: {}", e.what())});
  }
}

}  // namespace jobhost::engine
