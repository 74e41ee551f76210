// Run isolation: detection on fake cgroup trees (every mode), run cgroups on
// fake trees (what is written), and on this machine: the real mode, killing,
// pids.max, the memory limit, cleanup, rlimits and dropping privileges.
#include "exec/isolation.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/skip.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace jobhost;
using namespace jobhost::exec;

namespace {

constexpr const char* kDir = "<dir>";  // in a fake tree spec: make a directory

using jobhost::testing::TempDir;

// Lays out a fake cgroup tree: each entry is a file with contents, or kDir.
void make_tree(const fs::path& root, const std::map<std::string, std::string>& entries) {
  for (const auto& [rel, content] : entries) {
    fs::path p = root / rel;
    if (content == kDir) {
      fs::create_directories(p);
      continue;
    }
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string rel(const fs::path& root, const fs::path& p) {
  return p.empty() ? std::string() : p.lexically_relative(root).string();
}

config::Limits limits_of(uint64_t memory, uint64_t processes) {
  config::Limits l;
  l.memory_bytes = memory;
  l.processes = processes;
  return l;
}

// Forks; the child runs `body` and _exits with its result. Returns the pid.
pid_t spawn(const std::function<int()>& body) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(20);  // a broken test fails (SIGALRM) instead of hanging
    ::_exit(body());
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  REQUIRE(r == pid);
  return status;
}

int run_in_child(const std::function<int()>& body) {
  int status = wait_status(spawn(body));
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

// Grandchildren left by a killed child are re-parented to us (we are a
// subreaper): reap them so that kill(pid, 0) then means "gone".
void become_subreaper() {
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
}

bool reap_within(pid_t pid, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

bool alive(pid_t pid) {
  return ::kill(pid, 0) == 0;
}

bool read_exact(int fd, void* buf, size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool has_cap_sys_resource() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      return (std::stoull(line.substr(7), nullptr, 16) >> 24) & 1;  // CAP_SYS_RESOURCE
    }
  }
  return false;
}

[[noreturn]] void pause_forever() {
  for (;;) ::pause();
}

// The real cgroup tree of this machine, under a parent name private to this
// test process; torn down (runs killed, cgroups removed) at the end.
struct RealIsolation {
  IsolationCaps caps;
  RealIsolation() {
    DetectOptions options;
    options.parent_name = "jobhost-isotest-" + std::to_string(::getpid());
    caps = detect_isolation(options);
  }
  ~RealIsolation() {
    cleanup_stale(caps);
    remove_parent_cgroups(caps);
  }
  bool unavailable() const { return caps.mode == CgroupMode::none; }
};

// What /proc/self/mountinfo says about cgroup mounts.
struct Mounts {
  std::map<std::string, std::string> v1;  // controller -> mount point (rw only)
  std::string v2;                         // cgroup2 mount point (rw), or empty
};

Mounts cgroup_mounts() {
  Mounts m;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, point, opts;
    head >> id >> parent >> dev >> root >> point >> opts;
    std::istringstream tail(line.substr(sep + 3));
    std::string type, source, super;
    tail >> type >> source >> super;
    bool rw = opts.rfind("rw", 0) == 0;
    if (!rw) continue;
    if (type == "cgroup2") m.v2 = point;
    if (type != "cgroup") continue;
    std::stringstream ss(super);
    std::string opt;
    while (std::getline(ss, opt, ',')) m.v1[opt] = point;
  }
  return m;
}

bool starts_with(const fs::path& p, const std::string& prefix) {
  return !prefix.empty() && p.string().rfind(prefix + "/", 0) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------
// Detection on fake trees

TEST_CASE("detect_isolation picks the mode a fake cgroup tree offers", "[isolation]") {
  struct Case {
    const char* name;
    std::map<std::string, std::string> tree;
    std::string self_cgroup;
    CgroupMode mode;
    std::string v2_parent, memory_parent, pids_parent;
    bool v2_kill;
    std::string says;  // a fragment of the description
  };
  const std::map<std::string, std::string> v1_tree = {{"memory/cgroup.procs", ""},
                                                      {"pids/cgroup.procs", ""}};
  auto with = [](std::map<std::string, std::string> a,
                 const std::map<std::string, std::string>& b) {
    a.insert(b.begin(), b.end());
    return a;
  };
  const std::vector<Case> cases = {
      {"delegated v2 with memory and pids",
       {{"cgroup.controllers", "cpu io memory pids"},
        {"cgroup.subtree_control", ""},
        {"jobhost/cgroup.controllers", "cpu io memory pids"},
        {"jobhost/cgroup.subtree_control", ""},
        {"jobhost/cgroup.kill", ""}},
       "0::/\n",
       CgroupMode::v2,
       "jobhost",
       "",
       "",
       true,
       "cgroup v2"},
      {"v2 without cgroup.kill (kernel < 5.14)",
       {{"cgroup.controllers", "memory pids"},
        {"cgroup.subtree_control", "memory pids"},
        {"jobhost/cgroup.controllers", "memory pids"},
        {"jobhost/cgroup.subtree_control", "memory pids"}},
       "0::/\n",
       CgroupMode::v2,
       "jobhost",
       "",
       "",
       false,
       "SIGKILL to cgroup.procs"},
      {"v2 inside the host's own cgroup that holds processes: sibling parent",
       {{"cgroup.controllers", "memory pids"},
        {"svc/cgroup.controllers", "memory pids"},
        {"svc/cgroup.subtree_control", ""},
        {"svc/host/cgroup.controllers", "memory pids"},
        {"svc/host/cgroup.subtree_control", kDir},  // writing fails, as EBUSY would
        {"svc/jobhost/cgroup.controllers", "memory pids"},
        {"svc/jobhost/cgroup.subtree_control", ""},
        {"svc/jobhost/cgroup.kill", ""}},
       "0::/svc/host\n",
       CgroupMode::v2,
       "svc/jobhost",
       "",
       "",
       true,
       "svc/jobhost"},
      {"hybrid: v1 memory+pids, v2 with cgroup.kill but no controllers (this machine)",
       with(v1_tree, {{"unified/cgroup.controllers", "hugetlb"},
                      {"unified/cgroup.subtree_control", ""},
                      {"unified/jobhost/cgroup.kill", ""}}),
       "8:pids:/\n4:memory:/\n0::/\n", CgroupMode::v1, "unified/jobhost", "memory/jobhost",
       "pids/jobhost", true, "offers no memory/pids"},
      {"v1 only", v1_tree, "", CgroupMode::v1, "", "memory/jobhost", "pids/jobhost", false,
       "SIGKILL to cgroup.procs"},
      {"v1 nested in the host's own cgroups", with(v1_tree, {{"memory/a/b", kDir}}),
       "4:memory:/a/b\n8:pids:/gone\n", CgroupMode::v1, "", "memory/a/b/jobhost", "pids/jobhost",
       false, "memory/a/b/jobhost"},
      {"v2 without memory/pids controllers and no v1",
       {{"cgroup.controllers", "cpu io"}, {"cgroup.subtree_control", ""}},
       "0::/\n",
       CgroupMode::none,
       "",
       "",
       "",
       false,
       "offers no memory/pids"},
      {"v1 memory without pids",
       {{"memory/cgroup.procs", ""}},
       "",
       CgroupMode::none,
       "",
       "",
       "",
       false,
       "no cgroup v1 pids hierarchy"},
      {"nothing mounted",
       {{"README", ""}},
       "",
       CgroupMode::none,
       "",
       "",
       "",
       false,
       "RLIMIT_NPROC does not bind root"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      TempDir tmp;
      make_tree(tmp.path(), c.tree);
      DetectOptions options;
      options.cgroup_root = tmp.path();
      options.self_cgroup = c.self_cgroup;
      IsolationCaps caps = detect_isolation(options);
      INFO(caps.description);
      CHECK(caps.mode == c.mode);
      CHECK(rel(tmp.path(), caps.v2_parent) == c.v2_parent);
      CHECK(rel(tmp.path(), caps.memory_parent) == c.memory_parent);
      CHECK(rel(tmp.path(), caps.pids_parent) == c.pids_parent);
      CHECK(caps.v2_kill == c.v2_kill);
      CHECK_THAT(caps.description, Catch::Contains(c.says));
      if (c.mode == CgroupMode::none) {
        // A failed v1 attempt leaves nothing behind.
        CHECK_FALSE(fs::exists(tmp.path() / "memory" / "jobhost"));
      }
    }
  }
}

TEST_CASE("detect_isolation enables the controllers it needs in v2", "[isolation]") {
  TempDir tmp;
  make_tree(tmp.path(), {{"cgroup.controllers", "cpu memory pids"},
                         {"cgroup.subtree_control", ""},
                         {"jh/cgroup.controllers", "cpu memory pids"},
                         {"jh/cgroup.subtree_control", "pids"}});
  DetectOptions options;
  options.cgroup_root = tmp.path();
  options.parent_name = "jh";
  options.self_cgroup = "0::/\n";
  IsolationCaps caps = detect_isolation(options);
  REQUIRE(caps.mode == CgroupMode::v2);
  CHECK(slurp(tmp.path() / "cgroup.subtree_control") == "+memory +pids");
  CHECK(slurp(tmp.path() / "jh" / "cgroup.subtree_control") == "+memory");  // pids already on
}

TEST_CASE("detect_isolation without a usable tree is none and says why", "[isolation]") {
  TempDir tmp;
  IsolationCaps caps = detect_isolation(tmp.path());  // reads the real /proc/self/cgroup
  CHECK(caps.mode == CgroupMode::none);
  CHECK_THAT(caps.description, Catch::Contains("no cgroup v2 tree"));
  CHECK_THAT(caps.description, Catch::Contains("are not root"));
  DetectOptions bad;
  bad.cgroup_root = tmp.path();
  bad.parent_name = "../escape";
  CHECK(detect_isolation(bad).mode == CgroupMode::none);
}

TEST_CASE("parent_cgroup_name is stable and distinct per state directory", "[isolation]") {
  std::string a = parent_cgroup_name("/var/lib/jobhost");
  CHECK(a == parent_cgroup_name("/var/lib/jobhost/"));
  CHECK(a == parent_cgroup_name("/var/lib/./jobhost"));
  CHECK(a != parent_cgroup_name("/var/lib/jobhost2"));
  CHECK(a.rfind("jobhost-", 0) == 0);
  CHECK(a.size() == std::string("jobhost-").size() + 12);
}

// ---------------------------------------------------------------------------
// Run cgroups on fake trees: what create() writes, what limit_hit() reads

TEST_CASE("RunCgroup::create writes the limits of the mode", "[isolation]") {
  struct Case {
    const char* name;
    config::Limits limits;
    std::map<std::string, std::string> expected;  // file under the run dir(s) -> content
  };
  SECTION("v2") {
    const std::vector<Case> cases = {
        {"limited",
         limits_of(64ull << 20, 10),
         {{"memory.max", "67108864"},
          {"memory.swap.max", "0"},
          {"memory.oom_group", "1"},
          {"pids.max", "10"}}},
        {"0 = unlimited: nothing written",
         limits_of(0, 0),
         {{"memory.max", ""}, {"memory.swap.max", ""}, {"pids.max", ""}}},
    };
    for (const auto& c : cases) {
      DYNAMIC_SECTION(c.name) {
        TempDir tmp;
        make_tree(tmp.path(), {{"jh/r1/memory.max", ""},
                               {"jh/r1/memory.swap.max", ""},
                               {"jh/r1/memory.oom_group", ""},
                               {"jh/r1/pids.max", ""},
                               {"jh/r1/cgroup.procs", ""}});
        IsolationCaps caps;
        caps.mode = CgroupMode::v2;
        caps.v2_parent = tmp.path() / "jh";
        auto cg = RunCgroup::create(caps, "r1", c.limits);
        REQUIRE(cg.has_value());
        CHECK(cg->dirs() == std::vector<std::string>{(tmp.path() / "jh" / "r1").string()});
        for (const auto& [file, content] : c.expected) {
          CHECK(slurp(tmp.path() / "jh" / "r1" / file) == content);
        }
      }
    }
  }
  SECTION("v1 with a kill-only v2 cgroup") {
    TempDir tmp;
    make_tree(tmp.path(), {{"memory/jh/r1/memory.limit_in_bytes", ""},
                           {"memory/jh/r1/memory.memsw.limit_in_bytes", ""},
                           {"pids/jh/r1/pids.max", ""},
                           {"unified/jh/r1/cgroup.kill", ""}});
    IsolationCaps caps;
    caps.mode = CgroupMode::v1;
    caps.memory_parent = tmp.path() / "memory" / "jh";
    caps.pids_parent = tmp.path() / "pids" / "jh";
    caps.v2_parent = tmp.path() / "unified" / "jh";
    caps.v2_kill = true;
    auto cg = RunCgroup::create(caps, "r1", limits_of(32ull << 20, 7));
    REQUIRE(cg.has_value());
    CHECK(cg->dirs().size() == 3);
    CHECK(slurp(tmp.path() / "memory/jh/r1/memory.limit_in_bytes") == "33554432");
    CHECK(slurp(tmp.path() / "memory/jh/r1/memory.memsw.limit_in_bytes") == "33554432");
    CHECK(slurp(tmp.path() / "pids/jh/r1/pids.max") == "7");
  }
  SECTION("a required limit file that is missing is an error naming it") {
    TempDir tmp;
    make_tree(tmp.path(), {{"jh", kDir}});
    IsolationCaps caps;
    caps.mode = CgroupMode::v2;
    caps.v2_parent = tmp.path() / "jh";
    auto cg = RunCgroup::create(caps, "r2", limits_of(1 << 20, 0));
    REQUIRE_FALSE(cg.has_value());
    CHECK_THAT(cg.error().message, Catch::Contains("memory.max"));
    CHECK_FALSE(fs::exists(tmp.path() / "jh" / "r2"));  // rolled back
  }
  SECTION("mode none is a no-op object") {
    auto cg = RunCgroup::create(IsolationCaps{}, "r3", config::Limits{});
    REQUIRE(cg.has_value());
    CHECK(cg->dirs().empty());
    CHECK(cg->removed());
    CHECK(cg->join_in_child() == 0);
    CHECK_FALSE(cg->limit_hit());
    CHECK_FALSE(cg->cpu_usage());
    cg->kill_all();
    cg->remove();
  }
}

TEST_CASE("RunCgroup::create refuses run ids that are not plain names", "[isolation]") {
  TempDir tmp;
  IsolationCaps caps;
  caps.mode = CgroupMode::v2;
  caps.v2_parent = tmp.path();
  for (const std::string& id : std::vector<std::string>{"", ".", "..", "a/b", "../x", "a b", "a\nb",
                                                        std::string(201, 'x')}) {
    auto cg = RunCgroup::create(caps, id, config::Limits{});
    INFO("run id: " << id);
    REQUIRE_FALSE(cg.has_value());
    CHECK_THAT(cg.error().message, Catch::Contains("invalid run id"));
  }
  CHECK(fs::is_empty(tmp.path()));
}

TEST_CASE("RunCgroup::limit_hit reads the cgroup's event counters", "[isolation]") {
  struct Case {
    CgroupMode mode;
    std::string memory_file, memory_events, pids_events;
    std::optional<std::string> expected;
  };
  const std::vector<Case> cases = {
      {CgroupMode::v2, "memory.events", "low 0\nhigh 0\nmax 9\noom 0\noom_kill 0\n", "max 0\n",
       std::nullopt},  // reclaim at max is not a failure
      {CgroupMode::v2, "memory.events", "max 9\noom 1\noom_kill 1\n", "max 0\n", "memory"},
      {CgroupMode::v2, "memory.events", "max 1\noom 1\noom_kill 0\n", "max 0\n", "memory"},
      {CgroupMode::v2, "memory.events", "oom 0\noom_kill 0\n", "max 3\n", "processes"},
      {CgroupMode::v2, "memory.events", "oom_kill 2\n", "max 3\n", "memory"},
      {CgroupMode::v1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
       "max 0\n", std::nullopt},
      {CgroupMode::v1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
       "max 0\n", "memory"},
      {CgroupMode::v1, "memory.oom_control", "oom_kill 0\n", "max 12\n", "processes"},
  };
  int i = 0;
  for (const auto& c : cases) {
    DYNAMIC_SECTION("case " << i++) {
      TempDir tmp;
      IsolationCaps caps;
      caps.mode = c.mode;
      fs::path memory_dir, pids_dir;
      if (c.mode == CgroupMode::v2) {
        caps.v2_parent = tmp.path() / "jh";
        memory_dir = pids_dir = tmp.path() / "jh" / "r";
      } else {
        caps.memory_parent = tmp.path() / "m";
        caps.pids_parent = tmp.path() / "p";
        memory_dir = tmp.path() / "m" / "r";
        pids_dir = tmp.path() / "p" / "r";
      }
      fs::create_directories(memory_dir);
      fs::create_directories(pids_dir);
      auto cg = RunCgroup::create(caps, "r", limits_of(0, 0));
      REQUIRE(cg.has_value());
      CHECK_FALSE(cg->limit_hit());  // nothing recorded yet
      std::ofstream(memory_dir / c.memory_file) << c.memory_events;
      std::ofstream(pids_dir / "pids.events") << c.pids_events;
      CHECK(cg->limit_hit() == c.expected);
    }
  }
}

TEST_CASE("CgroupPool reuses a run's emptied cgroup for the next run with its limits",
          "[isolation]") {
  TempDir tmp;
  make_tree(tmp.path(), {{"jh", kDir}});
  IsolationCaps caps;
  caps.mode = CgroupMode::v2;
  caps.v2_parent = tmp.path() / "jh";
  // What the kernel shows in a run's v2 cgroup after the run, on a fake tree.
  auto after_run = [&](const std::string& name, const std::string& populated,
                       const std::string& memory_stat) {
    make_tree(tmp.path(), {{"jh/" + name + "/cgroup.events", "populated " + populated + "\n"},
                           {"jh/" + name + "/memory.stat", memory_stat},
                           {"jh/" + name + "/memory.events", "oom 0\noom_kill 1\n"},
                           {"jh/" + name + "/pids.events", "max 2\n"},
                           {"jh/" + name + "/cpu.stat", "usage_usec 500\n"}});
  };
  const std::string r1 = (tmp.path() / "jh" / "r1").string();
  CgroupPool pool(caps);

  SECTION("same limits: the same cgroup, counters counted from the reuse") {
    auto first = pool.acquire("r1", limits_of(0, 0));
    REQUIRE(first.has_value());
    // Page cache the run left does not stop the reuse: it is reclaimable.
    after_run("r1", "0", "anon 8192\nfile 50000000\nshmem 0\n");
    CHECK(first->limit_hit() == std::optional<std::string>("memory"));  // this run's OOM
    pool.release(std::move(*first));
    CHECK(pool.idle() == 1);

    auto second = pool.acquire("r2", limits_of(0, 0));
    REQUIRE(second.has_value());
    CHECK(second->dirs() == std::vector<std::string>{r1});
    CHECK(pool.made() == 1);
    CHECK(pool.idle() == 0);
    CHECK_FALSE(second->limit_hit());  // the OOM was the first run's
    CHECK(second->cpu_usage() == std::chrono::microseconds(0));
    std::ofstream(tmp.path() / "jh/r1/pids.events") << "max 3\n";
    std::ofstream(tmp.path() / "jh/r1/cpu.stat") << "usage_usec 800\n";
    CHECK(second->limit_hit() == std::optional<std::string>("processes"));
    CHECK(second->cpu_usage() == std::chrono::microseconds(300));
  }
  SECTION("other limits: a cgroup of their own") {
    auto first = pool.acquire("r1", limits_of(0, 0));
    REQUIRE(first.has_value());
    after_run("r1", "0", "anon 0\nshmem 0\n");
    pool.release(std::move(*first));
    make_tree(tmp.path(), {{"jh/r2/pids.max", ""}});
    auto other = pool.acquire("r2", limits_of(0, 5));
    REQUIRE(other.has_value());
    CHECK(slurp(tmp.path() / "jh/r2/pids.max") == "5");
    CHECK(other->dirs() == std::vector<std::string>{(tmp.path() / "jh" / "r2").string()});
    CHECK(pool.made() == 2);
    CHECK(pool.idle() == 1);
  }
  struct NotReused {
    const char* why;
    std::string populated, memory_stat;
  };
  for (const auto& c :
       std::vector<NotReused>{{"a process is left", "1", "anon 0\nshmem 0\n"},
                              {"it holds the run's shared memory", "0", "anon 0\nshmem 5000000\n"},
                              {"it holds anonymous memory", "0", "anon 5000000\nshmem 0\n"},
                              {"its memory use is unreadable", "0", "garbage"}}) {
    SECTION(std::string("not reused when ") + c.why) {
      auto first = pool.acquire("r1", limits_of(0, 0));
      REQUIRE(first.has_value());
      after_run("r1", c.populated, c.memory_stat);
      pool.release(std::move(*first));
      CHECK(pool.idle() == 0);
      auto second = pool.acquire("r2", limits_of(0, 0));
      REQUIRE(second.has_value());
      CHECK(second->dirs() == std::vector<std::string>{(tmp.path() / "jh" / "r2").string()});
    }
  }
  SECTION("at most kMaxIdle are kept") {
    std::vector<RunCgroup> runs;
    for (std::size_t i = 0; i <= CgroupPool::kMaxIdle; ++i) {
      const std::string name = "r" + std::to_string(i);
      auto cg = pool.acquire(name, limits_of(0, 0));
      REQUIRE(cg.has_value());
      after_run(name, "0", "anon 0\nshmem 0\n");
      runs.push_back(std::move(*cg));
    }
    for (auto& cg : runs) pool.release(std::move(cg));
    CHECK(pool.idle() == CgroupPool::kMaxIdle);
  }
}

// ---------------------------------------------------------------------------
// This machine

TEST_CASE("detect_isolation on this machine agrees with /proc/self/mountinfo",
          "[isolation][real]") {
  RealIsolation real;
  const IsolationCaps& caps = real.caps;
  Mounts mounts = cgroup_mounts();
  INFO(caps.description);
  const bool root = ::geteuid() == 0;
  const bool v1_available = root && mounts.v1.count("memory") && mounts.v1.count("pids");
  bool v2_controllers = false;
  if (!mounts.v2.empty()) {
    std::string controllers = slurp(fs::path(mounts.v2) / "cgroup.controllers");
    v2_controllers = controllers.find("memory") != std::string::npos &&
                     controllers.find("pids") != std::string::npos;
  }
  switch (caps.mode) {
    case CgroupMode::v2:
      CHECK(v2_controllers);
      CHECK(starts_with(caps.v2_parent, mounts.v2));
      break;
    case CgroupMode::v1:
      REQUIRE(mounts.v1.count("memory"));
      REQUIRE(mounts.v1.count("pids"));
      CHECK(starts_with(caps.memory_parent, mounts.v1["memory"]));
      CHECK(starts_with(caps.pids_parent, mounts.v1["pids"]));
      CHECK(fs::is_directory(caps.memory_parent));
      CHECK(fs::is_directory(caps.pids_parent));
      if (!caps.v2_parent.empty()) {
        CHECK(starts_with(caps.v2_parent, mounts.v2));
        CHECK(fs::exists(caps.v2_parent / "cgroup.kill"));
      }
      CHECK_FALSE((root && v2_controllers));  // v2 would have been preferred
      break;
    case CgroupMode::none:
      CHECK_FALSE(v1_available);
      CHECK_FALSE((root && v2_controllers));
      break;
  }
  // This machine (and CI): root, v1 memory+pids, a controller-less v2 tree.
  if (v1_available && !v2_controllers) {
    CHECK(caps.mode == CgroupMode::v1);
    if (!mounts.v2.empty()) CHECK(caps.v2_kill);
  }
  WARN("isolation on this machine: " << caps.description);
}

namespace {

// A run that forked three grandchildren; kill_all must leave none of them.
void check_kill_all(const IsolationCaps& caps) {
  auto cg = RunCgroup::create(caps, "kill-all", limits_of(256ull << 20, 64));
  REQUIRE(cg.has_value());

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = spawn([&] {
    ::close(fds[0]);
    if (cg->join_in_child() != 0) return 10;
    std::array<pid_t, 4> pids{::getpid(), 0, 0, 0};
    for (int i = 1; i < 4; ++i) {
      pids[i] = ::fork();
      if (pids[i] < 0) return 11;
      if (pids[i] == 0) {
        ::alarm(20);
        pause_forever();
      }
    }
    if (::write(fds[1], pids.data(), sizeof pids) != sizeof pids) return 12;
    pause_forever();
  });
  ::close(fds[1]);
  std::array<pid_t, 4> pids{};
  REQUIRE(read_exact(fds[0], pids.data(), sizeof pids));
  ::close(fds[0]);
  for (pid_t pid : pids) CHECK(alive(pid));
  for (const auto& dir : cg->dirs()) {
    CHECK_THAT(slurp(fs::path(dir) / "cgroup.procs"), Catch::Contains(std::to_string(pids[3])));
  }

  cg->kill_all();
  int status = wait_status(child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  for (int i = 1; i < 4; ++i) {
    CHECK(reap_within(pids[i], std::chrono::seconds(2)));
    CHECK_FALSE(alive(pids[i]));
  }
  for (const auto& dir : cg->dirs()) CHECK(slurp(fs::path(dir) / "cgroup.procs").empty());

  std::vector<std::string> dirs = cg->dirs();
  cg->remove();
  CHECK(cg->removed());
  for (const auto& dir : dirs) CHECK_FALSE(fs::exists(dir));
}

}  // namespace

TEST_CASE("kill_all kills the run and every process it forked", "[isolation][real][needs-cgroup]") {
  RealIsolation real;
  if (real.unavailable()) JOBHOST_SKIP("no cgroup mode on this machine: " << real.caps.description);
  become_subreaper();
  SECTION("with the mode's kill method") {
    check_kill_all(real.caps);
  }
  SECTION("by sweeping cgroup.procs (no cgroup.kill)") {
    IsolationCaps caps = real.caps;
    caps.v2_kill = false;
    if (caps.mode == CgroupMode::v1) caps.v2_parent.clear();
    check_kill_all(caps);
  }
}

namespace {

struct ForkBomb {
  pid_t child = 0;  // still running (pauses) after the bomb
  int forked = 0;   // forks that succeeded
  int err = 0;      // errno of the first fork that failed
};

// A child that joins `cg` and forks until fork fails (at most 100 times).
ForkBomb start_fork_bomb(const RunCgroup& cg) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ForkBomb bomb;
  bomb.child = spawn([&] {
    if (cg.join_in_child() != 0) return 100;
    int forked = 0;
    int err = 0;
    for (int i = 0; i < 100; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {
        ::alarm(20);
        pause_forever();
      }
      if (pid < 0) {
        err = errno;
        break;
      }
      ++forked;
    }
    std::array<int, 2> report{forked, err};
    if (::write(fds[1], report.data(), sizeof report) != sizeof report) return 101;
    pause_forever();
  });
  ::close(fds[1]);
  std::array<int, 2> report{};
  REQUIRE(read_exact(fds[0], report.data(), sizeof report));
  ::close(fds[0]);
  bomb.forked = report[0];
  bomb.err = report[1];
  return bomb;
}

}  // namespace

TEST_CASE("pids.max stops a fork bomb and is reported as processes",
          "[isolation][real][needs-cgroup]") {
  RealIsolation real;
  if (real.unavailable()) JOBHOST_SKIP("no cgroup mode on this machine: " << real.caps.description);
  become_subreaper();
  constexpr int kMaxProcesses = 8;
  auto cg = RunCgroup::create(real.caps, "fork-bomb", limits_of(0, kMaxProcesses));
  REQUIRE(cg.has_value());
  CHECK_FALSE(cg->limit_hit());

  const ForkBomb bomb = start_fork_bomb(*cg);
  CHECK(bomb.forked == kMaxProcesses - 1);  // the run itself is one of the eight
  CHECK(bomb.err == EAGAIN);
  CHECK(cg->limit_hit() == std::optional<std::string>("processes"));

  cg->kill_all();
  CHECK(WTERMSIG(wait_status(bomb.child)) == SIGKILL);
  std::vector<std::string> dirs = cg->dirs();
  cg->remove();
  CHECK(cg->removed());
  for (const auto& dir : dirs) CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("a reused cgroup reports only its own run's limits", "[isolation][real][needs-cgroup]") {
  RealIsolation real;
  if (real.unavailable()) JOBHOST_SKIP("no cgroup mode on this machine: " << real.caps.description);
  become_subreaper();
  constexpr int kMaxProcesses = 8;
  CgroupPool pool(real.caps);
  auto cg = pool.acquire("bomb", limits_of(0, kMaxProcesses));
  REQUIRE(cg.has_value());
  const std::vector<std::string> dirs = cg->dirs();
  const ForkBomb bomb = start_fork_bomb(*cg);
  CHECK(bomb.err == EAGAIN);
  CHECK(cg->limit_hit() == std::optional<std::string>("processes"));
  cg->kill_all();
  CHECK(WTERMSIG(wait_status(bomb.child)) == SIGKILL);
  // The bomb's children, re-parented to us: reap them, then wait until the
  // kernel shows the cgroups empty, as they are when the Executor gives a
  // run's cgroup back (after the group is reaped).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto empty = [&] {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    for (const auto& dir : dirs) {
      if (!slurp(fs::path(dir) / "cgroup.procs").empty()) return false;
    }
    return true;
  };
  while (!empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(empty());
  pool.release(std::move(*cg));
  REQUIRE(pool.idle() == 1);

  auto again = pool.acquire("calm", limits_of(0, kMaxProcesses));
  REQUIRE(again.has_value());
  CHECK(again->dirs() == dirs);
  CHECK_FALSE(again->limit_hit());
  CHECK(run_in_child([&] { return again->join_in_child(); }) == 0);
  CHECK_FALSE(again->limit_hit());
  pool.release(std::move(*again));
  pool.clear();
  for (const auto& dir : dirs) CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("the cgroup memory limit OOM-kills the run and is reported as memory",
          "[isolation][real][needs-cgroup]") {
  RealIsolation real;
  if (real.unavailable()) JOBHOST_SKIP("no cgroup mode on this machine: " << real.caps.description);
  auto cg = RunCgroup::create(real.caps, "memory-hog", limits_of(32ull << 20, 0));
  REQUIRE(cg.has_value());
  // No RLIMIT_AS here: the cgroup alone must stop the hog. In v1 the kernel's
  // memcg OOM killer sends SIGKILL (memory.oom_control oom_kill 1); in v2,
  // memory.events oom_kill.
  int status = wait_status(spawn([&] {
    if (cg->join_in_child() != 0) return 10;
    constexpr size_t kChunk = 1 << 20;
    for (int i = 0; i < 256; ++i) {
      char* p = static_cast<char*>(::malloc(kChunk));
      if (p == nullptr) return 11;  // not expected: the OOM killer comes first
      std::memset(p, 0x5a, kChunk);
    }
    return 0;
  }));
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(cg->limit_hit() == std::optional<std::string>("memory"));
  cg->remove();
  CHECK(cg->removed());
}

TEST_CASE("cpu_usage totals the CPU time of the run's processes",
          "[isolation][real][needs-cgroup]") {
  RealIsolation real;
  if (real.unavailable()) JOBHOST_SKIP("no cgroup mode on this machine: " << real.caps.description);
  if (real.caps.v2_parent.empty()) {
    JOBHOST_SKIP("no v2 cgroup for cpu.stat: " << real.caps.description);
  }
  auto cg = RunCgroup::create(real.caps, "cpu", limits_of(0, 0));
  REQUIRE(cg.has_value());
  REQUIRE(cg->cpu_usage().has_value());
  CHECK(run_in_child([&] {
          if (cg->join_in_child() != 0) return 1;
          timespec ts{};
          do {
            ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
          } while (ts.tv_sec == 0 && ts.tv_nsec < 150'000'000);
          return 0;
        }) == 0);
  CHECK(cg->cpu_usage().value() >= std::chrono::milliseconds(100));
}

TEST_CASE("cleanup_stale kills and removes run cgroups a dead host left",
          "[isolation][real][needs-cgroup]") {
  RealIsolation real;
  if (real.unavailable()) JOBHOST_SKIP("no cgroup mode on this machine: " << real.caps.description);
  become_subreaper();
  // What a crashed host leaves: a run cgroup per hierarchy, a run still in it.
  std::vector<fs::path> stale;
  for (const fs::path& parent :
       {real.caps.v2_parent, real.caps.memory_parent, real.caps.pids_parent}) {
    if (parent.empty()) continue;
    stale.push_back(parent / "01STALE");
    REQUIRE(fs::create_directory(stale.back()));
  }
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = spawn([&] {
    for (const auto& dir : stale) {
      std::ofstream procs(dir / "cgroup.procs");
      procs << 0 << std::flush;
      if (!procs) return 10;
    }
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::alarm(20);
      pause_forever();
    }
    if (::write(fds[1], &grandchild, sizeof grandchild) != sizeof grandchild) return 11;
    pause_forever();
  });
  ::close(fds[1]);
  pid_t grandchild = 0;
  REQUIRE(read_exact(fds[0], &grandchild, sizeof grandchild));
  ::close(fds[0]);
  REQUIRE(alive(grandchild));

  StaleCleanup result = cleanup_stale(real.caps);
  CHECK(result.removed == 1);
  CHECK(result.problems.empty());
  for (const auto& dir : stale) CHECK_FALSE(fs::exists(dir));
  CHECK(WTERMSIG(wait_status(child)) == SIGKILL);
  CHECK(reap_within(grandchild, std::chrono::seconds(2)));
  CHECK_FALSE(alive(grandchild));
  CHECK(remove_parent_cgroups(real.caps));
}

// ---------------------------------------------------------------------------
// rlimits and privileges, in forked children

TEST_CASE("apply_rlimits_in_child sets every limit", "[isolation]") {
  constexpr std::array<int, 6> kResources = {RLIMIT_AS,    RLIMIT_CPU,   RLIMIT_NOFILE,
                                             RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_CORE};
  using Pairs = std::array<std::array<rlim_t, 2>, 6>;
  rlimit inherited_nofile{}, inherited_as{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &inherited_nofile) == 0);
  REQUIRE(::getrlimit(RLIMIT_AS, &inherited_as) == 0);
#if defined(__SANITIZE_ADDRESS__)
  const bool asan = true;
#else
  const bool asan = false;
#endif
  // "Unlimited" is the inherited hard limit when it cannot be raised (no
  // CAP_SYS_RESOURCE, as in some containers even for root).
  auto unlimited = [](int resource) {
    rlimit rl{};
    REQUIRE(::getrlimit(resource, &rl) == 0);
    rlim_t v = has_cap_sys_resource() ? RLIM_INFINITY : rl.rlim_max;
    return std::array<rlim_t, 2>{v, v};
  };
  config::Limits set;
  set.memory_bytes = 256ull << 20;
  set.cpu_time = std::chrono::milliseconds(2500);
  set.open_files = 100;
  set.processes = 50;
  set.file_size = 1 << 20;
  config::Limits zeros;
  zeros.memory_bytes = 0;
  zeros.cpu_time = std::chrono::milliseconds(0);
  zeros.open_files = 0;
  zeros.processes = 0;
  zeros.file_size = 0;
  struct Case {
    const char* name;
    config::Limits limits;
    Pairs expected;  // {soft, hard} per kResources entry
  };
  const std::vector<Case> cases = {
      {"values",
       set,
       {{{asan ? inherited_as.rlim_cur : 256ull << 20, asan ? inherited_as.rlim_max : 256ull << 20},
         {3, 4},  // 2.5 s rounds up; SIGKILL one second after SIGXCPU
         {100, 100},
         {50, 50},
         {1 << 20, 1 << 20},
         {0, 0}}}},
      {"zeros: unlimited, open files inherited, no core",
       zeros,
       {{asan ? std::array<rlim_t, 2>{inherited_as.rlim_cur, inherited_as.rlim_max}
              : unlimited(RLIMIT_AS),
         unlimited(RLIMIT_CPU),
         {inherited_nofile.rlim_cur, inherited_nofile.rlim_max},
         unlimited(RLIMIT_NPROC),
         unlimited(RLIMIT_FSIZE),
         {0, 0}}}},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      int fds[2];
      REQUIRE(::pipe(fds) == 0);
      pid_t child = spawn([&] {
        if (apply_rlimits_in_child(c.limits)) return 1;
        Pairs got{};
        for (size_t i = 0; i < kResources.size(); ++i) {
          rlimit rl{};
          ::getrlimit(kResources[i], &rl);
          got[i] = {rl.rlim_cur, rl.rlim_max};
        }
        return ::write(fds[1], &got, sizeof got) == sizeof got ? 0 : 2;
      });
      ::close(fds[1]);
      Pairs got{};
      bool read_ok = read_exact(fds[0], &got, sizeof got);
      ::close(fds[0]);
      int status = wait_status(child);
      REQUIRE(WIFEXITED(status));
      REQUIRE(WEXITSTATUS(status) == 0);
      REQUIRE(read_ok);
      for (size_t i = 0; i < kResources.size(); ++i) {
        INFO("resource " << kResources[i]);
        CHECK(got[i] == c.expected[i]);
      }
    }
  }
}

TEST_CASE("rlimits bind: open files and file size", "[isolation]") {
  TempDir tmp;
  std::string file = (tmp.path() / "big").string();
  int result = run_in_child([&] {
    config::Limits limits;
    limits.open_files = 16;
    limits.file_size = 4096;
    if (apply_rlimits_in_child(limits)) return 1;
    int failed_open = 0;
    for (int i = 0; i < 32; ++i) {
      if (::open("/dev/null", O_RDONLY) < 0) {
        failed_open = errno == EMFILE ? 1 : 0;
        break;
      }
    }
    ::signal(SIGXFSZ, SIG_IGN);  // otherwise SIGXFSZ kills the writer
    for (int fd = 3; fd < 16; ++fd) ::close(fd);
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 2;
    static char buf[8192];
    ssize_t first = ::write(fd, buf, sizeof buf);  // short: stops at 4096
    ssize_t second = ::write(fd, buf, 1);
    int efbig = second < 0 && errno == EFBIG ? 1 : 0;
    return (failed_open ? 4 : 0) | (first == 4096 ? 8 : 0) | (efbig ? 16 : 0);
  });
  CHECK((result & 4) != 0);   // EMFILE before 32 descriptors
  CHECK((result & 8) != 0);   // write stops at the file size limit
  CHECK((result & 16) != 0);  // then EFBIG
}

TEST_CASE("resolve_credentials looks up users and groups", "[isolation]") {
  const bool root = ::geteuid() == 0;
  struct Case {
    std::optional<std::string> user, group;
    bool ok;
    uid_t uid;
    gid_t gid;
    std::string error;
  };
  const std::vector<Case> cases = {
      {std::nullopt, std::nullopt, true, ::getuid(), ::getgid(), ""},
      {"nobody", std::nullopt, true, 65534, 65534, ""},
      {"65534", std::nullopt, true, 65534, 65534, ""},
      {"nobody", "nogroup", true, 65534, 65534, ""},
      {"nobody", "0", true, 65534, 0, ""},
      {std::nullopt, "nogroup", true, ::getuid(), 65534, ""},
      {"4000000", "nogroup", true, 4000000, 65534, ""},
      {"jobhost-no-such-user", std::nullopt, false, 0, 0, "unknown user \"jobhost-no-such-user\""},
      {"4000000", std::nullopt, false, 0, 0, "unknown user \"4000000\""},
      {"nobody", "jobhost-no-such-group", false, 0, 0, "unknown group \"jobhost-no-such-group\""},
  };
  for (const auto& c : cases) {
    INFO("user " << c.user.value_or("-") << ", group " << c.group.value_or("-"));
    auto creds = resolve_credentials(c.user, c.group);
    REQUIRE(creds.has_value() == c.ok);
    if (!c.ok) {
      CHECK_THAT(creds.error().message, Catch::Contains(c.error));
      continue;
    }
    CHECK(creds->uid == c.uid);
    CHECK(creds->gid == c.gid);
    CHECK(creds->change == (root && (c.user || c.group)));
    if (c.user || c.group) {
      CHECK(std::find(creds->groups.begin(), creds->groups.end(), c.gid) != creds->groups.end());
    }
  }
}

TEST_CASE("drop_privileges_in_child drops to nobody for good", "[isolation][needs-root]") {
  if (::geteuid() != 0) JOBHOST_SKIP("dropping privileges needs root");
  auto creds = resolve_credentials("nobody", std::nullopt);
  REQUIRE(creds.has_value());
  REQUIRE(creds->change);
  int result = run_in_child([&] {
    if (auto err = drop_privileges_in_child(*creds)) return 1;
    int bits = 0;
    if (::getuid() == 65534 && ::geteuid() == 65534) bits |= 2;
    if (::getgid() == 65534 && ::getegid() == 65534) bits |= 4;
    if (::setuid(0) != 0 && errno == EPERM) bits |= 8;
    if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) bits |= 16;
    gid_t groups[64];
    int n = ::getgroups(64, groups);
    if (n == static_cast<int>(creds->groups.size()) && n >= 1) bits |= 32;
    for (int i = 0; i < n; ++i) {
      if (groups[i] == 0) bits |= 64;  // root's group must be gone
    }
    return bits;
  });
  CHECK((result & 1) == 0);
  CHECK((result & 2) != 0);
  CHECK((result & 4) != 0);
  CHECK((result & 8) != 0);
  CHECK((result & 16) != 0);
  CHECK((result & 32) != 0);
  CHECK((result & 64) == 0);
}

TEST_CASE("drop_privileges_in_child without a change only sets no_new_privs", "[isolation]") {
  Credentials keep;
  keep.uid = ::getuid();
  keep.gid = ::getgid();
  const uid_t uid = ::getuid();
  int result = run_in_child([&] {
    if (drop_privileges_in_child(keep)) return 1;
    if (::getuid() != uid) return 2;
    return ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 3;
  });
  CHECK(result == 0);
}
