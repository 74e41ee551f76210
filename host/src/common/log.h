// Structured log lines on stderr: human text by default, JSON lines on
// request. Every line about a run carries its job, run id and trace id.
// Synchronous (no async sink, no threads): see docs/architecture.md "Processes and threads".
#pragma once

#include <spdlog/common.h>

#include <string>
#include <string_view>

namespace jobhost::log {

enum class Format { text, json };

// Fields that tie a line to a job and a run; empty ones are left out.
struct Fields {
  std::string_view job{};
  std::string_view run_id{};
  std::string_view trace_id{};
  int attempt = 0;  // the run's attempt (1, 2, ...); 0 = not about a run
};

// Installs the stderr logger; call once at start (and again to switch format).
void init(Format format, spdlog::level::level_enum level = spdlog::level::info);

void write(spdlog::level::level_enum level, const Fields& fields, std::string_view message);

inline void info(std::string_view message, const Fields& fields = {}) {
  write(spdlog::level::info, fields, message);
}
inline void warn(std::string_view message, const Fields& fields = {}) {
  write(spdlog::level::warn, fields, message);
}
inline void error(std::string_view message, const Fields& fields = {}) {
  write(spdlog::level::err, fields, message);
}

// The line as it will be written (without timestamp and level), for tests.
// JSON: the object's members after its opening brace (init's pattern writes
// `{"ts":...,"level":...,`), always valid JSON whatever bytes `message`
// holds (invalid UTF-8 becomes U+FFFD, control characters are escaped).
std::string render(Format format, const Fields& fields, std::string_view message);

}  // namespace jobhost::log
