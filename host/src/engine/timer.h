// What the engine waits on: one pending wake-up at an absolute wall-clock
// instant. WallTimer (engine/wall_timer.h) is the real one; tests drive the
// engine with a manual one and a fake clock, to jump the clock at will.
#pragma once

#include <functional>

#include "common/time.h"

namespace jobhost::engine {

class Timer {
 public:
  // Called once per wait: at `at`, or earlier with clock_changed = true when
  // the wall clock was set. Not called after cancel() or a newer wait_until().
  using Handler = std::function<void(bool clock_changed)>;

  virtual ~Timer() = default;
  // Replaces any pending wait.
  virtual void wait_until(TimePoint at, Handler handler) = 0;
  virtual void cancel() = 0;
};

}  // namespace jobhost::engine
