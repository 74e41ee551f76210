// Test cases for tests/support/check-skip-code.sh, which runs them by tag and
// checks the exit code of the custom main. Hidden ([.]): never run by default.
#include <catch2/catch.hpp>

#include "support/skip.h"

TEST_CASE("passes", "[.pass]") {
  CHECK(1 + 1 == 2);
}

TEST_CASE("skips", "[.skip]") {
  JOBHOST_SKIP("demonstration");
  FAIL("JOBHOST_SKIP did not return");
}

TEST_CASE("fails", "[.fail]") {
  CHECK(1 + 1 == 3);
}

TEST_CASE("fails 77 times", "[.fail77]") {
  for (int i = 0; i < 77; ++i) CHECK(i < 0);
}
