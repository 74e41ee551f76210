#include "ledger/ids.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <vector>

using namespace jobhost;
using namespace jobhost::ledger;

namespace {

using Bytes = std::array<uint8_t, kIdRandomBytes>;

TimePoint at_ms(int64_t ms) {
  return TimePoint(Duration(ms));
}

// A random source that hands out the given bytes, then zeros.
IdGenerator::RandomSource fixed(Bytes bytes) {
  return [bytes](std::span<uint8_t> out) { std::copy(bytes.begin(), bytes.end(), out.begin()); };
}

}  // namespace

TEST_CASE("encode_id matches the ULID layout", "[ledger][ids]") {
  struct Case {
    uint64_t ms;
    Bytes random;
    const char* expected;
  };
  // Expected values computed independently (Python, 128-bit integer in base32);
  // the first one is the ULID reference's encodeTime(1469918176385).
  const std::vector<Case> cases = {
      {1469918176385, Bytes{}, "01ARYZ6S410000000000000000"},
      {0, Bytes{}, "00000000000000000000000000"},
      {(uint64_t{1} << 48) - 1, Bytes{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
       "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"},
      {1, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "00000000010000000000000001"},
      {1764403200123, Bytes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "01KB7A0G3V041061050R3GG28A"},
      {1764403200123, Bytes{0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55},
       "01KB7A0G3VVTPVXVR024H36H2N"},
  };
  for (const auto& c : cases) {
    INFO("ms " << c.ms);
    auto id = encode_id(c.ms, c.random);
    CHECK(id == c.expected);
    REQUIRE(id_time(id).has_value());
    CHECK(id_time(id)->time_since_epoch().count() == static_cast<int64_t>(c.ms));
  }
}

TEST_CASE("id_time rejects what is not an id", "[ledger][ids]") {
  CHECK_FALSE(id_time(""));
  CHECK_FALSE(id_time("01ARYZ6S41000000000000000"));    // 25 chars
  CHECK_FALSE(id_time("01ARYZ6S4100000000000000000"));  // 27 chars
  CHECK_FALSE(id_time("01ARYZ6S41000000000000000U"));   // U is not Crockford
  CHECK_FALSE(id_time("81ARYZ6S410000000000000000"));   // would overflow 128 bits
  CHECK(id_time("01aryz6s410000000000000000")->time_since_epoch().count() == 1469918176385);
}

TEST_CASE("IdGenerator is monotonic within a millisecond and across clock steps", "[ledger][ids]") {
  IdGenerator gen(fixed(Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe}));
  auto a = gen.next(at_ms(1000));
  auto b = gen.next(at_ms(1000));
  auto c = gen.next(at_ms(1000));
  CHECK(a == encode_id(1000, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe}));
  CHECK(b == encode_id(1000, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff}));
  CHECK(c == encode_id(1000, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 1, 0}));  // carry across bytes
  // A backward clock step keeps the last timestamp and still increases.
  auto d = gen.next(at_ms(500));
  CHECK(d > c);
  CHECK(id_time(d)->time_since_epoch().count() == 1000);
  // A later millisecond draws fresh random bits.
  auto e = gen.next(at_ms(1001));
  CHECK(e == encode_id(1001, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe}));
}

TEST_CASE("IdGenerator carries an exhausted random part into the timestamp", "[ledger][ids]") {
  const Bytes all_ones{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  IdGenerator gen(fixed(all_ones));
  auto a = gen.next(at_ms(7));
  auto b = gen.next(at_ms(7));
  CHECK(a == encode_id(7, all_ones));
  CHECK(b == encode_id(8, Bytes{}));
  CHECK(b > a);
}

TEST_CASE("new_id: unique, sortable by time, increasing within one millisecond", "[ledger][ids]") {
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(new_id(at_ms(1764403200000 + i / 1000)));
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
  for (const auto& id : ids) {
    REQUIRE(id.size() == kIdLength);
    REQUIRE(id.find_first_not_of(kCrockfordAlphabet) == std::string::npos);
  }
  // Far later ids sort after, whatever their random bits.
  CHECK(new_id(at_ms(1864403200000)) > ids.back());
}
