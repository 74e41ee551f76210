// The webhook notifier: POSTs the alert as JSON, async on the loop (Boost.Beast,
// Boost.Asio SSL over OpenSSL). Each attempt resolves the host (asio's
// resolver), connects, for https does the TLS handshake with the peer's
// certificate verified against the system CAs or ca_file, SNI and host name
// (or IP address) checked, writes the request and reads a bounded response,
// all under one timer for the whole attempt. Connection errors, timeouts,
// 5xx, 408 and 429 are tried again after a backoff (webhook_backoff), up to
// `retries` more times; a certificate that does not verify, 3xx and other 4xx
// are final.
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>
#include <set>

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
    tcp::resolver resolver;
    asio::steady_timer timer;
    beast::tcp_stream plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
    http::request<http::string_body> request;
    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
    std::function<void(AttemptResult)> on_end;
    bool ended = false;
    bool timed_out = false;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : plain; }

    void abort() {
      ended = true;
      on_end = {};
      stop_io();
    }
    void stop_io() {
      boost::system::error_code ignored;
      timer.cancel();
      resolver.cancel();
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
        boost::system::error_code ignored;
        self->resolver.cancel();
        self->lowest().socket().close(ignored);
      });
      resolver.async_resolve(
          url.host, std::to_string(url.port),
          [self = shared_from_this()](const boost::system::error_code& ec,
                                      const tcp::resolver::results_type& results) {
            if (self->ended) return;
            if (ec) return self->fail_step("resolving " + self->owner.url_.host, ec);
            self->connect(results);
          });
    }

    void connect(const tcp::resolver::results_type& results) {
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
          results,
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
