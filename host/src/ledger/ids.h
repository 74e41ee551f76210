// Run ids and trace ids: ULID-like, 26 Crockford base32 characters encoding a
// 48-bit millisecond timestamp followed by 80 random bits. Ids sort
// lexicographically by time, and ids made by one process are strictly
// increasing even within one millisecond or across a backward clock step.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/time.h"

namespace jobhost::ledger {

inline constexpr std::size_t kIdLength = 26;
inline constexpr std::size_t kIdRandomBytes = 10;
// Crockford's base32 alphabet: no I, L, O, U.
inline constexpr std::string_view kCrockfordAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// Encodes `unix_ms` (only the low 48 bits are used) and `random` (big-endian)
// as 26 upper-case Crockford base32 characters. Pure.
std::string encode_id(uint64_t unix_ms, const std::array<uint8_t, kIdRandomBytes>& random);

// The timestamp of an id; nullopt unless `id` is 26 Crockford base32
// characters (case-insensitive) whose first one is at most '7'.
std::optional<TimePoint> id_time(std::string_view id);

// Makes monotonic ids. Not thread-safe by itself (new_id() locks around one).
class IdGenerator {
 public:
  // Fills its argument with random bytes.
  using RandomSource = std::function<void(std::span<uint8_t>)>;

  // `random` defaults to the kernel's getrandom().
  explicit IdGenerator(RandomSource random = {});

  // An id for `now`, strictly greater than the previous one: a later
  // millisecond draws fresh random bits; the same or an earlier one reuses the
  // previous timestamp and increments the random part (carrying into the
  // timestamp on the rare overflow).
  std::string next(TimePoint now);

 private:
  RandomSource random_;
  uint64_t last_ms_ = 0;
  std::array<uint8_t, kIdRandomBytes> last_random_{};
  bool started_ = false;
};

// A new id from the process-wide generator (thread-safe). Run ids and trace
// ids are both made with it.
std::string new_id(TimePoint now);

}  // namespace jobhost::ledger
