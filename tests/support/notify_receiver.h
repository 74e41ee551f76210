// A fake service manager's end of NOTIFY_SOCKET (systemd's notify protocol):
// an AF_UNIX datagram socket bound to a path or an abstract name ("@name"),
// whose messages a test reads one by one. The kernel queues few datagrams
// per socket (net.unix.max_dgram_qlen, 10 by default) before a sender gets
// EAGAIN, so a test that does something else meanwhile has the receiver
// read in the background, as systemd reads at once.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace jobhost::testing {

class NotifyReceiver {
 public:
  enum class Reading { on_demand, background };

  // `name`: an absolute path (created; removed by the destructor) or "@name".
  explicit NotifyReceiver(std::string name, Reading reading = Reading::on_demand)
      : name_(std::move(name)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (name_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket name too long");
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    const bool abstract = name_.starts_with('@');
    if (abstract) addr.sun_path[0] = '\0';
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + (abstract ? 0 : 1));
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
      const std::string why = std::strerror(errno);
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("cannot bind " + name_ + ": " + why);
    }
    if (reading == Reading::background) {
      reader_ = std::thread([this] {
        while (!stop_) {
          auto message = read_one(std::chrono::milliseconds(50));
          if (!message) continue;
          std::lock_guard lock(mutex_);
          queue_.push_back(std::move(*message));
          ready_.notify_all();
        }
      });
    }
  }
  ~NotifyReceiver() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) ::close(fd_);
    if (!name_.starts_with('@')) ::unlink(name_.c_str());
  }
  NotifyReceiver(const NotifyReceiver&) = delete;
  NotifyReceiver& operator=(const NotifyReceiver&) = delete;

  const std::string& name() const { return name_; }

  // The next message, waiting up to `timeout`; nullopt if none came.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    if (!reader_.joinable()) return read_one(timeout);
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [this] { return !queue_.empty(); })) return std::nullopt;
    std::string message = std::move(queue_.front());
    queue_.pop_front();
    return message;
  }

  // Messages as they come, up to and including the first with line `line`
  // ("READY=1"), waiting up to `timeout` in all; `found` says whether it came.
  std::vector<std::string> receive_until(std::string_view line, std::chrono::milliseconds timeout,
                                         bool& found) {
    std::vector<std::string> out;
    found = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!found) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto message = receive(left);
      if (!message) break;
      found = has_line(*message, line);
      out.push_back(std::move(*message));
    }
    return out;
  }

  // Whether `message` has the line `line` exactly.
  static bool has_line(std::string_view message, std::string_view line) {
    for (std::size_t at = 0; at <= message.size();) {
      std::size_t end = message.find('\n', at);
      if (end == std::string_view::npos) end = message.size();
      if (message.substr(at, end - at) == line) return true;
      at = end + 1;
    }
    return false;
  }

  // The value of `key` ("STATUS") in `message`, or nullopt.
  static std::optional<std::string> value(std::string_view message, std::string_view key) {
    for (std::size_t at = 0; at < message.size();) {
      std::size_t end = message.find('\n', at);
      if (end == std::string_view::npos) end = message.size();
      const auto entry = message.substr(at, end - at);
      if (entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=') {
        return std::string(entry.substr(key.size() + 1));
      }
      at = end + 1;
    }
    return std::nullopt;
  }

 private:
  std::optional<std::string> read_one(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    std::string buf(65536, '\0');
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

  std::string name_;
  int fd_ = -1;
  std::thread reader_;
  std::atomic<bool> stop_ = false;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> queue_;  // read in the background, not yet received
};

}  // namespace jobhost::testing
