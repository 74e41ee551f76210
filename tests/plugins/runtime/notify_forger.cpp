// Tries to forge systemd notifications (tests/daemon/notify_daemon_test): if
// it can see NOTIFY_SOCKET, it sends "READY=1\nSTATUS=forged by ..." there,
// from a static initialiser (run in the plugin probe, a fork of the daemon)
// and from run(). The daemon takes NOTIFY_SOCKET out of its environment at
// start, so nothing it sends may arrive. Metric saw_notify_socket: whether
// run() saw the variable.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.h"

namespace {

bool forge(const char* where) {
  const char* socket_name = std::getenv("NOTIFY_SOCKET");
  if (socket_name == nullptr || *socket_name == '\0') return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t length = std::strlen(socket_name);
  if (length >= sizeof addr.sun_path) return true;
  std::memcpy(addr.sun_path, socket_name, length);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  const std::string message = std::string("READY=1\nSTATUS=forged by ") + where;
  (void)::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&addr),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length +
                                        (socket_name[0] == '@' ? 0 : 1)));
  ::close(fd);
  return true;
}

struct ForgeOnLoad {
  ForgeOnLoad() { forge("a static initialiser"); }
};
ForgeOnLoad forge_on_load;

class NotifyForger {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    ctx.metric("saw_notify_socket", forge("run()") ? 1 : 0);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(NotifyForger, "notify_forger", "1.0.0",
               "test: sends a forged READY=1 to NOTIFY_SOCKET when it can see one")
