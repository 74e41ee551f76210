#include "catalog/text.h"

#include <fmt/core.h>

namespace jobhost::catalog {

std::string printable(std::string_view bytes, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (bytes.size() > max_bytes) out += "...";
  return out;
}

std::string shell_quote(const std::filesystem::path& path) {
  const std::string s = path.string();
  const bool plain = !s.empty() && s.find_first_not_of(
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789_./-+=:,@%") == std::string::npos;
  if (plain) return s;
  return "'" + replace_all(s, "'", "'\\''") + "'";
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string format_millis(long long millis) {
  if (millis >= 1000 && millis % 1000 == 0) return fmt::format("{}s", millis / 1000);
  return fmt::format("{}ms", millis);
}

}  // namespace jobhost::catalog
