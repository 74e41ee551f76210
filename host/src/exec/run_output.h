// What the host keeps of a run's output: a bounded tail of stdout+stderr and
// log lines, the output split into lines for the log, and a rate limit so a
// chatty job cannot flood the host's log. Pure: time is an argument.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace jobhost::exec {

// Keeps the last `capacity` bytes of everything appended, in O(1) amortized
// per byte and at most 2 x capacity of memory, however much is appended.
class TailBuffer {
 public:
  explicit TailBuffer(std::size_t capacity) : capacity_(capacity) {}

  // Appends raw bytes (stdout/stderr as read).
  void append(std::string_view bytes);
  // Appends one line, starting it on a new line if the tail ends mid-line.
  void append_line(std::string_view line);

  // The kept tail, at most `capacity` bytes. When older bytes were dropped it
  // starts at a line boundary (or, for very long lines, at a UTF-8 character
  // boundary) so it never begins with half a line or half a character.
  std::string tail() const;
  // Bytes appended in total, kept or not.
  uint64_t total_bytes() const { return total_; }

 private:
  std::size_t capacity_;
  std::string buffer_;
  bool buffer_starts_line_ = true;  // the byte before buffer_ (if any) was '\n'
  uint64_t total_ = 0;
};

// Splits a byte stream into lines ("\n" or "\r\n"). A line longer than
// `max_line` is cut: its first `max_line` bytes are emitted and the rest is
// counted in `dropped`.
class LineSplitter {
 public:
  using Sink = std::function<void(std::string_view line, std::size_t dropped)>;
  explicit LineSplitter(std::size_t max_line) : max_line_(max_line) {}

  // Emits every line completed by `bytes`.
  void feed(std::string_view bytes, const Sink& sink);
  // Emits the last, unterminated line if there is one.
  void finish(const Sink& sink);

 private:
  std::size_t max_line_;
  std::string pending_;
  std::size_t dropped_ = 0;
};

// Token bucket: lets `burst` lines through at once and `per_second` after
// that; counts what it holds back so the host can say how much it dropped.
class LineRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  LineRateLimiter(double per_second, double burst)
      : per_second_(per_second), burst_(burst), tokens_(burst) {}

  // True when the line may be logged at `now`; false counts it as suppressed.
  bool admit(Clock::time_point now);
  // Lines suppressed since the last call; resets the count.
  uint64_t take_suppressed();

 private:
  double per_second_;
  double burst_;
  double tokens_;
  std::optional<Clock::time_point> last_;
  uint64_t suppressed_ = 0;
};

}  // namespace jobhost::exec
