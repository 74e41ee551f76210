#include "common/time.h"

#include <fmt/core.h>

namespace jobhost {

std::string format_elapsed(Duration d) {
  if (d < std::chrono::seconds(10)) return fmt::format("{}ms", d.count());
  return fmt::format("{:.1f}s", static_cast<double>(d.count()) / 1000.0);
}

}  // namespace jobhost
