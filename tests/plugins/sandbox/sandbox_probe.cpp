// Tries what a run's sandbox options forbid, as param `try` says, and reports
// what happened as metrics (1 = it worked, else the errno as "errno"):
//   connect    TCP to 127.0.0.1:<port> (a listener of the test, in the host's
//              network namespace)
//   interfaces the network interfaces it sees: metric "interfaces", the
//              names in the message
//   write      creates <path> and writes to it
//   tmp        /tmp's owner, mode and size: metrics "tmp_uid", "tmp_mode", "tmp_size"
//   ptrace     ptrace(PTRACE_TRACEME); with the syscall filter it never returns
//   bpf        bpf() with bad arguments; likewise
//   clone_ns   unshare(CLONE_NEWUSER); likewise
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "../runtime/common.h"

namespace {

class SandboxProbe {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    const std::string what = ctx.param_or("try", "");
    if (what == "connect") return report(ctx, try_connect(ctx));
    if (what == "interfaces") return interfaces(ctx);
    if (what == "write") return report(ctx, try_write(ctx.param_or("path", "")));
    if (what == "tmp") return tmp(ctx);
    if (what == "ptrace") return report(ctx, ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0);
    if (what == "bpf") return report(ctx, syscall(SYS_bpf, -1, nullptr, 0) == 0);
    if (what == "clone_ns") return report(ctx, unshare(CLONE_NEWUSER) == 0);
    ctx.set_message("unknown param try = \"" + what + "\"");
    return jobhost::Result::fail;
  }

 private:
  static jobhost::Result report(jobhost::Context& ctx, bool worked) {
    const int err = errno;
    ctx.metric("worked", worked ? 1 : 0);
    ctx.metric("errno", worked ? 0 : err);
    ctx.set_message(worked ? "worked" : std::string("failed: ") + std::strerror(err));
    return jobhost::Result::ok;
  }

  static bool try_connect(jobhost::Context& ctx) {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(test_plugin::param_number(ctx, "port", 0)));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const int err = errno;
    close(s);
    errno = err;
    return ok;
  }

  static bool try_write(const std::string& path) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool ok = write(fd, "sandbox\n", 8) == 8;
    const int err = errno;
    close(fd);
    errno = err;
    return ok;
  }

  static jobhost::Result interfaces(jobhost::Context& ctx) {
    struct if_nameindex* list = if_nameindex();
    if (list == nullptr) return report(ctx, false);
    int n = 0;
    std::string names;
    for (struct if_nameindex* i = list; i->if_index != 0; ++i, ++n) {
      names += (names.empty() ? "" : ",") + std::string(i->if_name);
    }
    if_freenameindex(list);
    ctx.metric("interfaces", n);
    ctx.set_message(names);
    return jobhost::Result::ok;
  }

  static jobhost::Result tmp(jobhost::Context& ctx) {
    struct stat st {};
    if (stat("/tmp", &st) != 0) return report(ctx, false);
    ctx.metric("tmp_uid", st.st_uid);
    ctx.metric("tmp_mode", st.st_mode & 07777);
    ctx.metric("uid", getuid());
    struct statvfs fs {};
    if (statvfs("/tmp", &fs) == 0) ctx.metric("tmp_size", double(fs.f_blocks) * fs.f_frsize);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(SandboxProbe, "sandbox_probe", "1.0.0",
               "test: tries what the sandbox options forbid and reports what happened")
