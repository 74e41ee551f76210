#include "engine/wall_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace jobhost::engine {
namespace {

int make_timerfd() {
  int fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("timerfd_create: ") + std::strerror(errno));
  return fd;
}

}  // namespace

WallTimer::WallTimer(boost::asio::io_context& io) : fd_(io, make_timerfd()) {}

void WallTimer::arm(TimePoint at) {
  auto ms = at.time_since_epoch().count();
  if (ms <= 0) ms = 1;  // 0 would disarm
  itimerspec spec{};
  spec.it_value.tv_sec = ms / 1000;
  spec.it_value.tv_nsec = (ms % 1000) * 1'000'000;
  timerfd_settime(fd_.native_handle(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &spec, nullptr);
}

void WallTimer::wait_until(TimePoint at, Handler handler) {
  handler_ = std::move(handler);
  ++generation_;
  arm(at);
  start_wait(generation_);
}

void WallTimer::start_wait(uint64_t generation) {
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this, generation](const boost::system::error_code& ec) {
                   if (ec || generation != generation_) return;
                   uint64_t expirations = 0;
                   ssize_t n = ::read(fd_.native_handle(), &expirations, sizeof expirations);
                   if (n < 0 && errno == EAGAIN) return start_wait(generation);  // spurious
                   bool clock_changed = n < 0 && errno == ECANCELED;
                   if (auto h = std::move(handler_)) h(clock_changed);
                 });
}

void WallTimer::cancel() {
  ++generation_;
  handler_ = nullptr;
  itimerspec off{};
  timerfd_settime(fd_.native_handle(), 0, &off, nullptr);
  fd_.cancel();
}

}  // namespace jobhost::engine
