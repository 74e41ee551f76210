#include "exec/fork_executor.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "common/log.h"
#include "common/pidfd.h"
#include "exec/child_runtime.h"
#include "exec/control_record.h"
#include "exec/fork_server.h"
#include "exec/run_output.h"
#include "exec/run_user.h"
#include "exec/sandbox.h"
#include "exec/secrets.h"

namespace jobhost::exec {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kOutputChunk = 64 * 1024;
constexpr std::size_t kControlChunk = 16 * 1024;
constexpr std::size_t kMaxMetrics = 256;
constexpr std::size_t kMaxMetricName = 128;  // bytes
constexpr std::size_t kMaxMessage = 4096;

std::string errno_text(int err) {
  return std::strerror(err);
}

bool plain_name(std::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

spdlog::level::level_enum level_of(uint8_t abi_level) {
  switch (abi_level) {
    case 0:
      return spdlog::level::debug;
    case 2:
      return spdlog::level::warn;
    case 3:
      return spdlog::level::err;
    default:
      return spdlog::level::info;
  }
}

std::string_view level_tag(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::debug:
      return "[debug] ";
    case spdlog::level::warn:
      return "[warn] ";
    case spdlog::level::err:
      return "[error] ";
    default:
      return "[info] ";
  }
}

// True once the leader has exited (it is a zombie or already reaped): its
// pidfd is readable. Works for the fork server's children, which waitid
// cannot ask about.
bool leader_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

}  // namespace

struct ForkExecutor::Run : std::enable_shared_from_this<ForkExecutor::Run> {
  explicit Run(asio::io_context& io, const ExecutorOptions& options, uint64_t tail_capacity)
      : pidfd(io),
        output(io),
        control(io),
        timeout_timer(io),
        stall_timer(io),
        grace_timer(io),
        drain_timer(io),
        output_buffer(new char[kOutputChunk]),
        control_buffer(new char[kControlChunk]),
        tail(static_cast<std::size_t>(tail_capacity)),
        lines(options.max_log_line),
        output_limit(options.log_lines_per_second, options.log_burst),
        log_limit(options.log_lines_per_second, options.log_burst) {}
  // The run's secret values leave the daemon's memory with it.
  ~Run() {
    for (auto& [name, value] : request.secrets) wipe(value);
  }

  ForkExecutor* owner = nullptr;  // null once the executor is gone
  RunRequest request;
  std::function<void(RunReport)> on_done;
  RunCgroup cgroup;
  std::shared_ptr<ForkServer> server;  // forked it; reaps it
  pid_t pid = 0;
  // Mode none, a dynamic user: its uid's processes are killed when the
  // leader exits (unless another run of the job still runs).
  std::optional<uid_t> sweep_uid;

  asio::posix::stream_descriptor pidfd;    // readable when the leader exits
  asio::posix::stream_descriptor output;   // stdout+stderr of the group
  asio::posix::stream_descriptor control;  // records from the child; cancel byte to it
  asio::steady_timer timeout_timer, stall_timer, grace_timer, drain_timer;
  std::unique_ptr<char[]> output_buffer, control_buffer;

  RecordDecoder decoder;
  SecretRedactor redactor;  // before anything of the run is kept or logged
  TailBuffer tail;
  LineSplitter lines;
  LineRateLimiter output_limit, log_limit;

  std::optional<StopReason> stop_reason;
  bool parked = false;            // waiting for release() (executor.h park)
  bool discarded = false;         // discard(): on_done is never called
  std::optional<TimePoint> gate;  // parked behind gates_[*gate]
  bool killed_after_grace = false;
  bool reaped = false;
  bool output_open = true;
  bool control_open = true;
  bool finished = false;
  bool pipes_abandoned = false;

  TimePoint started{};
  TimePoint ended{};
  SteadyClock::time_point last_heartbeat{};
  siginfo_t exit_info{};
  rusage usage{};

  std::optional<int32_t> result_code;
  std::string message;
  std::map<std::string, double> metrics;
  std::optional<double> last_progress;
  std::optional<std::string> setup_error;
  std::optional<std::string> child_limit;
  std::optional<std::string> status_unknown;   // why the exit status could not be read
  std::optional<std::string> blocked_syscall;  // sandbox: the first call the filter blocked

  const ExecutorOptions& options() const { return owner->options_; }

  void log(LogStream stream, spdlog::level::level_enum level, std::string_view text) {
    if (owner == nullptr) return;
    const RunLogLine line{request.job, request.run_id, request.trace_id, stream, level, text};
    if (options().log_sink) {
      options().log_sink(line);
    } else {
      log::write(level,
                 {request.job, request.run_id, request.trace_id, static_cast<int>(request.attempt)},
                 stream == LogStream::output ? fmt::format("output: {}", text) : std::string(text));
    }
  }

  // Logs how many lines the rate limit held back, if any.
  void report_suppressed(LineRateLimiter& limiter, std::string_view what) {
    if (const uint64_t n = limiter.take_suppressed(); n > 0) {
      log(LogStream::host, spdlog::level::warn,
          fmt::format("{} {} lines not logged (rate limit; the output tail keeps the last "
                      "{} bytes)",
                      n, what, request.limits.output_bytes));
    }
  }

  // Watches the process: its exit, its output and its control records.
  void watch() {
    wait_for_exit();
    read_output();
    read_control();
  }

  // The run's clock starts: its start time, timeout and stall timeout.
  void begin() {
    started = wall_now();
    last_heartbeat = SteadyClock::now();
    if (request.timeout.count() > 0) {
      timeout_timer.expires_after(request.timeout);
      timeout_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->stop(StopReason::timeout);
      });
    }
    if (request.stall_timeout.count() > 0) arm_stall_timer();
  }

  void arm_stall_timer() {
    stall_timer.expires_at(last_heartbeat + request.stall_timeout);
    stall_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->reaped || self->stop_reason) return;
      if (SteadyClock::now() >= self->last_heartbeat + self->request.stall_timeout) {
        self->stop(StopReason::stall);
      } else {
        self->arm_stall_timer();  // a heartbeat came in meanwhile
      }
    });
  }

  void wait_for_exit() {
    pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       if (ec || self->owner == nullptr) return;
                       self->on_leader_exit();
                     });
  }

  void on_leader_exit() {
    if (!leader_exited(pidfd.native_handle())) {  // spurious wake-up
      wait_for_exit();
      return;
    }
    // The leader is a zombie the fork server holds for us, so its pid and
    // group id are still ours: whatever is left of the group (a grandchild it
    // forked) goes with it, then the server reaps the leader.
    ::kill(-pid, SIGKILL);
    cgroup.kill_all();
    if (sweep_uid && owner != nullptr && !owner->uid_in_use(*sweep_uid, this)) {
      if (const auto n = kill_processes_of_uid(*sweep_uid); n > 0) {
        log(LogStream::host, spdlog::level::warn,
            fmt::format("killed {} process(es) of uid {} that left the run's process group", n,
                        *sweep_uid));
      }
    }
    reap();
    mark_reaped();
  }

  // Exit status and rusage of the leader, from the fork server.
  void reap() {
    auto reaped = server->reap(pid);
    if (!reaped) {
      status_unknown = reaped.error().message;
      log(LogStream::host, spdlog::level::err,
          fmt::format("cannot reap pid {}: {}", pid, reaped.error().message));
      return;
    }
    exit_info = reaped->info;
    usage = reaped->usage;
  }

  void mark_reaped() {
    reaped = true;
    ended = wall_now();
    timeout_timer.cancel();
    stall_timer.cancel();
    grace_timer.cancel();
    boost::system::error_code ignored;
    pidfd.close(ignored);
    if (output_open || control_open) {
      // Normally the pipes close as the group dies; a process that left the
      // group (setsid) may hold them: give it drain_timeout, then let go.
      drain_timer.expires_after(options().drain_timeout);
      drain_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec || self->finished) return;
        self->pipes_abandoned = true;
        self->log(LogStream::host, spdlog::level::warn,
                  "output pipe still open after the run ended (a process left the run's "
                  "process group and keeps it); no longer reading it");
        boost::system::error_code ignored;
        if (self->output_open) self->end_output();
        self->output.close(ignored);
        self->control.close(ignored);
        self->output_open = self->control_open = false;
        self->maybe_finish();
      });
    }
    maybe_finish();
  }

  void read_output() {
    output.async_read_some(
        asio::buffer(output_buffer.get(), kOutputChunk),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (self->finished || self->owner == nullptr || !self->output_open) return;
          if (n > 0) self->on_output({self->output_buffer.get(), n});
          if (ec) {
            self->end_output();
            self->output_open = false;
            self->maybe_finish();
            return;
          }
          self->read_output();
        });
  }

  void on_output(std::string_view bytes) {
    const std::string redacted = redactor.feed(bytes);
    tail.append(redacted);
    lines.feed(redacted,
               [&](std::string_view line, std::size_t dropped) { log_output_line(line, dropped); });
  }

  // The output stream ended (or was given up): what the redactor held back,
  // then the last unterminated line.
  void end_output() {
    const std::string rest = redactor.finish();
    const auto sink = [&](std::string_view line, std::size_t dropped) {
      log_output_line(line, dropped);
    };
    tail.append(rest);
    lines.feed(rest, sink);
    lines.finish(sink);
  }

  void log_output_line(std::string_view line, std::size_t dropped) {
    if (!output_limit.admit(SteadyClock::now())) return;
    report_suppressed(output_limit, "output");
    if (dropped == 0) {
      log(LogStream::output, spdlog::level::info, line);
    } else {
      log(LogStream::output, spdlog::level::info,
          fmt::format("{}... ({} more bytes)", line, dropped));
    }
  }

  void read_control() {
    control.async_read_some(
        asio::buffer(control_buffer.get(), kControlChunk),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (self->finished || self->owner == nullptr || !self->control_open) return;
          if (n > 0) self->on_control({self->control_buffer.get(), n});
          if (ec) {
            self->control_open = false;
            self->maybe_finish();
            return;
          }
          self->read_control();
        });
  }

  void on_control(std::string_view bytes) {
    const bool had_error = decoder.error().has_value();
    for (Record& record : decoder.feed(bytes)) handle(record);
    if (!had_error && decoder.error()) {
      log(LogStream::host, spdlog::level::err,
          fmt::format("garbled control channel ({}); ignoring the rest of it (did the job "
                      "write to file descriptor 3?)",
                      *decoder.error()));
    }
  }

  void handle(Record& r) {
    // Every text a record carries is the plugin's: its secrets go first.
    if (!r.text.empty()) redactor.redact(r.text);
    switch (r.type) {
      case RecordType::log: {
        const auto level = level_of(r.arg);
        tail.append_line(fmt::format("{}{}", level_tag(level), r.text));
        if (log_limit.admit(SteadyClock::now())) {
          report_suppressed(log_limit, "log");
          if (r.text.size() > options().max_log_line) {
            r.text.resize(options().max_log_line);
            r.text += "...";
          }
          log(LogStream::plugin, level, r.text);
        }
        break;
      }
      case RecordType::heartbeat:
        last_heartbeat = SteadyClock::now();
        if (r.number >= 0) last_progress = r.number;
        if (options().on_heartbeat) {
          options().on_heartbeat(request.run_id,
                                 r.number >= 0 ? std::optional<double>(r.number) : std::nullopt);
        }
        break;
      case RecordType::metric:
        // Hostile: a bounded count of short names with finite values.
        if (r.text.empty() || r.text.size() > kMaxMetricName || !std::isfinite(r.number)) break;
        if (metrics.size() < kMaxMetrics || metrics.contains(r.text)) metrics[r.text] = r.number;
        break;
      case RecordType::message:
        message = r.text.substr(0, kMaxMessage);
        break;
      case RecordType::result:
        result_code = r.code;
        break;
      case RecordType::limit:
        child_limit = r.text;
        break;
      case RecordType::setup_error:
        setup_error = r.code != 0 ? fmt::format("{}: {}", r.text, errno_text(r.code)) : r.text;
        break;
      case RecordType::blocked_syscall:
        if (!blocked_syscall) {
          uint32_t arch = 0;
          if (r.text.size() == sizeof arch) std::memcpy(&arch, r.text.data(), sizeof arch);
          blocked_syscall = syscall_name(r.code, arch);
        }
        break;
    }
  }

  void stop(StopReason reason) {
    if (reaped || stop_reason || owner == nullptr) return;
    if (leader_exited(pidfd.native_handle())) return;  // it ended on its own; not ours to judge
    stop_reason = reason;
    timeout_timer.cancel();
    stall_timer.cancel();
    log(LogStream::host, spdlog::level::warn,
        fmt::format(
            "stopping the run ({}): asking it to cancel, SIGTERM to process group {}{}",
            describe(reason), pid,
            request.kill_grace.count() > 0
                ? fmt::format(", SIGKILL in {}", config::format_duration(request.kill_grace))
                : std::string(", SIGKILL now")));
    const char byte = 'c';
    ::send(control.native_handle(), &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    pidfd_send_signal(pidfd.native_handle(), SIGTERM);
    ::kill(-pid, SIGTERM);
    if (request.kill_grace.count() <= 0) {
      kill_group();
      return;
    }
    grace_timer.expires_after(request.kill_grace);
    grace_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->reaped || self->owner == nullptr) return;
      if (!leader_exited(self->pidfd.native_handle())) {
        self->killed_after_grace = true;
        self->log(LogStream::host, spdlog::level::warn,
                  fmt::format("still running {} after SIGTERM: SIGKILL to process group {}",
                              config::format_duration(self->request.kill_grace), self->pid));
      }
      self->kill_group();
    });
  }

  std::string describe(StopReason reason) const {
    switch (reason) {
      case StopReason::timeout:
        return fmt::format("timeout of {}", config::format_duration(request.timeout));
      case StopReason::stall:
        return fmt::format("no heartbeat for {}", config::format_duration(request.stall_timeout));
      case StopReason::replace:
        return "replaced by a newer fire";
      case StopReason::shutdown:
        return "host shutting down";
      case StopReason::cancel:
        return "cancelled by an operator";
    }
    return "stopped";
  }

  // SIGKILL to the leader, its group and its cgroup. Only while unreaped.
  void kill_group() {
    if (reaped) return;
    pidfd_send_signal(pidfd.native_handle(), SIGKILL);
    ::kill(-pid, SIGKILL);
    cgroup.kill_all();
  }

  void maybe_finish() {
    if (finished || !reaped || output_open || control_open || owner == nullptr) return;
    finished = true;
    drain_timer.cancel();
    report_suppressed(output_limit, "output");
    report_suppressed(log_limit, "log");
    owner->finish(shared_from_this());
  }

  ExitFacts facts() const {
    ExitFacts f;
    switch (exit_info.si_code) {
      case CLD_EXITED:
        f.exit_code = exit_info.si_status;
        break;
      case CLD_KILLED:
      case CLD_DUMPED:
        f.signal = exit_info.si_status;
        f.core_dumped = exit_info.si_code == CLD_DUMPED;
        break;
      default:
        break;  // not reaped by us: neither is known (status_unknown says why)
    }
    f.status_unknown = status_unknown;
    f.stop_reason = stop_reason;
    f.killed_after_grace = killed_after_grace;
    f.result_code = result_code;
    f.message = message;
    f.setup_error = setup_error;
    f.child_limit = child_limit;
    f.blocked_syscall = blocked_syscall;
    // Read only where classify() uses it: two file reads fewer per run.
    if (!returned_ok(f)) f.cgroup_limit = cgroup.limit_hit();
    f.cpu_seconds = cpu_seconds();
    f.timeout = request.timeout;
    f.stall_timeout = request.stall_timeout;
    f.kill_grace = request.kill_grace;
    f.limits = request.limits;
    return f;
  }

  std::optional<double> cpu_seconds() const {
    if (exit_info.si_pid == 0) return std::nullopt;
    auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
    return secs(usage.ru_utime) + secs(usage.ru_stime);
  }

  RunReport report() const {
    const ExitFacts f = facts();
    Classification c = classify(f);
    RunReport r;
    r.run_id = request.run_id;
    r.outcome = c.outcome;
    r.message = std::move(c.message);
    redactor.redact(r.message);  // records were redacted; this covers a cut one
    r.retryable = c.retryable;
    r.result_code = f.result_code;
    r.exit_code = f.exit_code;
    r.signal = f.signal;
    if (f.signal) r.signal_name = signal_name(*f.signal);
    r.started = started;
    r.finished = ended;
    r.output_tail = tail.tail();
    r.output_bytes = tail.total_bytes();
    r.metrics = metrics;
    r.last_progress = last_progress;
    // The whole tree where the cgroup can tell (docs/running.md), else the
    // leader with the children it waited for (wait4's rusage).
    r.cpu_seconds = f.cpu_seconds;
    if (auto tree = cgroup.cpu_usage()) {
      r.cpu_seconds = std::max(f.cpu_seconds.value_or(0), tree->count() / 1e6);
    }
    r.max_rss_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;
    if (auto peak = cgroup.memory_peak()) r.max_rss_bytes = std::max(r.max_rss_bytes, *peak);
    r.pid = pid;
    return r;
  }
};

ForkExecutor::ForkExecutor(boost::asio::io_context& io, ExecutorOptions options)
    : io_(io),
      options_(std::move(options)),
      cgroups_(std::make_shared<CgroupPool>(options_.isolation)) {
  // Now, while the caller is small: runs are forks of the server's image.
  // A failure here is reported by start(), which tries again.
  if (auto started = ForkServer::start(options_.isolation.hidden_state_dir))
    forks_ = std::move(*started);
}

ForkExecutor::~ForkExecutor() {
  for (auto& [id, run] : runs_) {
    if (!run->reaped) {
      run->kill_group();
      (void)run->server->reap(run->pid);  // blocks until the SIGKILL lands
    }
    run->cgroup.remove();
    run->owner = nullptr;
    boost::system::error_code ignored;
    run->pidfd.close(ignored);
    run->output.close(ignored);
    run->control.close(ignored);
    run->timeout_timer.cancel();
    run->stall_timer.cancel();
    run->grace_timer.cancel();
    run->drain_timer.cancel();
  }
  // Every run is dead and reaped (and a hang-up releases nobody anyway).
  for (auto& [at, gate] : gates_) {
    ::close(gate.write_fd);
    ::close(gate.read_fd);
  }
}

Result<int> ForkExecutor::start(RunRequest request, std::function<void(RunReport)> on_done) {
  request.parked = false;
  return launch(std::move(request), std::move(on_done), nullptr);
}

Result<int> ForkExecutor::park(RunRequest request, std::function<void(RunReport)> on_done,
                               TimePoint instant) {
  request.parked = true;
  Gate* gate = nullptr;
  auto [it, made] = gates_.try_emplace(instant);
  if (made) {
    int pipe[2];
    if (::pipe2(pipe, O_CLOEXEC) == 0) {
      it->second.read_fd = pipe[0];
      it->second.write_fd = pipe[1];
    }
  }
  if (it->second.write_fd >= 0) gate = &it->second;  // else: released by its byte
  std::string run_id = request.run_id;
  auto pid = launch(std::move(request), std::move(on_done), gate);
  if (pid && gate != nullptr) {
    gate->waiting.insert(run_id);
    runs_.find(run_id)->second->gate = instant;
  } else if (it->second.waiting.empty()) {
    if (it->second.read_fd >= 0) ::close(it->second.read_fd);
    if (it->second.write_fd >= 0) ::close(it->second.write_fd);
    gates_.erase(it);
  }
  return pid;
}

void ForkExecutor::release(std::span<const std::string> run_ids) {
  std::vector<Run*> released;
  for (const auto& run_id : run_ids) {
    const auto it = runs_.find(run_id);
    if (it == runs_.end() || !it->second->parked) continue;
    it->second->parked = false;
    released.push_back(it->second.get());
  }
  // A gate that nobody waits behind any more opens: one syscall wakes all
  // its runs, as a probe forked ahead would. A run whose gate still holds
  // others (or that has none) gets a byte of its own. If a process died
  // meanwhile, its exit is reported as for any run.
  std::map<TimePoint, std::vector<Run*>> by_gate;
  for (Run* run : released) {
    if (run->gate) {
      by_gate[*run->gate].push_back(run);
    } else {
      ::send(run->control.native_handle(), &kReleaseByte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
  }
  for (auto& [at, runs] : by_gate) {
    Gate& gate = gates_.at(at);
    for (Run* run : runs) {
      gate.waiting.erase(run->request.run_id);
      run->gate.reset();
    }
    if (gate.waiting.empty()) {
      // Data, not the hang-up alone: a gate closed by the daemon's death
      // releases nobody.
      const char byte = kReleaseByte;
      (void)!::write(gate.write_fd, &byte, 1);
      ::close(gate.write_fd);
      ::close(gate.read_fd);
      gates_.erase(at);
      continue;
    }
    for (Run* run : runs) {
      ::send(run->control.native_handle(), &kReleaseByte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
  }
  for (Run* run : released) run->begin();
}

void ForkExecutor::discard(std::string_view run_id) {
  const auto it = runs_.find(run_id);
  if (it == runs_.end() || !it->second->parked) return;
  Run& run = *it->second;
  run.discarded = true;
  run.parked = false;
  run.on_done = nullptr;
  // SIGKILL is pending before its gate can open: it never runs the plugin.
  run.kill_group();  // reaped and given back as it exits, as any run
  leave_gate(run);
}

void ForkExecutor::leave_gate(Run& run) {
  if (!run.gate) return;
  const auto it = gates_.find(*run.gate);
  run.gate.reset();
  if (it == gates_.end()) return;
  it->second.waiting.erase(run.request.run_id);
  if (!it->second.waiting.empty()) return;
  // Nobody left behind it (discarded or ended): closing releases nobody.
  ::close(it->second.write_fd);
  ::close(it->second.read_fd);
  gates_.erase(it);
}

Result<int> ForkExecutor::launch(RunRequest request, std::function<void(RunReport)> on_done,
                                 Gate* gate) {
  const std::string what =
      fmt::format("cannot start run {} of job {}", request.run_id, request.job);
  if (!plain_name(request.run_id)) {
    return fail(fmt::format("{}: the run id must be a plain name ([A-Za-z0-9._-])", what));
  }
  if (runs_.contains(request.run_id)) return fail(fmt::format("{}: already running", what));
  // Read now, so that a rotated secret reaches the next run with no reload;
  // a secret that cannot be read fails the start, naming it (never its value).
  for (const config::SecretConfig& secret : request.secret_sources) {
    auto value = read_secret(secret);
    if (!value) {
      for (auto& [name, v] : request.secrets) wipe(v);
      return fail(fmt::format("{}: {}", what, value.error().message));
    }
    std::string& slot = request.secrets[secret.name];
    wipe(slot);
    slot = std::move(*value);
  }
  // Any later failure: the values go with `request`'s copy in the run, or here.
  struct WipeOnFailure {
    RunRequest& request;
    ~WipeOnFailure() {
      for (auto& [name, v] : request.secrets) wipe(v);
    }
  } wipe_left{request};

  auto credentials = resolve_run_credentials(request);
  if (!credentials) return fail(fmt::format("{}: {}", what, credentials.error().message));
  if (!request.state_directory.empty()) {
    if (auto ready = prepare_state_directory(request.state_directory, *credentials); !ready) {
      return fail(fmt::format("{}: {}", what, ready.error().message));
    }
  }
  auto cgroup = cgroups_->acquire(request.run_id, request.limits);
  if (!cgroup) return fail(fmt::format("{}: {}", what, cgroup.error().message));

  int control[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control) != 0) {
    return fail(fmt::format("{}: socketpair: {}", what, errno_text(errno)));
  }
  int output[2];
  if (::pipe2(output, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(control[0]);
    ::close(control[1]);
    return fail(fmt::format("{}: pipe: {}", what, errno_text(err)));
  }

  auto run = std::make_shared<Run>(io_, options_, request.limits.output_bytes);
  run->owner = this;
  run->request = std::move(request);
  run->redactor = SecretRedactor(run->request.secrets);
  run->on_done = std::move(on_done);
  run->cgroup = std::move(*cgroup);
  if (options_.isolation.mode == CgroupMode::none && credentials->change && credentials->uid != 0 &&
      !run->request.user && run->request.dynamic_uid) {
    run->sweep_uid = credentials->uid;
  }
  auto spawned =
      spawn(*run, *credentials, control[1], output[1], gate != nullptr ? gate->read_fd : -1);
  ::close(control[1]);
  ::close(output[1]);
  if (!spawned) {
    ::close(control[0]);
    ::close(output[0]);
    run->cgroup.remove();
    return fail(fmt::format("{}: {}", what, spawned.error().message));
  }
  const pid_t pid = spawned->pid;
  const int pidfd = spawned->pidfd;
  run->pid = pid;
  run->started = wall_now();  // a parked run's: its release
  run->pidfd.assign(pidfd);
  run->output.assign(output[0]);
  run->control.assign(control[0]);
  runs_.emplace(run->request.run_id, run);
  run->watch();
  run->parked = run->request.parked;
  if (!run->parked) run->begin();
  return pid;
}

Result<ForkServer::Spawned> ForkExecutor::spawn(Run& run, const Credentials& credentials,
                                                int control_fd, int output_fd, int gate_fd) {
  const std::string& plugin = run.request.plugin_path.native();
  // Twice at most: a server that a plugin's loading broke (a thread started,
  // or it died) is replaced, and that plugin is no longer preloaded.
  for (int attempt = 0;; ++attempt) {
    if (!forks_ || !forks_->alive() || forks_->retired()) {
      auto started = ForkServer::start(options_.isolation.hidden_state_dir);
      if (!started) return std::unexpected(started.error());
      if (forks_) ++server_restarts_;  // it died or retired
      forks_ = std::move(*started);    // an old one lives on while its runs do
    }
    const bool preload = !no_preload_.contains(plugin);
    auto spawned = forks_->spawn(run.request, run.cgroup.procs_files(), credentials, control_fd,
                                 output_fd, preload, gate_fd);
    if (spawned) {
      run.server = forks_;
      return spawned;
    }
    const bool broken = !forks_->alive() || forks_->retired();
    if (!broken || !preload || attempt > 0) return spawned;
    no_preload_.insert(plugin);
    log::warn(
        fmt::format("the fork server could not keep plugin {} loaded ({}); its runs load "
                    "it themselves from now on",
                    plugin, spawned.error().message));
  }
}

void ForkExecutor::stop(std::string_view run_id, StopReason reason) {
  const auto it = runs_.find(run_id);
  if (it != runs_.end()) it->second->stop(reason);
}

void ForkExecutor::stop_all(StopReason reason) {
  for (auto& [id, run] : runs_) run->stop(reason);
}

bool ForkExecutor::uid_in_use(uid_t uid, const Run* except) const {
  for (const auto& [id, run] : runs_) {
    if (run.get() != except && !run->reaped && run->sweep_uid == uid) return true;
  }
  return false;
}

void ForkExecutor::finish(const std::shared_ptr<Run>& run) {
  leave_gate(*run);  // ended while parked
  RunReport report = run->report();
  boost::system::error_code ignored;
  run->output.close(ignored);
  run->control.close(ignored);
  runs_.erase(run->request.run_id);
  asio::post(io_, [run, report = std::move(report), pool = cgroups_]() mutable {
    if (run->on_done) run->on_done(std::move(report));
    // The group is dead: giving its cgroup back can wait until on_done has
    // started whatever comes next (its child then runs meanwhile).
    asio::post(run->pidfd.get_executor(), [run, pool] { pool->release(std::move(run->cgroup)); });
  });
}

Result<RunReport> run_blocking(RunRequest request, ExecutorOptions options) {
  asio::io_context io;
  ForkExecutor executor(io, std::move(options));
  std::optional<RunReport> report;
  auto started = executor.start(std::move(request), [&](RunReport r) { report = std::move(r); });
  if (!started) return std::unexpected(started.error());
  io.run();
  return std::move(*report);
}

}  // namespace jobhost::exec
