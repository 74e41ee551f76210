// Internal: the hash behind values derived from a job's name (jitter, cron H).
// The same on every build, host and restart, which std::hash is not.
#pragma once

#include <cstdint>
#include <string_view>

namespace jobhost::schedule {

// FNV-1a over the bytes of `text`.
inline uint64_t fnv1a(std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

// SplitMix64's step: spreads every input bit over the whole result, which
// FNV-1a alone does not for names that differ in their last byte.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// `h` mapped onto [0, span) by Lemire's multiply-shift: uses the high bits
// and needs no modulo.
inline uint64_t scale_to(uint64_t h, uint64_t span) {
  __extension__ using Uint128 = unsigned __int128;
  return static_cast<uint64_t>((static_cast<Uint128>(h) * span) >> 64);
}

}  // namespace jobhost::schedule
