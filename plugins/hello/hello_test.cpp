// Unit test of the hello plugin, written with the SDK's test kit: hello.cpp
// is compiled into this test, whose fake host calls the plugin's run as a
// run's child would, then checks what it logged and the message it set.
#include <jobhost/testing.hpp>

#include <catch2/catch.hpp>

using jobhost::testing::FakeHost;

TEST_CASE("hello greets with its greeting param") {
  FakeHost host;
  host.param("greeting", "good morning").run_id("r-42").attempt(2);

  CHECK(host.run(jobhost_plugin_v1()) == jobhost::Result::ok);
  CHECK(host.logged(JOBHOST_LOG_INFO, "good morning from run r-42 (attempt 2)"));
  CHECK(host.message() == "said good morning");
}

TEST_CASE("hello says hello without the param") {
  FakeHost host;

  CHECK(host.run(jobhost_plugin_v1()) == jobhost::Result::ok);
  CHECK(host.messages().back() == "said hello");
}
