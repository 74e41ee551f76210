// The alert state machine, pure: what a fire's last outcome or the passing
// of time does to a job's alerts, and which notices that sends. No clock, no
// I/O; observe/alerts.h wires it to the engine, the ledger and the notifiers.
//
// Two kinds of alert per job:
//   failing  (alert_after = N): the N-th consecutive failed fire alerts once;
//            the first succeeded fire afterwards recovers it.
//   silent   (expect_success_within = D): no succeeded run for D since the
//            window start (the last success, or when the job was first seen)
//            alerts once; the next success recovers it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.h"
#include "common/time.h"

namespace jobhost::observe {

enum class AlertKind { failing, silent };
std::string_view to_string(AlertKind kind);  // "failing", "silent"

// What a fire's last outcome means for alerts. failed, timed_out, stalled,
// crashed and limit_exceeded are failed fires. succeeded is a success.
// Everything else is neutral (neither counts nor resets): interrupted (the
// host went away, not the job), replaced (a newer fire took over), skipped
// (not run), and any outcome this build does not know (e.g. an operator's
// cancel); a job that stays neutral for too long is what `silent` catches.
enum class FireResult { success, failure, neutral };
FireResult classify_fire(Outcome outcome);

// The settings of one job that decide its alerts (config::JobConfig's).
struct AlertSettings {
  int alert_after = 0;                // 0 = off
  Duration expect_success_within{0};  // 0 = off
};

// One (job, kind): whether it is firing and the counters it is decided by.
struct KindState {
  bool firing = false;
  std::optional<TimePoint> since;  // when it began firing
  std::optional<TimePoint> notified_at;
  int failed_fires = 0;                   // failing: consecutive failed fires
  std::optional<TimePoint> window_start;  // silent: last success or first seen
};

struct JobAlertState {
  KindState failing;
  KindState silent;
};

// A notice to send: an alert (recovered = false) or a recovery.
struct Notice {
  AlertKind kind = AlertKind::failing;
  bool recovered = false;
  std::string message;
};

// The last attempt of a fire of `job` ended with `outcome` (message: the
// run's). Updates `state` and returns the notices to send, at most one per kind.
std::vector<Notice> on_fire_end(std::string_view job, JobAlertState& state,
                                const AlertSettings& settings, Outcome outcome,
                                std::string_view message, TimePoint now);

// The silence check, at start and from the timer: alerts once when the
// window has passed with no success. window_start must be set (the caller
// sets it when it first sees the job).
std::optional<Notice> check_silence(std::string_view job, JobAlertState& state,
                                    const AlertSettings& settings, TimePoint now);

// When check_silence would next alert for this job, or nullopt (off, firing,
// or no window yet).
std::optional<TimePoint> silence_deadline(const JobAlertState& state,
                                          const AlertSettings& settings);

}  // namespace jobhost::observe
