// Small text helpers for the catalog's messages (internal to catalog/).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace jobhost::catalog {

// `bytes` with anything but printable ASCII escaped as \xNN, cut at `max_bytes` ("...").
std::string printable(std::string_view bytes, std::size_t max_bytes);

// `path` quoted for a POSIX shell when it needs it ('it'\''s'), for fix-it commands.
std::string shell_quote(const std::filesystem::path& path);

// `text` with every occurrence of `from` replaced by `to` (`from` must not be empty).
std::string replace_all(std::string text, std::string_view from, std::string_view to);

// "5s", "250ms", "1500ms": how a timeout reads in a message.
std::string format_millis(long long millis);

}  // namespace jobhost::catalog
