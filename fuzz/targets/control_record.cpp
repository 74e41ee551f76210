// Fuzz target: the records a run's child writes on its control socket
// (exec/control_record.h). A plugin runs in that child, so these bytes are
// hostile. The input is decoded in one piece and again split at every
// 7th byte (as reads may cut it): both give the same records and the same
// error, and nothing is decoded past an error.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "exec/control_record.h"

using namespace jobhost;

namespace {

bool same(const exec::Record& a, const exec::Record& b) {
  // Compare numbers by their bytes: a NaN is a NaN both times.
  return a.type == b.type && a.arg == b.arg && a.code == b.code && a.text == b.text &&
         std::memcmp(&a.number, &b.number, sizeof a.number) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  exec::RecordDecoder whole;
  const std::vector<exec::Record> records = whole.feed(bytes);
  for (const auto& record : records) {
    if (record.text.size() > exec::kMaxPayload) std::abort();
  }

  exec::RecordDecoder split;
  std::vector<exec::Record> pieces;
  for (std::size_t i = 0; i < bytes.size(); i += 7) {
    for (auto& record : split.feed(bytes.substr(i, 7))) pieces.push_back(std::move(record));
  }
  if (pieces.size() != records.size() || whole.error() != split.error()) std::abort();
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (!same(records[i], pieces[i])) std::abort();
  }
  if (whole.error() && !whole.feed(exec::encode_record(exec::RecordType::log, 0, "x")).empty()) {
    std::abort();
  }
  return 0;
}
