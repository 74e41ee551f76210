// Wakes the event loop at absolute wall-clock instants, and says when the
// wall clock was set (a jump), using a CLOCK_REALTIME timerfd with
// TFD_TIMER_CANCEL_ON_SET. Asleep in between: no polling.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include "engine/timer.h"

namespace jobhost::engine {

class WallTimer final : public Timer {
 public:
  explicit WallTimer(boost::asio::io_context& io);
  WallTimer(const WallTimer&) = delete;
  WallTimer& operator=(const WallTimer&) = delete;

  void wait_until(TimePoint at, Handler handler) override;
  void cancel() override;

 private:
  void arm(TimePoint at);
  void start_wait(uint64_t generation);

  boost::asio::posix::stream_descriptor fd_;
  Handler handler_;
  uint64_t generation_ = 0;
};

}  // namespace jobhost::engine
