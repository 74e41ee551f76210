// The plugin test kit (sdk/include/jobhost/testing.hpp and testing.h): every
// kind of thing it captures, params and secrets, cancel, the descriptor
// checks, init/run/shutdown as the host calls them, NULL everywhere, load().
#include <jobhost/testing.hpp>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "support/temp_dir.h"

using jobhost::Result;
using jobhost::testing::FakeHost;
using jobhost::testing::LogLine;
using jobhost::testing::Metric;

namespace {

// Calls every host function once, and says what it was given in its message.
int32_t everything_run(const jobhost_host_api* host, jobhost_run* run) {
  host->log(run, JOBHOST_LOG_DEBUG, "d");
  host->log(run, JOBHOST_LOG_INFO, "i");
  host->log(run, JOBHOST_LOG_WARN, "w");
  host->log(run, JOBHOST_LOG_ERROR, "e");
  host->log(run, 99, "out of range");
  host->metric(run, "rows", 1);
  host->metric(run, "bytes", 2.5);
  host->metric(run, "rows", 3);
  host->heartbeat(run, 0.5);
  host->heartbeat(run, -3);
  host->heartbeat(run, 7);
  host->heartbeat(run, std::numeric_limits<double>::quiet_NaN());
  host->set_message(run, "first");
  const char* color = host->param(run, "color");
  const char* missing = host->param(run, "missing");
  const char* token = host->secret(run, "token");
  const char* event = host->event(run);
  std::ostringstream m;
  m << "color=" << (color ? color : "NULL") << " missing=" << (missing ? missing : "NULL")
    << " token=" << (token ? token : "NULL") << " run=" << host->run_id(run)
    << " attempt=" << host->attempt(run) << " slot=" << host->scheduled_for(run)
    << " trigger=" << host->trigger_kind(run) << " event=" << (event ? event : "NULL")
    << " cancelled=" << host->cancelled(run);
  host->set_message(run, m.str().c_str());
  return JOBHOST_RETRY;
}

const jobhost_plugin kEverything = {sizeof(jobhost_plugin),
                                    JOBHOST_ABI_MAJOR,
                                    JOBHOST_ABI_MINOR,
                                    "everything",
                                    "1.0",
                                    nullptr,
                                    nullptr,
                                    everything_run,
                                    nullptr};

// Passes NULL for every string and handle the ABI lets it.
int32_t nulls_run(const jobhost_host_api* host, jobhost_run* run) {
  host->log(run, JOBHOST_LOG_INFO, nullptr);
  host->metric(run, nullptr, 1);
  host->set_message(run, nullptr);
  const bool lookups_null =
      host->param(run, nullptr) == nullptr && host->secret(run, nullptr) == nullptr;
  // A NULL run handle: ignored, nothing crashes.
  host->log(nullptr, JOBHOST_LOG_INFO, "lost");
  host->metric(nullptr, "lost", 1);
  host->heartbeat(nullptr, 1);
  host->set_message(nullptr, "lost");
  const bool no_run_ok = host->param(nullptr, "color") == nullptr &&
                         host->secret(nullptr, nullptr) == nullptr &&
                         host->run_id(nullptr) != nullptr && host->cancelled(nullptr) == 0 &&
                         host->trigger_kind(nullptr) != nullptr && host->event(nullptr) == nullptr;
  return lookups_null && no_run_ok ? JOBHOST_OK : JOBHOST_FAIL;
}

const jobhost_plugin kNulls = {sizeof(jobhost_plugin),
                               JOBHOST_ABI_MAJOR,
                               JOBHOST_ABI_MINOR,
                               "nulls",
                               "1.0",
                               nullptr,
                               nullptr,
                               nulls_run,
                               nullptr};

// Counts its loops until cancelled() (at most `limit` param loops), as a metric.
int32_t loop_run(const jobhost_host_api* host, jobhost_run* run) {
  const char* limit_text = host->param(run, "limit");
  const long limit = limit_text ? std::atol(limit_text) : 1000;
  long loops = 0;
  while (loops < limit && !host->cancelled(run)) ++loops;
  host->metric(run, "loops", static_cast<double>(loops));
  return loops < limit ? JOBHOST_RETRY : JOBHOST_OK;
}

const jobhost_plugin kLoop = {sizeof(jobhost_plugin),
                              JOBHOST_ABI_MAJOR,
                              JOBHOST_ABI_MINOR,
                              "loop",
                              "1.0",
                              nullptr,
                              nullptr,
                              loop_run,
                              nullptr};

// Waits for cancelled() with no bound: only a cancel from another thread ends it.
std::atomic<bool> g_waiting{false};
int32_t wait_run(const jobhost_host_api* host, jobhost_run* run) {
  g_waiting = true;  // tells the test it is running
  while (!host->cancelled(run)) std::this_thread::yield();
  host->set_message(run, "stopped");
  return JOBHOST_RETRY;
}

const jobhost_plugin kWait = {sizeof(jobhost_plugin),
                              JOBHOST_ABI_MAJOR,
                              JOBHOST_ABI_MINOR,
                              "wait",
                              "1.0",
                              nullptr,
                              nullptr,
                              wait_run,
                              nullptr};

// init returns the `init` param's number (0 if unset); shutdown is counted.
int g_shutdowns = 0;
int32_t lifecycle_init(const jobhost_host_api* host, jobhost_run* run) {
  const char* rc = host->param(run, "init");
  if (const char* m = host->param(run, "init_message")) host->set_message(run, m);
  return rc ? std::atoi(rc) : 0;
}
int32_t lifecycle_run(const jobhost_host_api* host, jobhost_run* run) {
  host->log(run, JOBHOST_LOG_INFO, "ran");
  return JOBHOST_OK;
}
void lifecycle_shutdown() {
  ++g_shutdowns;
}

const jobhost_plugin kLifecycle = {
    sizeof(jobhost_plugin), JOBHOST_ABI_MAJOR, JOBHOST_ABI_MINOR, "lifecycle", "1.0", nullptr,
    lifecycle_init,         lifecycle_run,     lifecycle_shutdown};

int32_t ok_run(const jobhost_host_api*, jobhost_run*) {
  return JOBHOST_OK;
}

}  // namespace

TEST_CASE("test kit: every kind of call is captured, in order", "[sdk][testing]") {
  FakeHost host;
  host.param("color", "blue").secret("token", "s3cret").run_id("r-1").attempt(3);
  host.scheduled_for(std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::seconds(60)));
  host.trigger_kind("webhook").event(R"({"n":1})");

  CHECK(host.run(&kEverything) == Result::retry);

  CHECK(host.logs() == std::vector<LogLine>{{JOBHOST_LOG_DEBUG, "d"},
                                            {JOBHOST_LOG_INFO, "i"},
                                            {JOBHOST_LOG_WARN, "w"},
                                            {JOBHOST_LOG_ERROR, "e"},
                                            {JOBHOST_LOG_INFO, "out of range"}});
  CHECK(host.logged(JOBHOST_LOG_WARN, "w"));
  CHECK_FALSE(host.logged(JOBHOST_LOG_ERROR, "w"));
  CHECK(host.metrics() == std::vector<Metric>{{"rows", 1}, {"bytes", 2.5}, {"rows", 3}});
  CHECK(host.metric("rows") == 3.0);  // the last value, as the host records
  CHECK(host.metric("nope") == std::nullopt);
  // Clamped as the host does: unknown (NaN, negative) is -1, above 1 is 1.
  CHECK(host.heartbeats() == std::vector<double>{0.5, -1, 1, -1});
  REQUIRE(host.messages().size() == 2);
  CHECK(host.messages().front() == "first");
  CHECK(host.message() ==
        "color=blue missing=NULL token=s3cret run=r-1 attempt=3 slot=60000 "
        "trigger=webhook event={\"n\":1} cancelled=0");
  CHECK(host.cancelled_calls() == 1);
}

TEST_CASE("test kit: the defaults, and missing params and secrets read as NULL", "[sdk][testing]") {
  FakeHost host;
  const auto before = std::chrono::system_clock::now() - std::chrono::seconds(1);
  CHECK(host.run(&kEverything) == Result::retry);
  const std::string m = *host.message();
  CHECK_THAT(m, Catch::StartsWith("color=NULL missing=NULL token=NULL run=test-run attempt=1 "));
  CHECK_THAT(m, Catch::EndsWith(" trigger=schedule event=NULL cancelled=0"));
  // Scheduled for now, in whole seconds.
  const auto slot = std::stoll(m.substr(m.find("slot=") + 5));
  CHECK(slot % 1000 == 0);
  CHECK(slot >=
        std::chrono::duration_cast<std::chrono::milliseconds>(before.time_since_epoch()).count());

  SECTION("an unset param or secret is NULL again") {
    host.param("color", "red").secret("token", "t");
    host.run(&kEverything);
    CHECK_THAT(*host.message(), Catch::StartsWith("color=red missing=NULL token=t "));
    host.unset_param("color").unset_secret("token").event(std::nullopt);
    host.run(&kEverything);
    CHECK_THAT(*host.message(), Catch::StartsWith("color=NULL missing=NULL token=NULL "));
  }
}

TEST_CASE("test kit: a run starts with nothing captured; settings stay", "[sdk][testing]") {
  FakeHost host;
  host.param("color", "green");
  host.run(&kEverything);
  REQUIRE(host.logs().size() == 5);
  CHECK(host.run(&kLifecycle) == Result::ok);
  CHECK(host.logs() == std::vector<LogLine>{{JOBHOST_LOG_INFO, "ran"}});
  CHECK(host.metrics().empty());
  CHECK(host.heartbeats().empty());
  CHECK(host.messages().empty());
  CHECK(host.message() == std::nullopt);
  host.run(&kEverything);
  CHECK_THAT(*host.message(), Catch::StartsWith("color=green "));
}

TEST_CASE("test kit: a plugin passing NULL strings and a NULL run is safe", "[sdk][testing]") {
  FakeHost host;
  CHECK(host.run(&kNulls) == Result::ok);
  // NULL strings are "", as the ABI says; calls on a NULL run reach nothing.
  CHECK(host.logs() == std::vector<LogLine>{{JOBHOST_LOG_INFO, ""}});
  CHECK(host.metrics() == std::vector<Metric>{{"", 1}});
  CHECK(host.messages() == std::vector<std::string>{""});
  CHECK(host.heartbeats().empty());
}

TEST_CASE("test kit: cancel", "[sdk][testing]") {
  FakeHost host;
  host.param("limit", "1000");
  SECTION("not cancelled: the loop runs to its end") {
    CHECK(host.run(&kLoop) == Result::ok);
    CHECK(host.metric("loops") == 1000);
    CHECK(host.cancelled_calls() == 1000);
  }
  SECTION("cancelled before the run: stops at once, and stays cancelled") {
    host.cancel();
    CHECK(host.run(&kLoop) == Result::retry);
    CHECK(host.metric("loops") == 0);
    CHECK(host.run(&kLoop) == Result::retry);
    CHECK(host.metric("loops") == 0);
  }
  SECTION("after N calls of cancelled(), in every run") {
    host.cancel_after(10);
    CHECK(host.run(&kLoop) == Result::retry);
    CHECK(host.metric("loops") == 10);
    CHECK(host.cancelled_calls() == 11);
    CHECK(host.run(&kLoop) == Result::retry);
    CHECK(host.metric("loops") == 10);
    host.cancel_after(0);
    host.run(&kLoop);
    CHECK(host.metric("loops") == 0);
  }
  SECTION("from another thread while the plugin runs") {
    std::thread canceller([&] {
      // Only once the run is under way, so the cancel lands mid-run.
      while (!g_waiting) std::this_thread::yield();
      host.cancel();
    });
    const Result r = host.run(&kWait);
    canceller.join();
    CHECK(r == Result::retry);
    CHECK(host.message() == "stopped");
  }
}

TEST_CASE("test kit: init, run and shutdown are called as the host calls them", "[sdk][testing]") {
  FakeHost host;
  g_shutdowns = 0;
  SECTION("init 0: run, then shutdown") {
    CHECK(host.run(&kLifecycle) == Result::ok);
    CHECK(host.init_called());
    CHECK(host.run_called());
    CHECK(host.shutdown_called());
    CHECK(g_shutdowns == 1);
  }
  SECTION("init fails: neither run nor shutdown; the host's message") {
    host.param("init", "7");
    CHECK(host.run(&kLifecycle) == Result::fail);
    CHECK(host.init_called());
    CHECK_FALSE(host.run_called());
    CHECK_FALSE(host.shutdown_called());
    CHECK(g_shutdowns == 0);
    CHECK(host.logs().empty());
    CHECK(host.message() == "init failed (returned 7)");
  }
  SECTION("init asks for a retry: RETRY, and its own message stays") {
    host.param("init", "1").param("init_message", "database not up yet");
    CHECK(host.run(&kLifecycle) == Result::retry);
    CHECK(host.message() == "database not up yet");
  }
  SECTION("no init and no shutdown: just run") {
    CHECK(host.run(&kLoop) == Result::ok);
    CHECK_FALSE(host.init_called());
    CHECK(host.run_called());
    CHECK_FALSE(host.shutdown_called());
  }
}

TEST_CASE("test kit: descriptors the host would refuse are not called", "[sdk][testing]") {
  struct Case {
    const char* what;
    jobhost_plugin descriptor;
    const char* reason;
  };
  const jobhost_plugin good = {sizeof(jobhost_plugin),
                               JOBHOST_ABI_MAJOR,
                               JOBHOST_ABI_MINOR,
                               "good",
                               "1.0",
                               nullptr,
                               nullptr,
                               ok_run,
                               nullptr};
  auto with = [&](auto change) {
    jobhost_plugin d = good;
    change(d);
    return d;
  };
  const Case cases[] = {
      {"struct_size too small", with([](auto& d) { d.struct_size = 8; }), "struct_size 8"},
      {"another ABI major", with([](auto& d) { d.abi_major = 2; }), "built for ABI 2."},
      {"a newer ABI minor", with([](auto& d) { d.abi_minor = JOBHOST_ABI_MINOR + 1; }),
       "built for ABI 1."},
      {"no name", with([](auto& d) { d.name = nullptr; }), "has no name"},
      {"an empty name", with([](auto& d) { d.name = ""; }), "has no name"},
      {"no version", with([](auto& d) { d.version = nullptr; }), "has no version"},
      {"no run", with([](auto& d) { d.run = nullptr; }), "has no run function"},
  };
  FakeHost host;
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK_THROWS_WITH(host.run(&c.descriptor), Catch::Contains(c.reason));
    CHECK_FALSE(host.run_called());
  }
  CHECK_THROWS_WITH(host.run(nullptr), Catch::Contains("returned NULL"));
  CHECK(host.run(&good) == Result::ok);
  // An older minor is fine, as on the host.
  const jobhost_plugin older = with([](auto& d) { d.abi_minor = 0; });
  CHECK(host.run(&older) == Result::ok);
}

TEST_CASE("test kit: a plugin's own result code comes back as it is", "[sdk][testing]") {
  // A plugin may return what the ABI does not name; -1 must not read as a bad descriptor.
  static const jobhost_plugin minus_one = {
      sizeof(jobhost_plugin),
      JOBHOST_ABI_MAJOR,
      JOBHOST_ABI_MINOR,
      "m",
      "1",
      nullptr,
      nullptr,
      [](const jobhost_host_api*, jobhost_run*) -> int32_t { return -1; },
      nullptr};
  FakeHost host;
  CHECK(static_cast<int32_t>(host.run(&minus_one)) == -1);
  std::ostringstream printed;
  printed << Result::ok << ' ' << Result::fail << ' ' << static_cast<Result>(-1);
  CHECK(printed.str() == "ok fail result -1");
}

TEST_CASE("test kit: context() runs a job class directly", "[sdk][testing]") {
  struct Job {
    Result run(jobhost::Context& ctx) {
      ctx.warn("careful: " + ctx.param_or("what", "?"));
      ctx.heartbeat(0.75);
      return ctx.cancelled() ? Result::retry : Result::ok;
    }
  };
  FakeHost host;
  host.param("what", "edges");
  auto ctx = host.context();
  CHECK(Job{}.run(ctx) == Result::ok);
  CHECK(host.logs() == std::vector<LogLine>{{JOBHOST_LOG_WARN, "careful: edges"}});
  CHECK(host.heartbeats() == std::vector<double>{0.75});
}

TEST_CASE("test kit: load() dlopens a built plugin and returns its descriptor", "[sdk][testing]") {
  const jobhost_plugin* probe = jobhost::testing::load(JOBHOST_TEST_PLUGIN_DIR "/api_probe.so");
  REQUIRE(probe != nullptr);
  CHECK(std::string(probe->name) == "api_probe");
  FakeHost host;
  host.param("color", "teal").secret("token", "s3cret");
  CHECK(host.run(probe) == Result::ok);
  CHECK(host.logged(JOBHOST_LOG_INFO, "param color=teal"));
  CHECK(host.logged(JOBHOST_LOG_WARN, "secret token matches"));
  CHECK(host.logged(JOBHOST_LOG_ERROR, "missing param is unset"));
  CHECK(host.metric("rows") == 42);
  CHECK(host.heartbeats() == std::vector<double>{0.25});
  CHECK_THAT(*host.message(), Catch::StartsWith("run test-run attempt 1 "));

  SECTION("what cannot be loaded says why") {
    jobhost::testing::TempDir dir;
    const auto text = dir.path() / "notes.so";
    std::ofstream(text) << "not an ELF file\n";
    CHECK_THROWS_WITH(jobhost::testing::load(text.string()), Catch::Contains("notes.so"));
    CHECK_THROWS_WITH(jobhost::testing::load(JOBHOST_TEST_PLUGIN_DIR "/catalog_no_entry.so"),
                      Catch::Contains("does not export jobhost_plugin_v1"));
    CHECK_THROWS(jobhost::testing::load((dir.path() / "missing.so").string()));
  }
}
