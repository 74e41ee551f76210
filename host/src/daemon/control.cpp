#include "daemon/control.h"

#include "daemon/control_request.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/socket.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <istream>

namespace jobhost::daemon {
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
          auto text = std::make_shared<std::string>(reply_line(reply));
          boost::asio::async_write(
              *socket, boost::asio::buffer(*text),
              [socket, text](const boost::system::error_code&, std::size_t) {});
        };
        // Who asks, from the kernel; whatever the client wrote there is replaced.
        nlohmann::json peer = nullptr;
        ucred cred{};
        socklen_t length = sizeof cred;
        if (::getsockopt(socket->native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0) {
          peer = {{"uid", cred.uid}, {"pid", cred.pid}};
        }
        answer_request(line, std::move(peer), handler, respond);
      });
}

}  // namespace

std::string reply_line(const nlohmann::json& reply) {
  // A reply may quote what the client sent (a parse error quotes the bytes
  // it stopped at): bytes that are not UTF-8 become U+FFFD instead of
  // making dump() throw out of the loop.
  return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void answer_request(std::string_view line, nlohmann::json peer,
                    const ControlServer::AsyncHandler& handler,
                    const ControlServer::Respond& respond) {
  nlohmann::json request;
  try {
    request = nlohmann::json::parse(line);
  } catch (const std::exception& e) {
    return respond({{"ok", false}, {"error", fmt::format("bad request: {}", e.what())}});
  }
  if (!request.is_object()) {
    return respond({{"ok", false}, {"error", "bad request: not a JSON object"}});
  }
  request["peer"] = std::move(peer);
  try {
    handler(request, respond);
  } catch (const std::exception& e) {
    respond({{"ok", false}, {"error", fmt::format("bad request: {}", e.what())}});
  }
}

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

}  // namespace jobhost::daemon
