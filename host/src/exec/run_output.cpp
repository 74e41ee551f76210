#include "exec/run_output.h"

#include <algorithm>

namespace jobhost::exec {

void TailBuffer::append(std::string_view bytes) {
  total_ += bytes.size();
  if (capacity_ == 0) return;
  if (bytes.size() >= capacity_) {
    const std::size_t cut = bytes.size() - capacity_;
    buffer_starts_line_ =
        cut > 0 ? bytes[cut - 1] == '\n' : buffer_.empty() || buffer_.back() == '\n';
    buffer_.assign(bytes.substr(cut));
    return;
  }
  buffer_.append(bytes);
  // Trim only when twice the capacity is reached: amortized O(1) per byte.
  if (buffer_.size() >= 2 * capacity_) {
    const std::size_t cut = buffer_.size() - capacity_;
    buffer_starts_line_ = buffer_[cut - 1] == '\n';
    buffer_.erase(0, cut);
  }
}

void TailBuffer::append_line(std::string_view line) {
  if (!buffer_.empty() && buffer_.back() != '\n') append("\n");
  append(line);
  append("\n");
}

std::string TailBuffer::tail() const {
  if (buffer_.size() <= capacity_ && total_ == buffer_.size()) return buffer_;
  std::string_view kept(buffer_);
  if (kept.size() > capacity_) kept.remove_prefix(kept.size() - capacity_);
  // Older bytes were dropped: do not start with a partial line unless that
  // would throw away more than half of what is kept.
  const bool starts_mid_line = kept.size() == buffer_.size()
                                   ? !buffer_starts_line_
                                   : buffer_[buffer_.size() - kept.size() - 1] != '\n';
  if (starts_mid_line) {
    const std::size_t nl = kept.find('\n');
    if (nl != std::string_view::npos && nl + 1 <= kept.size() / 2) {
      kept.remove_prefix(nl + 1);
    } else {
      while (!kept.empty() && (static_cast<unsigned char>(kept.front()) & 0xC0) == 0x80) {
        kept.remove_prefix(1);
      }
    }
  }
  return std::string(kept);
}

void LineSplitter::feed(std::string_view bytes, const Sink& sink) {
  while (!bytes.empty()) {
    const std::size_t nl = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, nl);
    const std::size_t room = max_line_ > pending_.size() ? max_line_ - pending_.size() : 0;
    pending_.append(piece.substr(0, room));
    dropped_ += piece.size() - std::min(piece.size(), room);
    if (nl == std::string_view::npos) return;
    if (!pending_.empty() && pending_.back() == '\r' && dropped_ == 0) pending_.pop_back();
    sink(pending_, dropped_);
    pending_.clear();
    dropped_ = 0;
    bytes.remove_prefix(nl + 1);
  }
}

void LineSplitter::finish(const Sink& sink) {
  if (pending_.empty() && dropped_ == 0) return;
  sink(pending_, dropped_);
  pending_.clear();
  dropped_ = 0;
}

bool LineRateLimiter::admit(Clock::time_point now) {
  if (last_) {
    const double elapsed = std::chrono::duration<double>(now - *last_).count();
    if (elapsed > 0) tokens_ = std::min(burst_, tokens_ + elapsed * per_second_);
  }
  last_ = now;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  ++suppressed_;
  return false;
}

uint64_t LineRateLimiter::take_suppressed() {
  const uint64_t n = suppressed_;
  suppressed_ = 0;
  return n;
}

}  // namespace jobhost::exec
