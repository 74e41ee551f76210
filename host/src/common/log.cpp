#include "common/log.h"

#include <fmt/core.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace jobhost::log {
namespace {

Format g_format = Format::text;

}  // namespace

void init(Format format, spdlog::level::level_enum level) {
  g_format = format;
  spdlog::drop("jobhost");
  auto logger = spdlog::stderr_logger_st("jobhost");
  if (format == Format::json) {
    // The message is a JSON object missing its opening brace: render() below.
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%v)");
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %-5l %v");
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

std::string render(Format format, const Fields& fields, std::string_view message) {
  if (format == Format::json) {
    nlohmann::json line = nlohmann::json::object();
    if (!fields.job.empty()) line["job"] = fields.job;
    if (!fields.run_id.empty()) line["run_id"] = fields.run_id;
    if (!fields.trace_id.empty()) line["trace_id"] = fields.trace_id;
    if (fields.attempt > 0) line["attempt"] = fields.attempt;
    line["msg"] = message;
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return text.substr(1);  // the pattern supplies the opening brace and ts/level
  }
  std::string text;
  if (!fields.job.empty()) text += fmt::format("job={} ", fields.job);
  if (!fields.run_id.empty()) text += fmt::format("run={} ", fields.run_id);
  if (!fields.trace_id.empty()) text += fmt::format("trace={} ", fields.trace_id);
  text += message;
  return text;
}

void write(spdlog::level::level_enum level, const Fields& fields, std::string_view message) {
  spdlog::log(level, "{}", render(g_format, fields, message));
}

}  // namespace jobhost::log
