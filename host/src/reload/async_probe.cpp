#include "reload/async_probe.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/pidfd.h"

namespace jobhost::reload {
namespace {

namespace asio = boost::asio;

class ProbeWait : public std::enable_shared_from_this<ProbeWait> {
 public:
  ProbeWait(asio::io_context& io, std::filesystem::path so, Duration timeout, std::string shown,
            std::function<void(catalog::ProbeResult)> done)
      : output_(io),
        pidfd_(io),
        timer_(io),
        so_(std::move(so)),
        timeout_(timeout),
        shown_(std::move(shown)),
        done_(std::move(done)) {}

  void begin(const catalog::ProbeChild& child) {
    pid_ = child.pid;
    output_.assign(child.output_fd);
    output_.non_blocking(true);
    const int pidfd = pidfd_open(pid_);
    if (pidfd < 0) {
      // Cannot wait without blocking: give up on this probe (transient).
      const int err = errno;
      kill_group();
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      finish(std::unexpected(catalog::ProbeFailure{
          fmt::format("could not be probed: pidfd_open: {}", std::strerror(err)), true}));
      return;
    }
    pidfd_.assign(pidfd);
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      self->kill_group();
      self->wait_exit();
    });
    read_more();
  }

 private:
  void read_more() {
    output_.async_read_some(
        asio::buffer(buf_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          // Reaped already (the timeout's kill won the race): its pid may be reused.
          if (self->finished_) return;
          self->report_.output.append(self->buf_.data(), n);
          const bool answered = catalog::probe_answered(self->report_.output);
          if (!ec && !answered && !self->timed_out_) return self->read_more();
          // The answer is in (the child is done with the plugin: stop it), or
          // the pipe closed (it exited or crashed): wait for its exit status.
          if (answered) self->kill_group();
          self->wait_exit();
        });
  }

  void wait_exit() {
    if (waiting_exit_) return;
    waiting_exit_ = true;
    pidfd_.async_wait(asio::posix::stream_descriptor::wait_read,
                      [self = shared_from_this()](const boost::system::error_code& ec) {
                        if (ec) return;
                        self->reap();
                      });
  }

  void reap() {
    // The leader is unreaped, so its group id cannot have been reused yet.
    kill_group();
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    if (!timed_out_) report_.wait_status = status;
    finish(catalog::interpret_probe_report(report_, timeout_, so_.string(), shown_));
  }

  void kill_group() {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }

  void finish(catalog::ProbeResult result) {
    finished_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    output_.close(ignored);
    pidfd_.close(ignored);
    auto done = std::move(done_);
    done(std::move(result));
  }

  asio::posix::stream_descriptor output_;
  asio::posix::stream_descriptor pidfd_;
  asio::steady_timer timer_;
  std::filesystem::path so_;
  Duration timeout_;
  std::string shown_;
  std::function<void(catalog::ProbeResult)> done_;
  pid_t pid_ = -1;
  catalog::ProbeReport report_;
  std::array<char, 4096> buf_{};
  bool timed_out_ = false;
  bool waiting_exit_ = false;
  bool finished_ = false;
};

}  // namespace

void probe_async(asio::io_context& io, const std::filesystem::path& so, Duration timeout,
                 std::string shown_name, std::function<void(catalog::ProbeResult)> done) {
  auto child = catalog::start_probe(so);
  if (!child) {
    asio::post(
        io, [done = std::move(done), failure = child.error()] { done(std::unexpected(failure)); });
    return;
  }
  auto wait = std::make_shared<ProbeWait>(io, so, timeout, std::move(shown_name), std::move(done));
  wait->begin(*child);
}

}  // namespace jobhost::reload
