#include "exec/control_record.h"

#include <fmt/format.h>

#include <cstring>

namespace jobhost::exec {
namespace {

std::string header_bytes(RecordType type, uint8_t arg, std::size_t length) {
  RecordHeader h{static_cast<uint32_t>(length), static_cast<uint8_t>(type), arg, 0};
  return std::string(reinterpret_cast<const char*>(&h), sizeof h);
}

// The smallest payload each type must carry.
std::size_t min_payload(RecordType type) {
  switch (type) {
    case RecordType::heartbeat:
    case RecordType::metric:
      return sizeof(double);
    case RecordType::result:
    case RecordType::setup_error:
    case RecordType::blocked_syscall:
      return sizeof(int32_t);
    default:
      return 0;
  }
}

bool known_type(uint8_t t) {
  return t >= static_cast<uint8_t>(RecordType::log) &&
         t <= static_cast<uint8_t>(RecordType::blocked_syscall);
}

}  // namespace

std::string encode_record(RecordType type, uint8_t arg, std::string_view text) {
  text = text.substr(0, kMaxPayload);
  return header_bytes(type, arg, text.size()) + std::string(text);
}

std::string encode_number_record(RecordType type, double value, std::string_view text) {
  text = text.substr(0, kMaxPayload - sizeof value);
  std::string out = header_bytes(type, 0, sizeof value + text.size());
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
  out.append(text);
  return out;
}

std::string encode_code_record(RecordType type, int32_t code, std::string_view text) {
  text = text.substr(0, kMaxPayload - sizeof code);
  std::string out = header_bytes(type, 0, sizeof code + text.size());
  out.append(reinterpret_cast<const char*>(&code), sizeof code);
  out.append(text);
  return out;
}

std::vector<Record> RecordDecoder::feed(std::string_view bytes) {
  std::vector<Record> out;
  if (error_) return out;
  buffer_.append(bytes);
  std::size_t pos = 0;
  while (buffer_.size() - pos >= kRecordHeaderSize) {
    RecordHeader h;
    std::memcpy(&h, buffer_.data() + pos, sizeof h);
    if (!known_type(h.type)) {
      error_ = fmt::format("unknown record type {}", h.type);
      break;
    }
    const auto type = static_cast<RecordType>(h.type);
    if (h.length > kMaxPayload || h.length < min_payload(type)) {
      error_ = fmt::format("record of type {} has a bad length {}", h.type, h.length);
      break;
    }
    if (buffer_.size() - pos - kRecordHeaderSize < h.length) break;  // incomplete
    const char* p = buffer_.data() + pos + kRecordHeaderSize;
    Record r{type, h.arg, 0, 0, {}};
    std::size_t skip = 0;
    if (min_payload(type) == sizeof(double)) {
      std::memcpy(&r.number, p, sizeof(double));
      skip = sizeof(double);
    } else if (min_payload(type) == sizeof(int32_t)) {
      std::memcpy(&r.code, p, sizeof(int32_t));
      skip = sizeof(int32_t);
    }
    r.text.assign(p + skip, h.length - skip);
    out.push_back(std::move(r));
    pos += kRecordHeaderSize + h.length;
  }
  if (error_) {
    buffer_.clear();
  } else {
    buffer_.erase(0, pos);
  }
  return out;
}

}  // namespace jobhost::exec
