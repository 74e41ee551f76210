#include "observe/http_server.h"

#include <fmt/core.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <unordered_map>

#include "common/log.h"

namespace jobhost::observe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

// How much one read asks for; the parser bounds what it keeps.
constexpr std::size_t kReadChunk = 4096;
// After an error answer, what is still read (and dropped) before closing, so
// that the client sees the answer and not a reset.
constexpr std::size_t kDrainBytes = 256 * 1024;
constexpr std::chrono::milliseconds kDrainTime{1000};
// After a failed accept (no descriptors left, ...), the next is tried this much later.
constexpr std::chrono::milliseconds kAcceptPause{100};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding ('+' as a space in a query); nullopt for a broken escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// The request target into path and query; an error message when malformed.
std::string split_target(std::string_view target, Request& request) {
  // Absolute form ("http://host/path") is allowed by HTTP/1.1: keep the path.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), target.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      const auto slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  if (!target.starts_with('/')) return "the request target must be a path starting with \"/\"";
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
  }
  std::string_view raw_path = target;
  std::string_view raw_query;
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    raw_path = target.substr(0, q);
    raw_query = target.substr(q + 1);
  }
  auto path = percent_decode(raw_path, false);
  if (!path) return "malformed %-escape in the path";
  request.path = std::move(*path);
  while (!raw_query.empty()) {
    const auto amp = raw_query.find('&');
    std::string_view pair = raw_query.substr(0, amp);
    raw_query = amp == std::string_view::npos ? std::string_view() : raw_query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value) return "malformed %-escape in the query";
    request.query[std::move(*key)] = std::move(*value);
  }
  return {};
}

// A header name a handler gave: an HTTP token, or nothing.
bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// A header value without CR, LF or NUL (no header injection).
std::string field_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c != '\r' && c != '\n' && c != '\0') out += c;
  }
  return out;
}

bool is_http_parse_error(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
}

}  // namespace

class Session;

struct HttpServer::State {
  State(asio::io_context& io, const Router& router, HttpLimits limits)
      : acceptor(io), accept_pause(io), router(router), limits(limits) {}

  tcp::acceptor acceptor;
  asio::steady_timer accept_pause;
  const Router& router;
  HttpLimits limits;
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions;
  bool closed = false;
  bool accept_error_logged = false;
};

// One connection: read a request (bounded, timed), answer it, again while
// the client keeps the connection alive. Owned by State::sessions until it
// closes; answers reach it through a weak reference.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<HttpServer::State> server, tcp::socket socket)
      : server_(std::move(server)),
        stream_(std::move(socket)),
        buffer_(server_->limits.max_header_bytes + server_->limits.max_body_bytes + kReadChunk),
        answer_timer_(stream_.get_executor()) {
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    if (!ec) peer_ = format_endpoint(peer);
  }

  void start() { read_next(); }

  // Closes at once; the session goes when its last handler has run.
  void close() {
    if (closed_) return;
    closed_ = true;
    auto self = shared_from_this();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    answer_timer_.cancel();
    server_->sessions.erase(this);
  }

 private:
  const HttpLimits& limits() const { return server_->limits; }

  // Waits (idle timeout) for the first byte of the next request, unless
  // bytes of it are already buffered.
  void read_next() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
    parser_->body_limit(limits().max_body_bytes);
    if (buffer_.size() > 0) {
      stream_.expires_after(limits().request_timeout);
      return read_header();
    }
    stream_.expires_after(limits().idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->close();
                              self->buffer_.commit(n);
                              // The request's deadline counts from its first byte.
                              self->stream_.expires_after(self->limits().request_timeout);
                              self->read_header();
                            });
  }

  void read_header() {
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) {
                               if (ec) return self->on_read_error(ec);
                               self->on_header();
                             });
  }

  void on_header() {
    if (closed_) return;
    const auto& head = parser_->get();
    if (!parser_->is_done() && beast::iequals(head[bhttp::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                               [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                 if (ec) return self->close();
                                 self->read_body();
                               });
    }
    read_body();
  }

  void read_body() {
    if (closed_) return;
    if (parser_->is_done()) return on_request();
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec) return self->on_read_error(ec);
                        self->on_request();
                      });
  }

  void on_read_error(const beast::error_code& ec) {
    if (closed_ || ec == asio::error::operation_aborted) return;
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      return fail_request(
          431, fmt::format("the request head is larger than {} bytes", limits().max_header_bytes));
    }
    if (ec == bhttp::error::body_limit) {
      return fail_request(
          413, fmt::format("the request body is larger than {} bytes", limits().max_body_bytes));
    }
    // A client gone, timed out or cut short is not answered.
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
        !is_http_parse_error(ec)) {
      return close();
    }
    fail_request(400, "malformed request: " + ec.message());
  }

  void on_request() {
    if (closed_) return;
    stream_.expires_never();
    auto message = parser_->release();
    parser_.reset();
    version_ = message.version();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == bhttp::verb::head;

    Request request;
    request.method = std::string(message.method_string());
    const auto target = message.target();
    if (auto why = split_target(std::string_view(target.data(), target.size()), request);
        !why.empty()) {
      return fail_request(400, why);
    }
    request.authorization = std::string(message[bhttp::field::authorization]);
    request.body = std::move(message.body());
    request.peer = peer_;

    const std::uint64_t seq = ++request_seq_;
    waiting_ = true;
    answer_timer_.expires_after(limits().handler_timeout);
    answer_timer_.async_wait([weak = weak_from_this(), seq](beast::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || !self->waiting_ || self->request_seq_ != seq) return;
      log::warn(fmt::format("http: no answer to a request from {} within {} ms; connection closed",
                            self->peer_, self->limits().handler_timeout.count()));
      self->close();
    });
    Respond respond = [weak = weak_from_this(), seq](Response response) {
      if (auto self = weak.lock()) self->answer(seq, std::move(response));
    };
    try {
      server_->router.dispatch(std::move(request), respond);
    } catch (const std::exception& e) {
      log::error(fmt::format("http: a handler failed: {}", e.what()));
      answer(seq, Response::error(500, "internal error"));
    }
  }

  void answer(std::uint64_t seq, Response response) {
    if (closed_ || !waiting_ || seq != request_seq_) return;
    waiting_ = false;
    answer_timer_.cancel();
    write(std::move(response), !keep_alive_);
  }

  // A request that cannot be served: answer with a JSON error, then close.
  void fail_request(int status, std::string_view message) {
    if (closed_) return;
    version_ = 11;
    head_ = false;
    keep_alive_ = false;
    write(Response::error(status, message), true);
  }

  void write(Response response, bool close_after) {
    int status = response.status;
    if (status < 100 || status > 599) status = 500;
    out_ = {};
    out_.version(version_);
    out_.result(static_cast<unsigned>(status));
    out_.set(bhttp::field::server, "jobhost");
    out_.set(bhttp::field::content_type, field_value(response.content_type));
    for (const auto& [name, value] : response.headers) {
      if (valid_field_name(name)) out_.insert(name, field_value(value));
    }
    out_.keep_alive(!close_after);
    const bool bodiless = status < 200 || status == 204 || status == 304;
    if (!bodiless) out_.content_length(response.body.size());
    if (!head_ && !bodiless) out_.body() = std::move(response.body);
    stream_.expires_after(limits().write_timeout);
    bhttp::async_write(stream_, out_,
                       [self = shared_from_this(), close_after](beast::error_code ec, std::size_t) {
                         if (self->closed_) return;
                         self->out_ = {};
                         if (ec) return self->close();
                         if (close_after) return self->linger_close();
                         self->read_next();
                       });
  }

  // Half-closes, then reads and drops what the client still sends (bounded
  // in bytes and time), so that it reads the answer before the close.
  void linger_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(kDrainTime);
    drain();
  }

  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kDrainBytes) return self->close();
                              self->drain();
                            });
  }

  std::shared_ptr<HttpServer::State> server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> out_;  // the answer being written
  asio::steady_timer answer_timer_;
  std::string peer_;
  std::uint64_t request_seq_ = 0;  // the request being answered
  bool waiting_ = false;           // for the handler's answer to request_seq_
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  bool closed_ = false;
  std::size_t drained_ = 0;
};

namespace {

// Over the cap: a 503 if the socket takes it right away, then closed.
void refuse(tcp::socket& socket) {
  static constexpr std::string_view kBusy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: 43\r\n\r\n"
      "{\"error\":\"too many connections, try again\"}";
  beast::error_code ec;
  socket.non_blocking(true, ec);
  if (!ec) socket.write_some(asio::buffer(kBusy.data(), kBusy.size()), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void accept_next(const std::shared_ptr<HttpServer::State>& state) {
  state->acceptor.async_accept([state](beast::error_code ec, tcp::socket socket) {
    if (state->closed || ec == asio::error::operation_aborted) return;
    if (ec) {
      // E.g. out of descriptors: do not spin, try again a little later.
      if (!state->accept_error_logged) {
        log::warn(fmt::format("http: cannot accept a connection: {}; retrying", ec.message()));
        state->accept_error_logged = true;
      }
      state->accept_pause.expires_after(kAcceptPause);
      state->accept_pause.async_wait([state](beast::error_code wait_ec) {
        if (!wait_ec && !state->closed) accept_next(state);
      });
      return;
    }
    state->accept_error_logged = false;
    if (state->sessions.size() >= state->limits.max_connections) {
      refuse(socket);
    } else {
      auto session = std::make_shared<Session>(state, std::move(socket));
      state->sessions.emplace(session.get(), session);
      session->start();
    }
    accept_next(state);
  });
}

}  // namespace

Result<tcp::endpoint> parse_listen_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return fail("an IPv6 address needs a port: \"[::1]:9187\"");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing \":PORT\"");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(std::string(port)) > 65535) {
    return fail("the port must be a number from 0 to 65535");
  }
  if (host == "localhost") host = "127.0.0.1";
  beast::error_code ec;
  auto address = asio::ip::make_address(std::string(host), ec);
  if (ec) return fail(fmt::format("\"{}\" is not an IP address", host));
  return tcp::endpoint(address, static_cast<unsigned short>(std::stoi(std::string(port))));
}

std::string format_endpoint(const tcp::endpoint& endpoint) {
  if (endpoint.address().is_v6()) {
    return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
  }
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen(asio::io_context& io,
                                                       std::string_view address,
                                                       const Router& router, HttpLimits limits) {
  auto endpoint = parse_listen_address(address);
  if (!endpoint) {
    return fail(
        fmt::format("http: invalid listen address \"{}\": {}", address, endpoint.error().message));
  }
  auto state = std::make_shared<State>(io, router, limits);
  beast::error_code ec;
  const auto failed = [&](std::string_view step) {
    return fail(
        fmt::format("http: cannot listen on {}: {}: {}; change [http] listen (\"\" turns "
                    "HTTP off)",
                    address, step, ec.message()));
  };
  state->acceptor.open(endpoint->protocol(), ec);
  if (ec) return failed("open");
  state->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return failed("set SO_REUSEADDR");
  if (endpoint->address().is_v6()) {
    state->acceptor.set_option(asio::ip::v6_only(true), ec);
    if (ec) return failed("set IPV6_V6ONLY");
  }
  state->acceptor.bind(*endpoint, ec);
  if (ec) return failed("bind");
  state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return failed("listen");
  accept_next(state);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

HttpServer::~HttpServer() {
  close();
}

tcp::endpoint HttpServer::local_endpoint() const {
  beast::error_code ec;
  return state_->acceptor.local_endpoint(ec);
}

std::size_t HttpServer::open_connections() const {
  return state_->sessions.size();
}

void HttpServer::close() {
  if (state_->closed) return;
  state_->closed = true;
  beast::error_code ec;
  state_->acceptor.close(ec);
  state_->accept_pause.cancel();
  // close() removes each session from the map.
  std::vector<std::shared_ptr<Session>> open;
  for (auto& [ptr, session] : state_->sessions) open.push_back(session);
  for (auto& session : open) session->close();
}

}  // namespace jobhost::observe
