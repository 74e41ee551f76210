#include "exec/outcome_classify.h"

#include <fmt/format.h>
#include <jobhost/plugin.h>

#include <csignal>
#include <cstring>

namespace jobhost::exec {
namespace {

std::string with_last_message(std::string text, const std::string& message) {
  if (!message.empty()) text += fmt::format("; last message: \"{}\"", message);
  return text;
}

std::string grace_note(const ExitFacts& f) {
  if (!f.killed_after_grace) return "";
  return fmt::format("; it did not stop on SIGTERM and was killed after the {} grace",
                     config::format_duration(f.kill_grace));
}

std::optional<Classification> by_stop_reason(const ExitFacts& f) {
  if (!f.stop_reason) return std::nullopt;
  switch (*f.stop_reason) {
    case StopReason::timeout:
      return Classification{
          Outcome::timed_out,
          with_last_message(fmt::format("exceeded timeout of {}{}",
                                        config::format_duration(f.timeout), grace_note(f)),
                            f.message),
          true};
    case StopReason::stall:
      return Classification{
          Outcome::stalled,
          with_last_message(fmt::format("no heartbeat for {}{}",
                                        config::format_duration(f.stall_timeout), grace_note(f)),
                            f.message),
          true};
    case StopReason::replace:
      return Classification{
          Outcome::replaced,
          "stopped to make way for a newer fire (concurrency = \"replace\")" + grace_note(f),
          false};
    case StopReason::shutdown:
      return Classification{Outcome::interrupted,
                            "the host shut down during the run" + grace_note(f), true};
    case StopReason::cancel:
      return Classification{Outcome::cancelled, "cancelled by an operator" + grace_note(f), false};
  }
  return std::nullopt;
}

// Which limit explains the end of the run, if any, with the limit's value.
std::optional<std::string> limit_reached(const ExitFacts& f) {
  const config::Limits& l = f.limits;
  auto describe = [&](std::string_view which) -> std::string {
    if (which == "memory" && l.memory_bytes > 0) {
      return fmt::format("memory limit ({})", format_size(l.memory_bytes));
    }
    if (which == "processes" && l.processes > 0) {
      return fmt::format("process limit ({} processes)", l.processes);
    }
    if (which == "cpu time" && l.cpu_time.count() > 0) {
      return fmt::format("cpu time limit ({})", config::format_duration(l.cpu_time));
    }
    if (which == "file size" && l.file_size > 0) {
      return fmt::format("file size limit ({})", format_size(l.file_size));
    }
    return fmt::format("{} limit", which);
  };
  if (f.child_limit) return describe(*f.child_limit);
  if (f.cgroup_limit) return describe(*f.cgroup_limit);
  if (f.signal == SIGXCPU) return describe("cpu time");
  if (f.signal == SIGXFSZ) return describe("file size");
  // RLIMIT_CPU's hard limit (one second after SIGXCPU) ends in SIGKILL.
  if (f.signal == SIGKILL && f.cpu_seconds && l.cpu_time.count() > 0 &&
      *f.cpu_seconds >= std::chrono::duration<double>(l.cpu_time).count()) {
    return describe("cpu time");
  }
  return std::nullopt;
}

std::string signal_description(int sig) {
  const char* d = sigdescr_np(sig);
  return d ? std::string(d) : std::string("unknown signal");
}

}  // namespace

std::string_view to_string(StopReason reason) {
  switch (reason) {
    case StopReason::timeout:
      return "timeout";
    case StopReason::stall:
      return "stall";
    case StopReason::replace:
      return "replace";
    case StopReason::shutdown:
      return "shutdown";
    case StopReason::cancel:
      return "cancel";
  }
  return "unknown";
}

std::string signal_name(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("SIG{}", signal);
}

std::string format_size(uint64_t bytes) {
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [factor, name] : kUnits) {
    if (bytes >= factor && bytes % factor == 0) return fmt::format("{}{}", bytes / factor, name);
  }
  return fmt::format("{}B", bytes);
}

bool returned_ok(const ExitFacts& f) {
  return f.result_code == JOBHOST_OK && f.exit_code.has_value();
}

Classification classify(const ExitFacts& f) {
  if (auto by_stop = by_stop_reason(f)) return *by_stop;

  if (f.status_unknown) {
    return {Outcome::interrupted, fmt::format("exit status unknown: {}", *f.status_unknown), true};
  }

  if (f.setup_error) {
    return {Outcome::failed, fmt::format("could not start the plugin: {}", *f.setup_error), false};
  }

  if (returned_ok(f)) {
    return {Outcome::succeeded, f.message.empty() ? std::string("succeeded") : f.message, false};
  }

  if (auto limit = limit_reached(f)) {
    return {Outcome::limit_exceeded,
            with_last_message(fmt::format("exceeded the {}", *limit), f.message), true};
  }

  if (f.result_code) {
    const std::string& m = f.message;
    const std::string sep = m.empty() ? "" : ": ";
    switch (*f.result_code) {
      case JOBHOST_RETRY:
        return {Outcome::failed, fmt::format("returned RETRY (retryable){}{}", sep, m), true};
      case JOBHOST_FAIL:
        return {Outcome::failed, fmt::format("returned FAIL (not retryable){}{}", sep, m), false};
      case JOBHOST_OK:
        break;  // OK but then killed: judged by the signal below
      default:
        return {Outcome::failed,
                fmt::format("returned unknown result code {} (not retryable){}{}", *f.result_code,
                            sep, m),
                false};
    }
  }

  if (f.signal) {
    std::string text =
        fmt::format("crashed with {} ({}){}", signal_name(*f.signal), signal_description(*f.signal),
                    f.core_dumped ? ", core dumped" : "");
    if (*f.signal == SIGSYS && f.blocked_syscall) {
      text = fmt::format("killed by SIGSYS: blocked system call {} (syscall_filter = \"default\")",
                         *f.blocked_syscall);
    } else if (*f.signal == SIGKILL || *f.signal == SIGTERM) {
      text =
          fmt::format("killed by {} from outside jobhost (an operator or the kernel's OOM killer)",
                      signal_name(*f.signal));
    }
    return {Outcome::crashed, with_last_message(std::move(text), f.message), true};
  }

  const int code = f.exit_code.value_or(-1);
  return {Outcome::failed,
          with_last_message(fmt::format("exited with code {} without reporting a result", code),
                            f.message),
          true};
}

}  // namespace jobhost::exec
