#include "daemon/notify.h"

#include <fmt/core.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/time.h"
#include "ledger/records.h"

namespace jobhost::daemon {
namespace {

constexpr const char* kSocketVar = "NOTIFY_SOCKET";
constexpr const char* kWatchdogUsecVar = "WATCHDOG_USEC";
constexpr const char* kWatchdogPidVar = "WATCHDOG_PID";

template <typename T>
std::optional<T> parse_whole(const char* text) {
  if (text == nullptr) return std::nullopt;
  const std::string_view s(text);
  T value{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// The address of `socket` ("/path" or "@abstract"), or nullopt when it is
// neither or too long for sun_path.
std::optional<std::pair<sockaddr_un, socklen_t>> notify_address(std::string_view socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() < 2 || (socket[0] != '/' && socket[0] != '@') ||
      socket.size() > sizeof addr.sun_path - (socket[0] == '/' ? 1 : 0)) {
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  // An abstract name starts with a NUL byte and is exactly as long as given.
  if (socket[0] == '@') addr.sun_path[0] = '\0';
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size() +
                                             (socket[0] == '/' ? 1 : 0));
  return std::pair{addr, length};
}

// `text` as systemd takes a STATUS=: valid UTF-8 (it drops one that is not;
// invalid bytes become U+FFFD), control characters (newlines) as spaces.
std::string one_utf8_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char b = byte(i);
    if (b < 0x80) {
      out += (b < 0x20 || b == 0x7f) ? ' ' : static_cast<char>(b);
      ++i;
      continue;
    }
    // The length of the sequence and the range of its second byte (no
    // overlong forms, no surrogates, nothing above U+10FFFF).
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3;
      if (b == 0xE0) low = 0xA0;
      if (b == 0xED) high = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4;
      if (b == 0xF0) low = 0x90;
      if (b == 0xF4) high = 0x8F;
    }
    bool valid =
        length > 0 && i + length <= text.size() && byte(i + 1) >= low && byte(i + 1) <= high;
    for (std::size_t k = 2; valid && k < length; ++k) {
      valid = byte(i + k) >= 0x80 && byte(i + k) <= 0xBF;
    }
    if (!valid) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_interval(const char* usec,
                                                           const char* watchdog_pid, pid_t pid) {
  const auto interval = parse_whole<std::uint64_t>(usec);
  if (!interval || *interval == 0 || *interval > std::uint64_t(INT64_MAX)) return std::nullopt;
  if (watchdog_pid != nullptr) {
    const auto owner = parse_whole<pid_t>(watchdog_pid);
    if (!owner || *owner != pid) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::int64_t>(*interval));
}

NotifyTarget take_notify_target() {
  NotifyTarget target;
  if (const char* socket = std::getenv(kSocketVar)) target.socket = socket;
  target.watchdog =
      watchdog_interval(std::getenv(kWatchdogUsecVar), std::getenv(kWatchdogPidVar), ::getpid());
  for (const char* name : {kSocketVar, kWatchdogUsecVar, kWatchdogPidVar}) ::unsetenv(name);
  if (!target.socket.empty() && !notify_address(target.socket)) {
    log::warn(fmt::format(
        "NOTIFY_SOCKET \"{}\" is neither an absolute path nor an @abstract name of at most {} "
        "bytes: nothing is sent to the service manager (READY=1, WATCHDOG=1)",
        target.socket, sizeof(sockaddr_un::sun_path) - 1));
    target.socket.clear();
  }
  if (target.socket.empty()) target.watchdog.reset();  // nowhere to ping
  return target;
}

std::string status_line(ServicePhase phase, const ServiceFigures& figures,
                        std::string_view last_reload) {
  std::string out;
  if (phase == ServicePhase::stopping) {
    out = fmt::format("stopping: {} in flight", plural(figures.runs_in_flight, "run", "runs"));
  } else {
    out = fmt::format(
        "{}{} enabled, {}, {} in flight", phase == ServicePhase::reloading ? "reloading; " : "",
        plural(figures.jobs, "job", "jobs"), plural(figures.plugins, "plugin", "plugins"),
        plural(figures.runs_in_flight, "run", "runs"));
  }
  if (figures.fenced) out += "; fenced: this host holds no lease and claims no fire";
  if (!figures.ledger_refusing_since.empty()) {
    out += fmt::format("; ledger refusing writes since {}", figures.ledger_refusing_since);
  }
  if (figures.ledger_kept > 0) {
    out += fmt::format("; {} kept in memory for the ledger",
                       plural(figures.ledger_kept, "record", "records"));
  }
  if (phase != ServicePhase::stopping && !last_reload.empty()) {
    out += "; last reload ";
    out += last_reload;
  }
  out = one_utf8_line(out);
  if (out.size() > kMaxStatus) {
    std::size_t cut = kMaxStatus - 3;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
      --cut;  // whole characters
    out.resize(cut);
    out += "...";
  }
  return out;
}

ServiceNotifier::ServiceNotifier(boost::asio::io_context& io, NotifyTarget target, Figures figures)
    : target_(std::move(target)),
      figures_(std::move(figures)),
      watchdog_timer_(io),
      status_timer_(io) {}

void ServiceNotifier::send(std::string_view message, std::chrono::milliseconds wait) {
  if (!enabled()) return;
  const auto address = notify_address(target_.socket);
  if (!address) return;  // take_notify_target refused it already
  // A full queue makes sendto wait for room up to SO_SNDTIMEO, or fail at
  // once with MSG_DONTWAIT: a manager that does not read holds the loop for
  // at most `wait`.
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ssize_t sent = -1;
  int err = errno;
  if (fd >= 0) {
    int flags = MSG_NOSIGNAL;
    if (wait.count() > 0) {
      const timeval timeout{static_cast<time_t>(wait.count() / 1000),
                            static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    } else {
      flags |= MSG_DONTWAIT;
    }
    sent = ::sendto(fd, message.data(), message.size(), flags,
                    reinterpret_cast<const sockaddr*>(&address->first), address->second);
    err = errno;
    ::close(fd);
  }
  if (sent == static_cast<ssize_t>(message.size())) {
    if (failing_) log::info("NOTIFY_SOCKET: messages to the service manager go through again");
    failing_ = false;
    return;
  }
  if (failing_) return;  // logged once per outage
  failing_ = true;
  log::warn(fmt::format(
      "cannot send to the service manager on NOTIFY_SOCKET {} ({}); jobhost goes on without "
      "it, and says so once",
      target_.socket, sent < 0 ? std::strerror(err) : "short send"));
}

void ServiceNotifier::send_state(std::string_view prefix) {
  last_status_ = status_line(phase_, figures_(), last_reload_);
  send(fmt::format("{}STATUS={}", prefix, last_status_), kStateWait);
}

void ServiceNotifier::ready() {
  if (!enabled() || ready_sent_) return;
  ready_sent_ = true;
  send_state("READY=1\n");
  if (target_.watchdog) ping();
  refresh_later();
}

void ServiceNotifier::reloading() {
  if (!enabled()) return;
  phase_ = ServicePhase::reloading;
  if (!ready_sent_) return;  // READY=1 will say it
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000 +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1'000;
  send_state(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\n", usec));
}

void ServiceNotifier::reloaded(bool ok, std::string_view detail) {
  if (!enabled() || phase_ == ServicePhase::stopping) return;
  phase_ = ServicePhase::ready;
  const auto at = ledger::format_utc(std::chrono::floor<std::chrono::seconds>(wall_now()));
  last_reload_ = ok ? fmt::format("{}: applied", at) : fmt::format("{}: rejected: {}", at, detail);
  if (ready_sent_) send_state("READY=1\n");
}

void ServiceNotifier::stopping() {
  if (!enabled()) return;
  phase_ = ServicePhase::stopping;
  send_state("STOPPING=1\n");
}

void ServiceNotifier::ping() {
  send("WATCHDOG=1");
  // Half the interval, as sd_watchdog_enabled(3) advises, within [1 ms, 1 h]
  // (a tiny WATCHDOG_USEC must not spin the loop, a huge one overflow the
  // timer); counted from this ping, so a loop that was held pings late
  // rather than in a burst.
  const std::chrono::microseconds half = *target_.watchdog / 2;
  watchdog_timer_.expires_after(std::clamp<std::chrono::microseconds>(
      half, std::chrono::milliseconds(1), std::chrono::hours(1)));
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) ping();
  });
}

void ServiceNotifier::refresh() {
  const std::string line = status_line(phase_, figures_(), last_reload_);
  if (line != last_status_) {
    last_status_ = line;
    send("STATUS=" + line);
  }
  refresh_later();
}

void ServiceNotifier::refresh_later() {
  status_timer_.expires_after(kStatusRefresh);
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) refresh();
  });
}

}  // namespace jobhost::daemon
