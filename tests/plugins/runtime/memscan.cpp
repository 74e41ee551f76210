// Counts the places in its own readable memory where a string stands whose
// length and polynomial hash are given, without ever holding that string
// itself (tests/exec: a run's secrets must not reach the runs forked after
// it). params: length, hash (decimal; see memscan_hash). metric: found.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.h"

namespace {

constexpr uint64_t kBase = 257;  // hash = sum of s[i] * kBase^(len-1-i), mod 2^64
constexpr size_t kChunk = 1 << 20;
constexpr unsigned long kMaxRegion = 1ul << 30;

struct Scan {
  size_t length;
  uint64_t target;
  uint64_t top;  // kBase^(length-1)
  double found = 0;

  // Rabin-Karp over buf[0, n).
  void over(const unsigned char* buf, size_t n) {
    if (n < length) return;
    uint64_t h = 0;
    for (size_t i = 0; i < length; ++i) h = h * kBase + buf[i];
    for (size_t i = 0;; ++i) {
      if (h == target) ++found;
      if (i + length >= n) break;
      h = (h - buf[i] * top) * kBase + buf[i + length];
    }
  }
};

// Every readable mapping but the kernel's, `skip` (the scan's own buffer) and
// huge ones (AddressSanitizer's shadow memory: terabytes of zeros), read
// through /proc/self/mem in chunks that overlap by length - 1.
void scan_memory(Scan& scan, unsigned char* buf, const void* skip) {
  FILE* maps = std::fopen("/proc/self/maps", "r");
  const int mem = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  if (maps == nullptr || mem < 0) std::abort();
  char line[512];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long start = 0, end = 0;
    char perms[8] = {};
    if (std::sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[0] != 'r') continue;
    if (std::strstr(line, "[vvar") || std::strstr(line, "[vsyscall]")) continue;
    if (reinterpret_cast<unsigned long>(skip) == start || end - start > kMaxRegion) continue;
    for (unsigned long at = start; at < end;) {
      const size_t want = std::min<unsigned long>(kChunk, end - at);
      const ssize_t got = ::pread(mem, buf, want, static_cast<off_t>(at));
      if (got <= 0) break;  // not readable after all (a guard page, past a file's end)
      scan.over(buf, static_cast<size_t>(got));
      if (at + static_cast<unsigned long>(got) >= end) break;
      at += static_cast<unsigned long>(got) - (scan.length - 1);
    }
  }
  ::close(mem);
  std::fclose(maps);
}

class MemScan {
 public:
  jobhost::Result run(jobhost::Context& ctx) {
    Scan scan{static_cast<size_t>(test_plugin::param_number(ctx, "length", 0)),
              std::strtoull(ctx.param("hash").value_or("0").c_str(), nullptr, 10), 1};
    if (scan.length == 0 || scan.length > 4096) return jobhost::Result::fail;
    for (size_t i = 1; i < scan.length; ++i) scan.top *= kBase;
    void* buf = ::mmap(nullptr, kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return jobhost::Result::fail;
    scan_memory(scan, static_cast<unsigned char*>(buf), buf);
    ::munmap(buf, kChunk);
    ctx.metric("found", scan.found);
    return jobhost::Result::ok;
  }
};

}  // namespace

JOBHOST_PLUGIN(MemScan, "memscan", "1.0.0", "test: finds a string in its own memory by its hash")
