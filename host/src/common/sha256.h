// SHA-256 of bytes or of a file, as lowercase hex.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"

namespace jobhost {

std::string sha256_hex(std::string_view bytes);
// Reads the whole file; error names the file and the reason.
Result<std::string> sha256_file(const std::filesystem::path& file);

}  // namespace jobhost
