// JOBHOST_SKIP: a test case that cannot run on this machine says so.
//
// Catch2 v2 has no skip. JOBHOST_SKIP("reason" << more) prints the reason,
// records the skip and returns from the test case; the custom main
// (tests/catch_main.cpp) then exits with kSkipExitCode when something skipped
// and nothing failed, and CTest (SKIP_RETURN_CODE) reports the entry as
// skipped, never as passed. Tag such a test case with what it needs
// ([needs-root], [needs-cgroup], ...): jobhost_add_test(... SKIPPABLE ...) gives
// those cases ctest entries of their own, so a skip never hides the passes of
// the other cases in the binary.
#pragma once

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

namespace jobhost::testing {

inline constexpr int kSkipExitCode = 77;

inline int& skipped_test_cases() {
  static int count = 0;
  return count;
}

inline void record_skip(const std::string& reason) {
  ++skipped_test_cases();
  // To stdout whatever the reporter is, so the ctest log says why.
  Catch::cout() << "SKIPPED: " << Catch::getResultCapture().getCurrentTestName() << ": " << reason
                << '\n';
}

}  // namespace jobhost::testing

#define JOBHOST_SKIP(reason)                                     \
  do {                                                           \
    std::ostringstream jobhost_skip_reason_;                     \
    jobhost_skip_reason_ << reason;                              \
    ::jobhost::testing::record_skip(jobhost_skip_reason_.str()); \
    WARN("SKIPPED: " << jobhost_skip_reason_.str());             \
    return;                                                      \
  } while (false)
