// A TCP proxy on loopback for tests of a database that is cut off, hangs,
// or loses answers (partition_test, hosts_test).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace jobhost::testing {

// Forwards 127.0.0.1:port() to 127.0.0.1:target, one thread per connection
// pair; cut() closes every connection and closes new ones at once; heal()
// forwards again. stall() stops forwarding (connections stay open, bytes
// wait) until resume(): a database that hangs. deafen() drops what the
// server sends until hear(): a server that gets a statement and runs it,
// whose answer is lost.
class Proxy {
 public:
  // To the server of `url` (postgresql://user@127.0.0.1:PORT/db); url()
  // is the same with the proxy's port.
  explicit Proxy(const std::string& url) {
    const auto colon = url.rfind(':');
    const auto slash = url.find('/', colon);
    target_ = std::stoi(url.substr(colon + 1, slash - colon - 1));
    before_port_ = url.substr(0, colon + 1);
    after_port_ = url.substr(slash);
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    REQUIRE(::listen(listener_, 64) == 0);
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~Proxy() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    accepter_.join();
    cut();
    for (auto& t : pipes_) t.join();
  }
  int port() const { return port_; }
  std::string url() const { return before_port_ + std::to_string(port_) + after_port_; }
  void cut() {
    cut_ = true;
    std::lock_guard lock(mutex_);
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  }
  void heal() { cut_ = false; }
  void stall() { stalled_ = true; }
  void resume() { stalled_ = false; }
  void deafen() { deaf_ = true; }
  void hear() { deaf_ = false; }

 private:
  void accept_loop() {
    while (!stopping_) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      if (cut_) {
        ::close(client);
        continue;
      }
      const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_));
      if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(server);
        ::close(client);
        continue;
      }
      std::lock_guard lock(mutex_);
      open_.push_back(client);
      open_.push_back(server);
      pipes_.emplace_back([this, client, server] { pump(client, server); });
    }
  }
  // Copies both ways until either side closes, then closes both.
  void pump(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buffer[65536];
    for (;;) {
      if (stalled_ && !cut_ && !stopping_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (::poll(fds, 2, 100) < 0) break;
      if (stalled_ && !cut_ && !stopping_) continue;  // stalled while it waited
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n > 0 && i == 1 && deaf_) continue;  // the server's, dropped
        done =
            n <= 0 || ::send(fds[1 - i].fd, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n;
      }
      if (done) break;
    }
    ::shutdown(a, SHUT_RDWR);
    ::shutdown(b, SHUT_RDWR);
  }

  int target_ = 0;
  std::string before_port_, after_port_;  // of the server's url
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stalled_{false};
  std::atomic<bool> deaf_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<int> open_;  // closed when the proxy goes (the pumps only shut them down)
  std::vector<std::thread> pipes_;
  std::thread accepter_;
};

}  // namespace jobhost::testing
