// The one representation of time in jobhost: UTC instants in milliseconds.
#pragma once

#include <chrono>

namespace jobhost {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::sys_time<Duration>;

}  // namespace jobhost
