#include "ledger/ids.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace jobhost::ledger {
namespace {

constexpr uint64_t kMaxMs = (uint64_t{1} << 48) - 1;

void kernel_random(std::span<uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // getrandom() cannot fail for small requests once the pool is seeded;
      // failing here means the kernel is broken, not something a user fixes.
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

int crockford_value(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  auto pos = kCrockfordAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

// Adds one to the big-endian random part; true on overflow (all bits wrapped).
bool increment(std::array<uint8_t, kIdRandomBytes>& bytes) {
  for (std::size_t i = bytes.size(); i-- > 0;) {
    if (++bytes[i] != 0) return false;
  }
  return true;
}

}  // namespace

std::string encode_id(uint64_t unix_ms, const std::array<uint8_t, kIdRandomBytes>& random) {
  std::string out(kIdLength, '0');
  uint64_t ms = unix_ms & kMaxMs;
  // 10 characters hold 50 bits: the timestamp's top two are always zero.
  for (std::size_t i = 10; i-- > 0;) {
    out[i] = kCrockfordAlphabet[ms & 31];
    ms >>= 5;
  }
  // 80 random bits are exactly 16 characters: 5 bytes make 8 characters.
  for (std::size_t group = 0; group < 2; ++group) {
    uint64_t bits = 0;
    for (std::size_t b = 0; b < 5; ++b) bits = (bits << 8) | random[group * 5 + b];
    for (std::size_t i = 8; i-- > 0;) {
      out[10 + group * 8 + i] = kCrockfordAlphabet[bits & 31];
      bits >>= 5;
    }
  }
  return out;
}

std::optional<TimePoint> id_time(std::string_view id) {
  if (id.size() != kIdLength) return std::nullopt;
  uint64_t ms = 0;
  for (std::size_t i = 0; i < kIdLength; ++i) {
    int v = crockford_value(id[i]);
    if (v < 0 || (i == 0 && v > 7)) return std::nullopt;
    if (i < 10) ms = (ms << 5) | static_cast<uint64_t>(v);
  }
  return TimePoint(Duration(static_cast<int64_t>(ms)));
}

IdGenerator::IdGenerator(RandomSource random)
    : random_(random ? std::move(random) : RandomSource(kernel_random)) {}

std::string IdGenerator::next(TimePoint now) {
  auto count = now.time_since_epoch().count();
  uint64_t ms = count < 0 ? 0 : std::min(static_cast<uint64_t>(count), kMaxMs);
  if (!started_ || ms > last_ms_) {
    last_ms_ = ms;
    random_(last_random_);
    started_ = true;
  } else if (increment(last_random_)) {
    // 2^80 ids in one millisecond cannot happen by chance; borrow the next one.
    last_ms_ = std::min(last_ms_ + 1, kMaxMs);
  }
  return encode_id(last_ms_, last_random_);
}

std::string new_id(TimePoint now) {
  static std::mutex mutex;
  static IdGenerator generator;
  std::lock_guard lock(mutex);
  return generator.next(now);
}

}  // namespace jobhost::ledger
