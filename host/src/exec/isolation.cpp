#include "exec/isolation.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <utility>

namespace jobhost::exec {

namespace fs = std::filesystem;

namespace {

// The controllers a cgroup mode needs: memory (OOM containment) and pids
// (fork bombs). cpu is not needed: cpu_time is a total, not a bandwidth.
const std::vector<std::string> kNeededControllers = {"memory", "pids"};

constexpr int kKillRounds = 100;      // cgroup.procs sweeps, ~1 ms apart
constexpr int kRemoveAttempts = 200;  // rmdir tries, ~1 ms apart
constexpr std::size_t kMaxRunIdLength = 200;
// A cgroup still charged with more than this much memory that cannot be
// reclaimed (tmpfs and shared memory the run left, anonymous memory) after
// its run is removed rather than reused: it would count against the next
// run's limit. Page cache does not count: the kernel reclaims it at the limit.
constexpr std::uint64_t kMaxRecycledMemory = 4ull << 20;

std::string errno_text(int err) {
  return std::strerror(err);
}

// Reads a small (pseudo-)file whole; nullopt when it cannot be opened or read.
std::optional<std::string> read_text(const std::string& path) noexcept {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    try {
      text.append(buf, static_cast<std::size_t>(n));
    } catch (...) {
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return text;
}

// Writes `text` to an existing file with one write(2), as cgroupfs wants.
// Returns 0 or errno. Async-signal-safe.
int write_text(const char* path, const char* text, std::size_t len) noexcept {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n;
  do {
    n = ::write(fd, text, len);
  } while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : (static_cast<std::size_t>(n) == len ? 0 : EIO);
  ::close(fd);
  return err;
}

int write_text(const std::string& path, std::string_view text) noexcept {
  return write_text(path.c_str(), text.data(), text.size());
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n' && text[i] != '\t') ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

std::set<std::string> controllers_in(const fs::path& file) {
  auto text = read_text(file.string());
  if (!text) return {};
  auto words = split_words(*text);
  return {words.begin(), words.end()};
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// The value after `key` in a flat-keyed file ("oom_kill 3\nmax 0\n").
std::optional<std::uint64_t> keyed_value(std::string_view text, std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      std::string_view num = line.substr(key.size() + 1);
      std::uint64_t value = 0;
      auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
      if (ec == std::errc()) return value;
    }
  }
  return std::nullopt;
}

// A single-value file ("123456\n").
std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> keyed_value_in(const std::string& file, std::string_view key) {
  auto text = read_text(file);
  if (!text) return std::nullopt;
  return keyed_value(*text, key);
}

// /proc/self/cgroup: the process's path in the v2 tree and in each v1 controller.
struct SelfCgroups {
  std::string v2;
  std::map<std::string, std::string> v1;  // controller -> path
};

SelfCgroups parse_self_cgroup(std::string_view text) {
  SelfCgroups self;
  for (const auto& line : split_words(text)) {  // paths contain no whitespace
    auto c1 = line.find(':');
    auto c2 = c1 == std::string::npos ? std::string::npos : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (line.substr(0, c1) == "0" && controllers.empty()) {
      self.v2 = path;
      continue;
    }
    std::size_t start = 0;
    while (start <= controllers.size()) {
      auto comma = controllers.find(',', start);
      if (comma == std::string::npos) comma = controllers.size();
      if (comma > start) self.v1[controllers.substr(start, comma - start)] = path;
      start = comma + 1;
    }
  }
  return self;
}

// The directory of the process's own cgroup inside a hierarchy mounted at
// `mount`, when it exists there (it does not when the mount shows only a
// sub-tree without a cgroup namespace); else the mount itself.
fs::path own_base(const fs::path& mount, const std::string& own_path) {
  if (own_path.empty() || own_path == "/") return mount;
  fs::path rel = fs::path(own_path).relative_path();
  for (const auto& part : rel) {
    if (part == "..") return mount;
  }
  std::error_code ec;
  fs::path dir = mount / rel;
  if (fs::is_directory(dir, ec)) return dir;
  return mount;
}

bool valid_cgroup_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxRunIdLength || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

// mkdir that accepts an existing directory. Returns 0 or errno; `created`
// says whether this call made it.
int make_dir(const fs::path& dir, bool* created = nullptr) {
  if (::mkdir(dir.c_str(), 0755) == 0) {
    if (created) *created = true;
    return 0;
  }
  if (created) *created = false;
  if (errno == EEXIST) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return ENOTDIR;
  }
  return errno;
}

// Sub-directory names of `dir` (child cgroups), without allocation failures
// escaping.
std::vector<std::string> child_dirs(const std::string& dir) noexcept {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  try {
    while (dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir =
            ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      }
      if (is_dir) names.emplace_back(name);
    }
  } catch (...) {
  }
  ::closedir(d);
  return names;
}

// Sends SIGKILL to every pid listed in <dir>/cgroup.procs and in its child
// cgroups. Returns how many pids were listed.
std::size_t signal_cgroup_tree(const std::string& dir) noexcept {
  std::size_t listed = 0;
  try {
    if (auto procs = read_text(dir + "/cgroup.procs")) {
      const pid_t self = ::getpid();
      for (const auto& word : split_words(*procs)) {
        pid_t pid = 0;
        auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), pid);
        // Never signal init, ourselves, or a process group by accident.
        if (ec != std::errc() || pid <= 1 || pid == self) continue;
        ++listed;
        ::kill(pid, SIGKILL);
      }
    }
    for (const auto& child : child_dirs(dir)) listed += signal_cgroup_tree(dir + "/" + child);
  } catch (...) {
  }
  return listed;
}

// SIGKILLs everything in the cgroup tree: cgroup.kill (atomic, sees forks in
// flight, covers the sub-tree) when `kill_file` is set and takes the write,
// else sweeps of cgroup.procs until they are empty. Processes with SIGKILL
// pending cannot fork, so sweeps converge.
void kill_cgroups(const std::vector<std::string>& dirs, const std::string& kill_file) noexcept {
  if (!kill_file.empty() && write_text(kill_file, "1") == 0) return;
  for (int round = 0; round < kKillRounds; ++round) {
    std::size_t listed = 0;
    for (const auto& dir : dirs) listed += signal_cgroup_tree(dir);
    if (listed == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// rmdir of a cgroup and its child cgroups, deepest first. Returns 0 or errno
// (ENOENT counts as removed).
int remove_cgroup_tree(const std::string& dir) noexcept {
  for (const auto& child : child_dirs(dir)) {
    try {
      int err = remove_cgroup_tree(dir + "/" + child);
      if (err != 0) return err;
    } catch (...) {
      return ENOMEM;
    }
  }
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return 0;
  return errno;
}

// Removes each directory of `dirs` that it can; on EBUSY (processes still
// exiting) keeps trying, killing again now and then. Leaves in `dirs` what is
// left and returns the errno of the last failure (0 when all are gone).
int remove_cgroups(std::vector<std::string>& dirs, const std::string& kill_file) noexcept {
  int last_err = 0;
  for (int attempt = 0; attempt < kRemoveAttempts && !dirs.empty(); ++attempt) {
    if (attempt > 0 && attempt % 20 == 0) kill_cgroups(dirs, kill_file);
    bool busy = false;
    for (auto it = dirs.begin(); it != dirs.end();) {
      int err = remove_cgroup_tree(*it);
      if (err == 0) {
        it = dirs.erase(it);
        continue;
      }
      last_err = err;
      if (err == EBUSY) busy = true;
      ++it;
    }
    if (!busy) break;  // not a cgroupfs, or not ours to remove: retrying won't help
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return dirs.empty() ? 0 : last_err;
}

// Result of trying one mode during detection: the paths, or why it failed.
struct V2Attempt {
  fs::path parent;
  bool kill = false;
  std::string why_not;
};

// Makes <base>/<name> with the needed controllers enabled for its children.
V2Attempt try_v2_base(const fs::path& base, const std::string& name) {
  V2Attempt out;
  auto available = controllers_in(base / "cgroup.controllers");
  std::vector<std::string> missing;
  for (const auto& c : kNeededControllers) {
    if (!available.count(c)) missing.push_back(c);
  }
  if (!missing.empty()) {
    out.why_not = "cgroup v2 at " + base.string() + " offers no " + join(missing, "/") +
                  " controller (delegate them to jobhost, e.g. systemd Delegate=yes)";
    return out;
  }
  auto enable = [&](const fs::path& dir) -> std::string {
    auto enabled = controllers_in(dir / "cgroup.subtree_control");
    std::string request;
    for (const auto& c : kNeededControllers) {
      if (!enabled.count(c)) request += (request.empty() ? "+" : " +") + c;
    }
    if (request.empty()) return {};
    int err = write_text((dir / "cgroup.subtree_control").string(), request);
    if (err == 0) return {};
    if (err == EBUSY) {
      return "cannot enable " + join(kNeededControllers, "/") + " below " + dir.string() +
             ": it holds processes (cgroup v2 no-internal-process rule; under systemd use "
             "Delegate=yes with DelegateSubgroup=supervisor)";
    }
    return "cannot enable " + join(kNeededControllers, "/") + " in " +
           (dir / "cgroup.subtree_control").string() + ": " + errno_text(err);
  };
  if (auto why = enable(base); !why.empty()) {
    out.why_not = std::move(why);
    return out;
  }
  fs::path parent = base / name;
  bool created = false;
  if (int err = make_dir(parent, &created); err != 0) {
    out.why_not = "cannot create " + parent.string() + ": " + errno_text(err);
    return out;
  }
  auto inherited = controllers_in(parent / "cgroup.controllers");
  bool complete = std::all_of(kNeededControllers.begin(), kNeededControllers.end(),
                              [&](const std::string& c) { return inherited.count(c) > 0; });
  std::string why = complete ? enable(parent)
                             : parent.string() + " did not receive the " +
                                   join(kNeededControllers, "/") + " controllers";
  if (!why.empty()) {
    if (created) ::rmdir(parent.c_str());
    out.why_not = std::move(why);
    return out;
  }
  std::error_code ec;
  out.parent = parent;
  out.kill = fs::exists(parent / "cgroup.kill", ec);
  return out;
}

// The v2 mount under `root`: root itself (unified) or root/unified (hybrid).
std::optional<fs::path> find_v2_mount(const fs::path& root) {
  std::error_code ec;
  if (fs::exists(root / "cgroup.controllers", ec)) return root;
  if (fs::exists(root / "unified" / "cgroup.controllers", ec)) return root / "unified";
  return std::nullopt;
}

V2Attempt try_v2(const fs::path& mount, const std::string& own, const std::string& name) {
  fs::path base = own_base(mount, own);
  V2Attempt first = try_v2_base(base, name);
  if (!first.parent.empty() || base == mount) return first;
  // The host sits in its own (delegated) cgroup, which then holds processes:
  // make the parent a sibling of it instead (systemd's DelegateSubgroup layout).
  V2Attempt second = try_v2_base(base.parent_path(), name);
  if (!second.parent.empty()) return second;
  first.why_not += "; " + second.why_not;
  return first;
}

struct V1Attempt {
  fs::path memory_parent;
  fs::path pids_parent;
  std::string why_not;
};

V1Attempt try_v1(const fs::path& root, const SelfCgroups& self, const std::string& name) {
  V1Attempt out;
  std::vector<fs::path> created_dirs;
  for (const std::string controller : {"memory", "pids"}) {
    fs::path mount = root / controller;
    std::error_code ec;
    if (!fs::exists(mount / "cgroup.procs", ec)) {
      out.why_not = "no cgroup v1 " + controller + " hierarchy at " + mount.string();
      break;
    }
    auto it = self.v1.find(controller);
    fs::path parent = own_base(mount, it == self.v1.end() ? std::string() : it->second) / name;
    bool created = false;
    if (int err = make_dir(parent, &created); err != 0) {
      out.why_not = "cannot create " + parent.string() + ": " + errno_text(err) +
                    " (jobhost needs write access to the cgroup v1 " + controller + " tree)";
      break;
    }
    if (created) created_dirs.push_back(parent);
    (controller == "memory" ? out.memory_parent : out.pids_parent) = parent;
  }
  if (!out.why_not.empty()) {
    for (const auto& dir : created_dirs) ::rmdir(dir.c_str());
    out.memory_parent.clear();
    out.pids_parent.clear();
  }
  return out;
}

// In v1 mode, a controller-less v2 cgroup still gives atomic killing
// (cgroup.kill) and a CPU total (cpu.stat): make <own v2>/<name> if possible.
std::optional<fs::path> try_v2_kill_only(const fs::path& mount, const std::string& own,
                                         const std::string& name) {
  fs::path parent = own_base(mount, own) / name;
  bool created = false;
  if (make_dir(parent, &created) != 0) return std::nullopt;
  std::error_code ec;
  if (fs::exists(parent / "cgroup.kill", ec)) return parent;
  if (created) ::rmdir(parent.c_str());
  return std::nullopt;
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() < 11 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

unsigned long parse_id(std::string_view s) {
  unsigned long value = 0;
  std::from_chars(s.data(), s.data() + s.size(), value);
  return value;
}

}  // namespace

std::string_view to_string(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::v2:
      return "v2";
    case CgroupMode::v1:
      return "v1";
    case CgroupMode::none:
      return "none";
  }
  return "none";
}

IsolationCaps detect_isolation(const fs::path& cgroup_root) {
  DetectOptions options;
  options.cgroup_root = cgroup_root;
  return detect_isolation(options);
}

IsolationCaps detect_isolation(const DetectOptions& options) {
  IsolationCaps caps;
  const std::string self_text =
      options.self_cgroup ? *options.self_cgroup : read_text("/proc/self/cgroup").value_or("");
  const SelfCgroups self = parse_self_cgroup(self_text);
  const fs::path& root = options.cgroup_root;
  const std::string& name = options.parent_name;

  std::string v2_why_not;
  auto v2_mount = find_v2_mount(root);
  if (!valid_cgroup_name(name)) {
    caps.description = "no cgroups: invalid parent cgroup name \"" + name + "\"";
    return caps;
  }
  if (v2_mount) {
    V2Attempt v2 = try_v2(*v2_mount, self.v2, name);
    if (!v2.parent.empty()) {
      caps.mode = CgroupMode::v2;
      caps.v2_parent = v2.parent;
      caps.v2_kill = v2.kill;
      caps.description = "cgroup v2: each run in its own cgroup under " + v2.parent.string() +
                         " (memory.max, pids.max), killed with " +
                         (v2.kill ? "cgroup.kill" : "SIGKILL to cgroup.procs");
      return caps;
    }
    v2_why_not = v2.why_not;
  } else {
    v2_why_not = "no cgroup v2 tree at " + root.string();
  }

  V1Attempt v1 = try_v1(root, self, name);
  if (v1.why_not.empty()) {
    caps.mode = CgroupMode::v1;
    caps.memory_parent = v1.memory_parent;
    caps.pids_parent = v1.pids_parent;
    std::optional<fs::path> kill_parent;
    if (v2_mount) kill_parent = try_v2_kill_only(*v2_mount, self.v2, name);
    if (kill_parent) {
      caps.v2_parent = *kill_parent;
      caps.v2_kill = true;
    }
    caps.description = "cgroup v1: each run in its own cgroup under " + v1.memory_parent.string() +
                       " (memory.limit_in_bytes) and " + v1.pids_parent.string() +
                       " (pids.max), killed with " +
                       (kill_parent ? "cgroup.kill via " + kill_parent->string()
                                    : std::string("SIGKILL to cgroup.procs")) +
                       "; cgroup v2 not used for limits: " + v2_why_not;
    return caps;
  }

  caps.description =
      "no cgroups: runs are limited by rlimits and killed by process group only; "
      "RLIMIT_NPROC does not bind root, so fork bombs are contained only for runs that "
      "are not root (cgroup v2: " +
      v2_why_not + "; cgroup v1: " + v1.why_not + ")";
  return caps;
}

std::string parent_cgroup_name(const fs::path& state_dir) {
  std::error_code ec;
  fs::path absolute = fs::weakly_canonical(fs::absolute(state_dir, ec), ec);
  if (ec) absolute = state_dir;
  absolute = absolute.lexically_normal();
  if (!absolute.has_filename() && absolute.has_relative_path()) absolute = absolute.parent_path();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a(absolute.string())));
  return "jobhost-" + std::string(hex, 12);
}

StaleCleanup cleanup_stale(const IsolationCaps& caps) {
  StaleCleanup result;
  if (caps.mode == CgroupMode::none) return result;
  // Every sub-directory of a parent is a run cgroup; the same run id appears
  // once per hierarchy.
  std::map<std::string, std::vector<std::string>> runs;
  for (const fs::path& parent : {caps.v2_parent, caps.memory_parent, caps.pids_parent}) {
    if (parent.empty()) continue;
    for (const auto& name : child_dirs(parent.string())) {
      runs[name].push_back((parent / name).string());
    }
  }
  for (auto& [name, dirs] : runs) {
    std::string kill_file;
    if (caps.v2_kill) kill_file = (caps.v2_parent / name / "cgroup.kill").string();
    kill_cgroups(dirs, kill_file);
    int err = remove_cgroups(dirs, kill_file);
    if (dirs.empty()) {
      ++result.removed;
    } else {
      result.problems.push_back("cannot remove stale run cgroup " + dirs.front() + ": " +
                                errno_text(err));
    }
  }
  return result;
}

bool remove_parent_cgroups(const IsolationCaps& caps) noexcept {
  bool ok = true;
  for (const fs::path* parent : {&caps.v2_parent, &caps.memory_parent, &caps.pids_parent}) {
    if (parent->empty()) continue;
    if (::rmdir(parent->c_str()) != 0 && errno != ENOENT) ok = false;
  }
  return ok;
}

Result<Credentials> resolve_credentials(const std::optional<std::string>& user,
                                        const std::optional<std::string>& group) {
  Credentials creds;
  creds.uid = ::getuid();
  creds.gid = ::getgid();
  if (!user && !group) return creds;

  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 16384);

  std::optional<std::string> user_name;
  std::optional<gid_t> user_gid;
  if (user) {
    passwd pw{};
    passwd* found = nullptr;
    int err;
    for (;;) {
      err = all_digits(*user) ? ::getpwuid_r(static_cast<uid_t>(parse_id(*user)), &pw, buf.data(),
                                             buf.size(), &found)
                              : ::getpwnam_r(user->c_str(), &pw, buf.data(), buf.size(), &found);
      if (err != ERANGE) break;
      buf.resize(buf.size() * 2);
    }
    if (err != 0) {
      return fail("cannot look up user \"" + *user + "\": " + errno_text(err));
    }
    if (found) {
      creds.uid = pw.pw_uid;
      user_gid = pw.pw_gid;
      user_name = pw.pw_name;
    } else if (all_digits(*user) && group) {
      creds.uid = static_cast<uid_t>(parse_id(*user));  // a bare uid with an explicit group
    } else if (all_digits(*user)) {
      return fail("unknown user \"" + *user +
                  "\": no such uid in the user database (name a group for it too, or create "
                  "the user)");
    } else {
      return fail("unknown user \"" + *user +
                  "\": no such user in the user database (create it, or fix the job's user)");
    }
  }

  std::optional<gid_t> group_gid;
  if (group) {
    group_gid = static_cast<gid_t>(parse_id(*group));
    if (!all_digits(*group)) {
      struct group gr {};
      struct group* found = nullptr;
      int err;
      for (;;) {
        err = ::getgrnam_r(group->c_str(), &gr, buf.data(), buf.size(), &found);
        if (err != ERANGE) break;
        buf.resize(buf.size() * 2);
      }
      if (err != 0) return fail("cannot look up group \"" + *group + "\": " + errno_text(err));
      if (!found) {
        return fail("unknown group \"" + *group +
                    "\": no such group in the group database (create it, or fix the job's "
                    "group)");
      }
      group_gid = gr.gr_gid;
    }
  }

  creds.gid = group_gid ? *group_gid : user_gid ? *user_gid : creds.gid;
  if (user_name) {
    int count = 32;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    while (::getgrouplist(user_name->c_str(), creds.gid, groups.data(), &count) < 0) {
      groups.resize(static_cast<std::size_t>(count) + 32);
      count = static_cast<int>(groups.size());
    }
    groups.resize(static_cast<std::size_t>(count));
    creds.groups = std::move(groups);
  } else {
    creds.groups = {creds.gid};
  }
  creds.change = ::geteuid() == 0;
  return creds;
}

Result<RunCgroup> RunCgroup::create(const IsolationCaps& caps, std::string_view run_id,
                                    const config::Limits& limits) {
  if (!valid_cgroup_name(run_id)) {
    return fail("invalid run id \"" + std::string(run_id) +
                "\" for a cgroup name: use 1-200 letters, digits, '.', '_' or '-'");
  }
  RunCgroup cg;
  cg.mode_ = caps.mode;
  cg.owner_ = ::getpid();
  cg.memory_limit_ = limits.memory_bytes;
  cg.processes_limit_ = limits.processes;
  if (caps.mode == CgroupMode::none) return cg;

  const std::string id(run_id);
  const std::string memory = std::to_string(limits.memory_bytes);
  const std::string processes = std::to_string(limits.processes);

  // Makes one run directory and writes its settings; a required write that
  // fails is an error, an optional one (a file the kernel may not have) is not.
  struct Setting {
    const char* file;
    const std::string* value;
    bool required;
  };
  auto make = [&](const fs::path& parent,
                  const std::vector<Setting>& settings) -> Result<std::string> {
    std::string dir = (parent / id).string();
    if (int err = make_dir(dir); err != 0) {
      return fail("cannot create run cgroup " + dir + ": " + errno_text(err) +
                  " (is the jobhost cgroup writable? see docs/isolation.md)");
    }
    cg.dirs_.push_back(dir);
    cg.procs_.push_back(dir + "/cgroup.procs");
    for (const auto& s : settings) {
      int err = write_text(dir + "/" + s.file, *s.value);
      if (err != 0 && s.required) {
        return fail("cannot set " + std::string(s.file) + " = " + *s.value + " in " + dir + ": " +
                    errno_text(err));
      }
    }
    return dir;
  };
  const std::string zero = "0";
  const std::string one = "1";
  const bool limit_memory = limits.memory_bytes > 0;
  const bool limit_pids = limits.processes > 0;

  Result<std::string> made;
  if (caps.mode == CgroupMode::v2) {
    std::vector<Setting> settings;
    if (limit_memory) {
      settings.push_back({"memory.max", &memory, true});
      settings.push_back({"memory.swap.max", &zero, false});
      // An OOM kills the whole run, not one arbitrary process of it.
      settings.push_back({"memory.oom_group", &one, false});
    }
    if (limit_pids) settings.push_back({"pids.max", &processes, true});
    made = make(caps.v2_parent, settings);
    if (made) {
      cg.memory_dir_ = cg.pids_dir_ = cg.v2_dir_ = *made;
      if (caps.v2_kill) cg.kill_file_ = *made + "/cgroup.kill";
    }
  } else {
    std::vector<Setting> memory_settings;
    if (limit_memory) {
      memory_settings.push_back({"memory.limit_in_bytes", &memory, true});
      // Without swap accounting this file is absent; with it, swap is capped too.
      memory_settings.push_back({"memory.memsw.limit_in_bytes", &memory, false});
    }
    made = make(caps.memory_parent, memory_settings);
    if (made) {
      cg.memory_dir_ = *made;
      std::vector<Setting> pids_settings;
      if (limit_pids) pids_settings.push_back({"pids.max", &processes, true});
      made = make(caps.pids_parent, pids_settings);
      if (made) cg.pids_dir_ = *made;
    }
    if (made && caps.v2_kill && !caps.v2_parent.empty()) {
      made = make(caps.v2_parent, {});
      if (made) {
        cg.v2_dir_ = *made;
        cg.kill_file_ = *made + "/cgroup.kill";
      }
    }
  }
  if (!made) {
    cg.remove();
    return std::unexpected(made.error());
  }
  return cg;
}

RunCgroup::RunCgroup(RunCgroup&& other) noexcept
    : mode_(other.mode_),
      owner_(other.owner_),
      dirs_(std::move(other.dirs_)),
      procs_(std::move(other.procs_)),
      kill_file_(std::move(other.kill_file_)),
      memory_dir_(std::move(other.memory_dir_)),
      pids_dir_(std::move(other.pids_dir_)),
      v2_dir_(std::move(other.v2_dir_)),
      memory_limit_(other.memory_limit_),
      processes_limit_(other.processes_limit_),
      base_(other.base_),
      reused_(other.reused_) {
  other.mode_ = CgroupMode::none;
  other.dirs_.clear();
  other.procs_.clear();
}

RunCgroup& RunCgroup::operator=(RunCgroup&& other) noexcept {
  if (this != &other) {
    if (owner_ == ::getpid()) remove();
    mode_ = std::exchange(other.mode_, CgroupMode::none);
    owner_ = other.owner_;
    dirs_ = std::move(other.dirs_);
    procs_ = std::move(other.procs_);
    kill_file_ = std::move(other.kill_file_);
    memory_dir_ = std::move(other.memory_dir_);
    pids_dir_ = std::move(other.pids_dir_);
    v2_dir_ = std::move(other.v2_dir_);
    memory_limit_ = other.memory_limit_;
    processes_limit_ = other.processes_limit_;
    base_ = other.base_;
    reused_ = other.reused_;
    other.dirs_.clear();
    other.procs_.clear();
  }
  return *this;
}

RunCgroup::~RunCgroup() {
  if (!dirs_.empty() && owner_ == ::getpid()) remove();
}

int join_cgroups_in_child(const std::vector<std::string>& procs_files) noexcept {
  // "0" means the writing process, in v1 and v2 alike: no pid formatting here.
  for (const auto& procs : procs_files) {
    if (int err = write_text(procs.c_str(), "0", 1); err != 0) return err;
  }
  return 0;
}

int RunCgroup::join_in_child() const noexcept {
  return join_cgroups_in_child(procs_);
}

void RunCgroup::kill_all() noexcept {
  if (dirs_.empty()) return;
  kill_cgroups(dirs_, kill_file_);
}

RunCgroup::Counters RunCgroup::read_counters() const {
  Counters c;
  if (!memory_dir_.empty()) {
    if (mode_ == CgroupMode::v2) {
      if (auto events = read_text(memory_dir_ + "/memory.events")) {
        c.oom = keyed_value(*events, "oom").value_or(0);
        c.oom_kill = keyed_value(*events, "oom_kill").value_or(0);
      }
    } else {
      c.oom_kill = keyed_value_in(memory_dir_ + "/memory.oom_control", "oom_kill").value_or(0);
    }
  }
  if (!pids_dir_.empty())
    c.pids_max = keyed_value_in(pids_dir_ + "/pids.events", "max").value_or(0);
  return c;
}

std::optional<std::string> RunCgroup::limit_hit() const {
  const Counters now = read_counters();
  if (now.oom_kill > base_.oom_kill || now.oom > base_.oom) return "memory";
  if (now.pids_max > base_.pids_max) return "processes";
  return std::nullopt;
}

std::optional<std::chrono::microseconds> RunCgroup::cpu_usage() const {
  if (v2_dir_.empty()) return std::nullopt;
  auto usec = keyed_value_in(v2_dir_ + "/cpu.stat", "usage_usec");
  if (!usec) return std::nullopt;
  const std::uint64_t used = *usec > base_.cpu_usec ? *usec - base_.cpu_usec : 0;
  return std::chrono::microseconds(static_cast<std::int64_t>(used));
}

std::optional<std::uint64_t> RunCgroup::memory_peak() const {
  if (memory_dir_.empty()) return std::nullopt;
  if (mode_ == CgroupMode::v2) {
    if (reused_) return std::nullopt;
    auto text = read_text(memory_dir_ + "/memory.peak");
    if (!text) return std::nullopt;
    return parse_u64(*text);
  }
  auto text = read_text(memory_dir_ + "/memory.max_usage_in_bytes");
  if (!text) return std::nullopt;
  return parse_u64(*text);
}

bool RunCgroup::recycle() noexcept {
  if (dirs_.empty()) return false;
  try {
    // Nothing of the run is left: v2 says so for the whole sub-tree, v1
    // only by listing (a cgroup v1 without a v2 cgroup for killing).
    if (!v2_dir_.empty()) {
      auto events = read_text(v2_dir_ + "/cgroup.events");
      if (!events || keyed_value(*events, "populated").value_or(1) != 0) return false;
    } else {
      for (const auto& procs : procs_) {
        auto listed = read_text(procs);
        if (!listed || !listed->empty()) return false;
      }
    }
    if (!memory_dir_.empty()) {
      auto stat = read_text(memory_dir_ + "/memory.stat");
      auto anon =
          stat ? keyed_value(*stat, mode_ == CgroupMode::v2 ? "anon" : "rss") : std::nullopt;
      auto shmem = stat ? keyed_value(*stat, "shmem") : std::nullopt;
      if (!anon || !shmem || *anon + *shmem > kMaxRecycledMemory) return false;
    }
    Counters next = read_counters();
    if (!v2_dir_.empty()) {
      next.cpu_usec = keyed_value_in(v2_dir_ + "/cpu.stat", "usage_usec").value_or(0);
    }
    // The next run's peak starts from what is charged now (v1 resets the
    // high-water mark to the current usage on any write).
    if (mode_ == CgroupMode::v1 && !memory_dir_.empty() &&
        write_text(memory_dir_ + "/memory.max_usage_in_bytes", "0") != 0) {
      return false;
    }
    base_ = next;
    reused_ = true;
    return true;
  } catch (...) {
    return false;  // out of memory: remove it
  }
}

CgroupPool::CgroupPool(IsolationCaps caps) : caps_(std::move(caps)), owner_(::getpid()) {}

CgroupPool::~CgroupPool() {
  clear();
}

Result<RunCgroup> CgroupPool::acquire(std::string_view run_id, const config::Limits& limits) {
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if (it->memory_limit_ == limits.memory_bytes && it->processes_limit_ == limits.processes) {
      RunCgroup cg = std::move(*it);
      idle_.erase(it);
      return cg;
    }
  }
  auto made = RunCgroup::create(caps_, run_id, limits);
  if (made && !made->removed()) ++made_;
  return made;
}

void CgroupPool::release(RunCgroup cgroup) noexcept {
  if (cgroup.removed() || owner_ != ::getpid()) return;
  if (!cgroup.recycle()) return cgroup.remove();
  try {
    if (idle_.size() >= kMaxIdle) {
      idle_.front().remove();
      idle_.erase(idle_.begin());
    }
    idle_.push_back(std::move(cgroup));
  } catch (...) {
    cgroup.remove();  // still ours when push_back threw
  }
}

void CgroupPool::clear() noexcept {
  if (owner_ != ::getpid()) return;
  for (auto& cg : idle_) cg.remove();
  idle_.clear();
}

void RunCgroup::remove() noexcept {
  if (dirs_.empty()) return;
  kill_all();
  remove_cgroups(dirs_, kill_file_);
  if (dirs_.empty()) procs_.clear();
}

namespace {

// setrlimit, clamping to the current hard limit when it cannot be raised.
std::optional<ChildSetupError> set_limit(int resource, rlim_t soft, rlim_t hard,
                                         const char* what) noexcept {
  rlimit rl{soft, hard};
  if (::setrlimit(resource, &rl) == 0) return std::nullopt;
  int err = errno;
  rlimit current{};
  if (err == EPERM && ::getrlimit(resource, &current) == 0 && hard > current.rlim_max) {
    rl.rlim_max = current.rlim_max;
    rl.rlim_cur = std::min(soft, current.rlim_max);
    if (::setrlimit(resource, &rl) == 0) return std::nullopt;
    err = errno;
  }
  return ChildSetupError{err, what};
}

}  // namespace

std::optional<ChildSetupError> apply_rlimits_in_child(const config::Limits& limits,
                                                      bool memory_in_cgroup) noexcept {
  auto or_infinity = [](std::uint64_t v) {
    return v == 0 ? RLIM_INFINITY : static_cast<rlim_t>(v);
  };

#if defined(__SANITIZE_ADDRESS__)
  constexpr bool kSkipAddressSpace = true;  // ASan maps terabytes of shadow memory
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  constexpr bool kSkipAddressSpace = true;
#else
  constexpr bool kSkipAddressSpace = false;
#endif
#else
  constexpr bool kSkipAddressSpace = false;
#endif
  if (!kSkipAddressSpace && !memory_in_cgroup) {
    rlim_t as = or_infinity(limits.memory_bytes);
    if (auto e = set_limit(RLIMIT_AS, as, as, "setrlimit(RLIMIT_AS)")) return e;
  }

  const auto ms = limits.cpu_time.count();
  if (ms <= 0) {
    if (auto e = set_limit(RLIMIT_CPU, RLIM_INFINITY, RLIM_INFINITY, "setrlimit(RLIMIT_CPU)")) {
      return e;
    }
  } else {
    // SIGXCPU at the limit (classified as "cpu"), SIGKILL a second later if ignored.
    rlim_t seconds = static_cast<rlim_t>((ms + 999) / 1000);
    if (auto e = set_limit(RLIMIT_CPU, seconds, seconds + 1, "setrlimit(RLIMIT_CPU)")) return e;
  }

  if (limits.open_files > 0) {
    rlim_t n = static_cast<rlim_t>(limits.open_files);
    if (auto e = set_limit(RLIMIT_NOFILE, n, n, "setrlimit(RLIMIT_NOFILE)")) return e;
  }
  rlim_t nproc = or_infinity(limits.processes);
  if (auto e = set_limit(RLIMIT_NPROC, nproc, nproc, "setrlimit(RLIMIT_NPROC)")) return e;
  rlim_t fsize = or_infinity(limits.file_size);
  if (auto e = set_limit(RLIMIT_FSIZE, fsize, fsize, "setrlimit(RLIMIT_FSIZE)")) return e;
  if (auto e = set_limit(RLIMIT_CORE, 0, 0, "setrlimit(RLIMIT_CORE)")) return e;
  return std::nullopt;
}

namespace {

// Raw capset/capget: libcap is not needed for "all zero", and these are plain
// syscalls (safe after fork).
struct CapHeader {
  uint32_t version;
  int pid;
};
struct CapData {
  uint32_t effective;
  uint32_t permitted;
  uint32_t inheritable;
};
constexpr uint32_t kCapVersion3 = 0x20080522;

// Drops every capability from the bounding set (up to the kernel's last one:
// PR_CAPBSET_READ fails with EINVAL past it). Needs CAP_SETPCAP.
std::optional<ChildSetupError> drop_bounding_set_in_child() noexcept {
  for (int cap = 0; cap < 64; ++cap) {
    const int has = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (has < 0) break;  // EINVAL: past /proc/sys/kernel/cap_last_cap
    if (has == 1 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return ChildSetupError{errno, "prctl(PR_CAPBSET_DROP)"};
    }
  }
  return std::nullopt;
}

// Empties the effective, permitted, inheritable and ambient sets and checks
// that they are empty.
std::optional<ChildSetupError> clear_capabilities_in_child() noexcept {
  CapHeader header{kCapVersion3, 0};
  CapData data[2] = {};
  if (::syscall(SYS_capset, &header, data) != 0) return ChildSetupError{errno, "capset"};
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return ChildSetupError{errno, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)"};
  }
  CapData now[2] = {};
  header = {kCapVersion3, 0};
  if (::syscall(SYS_capget, &header, now) != 0) return ChildSetupError{errno, "capget"};
  for (const CapData& d : now) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
      return ChildSetupError{EPERM, "verify drop: capabilities left after capset"};
    }
  }
  if (::prctl(PR_CAPBSET_READ, 0, 0, 0, 0) == 1) {
    return ChildSetupError{EPERM, "verify drop: bounding set not empty"};
  }
  return std::nullopt;
}

// True when the effective set is not empty.
bool holds_capabilities() noexcept {
  CapHeader header{kCapVersion3, 0};
  CapData now[2] = {};
  if (::syscall(SYS_capget, &header, now) != 0) return false;
  return now[0].effective != 0 || now[1].effective != 0;
}

}  // namespace

std::optional<ChildSetupError> drop_privileges_in_child(const Credentials& creds) noexcept {
  // Every capability goes for a run that is not root: the bounding set
  // first (that needs CAP_SETPCAP, gone after setuid), then the rest.
  const bool drop_caps = creds.change && creds.uid != 0;
  if (creds.change) {
    if (::setgroups(creds.groups.size(), creds.groups.data()) != 0) {
      return ChildSetupError{errno, "setgroups"};
    }
    if (::setgid(creds.gid) != 0) return ChildSetupError{errno, "setgid"};
    if (drop_caps) {
      if (auto e = drop_bounding_set_in_child()) return e;
    }
    if (::setuid(creds.uid) != 0) return ChildSetupError{errno, "setuid"};
    if (::getuid() != creds.uid || ::geteuid() != creds.uid || ::getgid() != creds.gid ||
        ::getegid() != creds.gid) {
      return ChildSetupError{EPERM, "verify uid/gid after setuid"};
    }
    if (drop_caps) {
      if (auto e = clear_capabilities_in_child()) return e;
    }
    if (creds.uid != 0 && ::setuid(0) == 0) {
      return ChildSetupError{EPERM, "verify drop: setuid(0) succeeded"};
    }
  } else if (::geteuid() != 0 && holds_capabilities()) {
    // A run cloned into a user namespace of its own (host not root) holds
    // every capability there: none may reach the plugin.
    if (auto e = drop_bounding_set_in_child()) return e;
    if (auto e = clear_capabilities_in_child()) return e;
  }
  // The daemon and the fork server are not dumpable (so a run of the
  // host's own user cannot ptrace or read them), and setuid makes a process
  // undumpable too, which hands its /proc/self files to root: give them back
  // to the run. Only processes of the run's own uid gain access to it.
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return ChildSetupError{errno, "prctl(PR_SET_NO_NEW_PRIVS)"};
  }
  return std::nullopt;
}

}  // namespace jobhost::exec
