#include "observe/alert_rules.h"

#include <fmt/format.h>

#include "ledger/records.h"

namespace jobhost::observe {
namespace {

// A plugin's message is quoted in notices; keep them short.
constexpr std::size_t kMaxQuoted = 512;

std::string quoted(std::string_view message) {
  if (message.size() <= kMaxQuoted) return std::string(message);
  return std::string(message.substr(0, kMaxQuoted)) + "...";
}

std::string utc(TimePoint t) {
  return ledger::format_utc(t);
}

std::string span(Duration d) {
  using namespace std::chrono;
  const auto s = duration_cast<seconds>(d).count();
  if (s % 86400 == 0 && s > 0) return fmt::format("{}d", s / 86400);
  if (s % 3600 == 0 && s > 0) return fmt::format("{}h", s / 3600);
  if (s % 60 == 0 && s > 0) return fmt::format("{}m", s / 60);
  if (s > 0) return fmt::format("{}s", s);
  return fmt::format("{}ms", d.count());
}

}  // namespace

std::string_view to_string(AlertKind kind) {
  return kind == AlertKind::failing ? "failing" : "silent";
}

FireResult classify_fire(Outcome outcome) {
  if (outcome == Outcome::succeeded) return FireResult::success;
  return counts_as_failure(outcome) ? FireResult::failure : FireResult::neutral;
}

std::vector<Notice> on_fire_end(std::string_view job, JobAlertState& state,
                                const AlertSettings& settings, Outcome outcome,
                                std::string_view message, TimePoint now) {
  std::vector<Notice> notices;
  const FireResult result = classify_fire(outcome);
  KindState& failing = state.failing;
  if (settings.alert_after <= 0) {
    failing.failed_fires = 0;
  } else if (result == FireResult::failure) {
    ++failing.failed_fires;
    if (!failing.firing && failing.failed_fires >= settings.alert_after) {
      failing.firing = true;
      failing.since = now;
      failing.notified_at = now;
      notices.push_back(Notice{
          AlertKind::failing, false,
          fmt::format("job {} failed {} in a row: last outcome {}: {}", job,
                      failing.failed_fires == 1 ? std::string("once")
                                                : fmt::format("{} times", failing.failed_fires),
                      to_string(outcome),
                      message.empty() ? std::string("(no message)") : quoted(message))});
    }
  } else if (result == FireResult::success) {
    const int failed = failing.failed_fires;
    failing.failed_fires = 0;
    if (failing.firing) {
      notices.push_back(
          Notice{AlertKind::failing, true,
                 fmt::format("job {} succeeded again after {} failed fire(s) in a "
                             "row (failing since {})",
                             job, failed, failing.since ? utc(*failing.since) : "?")});
      failing.firing = false;
      failing.since.reset();
      failing.notified_at = now;
    }
  }

  KindState& silent = state.silent;
  if (result == FireResult::success) {
    silent.window_start = now;
    if (silent.firing && settings.expect_success_within.count() > 0) {
      notices.push_back(Notice{AlertKind::silent, true,
                               fmt::format("job {} succeeded again (no success since {})", job,
                                           silent.since ? utc(*silent.since) : "?")});
      silent.notified_at = now;
    }
    silent.firing = false;
    silent.since.reset();
  }
  return notices;
}

std::optional<TimePoint> silence_deadline(const JobAlertState& state,
                                          const AlertSettings& settings) {
  if (settings.expect_success_within.count() <= 0 || state.silent.firing ||
      !state.silent.window_start) {
    return std::nullopt;
  }
  return *state.silent.window_start + settings.expect_success_within;
}

std::optional<Notice> check_silence(std::string_view job, JobAlertState& state,
                                    const AlertSettings& settings, TimePoint now) {
  const auto deadline = silence_deadline(state, settings);
  if (!deadline || now < *deadline) return std::nullopt;
  KindState& silent = state.silent;
  silent.firing = true;
  silent.since = *silent.window_start;
  silent.notified_at = now;
  return Notice{AlertKind::silent, false,
                fmt::format("job {} has not succeeded for {} (expect_success_within = {}): "
                            "no success since {}",
                            job, span(now - *silent.window_start),
                            span(settings.expect_success_within), utc(*silent.window_start))};
}

}  // namespace jobhost::observe
