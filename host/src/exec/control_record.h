// The records a run's child sends to the host on its control channel: log
// lines, heartbeats, metrics, the message, limits hit, setup errors and the
// final result. Each record is a fixed 8-byte header (payload length, type,
// argument) followed by the payload. Both ends are this build of jobhost, so
// the layout is native-endian; a record that does not fit kMaxPayload is a
// protocol error (the child truncates text before sending).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jobhost::exec {

enum class RecordType : uint8_t {
  log = 1,          // arg = level (jobhost_log_level); payload = text
  heartbeat = 2,    // payload = double progress (< 0: unknown)
  metric = 3,       // payload = double value, then the name
  message = 4,      // payload = text (set_message)
  result = 5,       // payload = int32 code returned by run (or init)
  limit = 6,        // payload = which limit ("memory")
  setup_error = 7,  // payload = int32 errno, then what failed
  // sandbox: a call the syscall filter blocked; payload = int32 number, uint32 audit arch
  blocked_syscall = 8,
};

inline constexpr std::size_t kRecordHeaderSize = 8;
inline constexpr std::size_t kMaxPayload = 16 * 1024;

struct RecordHeader {
  uint32_t length;  // payload bytes
  uint8_t type;     // RecordType
  uint8_t arg;
  uint16_t reserved;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderSize);

// A decoded record. `number` holds the double of heartbeat/metric and the
// int32 of result/setup_error; `text` the rest of the payload.
struct Record {
  RecordType type;
  uint8_t arg = 0;
  double number = 0;
  int32_t code = 0;
  std::string text;
};

// Encodes one record (for tests and the child; the child uses writev with the
// same layout to avoid allocating). Text longer than fits is truncated.
std::string encode_record(RecordType type, uint8_t arg, std::string_view text);
std::string encode_number_record(RecordType type, double value, std::string_view text);
std::string encode_code_record(RecordType type, int32_t code, std::string_view text);

// Incremental decoder of the host side: feed() bytes as they arrive, in any
// split; complete records come out in order. After a protocol error (unknown
// type, oversized length, short payload) it stops decoding and error() says
// why; the host then ignores the rest of the channel.
class RecordDecoder {
 public:
  // Appends `bytes` and returns the records completed by them.
  std::vector<Record> feed(std::string_view bytes);
  // Why decoding stopped, if it did.
  const std::optional<std::string>& error() const { return error_; }
  // Bytes of an incomplete record left over (non-zero at EOF: the child died mid-write).
  std::size_t pending() const { return buffer_.size(); }

 private:
  std::string buffer_;
  std::optional<std::string> error_;
};

}  // namespace jobhost::exec
