// How a run ended. The names are a contract: they appear in the ledger, in
// `history --json` and in metrics. See docs/running.md for what each means.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace jobhost {

enum class Outcome {
  succeeded,       // run returned JOBHOST_OK
  failed,          // returned FAIL or RETRY, threw, or exited non-zero
  timed_out,       // killed after the wall-clock timeout
  stalled,         // killed: no heartbeat within stall_timeout
  crashed,         // died of a signal it raised (SIGSEGV, SIGABRT, ...)
  limit_exceeded,  // hit a resource limit (memory, cpu, files, processes, file size)
  interrupted,     // the host went away or shut down mid-run
  skipped,         // not run: concurrency or misfire policy
  replaced,        // stopped for a newer fire under concurrency = "replace"
  cancelled,       // stopped by an operator (`jobhost cancel`, POST runs/{id}/cancel)
};

inline constexpr std::array<std::string_view, 10> kOutcomeNames = {
    "succeeded",      "failed",      "timed_out", "stalled",  "crashed",
    "limit_exceeded", "interrupted", "skipped",   "replaced", "cancelled"};

inline constexpr std::string_view to_string(Outcome o) {
  return kOutcomeNames[static_cast<std::size_t>(o)];
}

// The outcomes that count as a failure: they add to a job's consecutive
// failures in the ledger (succeeded resets them, the others leave them), fail
// a fire for alert_after, and count as failed in metrics and the API.
inline constexpr bool counts_as_failure(Outcome o) {
  switch (o) {
    case Outcome::failed:
    case Outcome::timed_out:
    case Outcome::stalled:
    case Outcome::crashed:
    case Outcome::limit_exceeded:
      return true;
    default:
      return false;
  }
}

inline constexpr std::optional<Outcome> outcome_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == s) return static_cast<Outcome>(i);
  }
  return std::nullopt;
}

}  // namespace jobhost
