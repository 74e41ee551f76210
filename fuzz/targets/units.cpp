// Fuzz target: the value parsers of config/units.cpp and parse_url. A
// duration that parses formats to a text that parses back to it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.h"

using namespace jobhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = config::parse_duration(text); d && d->count() >= 0) {
    const std::string again = config::format_duration(*d);
    auto back = config::parse_duration(again);
    if (!back || *back != *d) std::abort();
  }
  (void)config::parse_size(text);
  (void)config::parse_url(text);
  return 0;
}
