#include "support/http_client.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <thread>

#include "support/harness.h"

namespace jobhost::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string HttpResult::header(std::string_view name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

struct HttpConnection::Impl {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  std::string host;
  int port = 0;
  bool connected = false;
  std::string connect_error;

  // Runs the loop until `done` or the deadline; the stream's expiry cancels.
  void run() {
    io.restart();
    io.run();
  }
};

HttpConnection::HttpConnection(int port, std::string host, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = host;
  impl_->port = port;
  beast::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(host, ec), static_cast<unsigned short>(port));
  if (ec) {
    impl_->connect_error = "bad address: " + ec.message();
    return;
  }
  impl_->stream.expires_after(timeout);
  impl_->stream.async_connect(endpoint, [&](beast::error_code e) { ec = e; });
  impl_->run();
  if (ec) {
    impl_->connect_error = "connect: " + ec.message();
    return;
  }
  impl_->connected = true;
}

HttpConnection::~HttpConnection() = default;

bool HttpConnection::connected() const {
  return impl_->connected;
}

HttpResult HttpConnection::request(const std::string& method, const std::string& target,
                                   const std::string& body, const HttpHeaders& headers,
                                   std::chrono::milliseconds timeout) {
  HttpResult result;
  if (!impl_->connected) {
    result.error = impl_->connect_error.empty() ? "not connected" : impl_->connect_error;
    return result;
  }
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, impl_->host + ":" + std::to_string(impl_->port));
  req.body() = body;
  req.prepare_payload();
  for (const auto& [name, value] : headers) req.set(name, value);

  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  if (method == "HEAD") parser.skip(true);
  beast::error_code ec;
  impl_->stream.expires_after(timeout);
  bhttp::async_write(impl_->stream, req, [&](beast::error_code e, std::size_t) {
    ec = e;
    if (e) return;
    bhttp::async_read(impl_->stream, impl_->buffer, parser,
                      [&](beast::error_code e2, std::size_t) { ec = e2; });
  });
  impl_->run();
  if (ec) {
    result.error = ec == beast::error::timeout ? "timeout" : ec.message();
    impl_->connected = false;
    return result;
  }
  auto res = parser.release();
  result.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    const auto name = field.name_string();
    result.headers[lower(std::string_view(name.data(), name.size()))] = std::string(field.value());
  }
  result.body = std::move(res.body());
  if (!res.keep_alive()) impl_->connected = false;
  return result;
}

HttpResult http_request(int port, const std::string& method, const std::string& target,
                        const std::string& body, const HttpHeaders& headers) {
  HttpConnection connection(port);
  HttpHeaders all = {{"Connection", "close"}};
  all.insert(all.end(), headers.begin(), headers.end());
  return connection.request(method, target, body, all);
}

HttpResult http_get(int port, const std::string& target, const HttpHeaders& headers) {
  return http_request(port, "GET", target, "", headers);
}

HttpResult http_post(int port, const std::string& target, const std::string& body,
                     const HttpHeaders& headers) {
  return http_request(port, "POST", target, body, headers);
}

RawConnection::RawConnection(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
  if (fd_ < 0) return false;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string RawConnection::read_until_close(std::chrono::milliseconds timeout) {
  std::string out;
  if (fd_ < 0) return out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

bool RawConnection::wait_closed(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return false;
    if (r < 0) return false;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
  }
}

std::optional<int> wait_http_port(const Daemon& daemon, std::chrono::milliseconds timeout) {
  static constexpr std::string_view kLine = "http: listening on ";
  std::optional<int> port;
  wait_for(
      [&] {
        const std::string log = daemon.log();
        const auto at = log.rfind(kLine);
        if (at == std::string::npos) return false;
        const auto end = log.find_first_of(" \n\"", at + kLine.size());
        const std::string address = log.substr(at + kLine.size(), end - at - kLine.size());
        const auto colon = address.rfind(':');
        if (colon == std::string::npos) return false;
        port = std::stoi(address.substr(colon + 1));
        return true;
      },
      timeout);
  return port;
}

}  // namespace jobhost::testing
