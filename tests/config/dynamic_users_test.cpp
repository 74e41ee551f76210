// Dynamic users: the [host] dynamic_users range, the uid each job gets, and
// how load_config fills them in (config/dynamic_users.h).
#include <fmt/core.h>
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/dynamic_users.h"
#include "config/temp_config.h"

using jobhost::config::allocate_dynamic_uids;
using jobhost::config::load_config;
using jobhost::config::parse_uid_range;
using jobhost::config::UidRange;
using jobhost::config::test::TempConfig;

TEST_CASE("parse_uid_range reads FIRST-LAST and says what is wrong", "[config][dynamic-users]") {
  struct Case {
    const char* text;
    bool ok;
    uint32_t first, last;
    const char* says;  // a substring of the error
  };
  const Case cases[] = {
      {"61184-65519", true, 61184, 65519, ""},
      {"1-1", true, 1, 1, ""},
      {"70000-4294967294", true, 70000, 4294967294u, ""},
      {"61184", false, 0, 0, "is not a range"},
      {"", false, 0, 0, "is not a range"},
      {"0-10", false, 0, 0, "0 is root"},
      {"10-4294967295", false, 0, 0, "4294967295 is the invalid id"},
      {"10-99999999999", false, 0, 0, "out of range"},
      {"20-10", false, 0, 0, "is empty"},
      {"a-10", false, 0, 0, "\"a\" is not a whole number"},
      {"10-", false, 0, 0, "\"\" is not a whole number"},
      {"-10", false, 0, 0, "\"\" is not a whole number"},
      {"+1-10", false, 0, 0, "not a whole number"},
      {"1-2-3", false, 0, 0, "\"2-3\" is not a whole number"},
      {" 1-2", false, 0, 0, "not a whole number"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto r = parse_uid_range(c.text);
    REQUIRE(r.has_value() == c.ok);
    if (c.ok) {
      CHECK(r->first == c.first);
      CHECK(r->last == c.last);
    } else {
      CHECK_THAT(r.error().message, Catch::Contains(c.says));
      CHECK_THAT(r.error().message, Catch::Contains("61184-65519") || Catch::Contains("id"));
    }
  }
}

TEST_CASE("allocate_dynamic_uids: stable, unique, skips known and taken ids",
          "[config][dynamic-users]") {
  const auto nobody_known = [](uint32_t) { return false; };
  const UidRange big{61184, 65519};

  SECTION("stable per name: the same uid whatever the order and the other jobs") {
    auto a = allocate_dynamic_uids(big, {"backup", "report", "sync"}, {}, nobody_known);
    auto b = allocate_dynamic_uids(big, {"sync", "backup", "report"}, {}, nobody_known);
    auto c = allocate_dynamic_uids(big, {"report"}, {}, nobody_known);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(*a == *b);
    CHECK(c->at("report") == a->at("report"));
    std::set<uint32_t> ids;
    for (const auto& [job, id] : *a) {
      CHECK(id >= big.first);
      CHECK(id <= big.last);
      ids.insert(id);
    }
    CHECK(ids.size() == 3);
  }

  // In a range of 4, the probing order is visible: each case lists what is
  // unavailable and checks every job got a free, distinct id.
  struct Case {
    std::vector<std::string> jobs;
    std::set<uint32_t> taken;  // numeric users of other jobs
    std::set<uint32_t> known;  // in the account database
    bool ok;
  };
  const UidRange small{100, 103};
  const Case cases[] = {
      {{"a"}, {}, {}, true},
      {{"a", "b", "c", "d"}, {}, {}, true},
      {{"a", "b"}, {100, 101}, {}, true},
      {{"a", "b"}, {}, {100, 101}, true},
      {{"a"}, {100, 101}, {102}, true},
      {{"a", "b", "c", "d", "e"}, {}, {}, false},
      {{"a", "b"}, {100}, {101, 102}, false},
      {{"a"}, {100, 101, 102, 103}, {}, false},
      {{"a"}, {}, {100, 101, 102, 103}, false},
  };
  for (const auto& c : cases) {
    INFO(fmt::format("jobs {}, taken {}, known {}", c.jobs.size(), c.taken.size(), c.known.size()));
    std::map<uint32_t, int> asked;
    auto known = [&](uint32_t id) {
      ++asked[id];
      return c.known.contains(id);
    };
    auto r = allocate_dynamic_uids(small, c.jobs, c.taken, known);
    REQUIRE(r.has_value() == c.ok);
    for (const auto& [id, times] : asked) CHECK(times == 1);  // one lookup per id
    if (!c.ok) {
      CHECK_THAT(r.error().message, Catch::Contains("no free uid left for job"));
      CHECK_THAT(r.error().message, Catch::Contains("100-103"));
      continue;
    }
    std::set<uint32_t> given;
    for (const auto& [job, id] : *r) {
      CHECK(id >= small.first);
      CHECK(id <= small.last);
      CHECK_FALSE(c.taken.contains(id));
      CHECK_FALSE(c.known.contains(id));
      given.insert(id);
    }
    CHECK(given.size() == c.jobs.size());
  }

  SECTION("65535, the 16-bit invalid id, is never given") {
    auto r = allocate_dynamic_uids({65535, 65536}, {"a"}, {}, nobody_known);
    REQUIRE(r);
    CHECK(r->at("a") == 65536);
    CHECK_FALSE(allocate_dynamic_uids({65535, 65535}, {"a"}, {}, nobody_known));
  }
}

TEST_CASE("load_config gives jobs without a user a dynamic uid", "[config][dynamic-users]") {
  TempConfig file(
      "[host]\ndynamic_users = \"70000-70009\"\n"
      "[jobs.a]\nplugin = \"p\"\nevery = \"1m\"\n"
      "[jobs.b]\nplugin = \"p\"\nevery = \"1m\"\nuser = \"70003\"\ngroup = \"0\"\n"
      "[jobs.c]\nplugin = \"p\"\nevery = \"1m\"\nuser = \"root\"\n");
  auto config = load_config(file.file());
  REQUIRE(config);
  CHECK(config->host.dynamic_users == UidRange{70000, 70009});
  const auto& a = *config->find_job("a");
  REQUIRE(a.dynamic_uid);
  CHECK(*a.dynamic_uid >= 70000);
  CHECK(*a.dynamic_uid <= 70009);
  CHECK(*a.dynamic_uid != 70003);  // b's numeric user
  CHECK_FALSE(config->find_job("b")->dynamic_uid);
  CHECK_FALSE(config->find_job("c")->dynamic_uid);
  // user = "root" loads, with a warning at the key.
  REQUIRE(config->warnings.size() == 1);
  CHECK(config->warnings[0].where.line == 14);
  CHECK_THAT(config->warnings[0].to_string(), Catch::Contains("runs as root"));
  // The dynamic uid is part of the definition: a run's uid changes with it.
  auto moved = a;
  moved.dynamic_uid = *a.dynamic_uid + 1;
  CHECK(jobhost::config::compute_definition_hash(moved) != a.definition_hash);
}

TEST_CASE("dynamic_users and control_group mistakes are reported at line:col",
          "[config][dynamic-users]") {
  struct Case {
    const char* host;
    const char* where;
    const char* says;
  };
  const Case cases[] = {
      {"dynamic_users = \"65519-61184\"\n", "2:17", "dynamic_users in [host]: the range"},
      {"dynamic_users = \"0-5\"\n", "2:17", "0 is root"},
      {"dynamic_users = 5\n", "2:17", "expected a string"},
      {"control_group = \"jobhost-no-such-group\"\n", "2:17", "unknown group"},
      // A range too small for the jobs: at the range.
      {"dynamic_users = \"70000-70000\"\n", "2:17", "no free uid left for job \"b\""},
  };
  for (const auto& c : cases) {
    INFO(c.host);
    TempConfig file(
        fmt::format("[host]\n{}[jobs.a]\nplugin = \"p\"\nevery = \"1m\"\n"
                    "[jobs.b]\nplugin = \"p\"\nevery = \"1m\"\n",
                    c.host));
    auto config = load_config(file.file());
    REQUIRE_FALSE(config);
    REQUIRE(config.error().size() == 1);
    const auto& e = config.error()[0];
    CHECK(fmt::format("{}:{}", e.where.line, e.where.column) == c.where);
    CHECK_THAT(e.message, Catch::Contains(c.says));
  }
}

TEST_CASE("account_sources_enumerable: one pass over the accounts only when it sees them all",
          "[config][dynamic-users]") {
  struct Case {
    const char* nsswitch;
    bool enumerable;
  };
  const Case cases[] = {
      {"passwd: files systemd\ngroup: files systemd\n", true},            // Debian 12
      {"passwd:compat\ngroup:compat\n", true},                            // no spaces
      {"# comment\npasswd: files # ldap\ngroup:  files\n", true},         // comments
      {"passwd: files [NOTFOUND=return] db\ngroup: files\n", true},       // actions
      {"passwd: files ldap\ngroup: files\n", false},                      // ldap may not list
      {"passwd: files\ngroup: sss files\n", false},                       // sss neither
      {"passwd: files\n", false},                                         // no group line
      {"group: files\n", false},                                          // no passwd line
      {"passwd:\ngroup: files\n", false},                                 // no source
      {"", false},                                                        // empty file
      {"shadow: ldap\npasswd: files\ngroup: files\nhosts: dns\n", true},  // other databases
  };
  for (const auto& c : cases) {
    INFO(c.nsswitch);
    CHECK(jobhost::config::account_sources_enumerable(c.nsswitch) == c.enumerable);
  }
}

TEST_CASE("account_ids_known agrees with account_id_known", "[config][dynamic-users]") {
  const auto known = jobhost::config::account_ids_known();
  // root, nobody and nogroup exist on every Debian system; ids in the
  // dynamic range and beyond usually do not: whatever the answer, both
  // ways of asking must give the same one.
  for (uint32_t id : {0u, 1u, 65534u, 61184u, 65519u, 100000u, 4294967294u}) {
    INFO(id);
    CHECK(known(id) == jobhost::config::account_id_known(id));
  }
  CHECK(known(0));
}
