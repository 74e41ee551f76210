// The webhook notifier: POSTs the alert as JSON, async on the loop (Boost.Beast,
// Boost.Asio SSL over OpenSSL). Each attempt resolves the host, connects, for https does the TLS
// handshake with the peer's certificate verified against the system CAs or ca_file, SNI and host
// name (or IP address) checked, writes the request and reads a bounded response, all under one
// timer for the whole attempt. Connection errors, timeouts, 5xx, 408 and 429 are tried again after
// a backoff (webhook_backoff), up to `retries` more times; a certificate that does not verify, 3xx
// and other 4xx are final.
//
// Resolving never starts a thread: the daemon must stay single-threaded so that
// forking the fork server from it stays safe (asio's resolver would start a
// thread that lives on, blocked in getaddrinfo). An IP address needs no
// resolving; a host name is resolved by a short-lived child, `getent ahosts`,
// whose output the loop reads from a pipe under the attempt's timer.
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>

#include "common/pidfd.h"
#include "observe/notifier.h"

namespace jobhost::observe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::size_t kMaxResponseBody = 64 * 1024;
constexpr std::uint32_t kMaxResponseHeader = 16 * 1024;

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

constexpr std::size_t kMaxResolverOutput = 64 * 1024;
constexpr const char* kGetentPaths[] = {"/usr/bin/getent", "/bin/getent"};

// A host name resolved by a `getent ahosts -- NAME` child: its stdout on a
// pipe read by the loop, its exit seen through a pidfd. kill() ends it and
// reaps it at once (SIGKILL: waitpid returns promptly).
class ResolverChild {
 public:
  using Done = std::function<void(std::string error, std::vector<tcp::endpoint>)>;
  explicit ResolverChild(asio::io_context& io) : out_(io), pidfd_(io) {}
  ~ResolverChild() { kill(); }

  // Starts resolving; `done` is called once from the loop unless kill() comes first.
  void start(const std::string& host, std::uint16_t port, Done done) {
    host_ = host;
    port_ = port;
    done_ = std::move(done);
    if (auto error = spawn(); !error.empty()) {
      return asio::post(out_.get_executor(), [this, error] { finish(error, {}); });
    }
    read();
  }

  void kill() {
    done_ = {};
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
    close();
  }

 private:
  std::string spawn() {
    const char* getent = nullptr;
    for (const char* path : kGetentPaths) {
      if (::access(path, X_OK) == 0) {
        getent = path;
        break;
      }
    }
    if (!getent) return "getent is not installed";
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return fmt::format("pipe: {}", std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::string arg0 = "getent", arg1 = "ahosts", arg2 = "--", arg3 = host_;
    char* argv[] = {arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
    std::string path = "PATH=/usr/bin:/bin", lang = "LANG=C";
    char* envp[] = {path.data(), lang.data(), nullptr};
    const int rc = ::posix_spawn(&pid_, getent, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(pipe_fds[1]);
    if (rc != 0) {
      pid_ = -1;
      ::close(pipe_fds[0]);
      return fmt::format("cannot start {}: {}", getent, std::strerror(rc));
    }
    out_.assign(pipe_fds[0]);
    return {};
  }

  void read() {
    out_.async_read_some(asio::buffer(buffer_),
                         [this](const boost::system::error_code& ec, std::size_t n) {
                           if (!done_) return;
                           if (ec == asio::error::eof) return wait_exit();
                           if (ec) return finish(ec.message(), {});
                           if (output_.size() + n > kMaxResolverOutput) {
                             return finish("getent printed too much", {});
                           }
                           output_.append(buffer_.data(), n);
                           read();
                         });
  }

  void wait_exit() {
    const int fd = pidfd_open(pid_);
    if (fd < 0) return finish(fmt::format("pidfd_open: {}", std::strerror(errno)), {});
    pidfd_.assign(fd);
    pidfd_.async_wait(asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (!done_) return;
                        if (ec) return finish(ec.message(), {});
                        const int status = reap();
                        if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
                          return finish("no such host", {});
                        }
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                          return finish("getent failed", {});
                        }
                        auto endpoints = parse();
                        if (endpoints.empty()) return finish("no address", {});
                        finish({}, std::move(endpoints));
                      });
  }

  // "ADDRESS  STREAM name" lines: the STREAM ones, in getent's order.
  std::vector<tcp::endpoint> parse() const {
    std::vector<tcp::endpoint> endpoints;
    std::istringstream lines(output_);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string address, kind;
      fields >> address >> kind;
      if (kind != "STREAM") continue;
      boost::system::error_code ec;
      const auto ip = asio::ip::make_address(address, ec);
      if (ec) continue;
      const tcp::endpoint endpoint(ip, port_);
      if (std::find(endpoints.begin(), endpoints.end(), endpoint) == endpoints.end()) {
        endpoints.push_back(endpoint);
      }
    }
    return endpoints;
  }

  int reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

  void close() {
    boost::system::error_code ignored;
    out_.close(ignored);
    pidfd_.close(ignored);
  }

  void finish(std::string error, std::vector<tcp::endpoint> endpoints) {
    auto done = std::exchange(done_, {});
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
    close();
    if (done) done(std::move(error), std::move(endpoints));
  }

  asio::posix::stream_descriptor out_;
  asio::posix::stream_descriptor pidfd_;
  pid_t pid_ = -1;
  std::string host_;
  std::uint16_t port_ = 0;
  std::string output_;
  std::array<char, 4096> buffer_{};
  Done done_;
};

// An error of one attempt; `retry` when trying again may help.
struct AttemptResult {
  bool ok = false;
  bool retry = false;
  std::string error;
};

class Webhook final : public Notifier {
 public:
  Webhook(asio::io_context& io, const config::NotifierConfig& config, config::Url url,
          std::shared_ptr<ssl::context> tls)
      : io_(io), config_(config), url_(std::move(url)), tls_(std::move(tls)) {}
  ~Webhook() override { cancel_all("the notifier was removed"); }

  void send(const nlohmann::json& notice, Delivered done) override {
    auto d = std::make_shared<Delivery_>(io_);
    d->body = notice.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    d->done = std::move(done);
    deliveries_.insert(d);
    asio::post(io_, [this, d] {
      if (d->done) attempt(d);
    });
  }

  void cancel_all(const std::string& why) override {
    auto all = std::exchange(deliveries_, {});
    for (const auto& d : all) {
      d->backoff.cancel();
      if (d->current) d->current->abort();
      auto done = std::exchange(d->done, {});
      if (done) done(Delivery{false, "abandoned: " + why, d->attempts, true});
    }
  }

  std::size_t in_flight() const override { return deliveries_.size(); }

 private:
  struct Attempt;
  struct Delivery_ {
    explicit Delivery_(asio::io_context& io) : backoff(io) {}
    std::string body;
    Delivered done;
    int attempts = 0;
    asio::steady_timer backoff;
    std::shared_ptr<Attempt> current;
  };

  // One try: resolve, connect, handshake, write, read; one timer over all.
  struct Attempt : std::enable_shared_from_this<Attempt> {
    Attempt(asio::io_context& io, const Webhook& owner)
        : owner(owner), resolver(io), timer(io), plain(io) {}
    const Webhook& owner;
    ResolverChild resolver;
    asio::steady_timer timer;
    beast::tcp_stream plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
    http::request<http::string_body> request;
    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
    std::function<void(AttemptResult)> on_end;
    bool ended = false;
    bool timed_out = false;
    bool resolving = false;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : plain; }

    void abort() {
      ended = true;
      on_end = {};
      stop_io();
    }
    void stop_io() {
      boost::system::error_code ignored;
      timer.cancel();
      resolver.kill();
      lowest().socket().close(ignored);
    }
    void end(AttemptResult result) {
      if (ended) return;
      ended = true;
      stop_io();
      auto callback = std::exchange(on_end, {});
      if (callback) callback(std::move(result));
    }
    // A failed step: the timeout's words when the timer ended it.
    void fail_step(std::string_view step, const boost::system::error_code& ec) {
      if (timed_out) {
        return end({false, true,
                    fmt::format("timed out after {} ({})",
                                config::format_duration(owner.config_.timeout), step)});
      }
      end({false, true, fmt::format("{}: {}", step, ec.message())});
    }

    void start(const std::string& body) {
      const config::Url& url = owner.url_;
      request = {http::verb::post, url.target, 11};
      const bool default_port = url.port == (url.tls ? 443 : 80);
      const std::string host =
          url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
      request.set(http::field::host, default_port ? host : fmt::format("{}:{}", host, url.port));
      request.set(http::field::user_agent, "jobhost-alerts");
      request.set(http::field::content_type, "application/json");
      request.set(http::field::connection, "close");
      for (const auto& [name, value] : owner.config_.headers) request.set(name, value);
      request.body() = body;
      request.prepare_payload();

      timer.expires_after(owner.config_.timeout);
      timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec || self->ended) return;
        self->timed_out = true;
        if (self->resolving) return self->fail_step("resolving " + self->owner.url_.host, {});
        boost::system::error_code ignored;
        self->lowest().socket().close(ignored);
      });
      boost::system::error_code not_ip;
      const auto ip = asio::ip::make_address(url.host, not_ip);
      if (!not_ip) {
        return asio::post(owner.io_, [self = shared_from_this(), ip] {
          if (self->ended) return;
          self->connect({tcp::endpoint(ip, self->owner.url_.port)});
        });
      }
      resolving = true;
      resolver.start(
          url.host, url.port,
          [self = shared_from_this()](std::string error, std::vector<tcp::endpoint> endpoints) {
            self->resolving = false;
            if (self->ended) return;
            if (!error.empty()) {
              return self->end(
                  {false, true, fmt::format("resolving {}: {}", self->owner.url_.host, error)});
            }
            self->connect(endpoints);
          });
    }

    void connect(const std::vector<tcp::endpoint>& endpoints) {
      if (owner.url_.tls) {
        tls.emplace(owner.io_, *owner.tls_);
        SSL* handle = tls->native_handle();
        X509_VERIFY_PARAM* param = SSL_get0_param(handle);
        const std::string& host = owner.url_.host;
        if (is_ip(host)) {
          X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
        } else {
          SSL_set_tlsext_host_name(handle, host.c_str());
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
        }
      }
      lowest().async_connect(
          endpoints,
          [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
            if (self->ended) return;
            if (ec) return self->fail_step("connecting", ec);
            if (self->tls) return self->handshake();
            self->write(self->plain);
          });
    }

    void handshake() {
      tls->async_handshake(ssl::stream_base::client, [self = shared_from_this()](
                                                         const boost::system::error_code& ec) {
        if (self->ended) return;
        if (ec) {
          const long verify = SSL_get_verify_result(self->tls->native_handle());
          if (verify != X509_V_OK && !self->timed_out) {
            return self->end({false, false,
                              fmt::format("TLS handshake: certificate verification failed: {}",
                                          X509_verify_cert_error_string(verify))});
          }
          return self->fail_step("TLS handshake", ec);
        }
        self->write(*self->tls);
      });
    }

    template <class Stream>
    void write(Stream& stream) {
      http::async_write(
          stream, request,
          [self = shared_from_this(), &stream](const boost::system::error_code& ec, std::size_t) {
            if (self->ended) return;
            if (ec) return self->fail_step("sending the request", ec);
            self->read(stream);
          });
    }

    template <class Stream>
    void read(Stream& stream) {
      parser.emplace();
      parser->body_limit(kMaxResponseBody);
      parser->header_limit(kMaxResponseHeader);
      http::async_read(
          stream, buffer, *parser,
          [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
            if (self->ended) return;
            // A body over the limit still has its status line.
            if (ec && !(ec == http::error::body_limit && self->parser->is_header_done())) {
              return self->fail_step("reading the response", ec);
            }
            self->judge(self->parser->get().result_int());
          });
    }

    void judge(unsigned status) {
      if (status >= 200 && status < 300) return end({true, false, ""});
      const bool retry = status >= 500 || status == 408 || status == 429;
      end({false, retry, fmt::format("HTTP {}", status)});
    }
  };

  void attempt(const std::shared_ptr<Delivery_>& d) {
    ++d->attempts;
    auto a = std::make_shared<Attempt>(io_, *this);
    d->current = a;
    a->on_end = [this, d](AttemptResult result) {
      d->current.reset();
      if (!d->done) return;
      if (result.ok || !result.retry || d->attempts > config_.retries) {
        deliveries_.erase(d);
        auto done = std::exchange(d->done, {});
        done(Delivery{result.ok, std::move(result.error), d->attempts});
        return;
      }
      d->backoff.expires_after(webhook_backoff(d->attempts));
      d->backoff.async_wait([this, d](const boost::system::error_code& ec) {
        if (ec || !d->done) return;
        attempt(d);
      });
    };
    a->start(d->body);
  }

  asio::io_context& io_;
  config::NotifierConfig config_;
  config::Url url_;
  std::shared_ptr<ssl::context> tls_;
  std::set<std::shared_ptr<Delivery_>> deliveries_;
};

}  // namespace

Duration webhook_backoff(int failed_attempts) {
  Duration d = kWebhookFirstBackoff;
  for (int i = 1; i < failed_attempts && d < kWebhookMaxBackoff; ++i) d *= 2;
  return std::min(d, kWebhookMaxBackoff);
}

Result<std::unique_ptr<Notifier>> make_webhook_notifier(asio::io_context& io,
                                                        const config::NotifierConfig& config) {
  auto url = config::parse_url(config.url);
  if (!url) {
    return fail(fmt::format("[alerts.{}] url: {}", config.name, url.error().message));
  }
  std::shared_ptr<ssl::context> tls;
  if (url->tls) {
    try {
      tls = std::make_shared<ssl::context>(ssl::context::tls_client);
      tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      tls->set_verify_mode(ssl::verify_peer);
      if (config.ca_file.empty()) {
        tls->set_default_verify_paths();
      } else {
        tls->load_verify_file(config.ca_file.string());
      }
    } catch (const boost::system::system_error& e) {
      return fail(
          fmt::format("[alerts.{}]: cannot set up TLS{}: {}", config.name,
                      config.ca_file.empty() ? "" : " with ca_file " + config.ca_file.string(),
                      e.code().message()));
    }
  }
  return std::unique_ptr<Notifier>(new Webhook(io, config, std::move(*url), std::move(tls)));
}

}  // namespace jobhost::observe
