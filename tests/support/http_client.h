// A tiny blocking HTTP/1.1 client for tests (Beast underneath, each call on
// a private io_context with a deadline), and raw sockets for misbehaving
// clients (slowloris, idle connections, malformed bytes). Loopback only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobhost::testing {

class Daemon;

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResult {
  int status = 0;                              // 0: no answer (see error)
  std::map<std::string, std::string> headers;  // names in lower case; last value of a repeat
  std::string body;
  std::string error;  // why there is no answer: "connect: Connection refused", "timeout"...

  // The header `name` (any case), or "".
  std::string header(std::string_view name) const;
};

// One keep-alive connection; requests go one after the other on it.
class HttpConnection {
 public:
  explicit HttpConnection(int port, std::string host = "127.0.0.1",
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const;
  // Sends one request and reads its answer. Sets Host, Content-Length and
  // `headers` (which may override them).
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "", const HttpHeaders& headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection to 127.0.0.1:port.
HttpResult http_get(int port, const std::string& target, const HttpHeaders& headers = {});
HttpResult http_post(int port, const std::string& target, const std::string& body = "",
                     const HttpHeaders& headers = {});
HttpResult http_request(int port, const std::string& method, const std::string& target,
                        const std::string& body = "", const HttpHeaders& headers = {});

// A plain TCP connection to 127.0.0.1:port for bytes no client library sends.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  RawConnection(RawConnection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

  bool connected() const { return fd_ >= 0; }
  // Writes all of `bytes`; false once the peer has closed (or reset).
  bool send(std::string_view bytes);
  // Reads until the peer closes or `timeout` passes; what came.
  std::string read_until_close(std::chrono::milliseconds timeout);
  // True when the peer has closed the connection (EOF or reset) within
  // `timeout`; data that arrives meanwhile is read and dropped.
  bool wait_closed(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
};

// The port of "http: listening on ADDR" in the daemon's log (its last
// start), waiting up to `timeout` for the line; nullopt if it never came.
std::optional<int> wait_http_port(const Daemon& daemon,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace jobhost::testing
