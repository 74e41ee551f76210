#include "engine/wall_timer.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <optional>

using namespace std::chrono_literals;

namespace {
jobhost::TimePoint now_ms() {
  return std::chrono::time_point_cast<jobhost::Duration>(std::chrono::system_clock::now());
}
}  // namespace

TEST_CASE("wall timer fires at its instant, not before", "[wall_timer]") {
  boost::asio::io_context io;
  jobhost::engine::WallTimer timer(io);
  auto target = now_ms() + 150ms;
  std::optional<jobhost::TimePoint> fired;
  timer.wait_until(target, [&](bool clock_changed) {
    CHECK_FALSE(clock_changed);
    fired = now_ms();
  });
  io.run_for(5s);
  REQUIRE(fired);
  CHECK(*fired >= target);
}

TEST_CASE("wall timer: a newer wait replaces the older, cancel stops it", "[wall_timer]") {
  boost::asio::io_context io;
  jobhost::engine::WallTimer timer(io);
  int first = 0, second = 0;
  timer.wait_until(now_ms() + 50ms, [&](bool) { ++first; });
  timer.wait_until(now_ms() + 100ms, [&](bool) { ++second; });
  io.run_for(1s);
  CHECK(first == 0);
  CHECK(second == 1);

  io.restart();
  int third = 0;
  timer.wait_until(now_ms() + 50ms, [&](bool) { ++third; });
  timer.cancel();
  io.run_for(300ms);
  CHECK(third == 0);
}

TEST_CASE("wall timer fires at once for an instant in the past", "[wall_timer]") {
  boost::asio::io_context io;
  jobhost::engine::WallTimer timer(io);
  bool fired = false;
  timer.wait_until(now_ms() - 10s, [&](bool) { fired = true; });
  io.run_for(1s);
  CHECK(fired);
}
