// Fuzz target: the HTTP request path. The input is sent as-is on a TCP
// connection to the real server (observe/http_server.h, with the daemon's
// default limits) on 127.0.0.1, then the client half-closes and reads until
// the server closes. So Beast's parser with the server's header and body
// limits, the split of the target into path and query (%-decoding), the
// Router (404/405) and the daemon's handlers see the bytes: health, metrics,
// the dashboard and the real JSON API (observe/api.h) over a real engine and
// SQLite ledger in a temporary directory, with an executor that starts no
// run (a trigger is refused) and a timer that never fires. The token is
// "s3cret", so actions with "Authorization: Bearer s3cret" get past auth.
// The server must close every connection soon after its client has sent all
// and half-closed: one that stays open for 5 s is reported as a hang.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "engine/engine.h"
#include "engine/timer.h"
#include "exec/executor.h"
#include "ledger/sqlite_store.h"
#include "observe/api.h"
#include "observe/dashboard.h"
#include "observe/health.h"
#include "observe/http.h"
#include "observe/http_server.h"
#include "observe/metrics.h"

using namespace jobhost;

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz http: %s: %s\n", what, std::strerror(errno));
    std::abort();
  }
}

// Starts no run: every trigger of the API ends in the engine's error path.
class NoRuns final : public exec::Executor {
 public:
  Result<int> start(exec::RunRequest, std::function<void(exec::RunReport)>) override {
    return fail("the fuzz target starts no runs");
  }
  Result<int> park(exec::RunRequest, std::function<void(exec::RunReport)>, TimePoint) override {
    return fail("the fuzz target starts no runs");
  }
  void release(std::span<const std::string>) override {}
  void discard(std::string_view) override {}
  void stop(std::string_view, exec::StopReason) override {}
  void stop_all(exec::StopReason) override {}
  std::size_t active() const override { return 0; }
};

// Never fires: the engine's schedule stays as it was loaded.
class NeverTimer final : public engine::Timer {
 public:
  void wait_until(TimePoint, Handler) override {}
  void cancel() override {}
};

constexpr const char* kConfig = R"(
[host]
plugin_dir = "plugins"
state_dir = "var"

[http]
token_file = "token"

[jobs.backup]
plugin = "noop"
schedule = "30 2 * * *"

[jobs.report]
plugin = "noop"
every = "1h"
)";

// The rig's directory, removed when the process exits normally.
std::filesystem::path temp_dir;

void remove_temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(temp_dir, ignored);
}

std::filesystem::path make_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/jobhost-fuzz-http.XXXXXX";
  require(::mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  const std::filesystem::path dir(pattern);
  temp_dir = dir;
  std::atexit(remove_temp_dir);
  std::filesystem::create_directories(dir / "plugins");
  std::filesystem::create_directories(dir / "var");
  std::ofstream(dir / "token") << "s3cret\n";
  ::chmod((dir / "token").c_str(), 0600);
  std::ofstream(dir / "jobhost.toml") << kConfig;
  return dir;
}

struct Rig {
  std::filesystem::path dir = make_dir();
  boost::asio::io_context io;
  config::Config config;
  std::unique_ptr<ledger::Store> store;
  NoRuns executor;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<observe::Api> api;
  observe::Router router;
  observe::Metrics metrics{{.version = "fuzz",
                            .engine = nullptr,
                            .fork_server_restarts = {},
                            .cluster = {},
                            .clock = {}}};
  std::unique_ptr<observe::HttpServer> server;
  sockaddr_in address{};

  Rig() {
    auto loaded = config::load_config(dir / "jobhost.toml");
    require(loaded.has_value(), "the rig's config does not load");
    config = std::move(*loaded);
    auto opened = ledger::open_sqlite_store(dir / "var" / "jobhost.db", config::Durability::normal);
    require(opened.has_value(), "cannot open the ledger");
    store = std::move(*opened);
    engine =
        std::make_unique<engine::Engine>(io, config, catalog::ScanResult{}, *store, executor, 42,
                                         engine::Engine::Clock{}, std::make_unique<NeverTimer>());
    engine->start();
    metrics.set_engine(engine.get());
    observe::ApiHooks hooks;
    hooks.alerts = [](std::string_view) { return nlohmann::json(nullptr); };
    hooks.reload = [](std::string, std::function<void(nlohmann::json)> done) {
      done({{"ok", true}, {"lines", nlohmann::json::array()}});
    };
    api = std::make_unique<observe::Api>(*engine, *store, std::move(hooks));

    observe::add_health_routes(router, [] {
      observe::Readiness readiness;
      readiness.config_loaded = true;
      return readiness;
    });
    observe::add_metrics_route(router, metrics);
    api->add_routes(router);
    observe::add_dashboard_routes(router);
    auto listening = observe::HttpServer::listen(io, "127.0.0.1:0", router);
    require(listening.has_value(), "cannot listen on 127.0.0.1");
    server = std::move(*listening);
    address.sin_family = AF_INET;
    address.sin_port = htons(server->local_endpoint().port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
};

}  // namespace

// A connected non-blocking socket to `address`. connect() is not restarted
// after a signal handler ran (libFuzzer's -timeout timer sends SIGALRM every
// second), so it is made non-blocking and its completion polled for.
int connect_to(const sockaddr_in& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  require(fd >= 0, "socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    require(errno == EINPROGRESS || errno == EINTR, "connect");
    pollfd p{fd, POLLOUT, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, 5000);
    } while (ready < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof err;
    require(ready == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0,
            "connect (completion)");
  }
  return fd;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static Rig* rig = new Rig;
  const int fd = connect_to(rig->address);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::size_t sent = 0;
  bool half_closed = false;
  char sink[16384];
  for (;;) {
    rig->io.poll();
    if (sent < size) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        sent = size;  // reset by the server
      }
    }
    if (sent == size && !half_closed) {
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
    const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      break;  // closed
    }
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
