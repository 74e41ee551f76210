// The plugin test kit in C++: jobhost/testing.h's fake host as a class, with
// what the plugin did as strings and vectors, for a plugin's own unit tests.
//
//     jobhost::testing::FakeHost host;
//     host.param("greeting", "hi");
//     CHECK(host.run(jobhost_plugin_v1()) == jobhost::Result::ok);
//     CHECK(host.messages().back() == "said hi");
//
// Reach the plugin by compiling its source into the test (call its
// jobhost_plugin_v1() directly) or by loading the built .so with
// jobhost::testing::load(path) (dlopen: link jobhost::testing). The rules
// and the limits of the fake host are testing.h's.
#ifndef JOBHOST_TESTING_HPP_
#define JOBHOST_TESTING_HPP_

#include <jobhost/testing.h>
#include <jobhost/plugin.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace jobhost {

// "ok", "retry", "fail", or the number: how test frameworks print a Result.
inline std::ostream& operator<<(std::ostream& os, Result r) {
  switch (r) {
    case Result::ok:
      return os << "ok";
    case Result::retry:
      return os << "retry";
    case Result::fail:
      return os << "fail";
  }
  return os << "result " << static_cast<int32_t>(r);
}

namespace testing {

struct LogLine {
  int32_t level = JOBHOST_LOG_INFO;  // a jobhost_log_level
  std::string text;
  bool operator==(const LogLine&) const = default;
};

struct Metric {
  std::string name;
  double value = 0;
  bool operator==(const Metric&) const = default;
};

// One fake run: what the plugin is given (settings, kept across run() calls)
// and what it did in the last run() (cleared when the next one begins).
class FakeHost {
 public:
  // No params or secrets, run id "test-run", attempt 1, scheduled for now,
  // trigger "schedule", no event, not cancelled.
  FakeHost() : run_(jobhost_test_new()) {}
  ~FakeHost() { jobhost_test_free(run_); }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // --- what the plugin is given ---
  FakeHost& param(const std::string& key, const std::string& value) {
    jobhost_test_param(run_, key.c_str(), value.c_str());
    return *this;
  }
  FakeHost& unset_param(const std::string& key) {
    jobhost_test_param(run_, key.c_str(), nullptr);
    return *this;
  }
  FakeHost& secret(const std::string& name, const std::string& value) {
    jobhost_test_secret(run_, name.c_str(), value.c_str());
    return *this;
  }
  FakeHost& unset_secret(const std::string& name) {
    jobhost_test_secret(run_, name.c_str(), nullptr);
    return *this;
  }
  FakeHost& run_id(const std::string& id) {
    jobhost_test_set_run_id(run_, id.c_str());
    return *this;
  }
  FakeHost& attempt(uint32_t attempt) {
    jobhost_test_set_attempt(run_, attempt);
    return *this;
  }
  FakeHost& scheduled_for(std::chrono::sys_time<std::chrono::milliseconds> slot) {
    jobhost_test_set_scheduled_for(run_, slot.time_since_epoch().count());
    return *this;
  }
  // ABI 1.1: what made the run, and its payload (nullopt: none).
  FakeHost& trigger_kind(const std::string& kind) {
    jobhost_test_set_trigger_kind(run_, kind.c_str());
    return *this;
  }
  FakeHost& event(const std::optional<std::string>& json) {
    jobhost_test_set_event(run_, json ? json->c_str() : nullptr);
    return *this;
  }
  // cancelled() is true from now on. Safe from any thread, also mid-run.
  void cancel() { jobhost_test_cancel(run_); }
  // cancelled() is false for its first `calls` calls of each run(), then true.
  FakeHost& cancel_after(uint32_t calls) {
    jobhost_test_cancel_after(run_, calls);
    return *this;
  }

  // --- running ---
  // Checks the descriptor as the host does and calls init, run and shutdown
  // as a run's child does (testing.h, jobhost_test_call); returns what the
  // run returned. Throws std::invalid_argument, saying why, when the
  // descriptor is unusable.
  Result run(const jobhost_plugin* plugin) {
    const int32_t r = jobhost_test_call(run_, plugin);
    if (r == JOBHOST_TEST_BAD_PLUGIN && !std::string_view(jobhost_test_error(run_)).empty()) {
      throw std::invalid_argument(std::string("not a usable plugin: ") + jobhost_test_error(run_));
    }
    return static_cast<Result>(r);
  }
  // The fake API and run handle as a Context, to call a job class's run()
  // directly (what it logs and sets is captured as for run()).
  Context context() { return Context(api(), handle()); }
  const jobhost_host_api* api() const { return jobhost_test_api(run_); }
  jobhost_run* handle() const { return jobhost_test_handle(run_); }

  // --- what the plugin did in the last run() ---
  std::vector<LogLine> logs() const {
    std::vector<LogLine> out;
    for (std::size_t i = 0; i < jobhost_test_log_count(run_); ++i) {
      out.push_back({jobhost_test_log_level(run_, i), jobhost_test_log_text(run_, i)});
    }
    return out;
  }
  // Whether a log line (of `level`, or any) contains `needle`.
  bool logged(const std::string& needle) const {
    return jobhost_test_logged(run_, -1, needle.c_str()) != 0;
  }
  bool logged(jobhost_log_level level, const std::string& needle) const {
    return jobhost_test_logged(run_, level, needle.c_str()) != 0;
  }
  // Every set_message, in order; the host records the last.
  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < jobhost_test_message_count(run_); ++i) {
      out.emplace_back(jobhost_test_message(run_, i));
    }
    return out;
  }
  // The message the host would record, or nullopt when none was set.
  std::optional<std::string> message() const {
    const char* m = jobhost_test_last_message(run_);
    return m ? std::optional<std::string>(m) : std::nullopt;
  }
  // Every metric call, in order; the host records the last value of each name.
  std::vector<Metric> metrics() const {
    std::vector<Metric> out;
    for (std::size_t i = 0; i < jobhost_test_metric_count(run_); ++i) {
      out.push_back({jobhost_test_metric_name(run_, i), jobhost_test_metric_value(run_, i)});
    }
    return out;
  }
  // The last value of metric `name`, or nullopt.
  std::optional<double> metric(const std::string& name) const {
    double value = 0;
    return jobhost_test_metric(run_, name.c_str(), &value) ? std::optional<double>(value)
                                                           : std::nullopt;
  }
  // Every heartbeat's progress, in order (-1: unknown).
  std::vector<double> heartbeats() const {
    std::vector<double> out;
    for (std::size_t i = 0; i < jobhost_test_heartbeat_count(run_); ++i) {
      out.push_back(jobhost_test_heartbeat(run_, i));
    }
    return out;
  }
  uint32_t cancelled_calls() const { return jobhost_test_cancelled_calls(run_); }
  bool init_called() const { return jobhost_test_init_called(run_) != 0; }
  bool run_called() const { return jobhost_test_run_called(run_) != 0; }
  bool shutdown_called() const { return jobhost_test_shutdown_called(run_) != 0; }

  // The C form, for what the class does not wrap.
  jobhost_test_run* c_run() const { return run_; }

 private:
  jobhost_test_run* run_;
};

// Loads the plugin .so at `path` (dlopen, RTLD_NOW | RTLD_LOCAL) and returns
// its descriptor; throws std::runtime_error saying why it could not. The
// library stays loaded for the life of the process.
inline const jobhost_plugin* load(const std::string& path) {
  char error[1024];
  const jobhost_plugin* plugin = jobhost_test_load(path.c_str(), error, sizeof error);
  if (plugin == nullptr) throw std::runtime_error(error);
  return plugin;
}

}  // namespace testing
}  // namespace jobhost

#endif  // JOBHOST_TESTING_HPP_
