// "Did you mean" suggestions for misspelt keys, enum values and names.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace jobhost::config {

// Edit distance (insertions, deletions, substitutions and swaps of two
// neighbouring characters each cost 1), ignoring ASCII case.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a likely typo
// (at most 1 edit for words up to 3 characters, 2 up to 6, 3 beyond), else
// nullopt. Ties go to the earlier candidate. `word` itself never matches.
std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates);

}  // namespace jobhost::config
