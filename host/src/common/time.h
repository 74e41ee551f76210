// The one representation of time in jobhost: UTC instants in milliseconds,
// the one reading of the wall clock, and the one way a measured duration is
// written for humans.
#pragma once

#include <chrono>
#include <string>

namespace jobhost {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::sys_time<Duration>;

// The wall clock now, in milliseconds. Code that must be testable against a
// fake clock takes a clock function instead and defaults it to this.
inline TimePoint wall_now() {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

// A measured duration (how long a run took, an outage lasted): "850ms" below
// ten seconds, else "12.3s". Configured durations use config::format_duration.
std::string format_elapsed(Duration d);

}  // namespace jobhost
