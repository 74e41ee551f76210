#include "common/log.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace jobhost::log {
namespace {

// A JSON line as init()'s pattern writes it, around render()'s members.
nlohmann::json json_line(const Fields& fields, std::string_view message) {
  return nlohmann::json::parse(R"({"ts":"2026-12-06T00:00:00.000+00:00","level":"info",)" +
                               render(Format::json, fields, message));
}

TEST_CASE("a JSON log line is one valid object whatever the message holds", "[log]") {
  struct Case {
    const char* what;
    std::string message;
    std::string msg;  // what the parsed "msg" holds
  };
  const std::vector<Case> cases = {
      {"plain", "started", "started"},
      {"quotes and backslashes", R"(say "hi" \ bye)", R"(say "hi" \ bye)"},
      {"control characters", "a\tb\x1b[31m\x01", "a\tb\x1b[31m\x01"},
      {"an embedded NUL", std::string("a\0b", 3), std::string("a\0b", 3)},
      {"newline", "line 1\nline 2", "line 1\nline 2"},
      {"invalid UTF-8", "bad \xff\xfe end", "bad \xef\xbf\xbd\xef\xbf\xbd end"},
      {"truncated sequence", "cut \xe2\x82", "cut \xef\xbf\xbd"},
      {"a forged member", R"(","level":"critical)", R"(","level":"critical)"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto line = json_line({}, c.message);
    REQUIRE(line.is_object());
    CHECK(line.at("msg") == c.msg);
    CHECK(line.at("level") == "info");
    CHECK(line.size() == 3);
  }
}

TEST_CASE("a JSON log line about a run names its job, run, trace and attempt", "[log]") {
  const auto line = json_line({"backup", "01RUN", "01TRACE", 2}, "finished");
  CHECK(line.at("job") == "backup");
  CHECK(line.at("run_id") == "01RUN");
  CHECK(line.at("trace_id") == "01TRACE");
  CHECK(line.at("attempt") == 2);
  CHECK(line.at("msg") == "finished");
  const auto plain = json_line({"backup"}, "no run");
  CHECK_FALSE(plain.contains("attempt"));
  CHECK_FALSE(plain.contains("run_id"));
}

TEST_CASE("a text log line keeps its fields in front of the message", "[log]") {
  CHECK(render(Format::text, {"backup", "01RUN", "01TRACE", 2}, "finished") ==
        "job=backup run=01RUN trace=01TRACE finished");
  CHECK(render(Format::text, {}, "plain") == "plain");
}

}  // namespace
}  // namespace jobhost::log
