// Fuzz target: the HTTP request path. The input is sent as-is on a TCP
// connection to the real server (observe/http_server.h, with the daemon's
// default limits) on 127.0.0.1, then the client half-closes and reads until
// the server closes. So Beast's parser with the server's header and body
// limits, the split of the target into path and query (%-decoding), the
// Router (404/405) and these handlers see the bytes: the health, metrics and
// dashboard routes as the daemon registers them, and fake /api/v1 routes that
// echo what the router gave them (the real API needs an engine and a ledger).
// The server must close every connection soon after its client has sent all
// and half-closed: one that stays open for 5 s is reported as a hang.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "observe/dashboard.h"
#include "observe/health.h"
#include "observe/http.h"
#include "observe/http_server.h"
#include "observe/metrics.h"

using namespace jobhost;

namespace {

void echo(const observe::Request& request, const observe::Respond& respond) {
  nlohmann::json out = {{"method", request.method},
                        {"path", request.path},
                        {"query", request.query},
                        {"params", request.params},
                        {"body_bytes", request.body.size()},
                        {"authorized", !request.authorization.empty()}};
  respond(observe::Response::json(
      200, out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

struct Rig {
  boost::asio::io_context io;
  observe::Router router;
  observe::Metrics metrics{
      {.version = "fuzz", .engine = nullptr, .fork_server_restarts = {}, .clock = {}}};
  std::unique_ptr<observe::HttpServer> server;
  sockaddr_in address{};

  Rig() {
    observe::add_health_routes(router, [] {
      observe::Readiness readiness;
      readiness.config_loaded = true;
      return readiness;
    });
    observe::add_metrics_route(router, metrics);
    router.add("GET", "/api/v1/jobs", echo);
    router.add("GET", "/api/v1/jobs/{name}", echo);
    router.add("POST", "/api/v1/jobs/{name}/trigger", echo);
    router.add("GET", "/api/v1/runs/{id}", echo);
    router.add("POST", "/api/v1/runs/{id}/cancel", echo);
    observe::add_dashboard_routes(router);
    auto listening = observe::HttpServer::listen(io, "127.0.0.1:0", router);
    if (!listening) {
      std::fprintf(stderr, "%s\n", listening.error().message.c_str());
      std::abort();
    }
    server = std::move(*listening);
    address.sin_family = AF_INET;
    address.sin_port = htons(server->local_endpoint().port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static Rig* rig = new Rig;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 ||
      ::connect(fd, reinterpret_cast<const sockaddr*>(&rig->address), sizeof rig->address) != 0) {
    std::perror("fuzz http: connect");
    std::abort();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::size_t sent = 0;
  bool half_closed = false;
  char sink[16384];
  for (;;) {
    rig->io.poll();
    if (sent < size) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) sent = size;  // reset by the server
    }
    if (sent == size && !half_closed) {
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
    const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;  // closed
    if (n < 0) rig->io.run_one_for(std::chrono::milliseconds(10));
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "fuzz http: the server kept the connection open\n");
      std::abort();
    }
  }
  // Reset rather than linger in TIME_WAIT: thousands of connections a second.
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
  rig->io.poll();
  return 0;
}
