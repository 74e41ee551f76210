// The pure parts of retention: the policy of a config and the prune slack.
#include <catch2/catch.hpp>

#include "engine/retention.h"

using namespace jobhost;
using namespace jobhost::engine;

TEST_CASE("prune_slack is a tenth of keep_last, at least 1", "[retention]") {
  struct Case {
    int keep;
    int slack;
  };
  const Case cases[] = {{1, 1}, {3, 1}, {19, 1}, {20, 2}, {1000, 100}, {10000, 1000}};
  for (const auto& c : cases) {
    INFO("keep_last " << c.keep);
    CHECK(prune_slack(c.keep) == c.slack);
  }
}

TEST_CASE("retention_policy takes keep_runs and the jobs with a count limit", "[retention]") {
  config::Config config;
  config.host.keep_runs = std::chrono::days(7);
  for (auto [name, keep] : {std::pair{"a", 5}, std::pair{"b", 0}, std::pair{"c", 10000}}) {
    config::JobConfig job;
    job.name = name;
    job.keep_last = keep;
    config.jobs.push_back(job);
  }
  auto policy = retention_policy(config);
  CHECK(policy.keep_runs == std::chrono::days(7));
  CHECK(policy.keep_last == std::map<std::string, int, std::less<>>{{"a", 5}, {"c", 10000}});
}
