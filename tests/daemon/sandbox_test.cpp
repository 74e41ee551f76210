// The sandbox keys from a real config through the daemon: network = "none",
// read_only with read_write_paths, and the default syscall filter.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "support/harness.h"
#include "support/skip.h"

using namespace jobhost::testing;

namespace {

std::string message_of(const nlohmann::json& run) {
  return run["message"].get<std::string>();
}

}  // namespace

TEST_CASE("the sandbox keys of a job's TOML reach its runs", "[daemon][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("the sandbox options need root (namespaces)");
  // A listener in the host's network namespace, and paths outside the daemon's dir.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 8) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  TempDir files;
  fs::create_directory(files / "rw");
  // The jobs run as dynamic users: the writable path must be theirs to write
  // (read_only adds a mount, not a permission).
  fs::permissions(files / "rw", fs::perms::all);

  TestHost host({"sandbox_probe.so"},
                fmt::format(R"(
[defaults]
syscall_filter = "default"

[jobs.online]
plugin = "sandbox_probe"
schedule = "@manual"
params = {{ try = "connect", port = {port} }}

[jobs.offline]
plugin = "sandbox_probe"
schedule = "@manual"
network = "none"
params = {{ try = "connect", port = {port} }}

[jobs.readonly]
plugin = "sandbox_probe"
schedule = "@manual"
read_only = true
read_write_paths = ["{rw}"]
params = {{ try = "write", path = "{outside}" }}

[jobs.readwrite]
plugin = "sandbox_probe"
schedule = "@manual"
read_only = true
read_write_paths = ["{rw}"]
params = {{ try = "write", path = "{rw}/file" }}

[jobs.tracer]
plugin = "sandbox_probe"
schedule = "@manual"
params = {{ try = "ptrace" }}

[jobs.unfiltered]
plugin = "sandbox_probe"
schedule = "@manual"
syscall_filter = "none"
params = {{ try = "ptrace" }}
)",
                            fmt::arg("port", port), fmt::arg("rw", (files / "rw").string()),
                            fmt::arg("outside", (files / "outside").string())));
  const fs::path& config = host.config();
  for (const char* job : {"online", "offline", "readonly", "readwrite", "tracer", "unfiltered"}) {
    INFO(job);
    REQUIRE(trigger(config, job).exit_code == 0);
  }

  auto online = wait_outcome(config, "online", "succeeded");
  REQUIRE(online);
  CHECK(message_of(*online) == "worked");
  auto offline = wait_outcome(config, "offline", "succeeded");
  REQUIRE(offline);
  CHECK(message_of(*offline) == "failed: Connection refused");

  auto readonly = wait_outcome(config, "readonly", "succeeded");
  REQUIRE(readonly);
  CHECK(message_of(*readonly) == "failed: Read-only file system");
  CHECK_FALSE(fs::exists(files / "outside"));
  auto readwrite = wait_outcome(config, "readwrite", "succeeded");
  REQUIRE(readwrite);
  CHECK(message_of(*readwrite) == "worked");
  CHECK(fs::exists(files / "rw" / "file"));

  auto tracer = wait_outcome(config, "tracer", "crashed");
  REQUIRE(tracer);
  CHECK((*tracer)["signal"] == "SIGSYS");
  CHECK_THAT(message_of(*tracer), Catch::Contains("blocked system call ptrace"));
  auto unfiltered = wait_outcome(config, "unfiltered", "succeeded");
  REQUIRE(unfiltered);

  host.stop();
  ::close(listener);
}
