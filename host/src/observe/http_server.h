// The daemon's HTTP/1.1 server: Boost.Beast on the daemon's one io_context,
// no threads. It accepts connections on one address, parses and bounds each
// request, turns it into an observe::Request, asks the Router, and writes the
// Response (Content-Length, keep-alive as the client asked, HEAD without a
// body). Every client is treated as hostile: header and body size limits, a
// cap on open connections, a deadline for each request counted from its first
// byte (a client sending one byte a second is cut off), an idle timeout
// between requests, a write timeout, and a time limit for a handler's answer.
// Nothing here blocks the loop. See docs/observability.md, "The HTTP server".
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "observe/http.h"

namespace jobhost::observe {

// The server's bounds. Tests shrink the timeouts.
struct HttpLimits {
  std::size_t max_header_bytes = 8 * 1024;  // request line + fields; over: 431
  std::size_t max_body_bytes = 64 * 1024;   // over: 413
  std::size_t max_connections = 512;        // one more is answered 503 and closed at once
  // A request's head and body must arrive within this from its first byte.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // A connection with no request under way is closed after this.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  // A response must be taken by the client within this.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  // A handler that has not answered by then gets the connection closed.
  std::chrono::milliseconds handler_timeout{std::chrono::seconds(120)};
};

// "HOST:PORT" or "[IPv6]:PORT" -> endpoint; HOST must be an IP address
// (a name would need a blocking lookup). Port 0 is allowed.
Result<boost::asio::ip::tcp::endpoint> parse_listen_address(std::string_view text);
// "127.0.0.1:9187" or "[::1]:9187".
std::string format_endpoint(const boost::asio::ip::tcp::endpoint& endpoint);

class HttpServer {
 public:
  // Binds and listens on `address` (port 0: a free port, see local_endpoint)
  // and starts accepting on `io`. `router` must outlive the server and every
  // handler call; routes may be added until the loop runs. Error: the
  // address is malformed or cannot be bound (in use, not on this machine,
  // permission), with a message naming it.
  static Result<std::unique_ptr<HttpServer>> listen(boost::asio::io_context& io,
                                                    std::string_view address, const Router& router,
                                                    HttpLimits limits = {});
  ~HttpServer();  // close()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound address (the real port when 0 was asked).
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  // Connections open now.
  std::size_t open_connections() const;
  // Stops accepting and closes every connection; answers still to come are dropped.
  void close();

  struct State;

 private:
  explicit HttpServer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace jobhost::observe
