// One job's stats window kept compactly for observe::JobBook: its last
// ledger::kStatsWindow finished, non-skipped runs in the ledger's order
// (started_at, then run_id, descending) and the figures over them, computed
// as Store::job_stats does (count, successes, newest outcome, mean, p50 and
// p95 of the known durations). Pure: no clock, no I/O.
//
// A run takes 40 bytes (RunWindow::kRunBytes): the run ids the engine makes
// (26-character ULIDs, ledger/ids.h) are kept as their 128 bits and ids of
// at most 16 bytes inline. Any other id (never one of the engine's) puts the
// window in a mode where every run's id is also kept as a std::string.
// The runs' array grows by doubling up to kStatsWindow, so a job with few
// runs costs little.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.h"
#include "common/time.h"
#include "ledger/records.h"

namespace jobhost::observe {

// The 16 bytes (big-endian 128 bits) of a canonical run id: 26 characters of
// ledger::kCrockfordAlphabet (upper case), the first at most '7'; nullopt
// for any other text. unpack_run_id(*pack_run_id(id)) == id.
std::optional<std::array<uint8_t, 16>> pack_run_id(std::string_view id);
std::string unpack_run_id(const std::array<uint8_t, 16>& bits);

class RunWindow {
 public:
  // `runs` newest first, as Store::window_runs gives them (at most
  // kStatsWindow of them are kept: the newest).
  explicit RunWindow(std::span<const ledger::WindowRun> runs = {});

  // Adds a finished, non-skipped run at its place. False, changing nothing,
  // when the window is full and the run is older than every run in it.
  bool add(const ledger::WindowRun& run);

  std::size_t size() const { return runs_.size(); }
  bool empty() const { return runs_.empty(); }
  // The i-th newest run (0: the newest), i < size().
  ledger::WindowRun at(std::size_t i) const;
  // The newest `n` runs (or all), newest first.
  std::vector<ledger::WindowRun> newest(std::size_t n) const;
  // When the oldest run started; the window must not be empty.
  TimePoint oldest_started() const;
  // Whether the run with this id is in the window.
  bool contains(std::string_view run_id) const;

  // Figures over the window's runs (the durations: the runs that have one).
  int succeeded() const { return succeeded_; }
  std::optional<Outcome> last_outcome() const;
  std::optional<Duration> mean_duration() const;
  std::optional<Duration> p50_duration() const;
  std::optional<Duration> p95_duration() const;

  // Whether every id is also kept as a string (some id is neither a
  // canonical ULID nor at most 16 bytes).
  bool wide() const { return wide_ != nullptr; }
  // The bytes this window holds: itself and what it allocated (capacities;
  // the allocator's own overhead not counted).
  std::size_t memory_bytes() const;

  static constexpr std::size_t kInlineId = 16;

 private:
  enum class IdKind : uint8_t { ulid, short_text, wide };
  struct Run {
    int64_t started_ms = 0;
    int64_t duration_ms = 0;       // when has_duration
    std::array<uint8_t, 16> id{};  // ulid: its bits; short_text: its bytes
    uint8_t outcome = 0;
    IdKind id_kind = IdKind::ulid;
    uint8_t id_size = 0;  // short_text: its length
    bool has_duration = false;
  };

 public:
  static constexpr std::size_t kRunBytes = sizeof(Run);

 private:
  static Run pack(const ledger::WindowRun& run);
  std::string id_of(std::size_t stored) const;  // by storage index (oldest first)
  // Whether stored run a sorts after (is newer than) `run`.
  bool newer(std::size_t stored, const Run& run, std::string_view run_id) const;
  void go_wide();
  void refigure();

  std::vector<Run> runs_;                           // oldest first: the newest is at the back
  std::unique_ptr<std::vector<std::string>> wide_;  // every id, beside runs_ (wide mode)
  int64_t mean_ms_ = 0, p50_ms_ = 0, p95_ms_ = 0;   // when has_durations_
  int succeeded_ = 0;
  bool has_durations_ = false;
};

}  // namespace jobhost::observe
