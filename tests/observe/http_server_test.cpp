// The HTTP server against real sockets: routing, limits, timeouts, the
// connection cap, keep-alive and answers that come later. The server runs on
// an io_context in a thread of its own (the daemon runs it on its loop); the
// test thread is the client.
#include "observe/http_server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/http_client.h"
#include "support/skip.h"

using namespace jobhost::observe;
using namespace jobhost::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

namespace asio = boost::asio;

// A server on 127.0.0.1:<free port> with `routes`, run by a thread.
class TestServer {
 public:
  explicit TestServer(HttpLimits limits = {},
                      const std::function<void(Router&, asio::io_context&)>& routes = {}) {
    router_.add("GET", "/hello", [](const Request&, const Respond& respond) {
      respond(Response::text(200, "hello\n"));
    });
    router_.add("POST", "/echo", [](const Request& r, const Respond& respond) {
      json body = {{"method", r.method}, {"path", r.path},          {"query", r.query},
                   {"body", r.body},     {"auth", r.authorization}, {"peer", r.peer}};
      respond(Response::json(200, body.dump()));
    });
    router_.add("GET", "/echo", [](const Request& r, const Respond& respond) {
      json body = {{"path", r.path}, {"query", r.query}, {"peer", r.peer}};
      Response out = Response::json(200, body.dump());
      out.headers.emplace_back("X-Test", "yes\r\nInjected: 1");
      respond(std::move(out));
    });
    if (routes) routes(router_, io_);
    auto server = HttpServer::listen(io_, "127.0.0.1:0", router_, limits);
    REQUIRE(server.has_value());
    server_ = std::move(*server);
    port_ = server_->local_endpoint().port();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    asio::post(io_, [this] {
      server_->close();
      io_.stop();
    });
    thread_.join();
  }

  int port() const { return port_; }
  asio::io_context& io() { return io_; }

  // `f` run on the server's thread, its result here.
  template <class F>
  auto on_loop(F f) -> decltype(f()) {
    std::promise<decltype(f())> done;
    asio::post(io_, [&] { done.set_value(f()); });
    return done.get_future().get();
  }
  std::size_t open_connections() {
    return on_loop([this] { return server_->open_connections(); });
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  Router router_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::thread thread_;
};

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// The status of a raw answer ("HTTP/1.1 400 Bad Request\r\n..." -> 400), or 0.
int status_of(const std::string& raw) {
  if (!raw.starts_with("HTTP/1.")) return 0;
  return std::stoi(raw.substr(9, 3));
}

std::string body_of(const std::string& raw) {
  const auto at = raw.find("\r\n\r\n");
  return at == std::string::npos ? "" : raw.substr(at + 4);
}

}  // namespace

TEST_CASE("listen addresses: IPv4, IPv6 in brackets, localhost; names and junk refused",
          "[observe][http]") {
  struct Case {
    const char* text;
    const char* endpoint;  // formatted back, or nullptr when refused
    const char* says;
  };
  const Case cases[] = {
      {"127.0.0.1:9187", "127.0.0.1:9187", ""},
      {"[::1]:80", "[::1]:80", ""},
      {"localhost:0", "127.0.0.1:0", ""},
      {"0.0.0.0:65535", "0.0.0.0:65535", ""},
      {"example.org:80", nullptr, "is not an IP address"},
      {"127.0.0.1", nullptr, "missing \":PORT\""},
      {"127.0.0.1:70000", nullptr, "from 0 to 65535"},
      {"127.0.0.1:8x", nullptr, "from 0 to 65535"},
      {"[::1]", nullptr, "needs a port"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto endpoint = parse_listen_address(c.text);
    if (c.endpoint) {
      REQUIRE(endpoint.has_value());
      CHECK(format_endpoint(*endpoint) == c.endpoint);
    } else {
      REQUIRE_FALSE(endpoint.has_value());
      CHECK_THAT(endpoint.error().message, Catch::Contains(c.says));
    }
  }
}

TEST_CASE("an address in use or not of this machine is an error naming it", "[observe][http]") {
  asio::io_context io;
  Router router;
  auto first = HttpServer::listen(io, "127.0.0.1:0", router);
  REQUIRE(first.has_value());
  const std::string taken = format_endpoint((*first)->local_endpoint());
  auto second = HttpServer::listen(io, taken, router);
  REQUIRE_FALSE(second.has_value());
  CHECK_THAT(second.error().message,
             Catch::Contains("cannot listen on " + taken) && Catch::Contains("in use"));
  // TEST-NET-1 is no address of this machine (unless net.ipv4.ip_nonlocal_bind is on).
  auto foreign = HttpServer::listen(io, "192.0.2.1:0", router);
  if (foreign.has_value()) {
    WARN("ip_nonlocal_bind is on here: binding 192.0.2.1 succeeded; not checked");
  } else {
    CHECK_THAT(foreign.error().message, Catch::Contains("bind: Cannot assign requested address"));
  }
}

TEST_CASE("IPv6 loopback serves too", "[observe][http][needs-ipv6]") {
  asio::io_context io;
  Router router;
  router.add("GET", "/x", [](const Request& r, const Respond& respond) {
    respond(Response::text(200, r.peer));
  });
  auto server = HttpServer::listen(io, "[::1]:0", router);
  if (!server) JOBHOST_SKIP("no IPv6 loopback here: " << server.error().message);
  const int port = (*server)->local_endpoint().port();
  std::thread loop([&] { io.run_for(5s); });
  HttpConnection c(port, "::1");
  auto r = c.request("GET", "/x");
  asio::post(io, [&] { io.stop(); });
  loop.join();
  CHECK(r.status == 200);
  CHECK(r.body.starts_with("[::1]:"));
}

TEST_CASE("routing: 404 and 405 with Allow as JSON errors, HEAD for GET routes",
          "[observe][http]") {
  TestServer server;
  auto missing = http_get(server.port(), "/nope");
  CHECK(missing.status == 404);
  CHECK(missing.header("content-type") == "application/json");
  CHECK(json::parse(missing.body)["error"] == "no such resource: /nope");

  auto wrong = http_request(server.port(), "DELETE", "/hello");
  CHECK(wrong.status == 405);
  CHECK(wrong.header("allow") == "GET");
  CHECK(json::parse(wrong.body)["error"].get<std::string>().find("DELETE") != std::string::npos);

  auto get = http_get(server.port(), "/hello");
  CHECK(get.status == 200);
  CHECK(get.body == "hello\n");
  CHECK(get.header("content-length") == "6");
  CHECK(get.header("content-type") == "text/plain; charset=utf-8");

  auto head = http_request(server.port(), "HEAD", "/hello");
  CHECK(head.status == 200);
  CHECK(head.header("content-length") == "6");
  CHECK(head.body.empty());
  // Nothing follows the head of a HEAD answer on the wire either.
  RawConnection raw(server.port());
  REQUIRE(raw.send("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  auto text = raw.read_until_close(5s);
  CHECK(status_of(text) == 200);
  CHECK(body_of(text).empty());
}

TEST_CASE("a request arrives decoded: path, query, body, Authorization, peer", "[observe][http]") {
  TestServer server;
  auto r = http_post(server.port(), "/ec%68o?job=back%20up&x=1&x=2&flag&sp=a+b", "payload",
                     {{"Authorization", "Bearer s3cret"}});
  REQUIRE(r.status == 200);
  auto body = json::parse(r.body);
  CHECK(body["method"] == "POST");
  CHECK(body["path"] == "/echo");
  CHECK(body["query"] == json({{"job", "back up"}, {"x", "2"}, {"flag", ""}, {"sp", "a b"}}));
  CHECK(body["body"] == "payload");
  CHECK(body["auth"] == "Bearer s3cret");
  CHECK(body["peer"].get<std::string>().starts_with("127.0.0.1:"));

  // Header values from a handler cannot inject headers.
  auto get = http_get(server.port(), "/echo");
  CHECK(get.header("x-test") == "yesInjected: 1");
  CHECK(get.header("injected").empty());
}

TEST_CASE("malformed requests get 400 with a JSON error, then the connection closes",
          "[observe][http]") {
  TestServer server;
  const char* requests[] = {
      "GARBAGE\r\n\r\n",
      "GET /hello HTTP/9.9\r\n\r\n",
      "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /hello?a=%4 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET hello HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (const char* request : requests) {
    INFO(request);
    RawConnection raw(server.port());
    REQUIRE(raw.send(request));
    auto text = raw.read_until_close(5s);
    CHECK(status_of(text) == 400);
    CHECK(json::parse(body_of(text)).contains("error"));
  }
  // The server is still fine.
  CHECK(http_get(server.port(), "/hello").status == 200);
}

TEST_CASE("a request head over the header limit gets 431, a body over the body limit 413",
          "[observe][http]") {
  TestServer server;  // default limits: 8 KiB head, 64 KiB body
  RawConnection raw(server.port());
  REQUIRE(
      raw.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n"));
  auto text = raw.read_until_close(5s);
  CHECK(status_of(text) == 431);
  CHECK(json::parse(body_of(text))["error"].get<std::string>().find("8192") != std::string::npos);

  auto big = http_post(server.port(), "/echo", std::string(65 * 1024, 'b'));
  CHECK(big.status == 413);
  CHECK(json::parse(big.body)["error"].get<std::string>().find("65536") != std::string::npos);
  auto fits = http_post(server.port(), "/echo", std::string(64 * 1024, 'b'));
  CHECK(fits.status == 200);

  // A Content-Length over the limit is refused before any body byte is sent.
  RawConnection announced(server.port());
  REQUIRE(announced.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  CHECK(status_of(announced.read_until_close(5s)) == 413);
}

TEST_CASE("keep-alive: two requests on one connection, and pipelined ones", "[observe][http]") {
  TestServer server;
  HttpConnection c(server.port());
  REQUIRE(c.connected());
  auto first = c.request("GET", "/echo");
  auto second = c.request("GET", "/echo?n=2");
  REQUIRE(first.status == 200);
  REQUIRE(second.status == 200);
  CHECK(first.header("connection") != "close");
  // Same client port: the same connection.
  CHECK(json::parse(first.body)["peer"] == json::parse(second.body)["peer"]);
  CHECK(json::parse(second.body)["query"]["n"] == "2");

  RawConnection raw(server.port());
  REQUIRE(raw.send(
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: "
      "close\r\n\r\n"));
  auto text = raw.read_until_close(5s);
  CHECK(text.find("HTTP/1.1 200") == 0);
  CHECK(text.find("HTTP/1.1 200", 10) != std::string::npos);

  // HTTP/1.0 without keep-alive: closed after the answer.
  RawConnection old(server.port());
  REQUIRE(old.send("GET /hello HTTP/1.0\r\n\r\n"));
  auto answer = old.read_until_close(5s);
  CHECK(answer.starts_with("HTTP/1.0 200"));
  CHECK(body_of(answer) == "hello\n");
}

TEST_CASE("Expect: 100-continue gets its interim answer before the body", "[observe][http]") {
  TestServer server;
  RawConnection raw(server.port());
  REQUIRE(
      raw.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
               "Connection: close\r\n\r\n"));
  // The interim answer comes before any body byte is sent.
  std::string interim;
  REQUIRE(wait_until(
      [&] {
        interim += raw.read_until_close(50ms);
        return interim.find("\r\n\r\n") != std::string::npos;
      },
      5s));
  CHECK(interim.starts_with("HTTP/1.1 100 Continue"));
  REQUIRE(raw.send("abcd"));
  auto text = raw.read_until_close(5s);
  CHECK(status_of(text) == 200);
  CHECK(json::parse(body_of(text))["body"] == "abcd");
}

TEST_CASE("a slowloris client is cut off at the request timeout; others are served meanwhile",
          "[observe][http]") {
  HttpLimits limits;
  limits.request_timeout = 1s;
  limits.idle_timeout = 30s;  // so that only the request timeout can cut it off
  TestServer server(limits);

  SECTION("one byte every 200 ms") {
    RawConnection slow(server.port());
    const std::string request =
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n";
    bool cut_off = false;
    const auto started = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < request.size() && !cut_off; ++i) {
      if (!slow.send(request.substr(i, 1))) cut_off = true;
      if (i == 2) {
        // Another client is answered while the slow one trickles.
        CHECK(http_get(server.port(), "/hello").status == 200);
      }
      std::this_thread::sleep_for(200ms);
      if (std::chrono::steady_clock::now() - started > 10s) break;
    }
    // 200 bytes at 5 a second would take 40 s: it never completed.
    CHECK(cut_off);
  }
  SECTION("half a request, then nothing") {
    RawConnection half(server.port());
    REQUIRE(half.send("GET /hello HTTP/1.1\r\nHost: x\r\n"));
    CHECK(http_get(server.port(), "/hello").status == 200);
    CHECK(half.wait_closed(10s));
    CHECK(half.read_until_close(100ms).empty());  // cut off, not answered
  }
  SECTION("half a body, then nothing") {
    RawConnection half(server.port());
    REQUIRE(half.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"));
    CHECK(half.wait_closed(10s));
  }
  CHECK(wait_until([&] { return server.open_connections() == 0; }, 5s));
}

TEST_CASE("an idle connection is closed after the idle timeout", "[observe][http]") {
  HttpLimits limits;
  limits.idle_timeout = 300ms;
  TestServer server(limits);
  RawConnection silent(server.port());
  CHECK(silent.wait_closed(10s));
  // And between requests of a kept-alive connection.
  RawConnection kept(server.port());
  REQUIRE(kept.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(kept.wait_closed(10s));
}

TEST_CASE("200 idle connections held open while requests are still answered", "[observe][http]") {
  TestServer server;
  std::vector<RawConnection> idle;
  for (int i = 0; i < 200; ++i) {
    idle.emplace_back(server.port());
    REQUIRE(idle.back().connected());
  }
  REQUIRE(wait_until([&] { return server.open_connections() >= 200; }, 10s));
  for (int i = 0; i < 5; ++i) CHECK(http_get(server.port(), "/hello").status == 200);
  CHECK(server.open_connections() >= 200);
}

TEST_CASE("over the connection cap a connection is closed at once; under it again, served",
          "[observe][http]") {
  HttpLimits limits;
  limits.max_connections = 3;
  TestServer server(limits);
  std::vector<RawConnection> held;
  for (int i = 0; i < 3; ++i) held.emplace_back(server.port());
  REQUIRE(wait_until([&] { return server.open_connections() == 3; }, 5s));

  RawConnection extra(server.port());
  REQUIRE(extra.connected());  // the kernel accepts; the server closes it
  auto text = extra.read_until_close(5s);
  CHECK((text.empty() || status_of(text) == 503));
  CHECK(extra.wait_closed(100ms));
  CHECK(server.open_connections() == 3);

  held.pop_back();
  REQUIRE(wait_until([&] { return server.open_connections() == 2; }, 5s));
  CHECK(http_get(server.port(), "/hello").status == 200);
}

TEST_CASE("answers that come later: served, and harmless once the client is gone",
          "[observe][http]") {
  HttpLimits limits;
  limits.handler_timeout = 500ms;
  std::vector<Respond> parked;  // touched on the server's thread only
  TestServer server(limits, [&](Router& router, asio::io_context& io) {
    router.add("GET", "/later", [&io](const Request&, const Respond& respond) {
      auto timer = std::make_shared<asio::steady_timer>(io, 100ms);
      timer->async_wait([timer, respond](const boost::system::error_code&) {
        respond(Response::text(200, "later\n"));
        respond(Response::text(500, "twice"));  // ignored
      });
    });
    router.add("GET", "/park",
               [&parked](const Request&, const Respond& respond) { parked.push_back(respond); });
    router.add("GET", "/throw",
               [](const Request&, const Respond&) { throw std::runtime_error("handler bug"); });
  });

  {
    HttpConnection c(server.port());
    auto later = c.request("GET", "/later");
    CHECK(later.status == 200);
    CHECK(later.body == "later\n");
    // The second answer was dropped: the connection serves the next request.
    CHECK(c.request("GET", "/hello").status == 200);
  }

  auto thrown = http_get(server.port(), "/throw");
  CHECK(thrown.status == 500);

  {
    // The client gives up and leaves before the answer.
    HttpConnection gone(server.port());
    auto r = gone.request("GET", "/park", "", {}, 200ms);
    CHECK(r.status == 0);
  }
  {
    // The client waits; the server's handler timeout closes the connection.
    HttpConnection waiting(server.port());
    auto r = waiting.request("GET", "/park", "", {}, 5s);
    CHECK(r.status == 0);
  }
  REQUIRE(wait_until([&] { return server.on_loop([&] { return parked.size(); }) == 2; }, 5s));
  REQUIRE(wait_until([&] { return server.open_connections() == 0; }, 5s));
  // Answering now reaches nobody and breaks nothing.
  server.on_loop([&] {
    for (const auto& respond : parked) respond(Response::text(200, "too late"));
    return 0;
  });
  CHECK(http_get(server.port(), "/hello").status == 200);
}

TEST_CASE("an answer written after the client left closes the connection quietly",
          "[observe][http]") {
  std::vector<Respond> parked;
  TestServer server({}, [&](Router& router, asio::io_context&) {
    router.add("GET", "/park",
               [&parked](const Request&, const Respond& respond) { parked.push_back(respond); });
  });
  {
    HttpConnection gone(server.port());
    CHECK(gone.request("GET", "/park", "", {}, 200ms).status == 0);
  }
  REQUIRE(wait_until([&] { return server.on_loop([&] { return parked.size(); }) == 1; }, 5s));
  CHECK(server.open_connections() == 1);  // still waiting for its answer
  server.on_loop([&] {
    parked.front()(Response::text(200, std::string(256 * 1024, 'x')));
    return 0;
  });
  CHECK(wait_until([&] { return server.open_connections() == 0; }, 5s));
  CHECK(http_get(server.port(), "/hello").status == 200);
}
