// pidfd system calls. glibc 2.36's <sys/pidfd.h> lacks extern "C" (fixed in
// 2.37), so these call the kernel directly. Linux 5.3 or later.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace jobhost {

// A pidfd for `pid`, or -1 with errno set.
inline int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// Sends `sig` to the process behind `pidfd`; 0, or -1 with errno set.
inline int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace jobhost
