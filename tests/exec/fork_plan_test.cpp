// The fork server's plan encoding (exec/fork_plan.h): a plan decodes to what
// was encoded; a cut, padded or lying plan is refused without allocating
// for what it claims (fuzz/regressions/fork_plan/huge-list-count).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "exec/fork_plan.h"

using namespace jobhost;
using namespace jobhost::exec;

namespace {

RunRequest sample_request() {
  RunRequest r;
  r.job = "backup";
  r.run_id = "01JABCDEF0123456789ABCDEFG";
  r.trace_id = "01JABCDEF0123456789ABCDEFH";
  r.attempt = 2;
  r.scheduled_for = TimePoint(std::chrono::seconds(1774744200));
  r.plugin_path = "/var/lib/jobhost/plugins/ab/abcdef.so";
  r.params = {{"greeting", "hi"}, {"count", "3"}};
  r.secrets = {{"db", "hunter2"}};
  r.limits.memory_bytes = 1 << 30;
  return r;
}

const Credentials kNobody{65534, 65534, {65534, 100}, true};
const std::vector<std::string> kProcs = {"/sys/fs/cgroup/a/cgroup.procs", "/sys/fs/cgroup/b"};

// The plan as the server's decoder gets it: without the op byte.
std::string sample_plan() {
  return encode_plan(sample_request(), kProcs, kNobody, true).substr(1);
}

}  // namespace

TEST_CASE("fork plan: what is encoded decodes the same") {
  Plan plan;
  bool preload = false;
  REQUIRE(decode_plan(sample_plan(), plan, preload));
  CHECK(preload);
  CHECK(plan.request.job == "backup");
  CHECK(plan.request.attempt == 2);
  CHECK(plan.request.plugin_path == "/var/lib/jobhost/plugins/ab/abcdef.so");
  CHECK(plan.request.params == sample_request().params);
  CHECK(plan.request.secrets == sample_request().secrets);
  CHECK(plan.request.limits.memory_bytes == 1u << 30);
  CHECK(plan.cgroup_procs == kProcs);
  CHECK(plan.credentials.uid == 65534);
  CHECK(plan.credentials.groups == kNobody.groups);
  CHECK(plan.credentials.change);
}

TEST_CASE("fork plan: a cut or padded plan is refused") {
  const std::string full = sample_plan();
  for (std::size_t size = 0; size < full.size(); ++size) {
    INFO("cut to " << size << " of " << full.size() << " bytes");
    Plan plan;
    bool preload = false;
    CHECK_FALSE(decode_plan(std::string_view(full).substr(0, size), plan, preload));
  }
  Plan plan;
  bool preload = false;
  CHECK_FALSE(decode_plan(full + "x", plan, preload));
}

TEST_CASE("fork plan: a list count larger than the bytes left is refused before any allocation") {
  // Where each count sits (the cgroup.procs count, the groups count): the
  // first byte where a plan with one entry differs from one with none.
  const std::string none = encode_plan(sample_request(), {}, {}, false).substr(1);
  auto first_difference = [&](const std::string& other) {
    return static_cast<std::size_t>(
        std::mismatch(none.begin(), none.end(), other.begin(), other.end()).first - none.begin());
  };
  Credentials one_group;
  one_group.groups = {1};
  const std::size_t procs_count_at =
      first_difference(encode_plan(sample_request(), {"p"}, {}, false).substr(1));
  const std::size_t groups_count_at =
      first_difference(encode_plan(sample_request(), {}, one_group, false).substr(1));
  REQUIRE(procs_count_at < groups_count_at);
  for (std::size_t at : {procs_count_at, groups_count_at}) {
    for (uint32_t count : {1u, 1000u, 0xffffffffu}) {
      INFO("count " << count << " at byte " << at);
      std::string lying = none;
      std::memcpy(lying.data() + at, &count, sizeof count);
      Plan plan;
      bool preload = false;
      CHECK_FALSE(decode_plan(lying, plan, preload));
      CHECK(plan.cgroup_procs.size() < 2);
      CHECK(plan.credentials.groups.size() < 2);
    }
  }
}
