// The pure core of file triggers: names matched, when a batch fires, and
// the payload it carries (triggers/batch.h).
#include <fmt/core.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "triggers/batch.h"

using namespace jobhost;
using namespace jobhost::triggers;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
constexpr std::size_t kEventBytes = 32 * 1024;  // engine::kMaxEventBytes, what FileTriggers passes
}  // namespace

TEST_CASE("split_watch_path: a literal directory and a file-name pattern", "[triggers]") {
  struct Case {
    const char* path;
    const char* dir;
    const char* pattern;
  };
  const Case cases[] = {
      {"/srv/in/*.csv", "/srv/in", "*.csv"},
      {"/srv/in/ready", "/srv/in", "ready"},
      {"/top", "/", "top"},
      {"/a/b/c/[0-9]?.log", "/a/b/c", "[0-9]?.log"},
  };
  for (const auto& c : cases) {
    INFO(c.path);
    const WatchPath split = split_watch_path(c.path);
    CHECK(split.dir == c.dir);
    CHECK(split.pattern == c.pattern);
  }
}

TEST_CASE("name_matches: fnmatch on the file name, dot files only by a dot", "[triggers]") {
  struct Case {
    const char* pattern;
    const char* name;
    bool matches;
  };
  const Case cases[] = {
      {"*.csv", "a.csv", true},
      {"*.csv", "a.csv.tmp", false},
      {"*.csv", ".a.csv", false},  // rsync's temporary name, renamed when complete
      {".*.csv", ".a.csv", true},
      {"*", "anything", true},
      {"*", ".hidden", false},
      {"ready", "ready", true},
      {"ready", "ready2", false},
      {"day-[0-9][0-9].log", "day-07.log", true},
      {"day-[0-9][0-9].log", "day-7.log", false},
      {"?.txt", "a.txt", true},
      {"?.txt", "ab.txt", false},
      {"[!a]*", "b", true},
      {"[!a]*", "a", false},
  };
  for (const auto& c : cases) {
    INFO(c.pattern << " " << c.name);
    CHECK(name_matches(c.pattern, c.name) == c.matches);
  }
}

TEST_CASE("Batch::due: a quiet debounce after the last change, at most ten after the first",
          "[triggers]") {
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  Batch batch;
  CHECK(batch.empty());
  batch.add("/in/a", t0);
  CHECK_FALSE(batch.empty());
  CHECK(batch.due(2s) == t0 + 2s);
  batch.add("/in/b", t0 + 1500ms);
  CHECK(batch.due(2s) == t0 + 3500ms);
  // A steady stream: every 1.5 s for a minute still fires 20 s after the first.
  for (auto t = t0; t < t0 + 60s; t += 1500ms) batch.add("/in/c", t);
  CHECK(batch.due(2s) == t0 + 20s);
  CHECK(batch.size() == 3);  // one path changed twice is listed once
}

TEST_CASE("Batch::payload: sorted distinct paths and its flags", "[triggers]") {
  const auto t0 = std::chrono::steady_clock::time_point{};
  Batch batch;
  batch.add("/in/b.csv", t0);
  batch.add("/in/a.csv", t0);
  batch.add("/in/b.csv", t0);
  CHECK(batch.payload(kEventBytes) ==
        R"({"catchup":false,"count":2,"overflow":false,"paths":["/in/a.csv","/in/b.csv"],)"
        R"("truncated":false})");

  Batch flagged;
  flagged.overflowed(t0);
  CHECK_FALSE(flagged.empty());  // an overflow alone fires
  flagged.add("/in/c", t0);
  flagged.mark_catchup();
  CHECK(flagged.payload(1000) ==
        R"({"catchup":true,"count":1,"overflow":true,"paths":["/in/c"],"truncated":false})");

  // A name that is not UTF-8 is written with U+FFFD, never refused.
  Batch odd;
  odd.add("/in/\xff.csv", t0);
  CHECK(json::parse(odd.payload(1000))["paths"][0] == "/in/\xEF\xBF\xBD.csv");
}

TEST_CASE("Batch::payload: what does not fit is counted, not listed", "[triggers]") {
  const auto t0 = std::chrono::steady_clock::time_point{};
  Batch batch;
  for (int i = 0; i < 5000; ++i) batch.add(fmt::format("/srv/in/file-{:05}.csv", i), t0);
  const std::string text = batch.payload(kEventBytes);
  CHECK(text.size() <= kEventBytes);
  CHECK(text.size() > kEventBytes - 30);  // as many as fit
  const json payload = json::parse(text);
  CHECK(payload["truncated"] == true);
  CHECK(payload["count"] == 5000);
  const auto& paths = payload["paths"];
  REQUIRE(paths.size() > 1000);
  CHECK(paths.size() < 5000);
  CHECK(paths[0] == "/srv/in/file-00000.csv");  // the first, in order
  CHECK(paths.back() == fmt::format("/srv/in/file-{:05}.csv", paths.size() - 1));

  // Exactly at the limit: everything is listed.
  Batch two;
  two.add("/a", t0);
  two.add("/b", t0);
  const std::string all = two.payload(1000);
  CHECK(two.payload(all.size()) == all);
  CHECK(json::parse(two.payload(all.size() - 1))["truncated"] == true);
}

TEST_CASE("Batch keeps at most kMaxBatchPaths, then is truncated", "[triggers]") {
  const auto t0 = std::chrono::steady_clock::time_point{};
  Batch batch;
  for (std::size_t i = 0; i < kMaxBatchPaths + 10; ++i) batch.add(std::to_string(i), t0);
  CHECK(batch.size() == kMaxBatchPaths);
  batch.add("0", t0);  // already there: still kept
  const json payload = json::parse(batch.payload(kEventBytes));
  CHECK(payload["truncated"] == true);
  CHECK(payload["count"] == kMaxBatchPaths);
}
