// The daemon's control channel, server side (the client is in daemon.h): a Unix socket
// <state_dir>/jobhost.sock. A client sends one JSON object on one line ({"op":"trigger","job":"x"})
// and reads one JSON line back ({"ok":true,...} or {"ok":false,"error":"..."}).
// The server sets the request's "peer" to {"uid": N, "pid": P} from the
// socket's SO_PEERCRED (replacing what the client sent): who asked, for the
// ledger events of actions.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/error.h"

namespace jobhost::daemon {

std::filesystem::path control_socket_path(const std::filesystem::path& state_dir);

// Who may use the control socket: root, the daemon's own (effective) uid,
// and the members of `group` ([host] control_group; primary or
// supplementary, from SO_PEERCRED and SO_PEERGROUPS). Everyone else gets
// {"ok":false,"error":"refused: ..."} whatever they asked. The socket file
// itself is 0600, or 0660 with group `group` when there is one.
struct ControlAccess {
  std::optional<gid_t> group;
  std::string group_name;  // for the refusal message
};

class ControlServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;
  // For requests answered later (a reload answers once it is applied): call
  // `respond` once, from io's thread.
  using Respond = std::function<void(nlohmann::json reply)>;
  using AsyncHandler = std::function<void(const nlohmann::json& request, Respond respond)>;

  // Binds the socket (replacing a stale file left by a dead daemon: the caller
  // holds the pid lock) and serves requests on `io` until destroyed.
  static Result<std::unique_ptr<ControlServer>> listen(boost::asio::io_context& io,
                                                       const std::filesystem::path& socket,
                                                       Handler handler, ControlAccess access = {});
  static Result<std::unique_ptr<ControlServer>> listen_async(boost::asio::io_context& io,
                                                             const std::filesystem::path& socket,
                                                             AsyncHandler handler,
                                                             ControlAccess access = {});
  ~ControlServer();

 private:
  ControlServer(boost::asio::io_context& io, std::filesystem::path path, AsyncHandler handler,
                ControlAccess access);
  void accept();

  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::filesystem::path path_;
  AsyncHandler handler_;
  ControlAccess access_;
};

}  // namespace jobhost::daemon
