// log_format = "json": every line the daemon writes is one JSON object, the
// lines of a run carry its job, run id, trace id and attempt, whatever bytes
// the plugin logs or prints.
#include <catch2/catch.hpp>
#include <sstream>

#include "support/harness.h"

using namespace jobhost::testing;
using nlohmann::json;

TEST_CASE("with log_format = json every line is a JSON object, hostile plugin bytes too",
          "[daemon][log]") {
  TestHost host({"babble.so"}, R"(
[jobs.babble]
plugin = "babble"
schedule = "@manual"
)",
                "log_format = \"json\"");
  REQUIRE(trigger(host.config(), "babble").exit_code == 0);
  const auto run = wait_outcome(host.config(), "babble", "succeeded");
  REQUIRE(run);
  host.stop();

  std::istringstream lines(host.log());
  std::string line;
  int parsed = 0;
  int plugin_lines = 0;
  int output_lines = 0;
  bool forged = false;
  while (std::getline(lines, line)) {
    INFO("line: " << line);
    json object;
    REQUIRE_NOTHROW(object = json::parse(line));
    REQUIRE(object.is_object());
    CHECK(object.contains("ts"));
    CHECK(object.contains("level"));
    REQUIRE(object.contains("msg"));
    ++parsed;
    const std::string msg = object["msg"];
    if (object.value("job", "") == "babble" && object.contains("run_id")) {
      CHECK(object["run_id"] == (*run)["run_id"]);
      CHECK(object["trace_id"] == (*run)["trace_id"]);
      CHECK(object["attempt"] == 1);
    }
    if (msg.find("invalid utf-8: ") != std::string::npos) {
      (msg.rfind("output: ", 0) == 0 ? output_lines : plugin_lines)++;
      CHECK(object.value("job", "") == "babble");
    }
    // The plugin's text that mimics a member stays inside "msg".
    if (msg.find("\"level\":\"critical\"") != std::string::npos) {
      forged = true;
      CHECK(object["level"] != "critical");
      CHECK(object.value("job", "") == "babble");
    }
  }
  CHECK(parsed > 5);
  CHECK(plugin_lines == 1);
  CHECK(output_lines == 1);
  CHECK(forged);
}
