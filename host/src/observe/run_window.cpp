#include "observe/run_window.h"

#include <algorithm>

#include "ledger/ids.h"

namespace jobhost::observe {
namespace {

__extension__ typedef unsigned __int128 Bits128;

constexpr std::size_t kWindow = static_cast<std::size_t>(ledger::kStatsWindow);

// The value of a character of the alphabet (upper case only), or -1.
int digit_of(char c) {
  const auto at = ledger::kCrockfordAlphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

}  // namespace

std::optional<std::array<uint8_t, 16>> pack_run_id(std::string_view id) {
  if (id.size() != ledger::kIdLength) return std::nullopt;
  Bits128 bits = 0;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const int d = digit_of(id[i]);
    if (d < 0 || (i == 0 && d > 7)) return std::nullopt;  // 26 x 5 bits: the first has 3
    bits = (bits << 5) | static_cast<Bits128>(d);
  }
  std::array<uint8_t, 16> out{};
  for (std::size_t i = 16; i-- > 0;) {
    out[i] = static_cast<uint8_t>(bits & 0xFF);
    bits >>= 8;
  }
  return out;
}

std::string unpack_run_id(const std::array<uint8_t, 16>& packed) {
  Bits128 bits = 0;
  for (uint8_t b : packed) bits = (bits << 8) | b;
  std::string out(ledger::kIdLength, '0');
  for (std::size_t i = out.size(); i-- > 0;) {
    out[i] = ledger::kCrockfordAlphabet[static_cast<std::size_t>(bits & 31)];
    bits >>= 5;
  }
  return out;
}

RunWindow::RunWindow(std::span<const ledger::WindowRun> runs) {
  const std::size_t n = std::min(runs.size(), kWindow);
  runs_.reserve(n);
  // Stored oldest first; `runs` is newest first and may hold more than the window.
  for (std::size_t i = n; i-- > 0;) {
    const Run run = pack(runs[i]);
    if (run.id_kind == IdKind::wide && !wide_) go_wide();
    runs_.push_back(run);
    if (wide_) wide_->push_back(runs[i].run_id);
  }
  refigure();
}

RunWindow::Run RunWindow::pack(const ledger::WindowRun& run) {
  Run out;
  out.started_ms = run.started_at.time_since_epoch().count();
  out.has_duration = run.duration.has_value();
  out.duration_ms = run.duration ? run.duration->count() : 0;
  out.outcome = static_cast<uint8_t>(run.outcome);
  if (auto bits = pack_run_id(run.run_id)) {
    out.id_kind = IdKind::ulid;
    out.id = *bits;
  } else if (run.run_id.size() <= kInlineId) {
    out.id_kind = IdKind::short_text;
    out.id_size = static_cast<uint8_t>(run.run_id.size());
    std::copy(run.run_id.begin(), run.run_id.end(), out.id.begin());
  } else {
    out.id_kind = IdKind::wide;  // the id is kept in wide_
  }
  return out;
}

std::string RunWindow::id_of(std::size_t stored) const {
  if (wide_) return (*wide_)[stored];
  const Run& r = runs_[stored];
  if (r.id_kind == IdKind::ulid) return unpack_run_id(r.id);
  return std::string(reinterpret_cast<const char*>(r.id.data()), r.id_size);
}

bool RunWindow::newer(std::size_t stored, const Run& run, std::string_view run_id) const {
  const Run& r = runs_[stored];
  if (r.started_ms != run.started_ms) return r.started_ms > run.started_ms;
  return id_of(stored) > run_id;
}

void RunWindow::go_wide() {
  auto ids = std::make_unique<std::vector<std::string>>();
  ids->reserve(runs_.capacity());
  for (std::size_t i = 0; i < runs_.size(); ++i) ids->push_back(id_of(i));
  wide_ = std::move(ids);
}

bool RunWindow::add(const ledger::WindowRun& run) {
  const Run packed = pack(run);
  // Runs mostly end in the order they started: look from the newest end.
  std::size_t at = runs_.size();
  while (at > 0 && newer(at - 1, packed, run.run_id)) --at;
  if (runs_.size() >= kWindow) {
    if (at == 0) return false;  // older than the whole window
    // The oldest leaves first, so that the array never grows past the window.
    runs_.erase(runs_.begin());
    if (wide_) wide_->erase(wide_->begin());
    --at;
  }
  if (packed.id_kind == IdKind::wide && !wide_) go_wide();
  if (runs_.size() == runs_.capacity()) {
    runs_.reserve(std::min(kWindow, std::max<std::size_t>(4, runs_.capacity() * 2)));
  }
  runs_.insert(runs_.begin() + static_cast<std::ptrdiff_t>(at), packed);
  if (wide_) wide_->insert(wide_->begin() + static_cast<std::ptrdiff_t>(at), run.run_id);
  refigure();
  return true;
}

ledger::WindowRun RunWindow::at(std::size_t i) const {
  const std::size_t stored = runs_.size() - 1 - i;
  const Run& r = runs_[stored];
  ledger::WindowRun out;
  out.run_id = id_of(stored);
  out.started_at = TimePoint(Duration(r.started_ms));
  out.outcome = static_cast<Outcome>(r.outcome);
  if (r.has_duration) out.duration = Duration(r.duration_ms);
  return out;
}

std::vector<ledger::WindowRun> RunWindow::newest(std::size_t n) const {
  std::vector<ledger::WindowRun> out;
  n = std::min(n, runs_.size());
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(at(i));
  return out;
}

TimePoint RunWindow::oldest_started() const {
  return TimePoint(Duration(runs_.front().started_ms));
}

bool RunWindow::contains(std::string_view run_id) const {
  for (std::size_t i = 0; i < runs_.size(); ++i) {
    if (id_of(i) == run_id) return true;
  }
  return false;
}

std::optional<Outcome> RunWindow::last_outcome() const {
  if (runs_.empty()) return std::nullopt;
  return static_cast<Outcome>(runs_.back().outcome);
}

std::optional<Duration> RunWindow::mean_duration() const {
  return has_durations_ ? std::optional(Duration(mean_ms_)) : std::nullopt;
}
std::optional<Duration> RunWindow::p50_duration() const {
  return has_durations_ ? std::optional(Duration(p50_ms_)) : std::nullopt;
}
std::optional<Duration> RunWindow::p95_duration() const {
  return has_durations_ ? std::optional(Duration(p95_ms_)) : std::nullopt;
}

std::size_t RunWindow::memory_bytes() const {
  std::size_t bytes = sizeof(RunWindow) + runs_.capacity() * sizeof(Run);
  if (wide_) {
    bytes += sizeof(*wide_) + wide_->capacity() * sizeof(std::string);
    for (const auto& id : *wide_) {
      if (id.capacity() > std::string().capacity()) bytes += id.capacity() + 1;
    }
  }
  return bytes;
}

void RunWindow::refigure() {
  succeeded_ = 0;
  int64_t total_ms = 0;
  std::vector<Duration> durations;
  durations.reserve(runs_.size());
  for (const Run& r : runs_) {
    if (static_cast<Outcome>(r.outcome) == Outcome::succeeded) ++succeeded_;
    if (r.has_duration) {
      total_ms += r.duration_ms;
      durations.push_back(Duration(r.duration_ms));
    }
  }
  has_durations_ = !durations.empty();
  if (!has_durations_) return;
  mean_ms_ = total_ms / static_cast<int64_t>(durations.size());
  std::sort(durations.begin(), durations.end());
  p50_ms_ = ledger::percentile(durations, 50).count();
  p95_ms_ = ledger::percentile(durations, 95).count();
}

}  // namespace jobhost::observe
