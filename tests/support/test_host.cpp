// TestHost, the daemon fixture (support/harness.h). Its own file: it uses
// Catch's REQUIRE, and the benchmarks that link the harness have no Catch.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support/harness.h"

namespace jobhost::testing {

TestHost::TestHost(const std::vector<std::string>& plugins, const std::string& jobs_toml,
                   const std::string& host_extra, std::optional<uid_t> as_user)
    : as_user_(as_user) {
  install_plugins(dir_.path(), plugins);
  config_ = write_config(dir_.path(), jobs_toml, host_extra);
  if (as_user_) {
    REQUIRE(::lchown(dir_.path().c_str(), *as_user_, *as_user_) == 0);
    for (const auto& entry : fs::recursive_directory_iterator(dir_.path())) {
      REQUIRE(::lchown(entry.path().c_str(), *as_user_, *as_user_) == 0);
    }
  }
  start();
}

std::string TestHost::log() const {
  return daemon_ ? daemon_->log() : std::string();
}

void TestHost::start() {
  REQUIRE_FALSE((daemon_ && daemon_->alive()));
  daemon_.reset();
  daemon_.emplace(config_, as_user_);
  const bool ready = daemon_->wait_ready();
  INFO("daemon log:\n" << log());
  REQUIRE(ready);
}

void TestHost::stop(int expected, std::chrono::milliseconds timeout) {
  REQUIRE(daemon_);
  daemon_->signal(SIGTERM);
  const auto code = daemon_->wait_exit(timeout);
  INFO("daemon log:\n" << log());
  REQUIRE(code == expected);
}

}  // namespace jobhost::testing
