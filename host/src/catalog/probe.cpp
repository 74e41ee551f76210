#include "catalog/probe.h"

#include <elf.h>
#include <fcntl.h>
#include <jobhost/plugin.h>
#include <link.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dlfcn.h>
#include <fmt/core.h>
#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "catalog/text.h"

namespace jobhost::catalog {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The probe child writes its messages to this descriptor.
constexpr int kChildOutFd = 3;

// The wire between probe child and parent: one JSON object per line.
//   {"stage": "load" | "entry" | "descriptor"}   about to do that (a crash names it)
//   {"error": "load", "message": <dlerror text>} | {"error": "no_entry"}
//   | {"error": "not_a_function"} | {"error": "null_descriptor"}
//   {"descriptor": {...}}                           the fields read
constexpr std::string_view kStageLoad = "load";
constexpr std::string_view kStageEntry = "entry";
constexpr std::string_view kStageDescriptor = "descriptor";

// ---- the child ------------------------------------------------------------------

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void send(const json& message) {
  write_all(kChildOutFd, message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

// A clean slate, as for every child: own process group, dies with the parent,
// default signal dispositions (so a crash is reported as the signal, not
// caught by a test framework's or a sanitizer's handler), empty signal mask,
// stdin/stdout on /dev/null (a chatty initialiser must not corrupt the host's
// output), no inherited descriptors but stderr and the report pipe.
void prepare_child(int out_fd, pid_t parent) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // EINVAL for some: fine
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC); null_fd >= 0) {
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(null_fd, STDOUT_FILENO);
  }
  if (out_fd != kChildOutFd) ::dup2(out_fd, kChildOutFd);
  if (::close_range(kChildOutFd + 1, ~0U, 0) != 0) {
    for (int fd = kChildOutFd + 1; fd < 4096; ++fd) ::close(fd);
  }
}

// The ELF symbol type of the symbol at `address`, or -1 when unknown.
int symbol_type(void* address) {
  Dl_info info{};
  ElfW(Sym)* sym = nullptr;
  if (::dladdr1(address, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) == 0 || !sym) {
    return -1;
  }
  return ELF64_ST_TYPE(sym->st_info);  // the same bits in ELF32 and ELF64
}

json c_string(const char* s) {
  if (!s) return nullptr;
  return std::string(s, ::strnlen(s, kMaxDescriptorString + 1));
}

// The text dlerror() gave, out of Boost.DLL's exception message
// "...(dlerror system message: TEXT): <error code message>".
std::string dlerror_text(const std::string& what) {
  constexpr std::string_view kMarker = "(dlerror system message: ";
  const auto begin = what.find(kMarker);
  if (begin == std::string::npos) return what;
  const auto start = begin + kMarker.size();
  const auto end = what.rfind(')');
  return what.substr(start, end == std::string::npos || end < start ? end : end - start);
}

[[noreturn]] void run_child(const std::filesystem::path& so) {
  try {
    namespace dll = boost::dll;
    send({{"stage", kStageLoad}});
    // Never unloaded: _exit() below must not run the plugin's destructors.
    auto* lib = new dll::shared_library(dll::fs::path(so.string()),
                                        dll::load_mode::rtld_now | dll::load_mode::rtld_local);
    if (!lib->has(JOBHOST_ENTRY_SYMBOL)) {
      send({{"error", "no_entry"}});
      ::_exit(0);
    }
    const int type = symbol_type(&lib->get<char>(JOBHOST_ENTRY_SYMBOL));
    if (type >= 0 && type != STT_FUNC && type != STT_GNU_IFUNC) {
      send({{"error", "not_a_function"}});
      ::_exit(0);
    }
    auto& entry = lib->get<const jobhost_plugin*()>(JOBHOST_ENTRY_SYMBOL);
    send({{"stage", kStageEntry}});
    const jobhost_plugin* found = entry();
    if (!found) {
      send({{"error", "null_descriptor"}});
      ::_exit(0);
    }
    send({{"stage", kStageDescriptor}});
    // Copy only the bytes both sides know into a zeroed struct (ABI rule 2).
    jobhost_plugin d{};
    const std::uint32_t size = found->struct_size;
    std::memcpy(&d, found, std::min<std::size_t>(size, sizeof d));
    d.struct_size = size;
    json fields = {{"struct_size", d.struct_size},
                   {"abi_major", d.abi_major},
                   {"abi_minor", d.abi_minor},
                   {"init", d.init != nullptr},
                   {"run", d.run != nullptr},
                   {"shutdown", d.shutdown != nullptr},
                   {"name", nullptr},
                   {"version", nullptr},
                   {"description", nullptr}};
    if (d.abi_major == JOBHOST_ABI_MAJOR) {  // another major may lay strings out differently
      fields["name"] = c_string(d.name);
      fields["version"] = c_string(d.version);
      fields["description"] = c_string(d.description);
    }
    send({{"descriptor", fields}});
  } catch (const std::exception& e) {
    send({{"error", "load"}, {"message", dlerror_text(e.what())}});
  } catch (...) {
    send({{"error", "load"}, {"message", "unknown error"}});
  }
  ::_exit(0);
}

// ---- the parent -----------------------------------------------------------------

// True once a complete answer line ({"descriptor":...} or {"error":...}) has arrived.
bool has_final_message(std::string_view output) {
  std::size_t start = 0;
  for (auto end = output.find('\n'); end != std::string_view::npos;
       start = end + 1, end = output.find('\n', start)) {
    const auto line = output.substr(start, end - start);
    if (line.starts_with("{\"descriptor\":") || line.starts_with("{\"error\":")) return true;
  }
  return false;
}

// Reads the child's messages until it sends its answer, closes the pipe, or
// the deadline passes. Returns false on timeout.
bool read_report(int fd, Clock::time_point deadline, std::string& output) {
  char buf[4096];
  while (!has_final_message(output)) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 60000)));
    if (ready < 0 && errno != EINTR) return true;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return true;  // EOF: the child is gone (or closed the pipe)
    output.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

// Waits (without reaping) until the child has exited or the deadline passes.
bool wait_exited(pid_t pid, Clock::time_point deadline) {
  while (true) {
    siginfo_t info{};
    const int rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (rc == 0 && info.si_pid == pid) return true;
    if (rc < 0 && errno != EINTR) return true;  // not ours any more: nothing to wait for
    if (Clock::now() >= deadline) return false;
    ::poll(nullptr, 0, 1);
  }
}

// Kills whatever is left of the child's process group (it is still unreaped,
// so the group id cannot have been reused), then reaps the child.
int kill_group_and_reap(pid_t pid) {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string signal_name(int sig) {
  if (const char* abbrev = ::sigabbrev_np(sig)) return fmt::format("SIG{}", abbrev);
  return fmt::format("signal {}", sig);
}

Descriptor descriptor_from(const json& j) {
  Descriptor d;
  d.struct_size = j.value("struct_size", std::uint32_t{0});
  d.abi_major = j.value("abi_major", std::uint16_t{0});
  d.abi_minor = j.value("abi_minor", std::uint16_t{0});
  d.has_init = j.value("init", false);
  d.has_run = j.value("run", false);
  d.has_shutdown = j.value("shutdown", false);
  for (auto [key, field] : {std::pair{"name", &d.name}, std::pair{"version", &d.version},
                            std::pair{"description", &d.description}}) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) *field = it->get<std::string>();
  }
  return d;
}

std::unexpected<ProbeFailure> rejected(std::string reason, bool transient = false) {
  return std::unexpected(ProbeFailure{std::move(reason), transient});
}

}  // namespace

ProbeResult interpret_probe_report(const ProbeReport& report, Duration timeout,
                                   std::string_view probed_path, std::string_view shown_name) {
  std::string stage;
  std::size_t line_start = 0;
  while (line_start < report.output.size()) {
    auto line_end = report.output.find('\n', line_start);
    if (line_end == std::string::npos) break;  // a torn last line: the child died mid-write
    const json message =
        json::parse(report.output.substr(line_start, line_end - line_start), nullptr, false);
    line_start = line_end + 1;
    if (!message.is_object()) continue;
    if (auto it = message.find("stage"); it != message.end() && it->is_string()) {
      stage = it->get<std::string>();
    } else if (auto d = message.find("descriptor"); d != message.end() && d->is_object()) {
      return descriptor_from(*d);
    } else if (auto e = message.find("error"); e != message.end() && e->is_string()) {
      const std::string error = e->get<std::string>();
      if (error == "no_entry") {
        return rejected(
            "missing entry symbol: the file does not export jobhost_plugin_v1; use "
            "JOBHOST_PLUGIN(...) in C++, or define `JOBHOST_EXPORT const jobhost_plugin* "
            "jobhost_plugin_v1(void)` in C (built with -fvisibility=hidden it needs "
            "JOBHOST_EXPORT)");
      }
      if (error == "not_a_function") {
        return rejected(
            "jobhost_plugin_v1 is exported as data, not as a function: it must be `const "
            "jobhost_plugin* jobhost_plugin_v1(void)` returning a pointer to a static descriptor");
      }
      if (error == "null_descriptor") {
        return rejected(
            "jobhost_plugin_v1() returned NULL: return a pointer to a static jobhost_plugin");
      }
      return rejected(explain_load_error(message.value("message", std::string("unknown error")),
                                         probed_path, shown_name));
    }
  }

  // No answer: it crashed, exited or hung. Say where.
  std::string where = "while loading";
  std::string hint = " — probably in a static initialiser";
  if (stage == kStageEntry) {
    where = "in jobhost_plugin_v1()";
    hint.clear();
  } else if (stage == kStageDescriptor) {
    where = "while its descriptor was read";
    hint =
        ": name, version and description must be NULL or NUL-terminated strings that live as "
        "long as the library";
  } else if (stage.empty()) {
    where = "while the probe started";
    hint.clear();
  }
  if (!report.wait_status) {
    return rejected(
        fmt::format("hung {}: no answer within {}{}; the probe was killed", where,
                    format_millis(timeout.count()),
                    stage == kStageLoad ? " — probably a static initialiser that blocks" : ""),
        true);
  }
  const int status = *report.wait_status;
  if (WIFSIGNALED(status)) {
    if (WTERMSIG(status) == SIGBUS && stage == kStageLoad) {
      hint = " — the file may have changed while it was loaded, or a static initialiser crashed";
    }
    return rejected(fmt::format("crashed {} ({}){}", where, signal_name(WTERMSIG(status)), hint));
  }
  if (WIFEXITED(status)) {
    return rejected(fmt::format(
        "exited with status {} {}, without an answer: something in it called exit() (or a "
        "sanitizer stopped it; see the host's stderr)",
        WEXITSTATUS(status), where));
  }
  return rejected(fmt::format("the probe stopped {} without an answer", where));
}

std::expected<ProbeChild, ProbeFailure> start_probe(const std::filesystem::path& so) {
  {
    std::ifstream in(so, std::ios::binary);
    if (!in) return rejected(fmt::format("cannot be read: {}", std::strerror(errno)));
    const std::string content{std::istreambuf_iterator<char>(in), {}};
    if (in.bad()) return rejected("cannot be read: read error");
    if (auto ok = check_elf_header(content); !ok) return rejected(ok.error().message);
  }

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return rejected(fmt::format("could not be probed: pipe: {}", std::strerror(errno)), true);
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return rejected(fmt::format("could not be probed: fork: {}", std::strerror(err)), true);
  }
  if (pid == 0) {
    prepare_child(fds[1], parent);
    run_child(so);
  }
  ::close(fds[1]);
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  return ProbeChild{pid, fds[0]};
}

bool probe_answered(std::string_view output) {
  return has_final_message(output);
}

ProbeResult probe(const std::filesystem::path& so, Duration timeout, std::string_view shown_name) {
  const std::string shown = shown_name.empty() ? so.string() : std::string(shown_name);
  auto child = start_probe(so);
  if (!child) return std::unexpected(child.error());
  const pid_t pid = child->pid;

  const auto deadline = Clock::now() + timeout;
  ProbeReport report;
  const bool answered = read_report(child->output_fd, deadline, report.output);
  ::close(child->output_fd);
  if (!answered) {
    kill_group_and_reap(pid);
  } else if (has_final_message(report.output) || wait_exited(pid, deadline)) {
    report.wait_status = kill_group_and_reap(pid);
  } else {
    kill_group_and_reap(pid);  // closed the pipe but stayed alive: a hang as well
  }
  return interpret_probe_report(report, timeout, so.string(), shown);
}

}  // namespace jobhost::catalog
