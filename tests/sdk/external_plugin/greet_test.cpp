// The out-of-tree plugin's unit test: loads the built greet.so (the first
// argument) and runs it on the SDK's fake host. Exit 0 when it greets.
#include <jobhost/testing.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  jobhost::testing::FakeHost host;
  host.param("who", "tester");
  const jobhost::Result r = host.run(jobhost::testing::load(argv[1]));
  const bool ok = r == jobhost::Result::ok && host.logged(JOBHOST_LOG_INFO, "hello, tester") &&
                  host.message() == "greeted tester";
  std::printf("greet_test: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
