// The outcome names (a contract) and which outcomes count as a failure.
#include "common/outcome.h"

#include <catch2/catch.hpp>

namespace jobhost {
namespace {

struct Row {
  Outcome outcome;
  std::string_view name;
  bool failure;
};

// Every outcome once: a new one must be added here, with a decision.
constexpr Row kRows[] = {
    {Outcome::succeeded, "succeeded", false},
    {Outcome::failed, "failed", true},
    {Outcome::timed_out, "timed_out", true},
    {Outcome::stalled, "stalled", true},
    {Outcome::crashed, "crashed", true},
    {Outcome::limit_exceeded, "limit_exceeded", true},
    {Outcome::interrupted, "interrupted", false},
    {Outcome::skipped, "skipped", false},
    {Outcome::replaced, "replaced", false},
    {Outcome::cancelled, "cancelled", false},
};
static_assert(std::size(kRows) == kOutcomeNames.size());

TEST_CASE("outcomes: names round-trip and failures are the five that are the job's",
          "[outcome]") {
  for (const Row& row : kRows) {
    INFO(row.name);
    CHECK(to_string(row.outcome) == row.name);
    CHECK(outcome_from_string(row.name) == row.outcome);
    CHECK(counts_as_failure(row.outcome) == row.failure);
  }
  CHECK_FALSE(outcome_from_string("success").has_value());
}

}  // namespace
}  // namespace jobhost
