#include "daemon/control.h"

#include "daemon/control_request.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <istream>

namespace jobhost::daemon {
namespace {

using boost::asio::local::stream_protocol;
constexpr std::size_t kMaxRequest = 64 * 1024;

// Why `cred` (the peer) may not use the socket, or "" when it may.
std::string refusal(int fd, const ucred& cred, const ControlAccess& access) {
  if (cred.uid == 0 || cred.uid == ::geteuid()) return "";
  if (access.group) {
    if (cred.gid == *access.group) return "";
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 3; ++tries) {
      socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
        groups.resize(size / sizeof(gid_t));
        if (std::find(groups.begin(), groups.end(), *access.group) != groups.end()) return "";
        break;
      }
      if (errno != ERANGE) break;
      groups.resize(size / sizeof(gid_t) + 1);
    }
  }
  return fmt::format(
      "refused: uid {} may not use this control socket; only root, the user jobhost runs as "
      "(uid {}){} may",
      cred.uid, ::geteuid(),
      access.group ? fmt::format(" and members of control_group \"{}\"", access.group_name)
                   : std::string(" (set [host] control_group to let a group in)"));
}

// One connection: read a line, answer a line, close.
void serve(std::shared_ptr<stream_protocol::socket> socket, ControlServer::AsyncHandler handler,
           const ControlAccess& access) {
  auto buffer = std::make_shared<boost::asio::streambuf>(kMaxRequest);
  boost::asio::async_read_until(
      *socket, *buffer, '\n',
      [socket, buffer, handler = std::move(handler), access](const boost::system::error_code& ec,
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
        if (::getsockopt(socket->native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
          return respond({{"ok", false}, {"error", "refused: the caller's identity is unknown"}});
        }
        if (auto why = refusal(socket->native_handle(), cred, access); !why.empty()) {
          return respond({{"ok", false}, {"error", why}});
        }
        peer = {{"uid", cred.uid}, {"pid", cred.pid}};
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
                             AsyncHandler handler, ControlAccess access)
    : acceptor_(io),
      path_(std::move(path)),
      handler_(std::move(handler)),
      access_(std::move(access)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(boost::asio::io_context& io,
                                                             const std::filesystem::path& socket,
                                                             Handler handler,
                                                             ControlAccess access) {
  return listen_async(
      io, socket,
      [handler = std::move(handler)](const nlohmann::json& request, const Respond& respond) {
        respond(handler(request));
      },
      std::move(access));
}

Result<std::unique_ptr<ControlServer>> ControlServer::listen_async(
    boost::asio::io_context& io, const std::filesystem::path& socket, AsyncHandler handler,
    ControlAccess access) {
  const std::optional<gid_t> group = access.group;
  std::unique_ptr<ControlServer> server(
      new ControlServer(io, socket, std::move(handler), std::move(access)));
  std::error_code ignored;
  std::filesystem::remove(socket, ignored);
  boost::system::error_code ec;
  stream_protocol::endpoint endpoint(socket.string());
  server->acceptor_.open(endpoint.protocol(), ec);
  if (!ec) server->acceptor_.bind(endpoint, ec);
  if (!ec) server->acceptor_.listen(16, ec);
  if (ec) return fail(fmt::format("{}: cannot listen: {}", socket.string(), ec.message()));
  ::fcntl(server->acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
  // Connecting needs write access to the file: the owner, and the group if any.
  if (group && ::chown(socket.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return fail(fmt::format("{}: cannot give the socket to group {}: {}", socket.string(), *group,
                            std::strerror(errno)));
  }
  if (::chmod(socket.c_str(), group ? 0660 : 0600) != 0) {
    return fail(
        fmt::format("{}: cannot set the socket's mode: {}", socket.string(), std::strerror(errno)));
  }
  server->accept();
  return server;
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket s) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) serve(std::make_shared<stream_protocol::socket>(std::move(s)), handler_, access_);
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
