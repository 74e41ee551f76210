// One Catch2 main for all test binaries; jobhost_add_test() defines a test.
// Exit code: Catch's own (non-zero when anything failed); otherwise 77 when
// a test case called JOBHOST_SKIP (tests/support/skip.h), else 0.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/skip.h"

int main(int argc, char* argv[]) {
  const int result = Catch::Session().run(argc, argv);
  // Catch returns the number of failed assertions: 77 of them must not read as a skip.
  if (result == jobhost::testing::kSkipExitCode) return result + 1;
  if (result != 0) return result;
  return jobhost::testing::skipped_test_cases() > 0 ? jobhost::testing::kSkipExitCode : 0;
}
