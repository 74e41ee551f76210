// The pure pieces under the executor: control records, the output tail, line
// splitting and the log rate limit.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "exec/control_record.h"
#include "exec/run_output.h"

using namespace jobhost::exec;

TEST_CASE("control records decode whatever way the bytes are split") {
  const std::string stream = encode_record(RecordType::log, 2, "hello") +
                             encode_number_record(RecordType::heartbeat, 0.5, "") +
                             encode_number_record(RecordType::metric, 42.0, "rows") +
                             encode_record(RecordType::message, 0, "") +
                             encode_code_record(RecordType::result, 1, "") +
                             encode_code_record(RecordType::setup_error, 13, "open(x)");
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    INFO("split at " << split);
    RecordDecoder d;
    auto records = d.feed(std::string_view(stream).substr(0, split));
    for (auto& r : d.feed(std::string_view(stream).substr(split))) records.push_back(r);
    REQUIRE(records.size() == 6);
    CHECK(d.pending() == 0);
    CHECK(records[0].type == RecordType::log);
    CHECK(records[0].arg == 2);
    CHECK(records[0].text == "hello");
    CHECK(records[1].number == 0.5);
    CHECK(records[2].number == 42.0);
    CHECK(records[2].text == "rows");
    CHECK(records[3].text.empty());
    CHECK(records[4].code == 1);
    CHECK(records[5].code == 13);
    CHECK(records[5].text == "open(x)");
    CHECK_FALSE(d.error());
  }
}

TEST_CASE("control records: byte-by-byte feed and leftovers") {
  const std::string one = encode_record(RecordType::log, 1, "abc");
  RecordDecoder d;
  std::size_t got = 0;
  for (char c : one + one.substr(0, 5)) got += d.feed(std::string_view(&c, 1)).size();
  CHECK(got == 1);
  CHECK(d.pending() == 5);  // an incomplete record, as when the child dies mid-write
}

TEST_CASE("control records: text is truncated to the payload cap") {
  const std::string big(kMaxPayload + 100, 'x');
  RecordDecoder d;
  auto r = d.feed(encode_record(RecordType::log, 1, big));
  REQUIRE(r.size() == 1);
  CHECK(r[0].text.size() == kMaxPayload);
}

TEST_CASE("control records: garbage stops decoding with a reason") {
  SECTION("unknown type") {
    RecordDecoder d;
    std::string bad = encode_record(RecordType::log, 1, "x");
    bad[4] = 99;
    CHECK(d.feed(bad).empty());
    REQUIRE(d.error());
    CHECK(d.error()->find("unknown record type") != std::string::npos);
    CHECK(d.feed(encode_record(RecordType::log, 1, "later")).empty());  // stays stopped
  }
  SECTION("oversized length") {
    RecordHeader h{static_cast<uint32_t>(kMaxPayload + 1), 1, 0, 0};
    RecordDecoder d;
    CHECK(d.feed(std::string(reinterpret_cast<const char*>(&h), sizeof h)).empty());
    CHECK(d.error());
  }
  SECTION("a result record too short for its code") {
    RecordHeader h{2, static_cast<uint8_t>(RecordType::result), 0, 0};
    RecordDecoder d;
    CHECK(d.feed(std::string(reinterpret_cast<const char*>(&h), sizeof h) + "ab").empty());
    CHECK(d.error());
  }
}

TEST_CASE("TailBuffer keeps the last bytes, from a line start") {
  SECTION("under capacity: everything") {
    TailBuffer t(100);
    t.append("a\nb\n");
    CHECK(t.tail() == "a\nb\n");
    CHECK(t.total_bytes() == 4);
  }
  SECTION("over capacity: the last lines, never more than capacity") {
    TailBuffer t(20);
    std::string all;
    for (int i = 0; i < 1000; ++i) {
      const std::string line = "line " + std::to_string(i) + "\n";
      t.append(line);
      all += line;
    }
    const std::string tail = t.tail();
    CHECK(tail.size() <= 20);
    CHECK(tail == "line 998\nline 999\n");
    CHECK(t.total_bytes() == all.size());
  }
  SECTION("a cut that falls exactly on a line start keeps that line") {
    TailBuffer t(6);
    t.append("aaaa\nbbbbb\n");
    CHECK(t.tail() == "bbbbb\n");
  }
  SECTION("one huge append") {
    TailBuffer t(8);
    t.append(std::string(1000, 'x') + "\nabc\n");
    CHECK(t.tail() == "abc\n");
  }
  SECTION("a line longer than capacity: raw bytes, from a character boundary") {
    TailBuffer t(5);
    t.append("xxxxxxxxxx\xC3\xA9\xC3\xA9\xC3\xA9");  // é é é at the end
    CHECK(t.tail() == "\xC3\xA9\xC3\xA9");           // the cut fell inside the first é
  }
  SECTION("log lines start on their own line") {
    TailBuffer t(100);
    t.append("partial");
    t.append_line("[info] logged");
    t.append("more\n");
    CHECK(t.tail() == "partial\n[info] logged\nmore\n");
  }
  SECTION("capacity 0 keeps nothing but counts") {
    TailBuffer t(0);
    t.append("abc");
    CHECK(t.tail().empty());
    CHECK(t.total_bytes() == 3);
  }
  SECTION("memory stays bounded whatever is appended") {
    TailBuffer t(1024);
    const std::string chunk(700, 'y');
    for (int i = 0; i < 10000; ++i) t.append(chunk);
    CHECK(t.tail().size() == 1024);
    CHECK(t.total_bytes() == 7'000'000);
  }
}

TEST_CASE("LineSplitter") {
  std::vector<std::pair<std::string, std::size_t>> got;
  auto sink = [&](std::string_view line, std::size_t dropped) {
    got.emplace_back(std::string(line), dropped);
  };
  LineSplitter s(8);
  s.feed("ab", sink);
  s.feed("c\r\nd\n\nlong-line-here\ntail", sink);
  s.finish(sink);
  REQUIRE(got.size() == 5);
  CHECK(got[0] == std::pair<std::string, std::size_t>{"abc", 0});
  CHECK(got[1] == std::pair<std::string, std::size_t>{"d", 0});
  CHECK(got[2] == std::pair<std::string, std::size_t>{"", 0});
  CHECK(got[3] == std::pair<std::string, std::size_t>{"long-lin", 6});
  CHECK(got[4] == std::pair<std::string, std::size_t>{"tail", 0});
}

TEST_CASE("LineRateLimiter: burst, then a steady rate, counting what it drops") {
  using Clock = LineRateLimiter::Clock;
  LineRateLimiter limiter(10, 5);
  const Clock::time_point t0{};
  int admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += limiter.admit(t0);
  CHECK(admitted == 5);
  CHECK(limiter.take_suppressed() == 15);
  CHECK(limiter.take_suppressed() == 0);
  // one second later: 10 more tokens, capped at the burst of 5
  admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += limiter.admit(t0 + std::chrono::seconds(1));
  CHECK(admitted == 5);
  // 100 ms later: one token
  CHECK(limiter.admit(t0 + std::chrono::milliseconds(1100)));
  CHECK_FALSE(limiter.admit(t0 + std::chrono::milliseconds(1100)));
}
