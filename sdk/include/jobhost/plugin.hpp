// Header-only C++ wrapper over the jobhost C ABI (plugin.h).
//
// A C++ job is a default-constructible class with
//
//     jobhost::Result run(jobhost::Context& ctx);
//
// exported with one macro at namespace scope:
//
//     JOBHOST_PLUGIN(MyJob, "my-job", "1.0.0", "What it does");
//
// The macro exports only `jobhost_plugin_v1`; build with -fvisibility=hidden
// (the jobhost::sdk CMake target does) so nothing else leaks. Every exception
// thrown by the job is caught at the boundary and becomes JOBHOST_FAIL with
// the exception's message recorded as the run's message.
#ifndef JOBHOST_PLUGIN_HPP_
#define JOBHOST_PLUGIN_HPP_

#include <jobhost/plugin.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace jobhost {

enum class Result : int32_t { ok = JOBHOST_OK, retry = JOBHOST_RETRY, fail = JOBHOST_FAIL };

// What a run can ask of the host. Wraps the host function table; valid only
// during run().
class Context {
 public:
  Context(const jobhost_host_api* api, jobhost_run* run) : api_(api), run_(run) {}

  void debug(const std::string& msg) const { log(JOBHOST_LOG_DEBUG, msg); }
  void info(const std::string& msg) const { log(JOBHOST_LOG_INFO, msg); }
  void warn(const std::string& msg) const { log(JOBHOST_LOG_WARN, msg); }
  void error(const std::string& msg) const { log(JOBHOST_LOG_ERROR, msg); }

  // The job's params value for `key`, or nullopt when it is not set.
  std::optional<std::string> param(const std::string& key) const {
    return to_optional(api_->param(run_, key.c_str()));
  }
  std::string param_or(const std::string& key, std::string fallback) const {
    return param(key).value_or(std::move(fallback));
  }
  std::optional<std::string> secret(const std::string& name) const {
    return to_optional(api_->secret(run_, name.c_str()));
  }
  // Says the run is alive; resets the stall timer. progress in [0, 1], or < 0.
  void heartbeat(double progress = -1.0) const { api_->heartbeat(run_, progress); }
  bool cancelled() const { return api_->cancelled(run_) != 0; }
  void metric(const std::string& name, double value) const {
    api_->metric(run_, name.c_str(), value);
  }
  void set_message(const std::string& msg) const { api_->set_message(run_, msg.c_str()); }
  std::string run_id() const { return api_->run_id(run_); }
  uint32_t attempt() const { return api_->attempt(run_); }
  std::chrono::sys_time<std::chrono::milliseconds> scheduled_for() const {
    return std::chrono::sys_time<std::chrono::milliseconds>(
        std::chrono::milliseconds(api_->scheduled_for(run_)));
  }

  // What made this run ("schedule", "manual", "retry", "webhook", ...; ABI 1.1).
  std::string trigger_kind() const { return api_->trigger_kind(run_); }
  // The trigger's payload (JSON), or nullopt when it has none (ABI 1.1).
  std::optional<std::string> event() const { return to_optional(api_->event(run_)); }

  const jobhost_host_api* api() const { return api_; }
  jobhost_run* handle() const { return run_; }

 private:
  void log(int32_t level, const std::string& msg) const { api_->log(run_, level, msg.c_str()); }
  static std::optional<std::string> to_optional(const char* s) {
    return s ? std::optional<std::string>(s) : std::nullopt;
  }

  const jobhost_host_api* api_;
  jobhost_run* run_;
};

namespace detail {

template <class Job>
int32_t run_job(const jobhost_host_api* api, jobhost_run* run) noexcept {
  Context ctx(api, run);
  try {
    Job job;
    return static_cast<int32_t>(job.run(ctx));
  } catch (const std::exception& e) {
    api->set_message(run, e.what());
  } catch (...) {
    api->set_message(run, "unknown exception");
  }
  return JOBHOST_FAIL;
}

}  // namespace detail
}  // namespace jobhost

// Exports `Job` as a jobhost plugin named `name` with version `version`.
#define JOBHOST_PLUGIN(Job, name, version, description)                         \
  extern "C" JOBHOST_EXPORT const jobhost_plugin* jobhost_plugin_v1(void) {     \
    static const jobhost_plugin descriptor = {sizeof(jobhost_plugin),           \
                                              JOBHOST_ABI_MAJOR,                \
                                              JOBHOST_ABI_MINOR,                \
                                              name,                             \
                                              version,                          \
                                              description,                      \
                                              nullptr,                          \
                                              &::jobhost::detail::run_job<Job>, \
                                              nullptr};                         \
    return &descriptor;                                                         \
  }

#endif  // JOBHOST_PLUGIN_HPP_
