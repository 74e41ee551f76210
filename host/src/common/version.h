// The version of this jobhost (`jobhost --version`, jobhost_build_info).
#pragma once

#include <string_view>

namespace jobhost {

inline constexpr std::string_view kVersion = "0.1.0";

}  // namespace jobhost
