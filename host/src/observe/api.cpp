#include "observe/api.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <unordered_map>

#include "common/sha256.h"
#include "engine/forecast.h"
#include "observe/dashboard_data.h"
#include "schedule/schedule.h"

namespace jobhost::observe {
namespace {

using nlohmann::json;

constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 1000;
constexpr int kRecentRuns = 20;  // per job in lists: the sparkline
constexpr int kNextFires = 10;
constexpr int kRunEvents = 500;
constexpr std::size_t kMaxQueryText = 256;
constexpr std::size_t kMaxTokenBytes = 4096;

Response ok(const json& body) {
  return Response::json(200, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Text that may hold any bytes (plugin output) as a JSON string.
json text(const std::string& s) {
  return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace));
}

json opt_time(const std::optional<TimePoint>& t) {
  return t ? json(ledger::format_utc(*t)) : json(nullptr);
}
json opt_ms(const std::optional<Duration>& d) {
  return d ? json(d->count()) : json(nullptr);
}

// An integer query argument within [low, high], `fallback` when absent.
std::expected<int64_t, std::string> int_arg(const Request& request, std::string_view key,
                                            int64_t fallback, int64_t low, int64_t high) {
  auto value = request.arg(key);
  if (!value) return fallback;
  int64_t out = 0;
  auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), out);
  if (ec != std::errc() || end != value->data() + value->size() || out < low || out > high) {
    return std::unexpected(fmt::format("{} must be an integer from {} to {}", key, low, high));
  }
  return out;
}

std::expected<std::optional<TimePoint>, std::string> time_arg(const Request& request,
                                                              std::string_view key) {
  auto value = request.arg(key);
  if (!value) return std::nullopt;
  if (value->size() > 64) return std::unexpected(fmt::format("{}: too long", key));
  auto parsed = schedule::parse_rfc3339(*value);
  if (!parsed) {
    return std::unexpected(
        fmt::format("{} must be an RFC 3339 instant such as "
                    "2026-12-01T08:00:00Z: {}",
                    key, parsed.error().message));
  }
  return std::optional<TimePoint>(*parsed);
}

struct Percentiles {
  std::optional<Duration> mean, p50, p95;
};
Percentiles percentiles_of(const std::vector<ledger::WindowRun>& runs) {
  std::vector<Duration> d;
  int64_t total = 0;
  for (const auto& r : runs) {
    if (r.duration) {
      d.push_back(*r.duration);
      total += r.duration->count();
    }
  }
  if (d.empty()) return {};
  std::sort(d.begin(), d.end());
  return {Duration(total / static_cast<int64_t>(d.size())), ledger::percentile(d, 50),
          ledger::percentile(d, 95)};
}

// The window's first kRecentRuns runs.
json recent_json(const std::vector<ledger::WindowRun>& runs) {
  json out = json::array();
  for (std::size_t i = 0; i < runs.size() && i < static_cast<std::size_t>(kRecentRuns); ++i) {
    out.push_back({{"run_id", runs[i].run_id},
                   {"started_at", ledger::format_utc(runs[i].started_at)},
                   {"outcome", to_string(runs[i].outcome)},
                   {"duration_ms", opt_ms(runs[i].duration)}});
  }
  return out;
}

// The fields a job has in lists and on its own page; the caller fills the
// duration figures and `recent` from the job's window.
json job_json(const config::JobConfig& cfg, const ledger::JobStats* stats,
              std::optional<TimePoint> next_fire, bool paused) {
  json j = {
      {"name", text(cfg.name)},
      {"plugin", text(cfg.settings->plugin)},
      {"enabled", cfg.settings->enabled},
      {"paused", paused},
      {"schedule", text(cfg.schedule_text)},
      {"schedule_resolved", text(config::resolved_schedule(cfg))},
      {"schedule_description",
       text(cfg.on_reboot ? std::string("at host start") : schedule::describe(cfg.schedule))},
      {"next_fire", nullptr},
      {"last_run", nullptr},
      {"last_outcome", nullptr},
      {"success_rate", nullptr},
      {"window_runs", 0},
      {"consecutive_failures", 0},
      {"runs_in_flight", 0},
      {"mean_duration_ms", nullptr},
      {"p50_duration_ms", nullptr},
      {"p95_duration_ms", nullptr},
      {"recent", json::array()},
  };
  if (stats) {
    j["next_fire"] = cfg.settings->enabled ? opt_time(next_fire) : json(nullptr);
    j["last_run"] = opt_time(stats->last_started);
    if (stats->last_outcome) j["last_outcome"] = to_string(*stats->last_outcome);
    if (stats->success_rate) j["success_rate"] = *stats->success_rate;
    j["window_runs"] = stats->window_runs;
    j["consecutive_failures"] = stats->consecutive_failures;
    j["runs_in_flight"] = stats->runs_in_flight;
  }
  return j;
}

void set_window(json& j, const std::vector<ledger::WindowRun>& window) {
  auto p = percentiles_of(window);
  j["mean_duration_ms"] = opt_ms(p.mean);
  j["p50_duration_ms"] = opt_ms(p.p50);
  j["p95_duration_ms"] = opt_ms(p.p95);
  j["recent"] = recent_json(window);
}

// The figures of a job the book has not seen: no runs, no fires yet.
const ledger::JobStats kNoRuns{};

// The forecast runs on the loop: its window and its work are bounded (a
// simulation of 100,000 fires took 0.1 s on the 2-core build machine).
constexpr int kMaxForecastHours = 168;
constexpr int64_t kMaxForecastBuckets = 1000;
constexpr std::size_t kMaxForecastFires = 100000;

json forecast_json(const engine::ForecastInput& in, Duration width, std::size_t count) {
  const engine::Forecast forecast = engine::simulate(in);
  json buckets = json::array();
  for (const auto& b : engine::forecast_buckets(forecast, in.from, width, count)) {
    buckets.push_back({{"start", ledger::format_utc(b.start)},
                       {"fires", b.fires},
                       {"runs", b.runs},
                       {"waited", b.waited},
                       {"skipped", b.skipped},
                       {"peak_runs", b.peak}});
  }
  std::size_t without_history = 0;
  for (const auto& job : in.jobs) {
    if (job.fires && !job.p95) ++without_history;
  }
  return {{"from", ledger::format_utc(in.from)},
          {"to", ledger::format_utc(in.to)},
          {"bucket_minutes", width / std::chrono::minutes(1)},
          {"max_concurrency", in.limits.front().max},
          {"truncated", forecast.truncated},
          {"covered_to", ledger::format_utc(forecast.covered_to)},
          {"jobs_without_history", without_history},
          {"summary", engine::summary_json(forecast.summary)},
          {"buckets", std::move(buckets)}};
}

// Reads of the ledger waiting for the read worker, at most (see add_routes).
constexpr std::size_t kMaxWaitingReads = 16;

Response ledger_error(const Error& error) {
  return Response::error(503, "the ledger cannot be read: " + error.message);
}

const std::vector<std::string_view> kStates = {"enabled", "disabled", "paused", "running",
                                               "failing"};
const std::vector<std::string_view> kSorts = {"name", "next_fire", "last_run", "success_rate"};

std::string joined(const std::vector<std::string_view>& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

std::string encode_cursor(const ledger::RunCursor& cursor) {
  return fmt::format("{}.{}", cursor.started_at.time_since_epoch().count(), cursor.run_id);
}

std::optional<ledger::RunCursor> decode_cursor(std::string_view text) {
  auto dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 19) return std::nullopt;
  int64_t ms = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + dot, ms);
  if (ec != std::errc() || end != text.data() + dot || ms < 0) return std::nullopt;
  auto run_id = text.substr(dot + 1);
  if (run_id.empty() || run_id.size() > 64) return std::nullopt;
  for (char c : run_id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return std::nullopt;
  }
  return ledger::RunCursor{TimePoint(Duration(ms)), std::string(run_id)};
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Compare digests: equal lengths, and the time does not depend on the token's length.
  const std::string da = sha256_hex(a), db = sha256_hex(b);
  unsigned char diff = 0;
  for (std::size_t i = 0; i < da.size(); ++i) {
    diff |= static_cast<unsigned char>(da[i] ^ db[i]);
  }
  return diff == 0;
}

Api::Api(engine::Engine& engine, ledger::Store& store, ApiHooks hooks)
    : engine_(engine), store_(store), hooks_(std::move(hooks)) {
  (void)reload_token();
}

Result<void> Api::reload_token() {
  token_file_ = engine_.config().http.token_file;
  token_.reset();
  token_problem_.clear();
  if (token_file_.empty()) return {};
  std::ifstream in(token_file_, std::ios::binary);
  std::string token;
  if (in) {
    token.resize(kMaxTokenBytes + 1);
    in.read(token.data(), static_cast<std::streamsize>(token.size()));
    token.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (!in && !in.eof()) {
    token_problem_ = fmt::format("the token file {} cannot be read", token_file_.string());
  } else if (token.size() > kMaxTokenBytes) {
    token_problem_ = fmt::format("the token file {} is larger than {} bytes", token_file_.string(),
                                 kMaxTokenBytes);
  } else {
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    if (token.empty()) {
      token_problem_ = fmt::format("the token file {} is empty", token_file_.string());
    } else {
      token_ = std::move(token);
      return {};
    }
  }
  return fail(token_problem_);
}

std::optional<std::string> Api::authorize(const Request& request, const Respond& respond) const {
  if (token_file_.empty()) {
    respond(Response::error(403, "actions over HTTP need [http] token_file; use the CLI"));
    return std::nullopt;
  }
  if (!token_) {
    respond(Response::error(403, token_problem_ + ": fix it and reload; or use the CLI"));
    return std::nullopt;
  }
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view given = request.authorization;
  const bool has_bearer = given.size() > kBearer.size() && given.starts_with(kBearer);
  if (!has_bearer || !constant_time_equal(given.substr(kBearer.size()), *token_)) {
    Response r = Response::error(
        401, has_bearer ? "wrong token" : "this action needs Authorization: Bearer <token>");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"jobhost\"");
    respond(std::move(r));
    return std::nullopt;
  }
  return "http token " + request.peer;
}

// A read of the ledger waits behind those given before it: past
// kMaxWaitingReads (a database that hangs, a dashboard polling it), the
// answer is 503 at once rather than a queue that grows.
bool Api::refuse_when_reads_wait(const Respond& respond) const {
  if (reads_->pending() < kMaxWaitingReads) return false;
  respond(Response::error(
      503, fmt::format("the ledger is slow to answer: {} reads are waiting; try again",
                       reads_->pending())));
  return true;
}

void Api::add_routes(Router& router) {
  auto bind = [this](void (Api::*member)(const Request&, const Respond&)) {
    return [this, member](const Request& request, const Respond& respond) {
      (this->*member)(request, respond);
    };
  };
  auto bind_read = [this](void (Api::*member)(const Request&, const Respond&)) {
    return [this, member](const Request& request, const Respond& respond) {
      if (refuse_when_reads_wait(respond)) return;
      (this->*member)(request, respond);
    };
  };
  router.add("GET", "/api/v1/jobs", bind(&Api::list_jobs));
  router.add("GET", "/api/v1/jobs/{name}", bind_read(&Api::get_job));
  router.add("POST", "/api/v1/jobs/{name}/trigger", bind(&Api::trigger));
  router.add("POST", "/api/v1/jobs/{name}/pause",
             [this](const Request& q, const Respond& r) { pause(q, r, true); });
  router.add("POST", "/api/v1/jobs/{name}/resume",
             [this](const Request& q, const Respond& r) { pause(q, r, false); });
  router.add("GET", "/api/v1/runs", bind_read(&Api::list_runs));
  router.add("GET", "/api/v1/runs/{id}", bind_read(&Api::get_run));
  router.add("POST", "/api/v1/runs/{id}/cancel", bind(&Api::cancel));
  router.add("GET", "/api/v1/events", bind_read(&Api::list_events));
  router.add("GET", "/api/v1/status", bind_read(&Api::status));
  router.add("GET", "/api/v1/forecast", bind_read(&Api::forecast));
  router.add("POST", "/api/v1/reload", bind(&Api::reload));
  router.add("GET", "/api/v1/openapi.json", [](const Request&, const Respond& respond) {
    respond(Response::json(200, std::string(openapi_document())));
  });
}

void Api::list_jobs(const Request& request, const Respond& respond) {
  auto limit = int_arg(request, "limit", kDefaultLimit, 1, kMaxLimit);
  auto offset = int_arg(request, "offset", 0, 0, 1'000'000'000);
  if (!limit) return respond(Response::error(400, limit.error()));
  if (!offset) return respond(Response::error(400, offset.error()));
  std::string_view q = request.arg("q").value_or("");
  if (q.size() > kMaxQueryText) return respond(Response::error(400, "q: too long"));
  std::string_view state = request.arg("state").value_or("");
  if (!state.empty() && std::find(kStates.begin(), kStates.end(), state) == kStates.end()) {
    return respond(Response::error(400, fmt::format("state must be one of {}", joined(kStates))));
  }
  std::string_view sort = request.arg("sort").value_or("name");
  const bool descending = sort.starts_with('-');
  if (descending) sort.remove_prefix(1);
  if (std::find(kSorts.begin(), kSorts.end(), sort) == kSorts.end()) {
    return respond(Response::error(
        400, fmt::format("sort must be one of {} (prefix - for descending)", joined(kSorts))));
  }

  // Each job's figures: the book's (kept in memory), or else the ledger's
  // summaries with the page's windows read below.
  const JobBook* book = hooks_.book;
  std::vector<ledger::JobStats> summaries;
  std::unordered_map<std::string_view, const ledger::JobStats*> by_name;
  if (!book) {
    auto read = store_.job_summaries();
    if (!read) return respond(ledger_error(read.error()));
    summaries = std::move(*read);
    for (const auto& s : summaries) by_name.emplace(s.job, &s);
  }

  struct Row {
    const config::JobConfig* cfg;
    const ledger::JobStats* stats;  // without a book: the ledger's, if it has the job
    const JobBook::Entry* entry;    // with a book: null for a job it has not seen
    bool paused;
    std::optional<TimePoint> next_fire{};
    std::optional<double> key{};  // the sort's
  };
  // Whether the row has figures: with a book always (a job it has not seen
  // has no runs yet), else when the ledger has the job.
  auto known = [&](const Row& r) { return book || r.stats; };
  auto runs_in_flight = [](const Row& r) {
    return r.entry ? r.entry->runs_in_flight() : r.stats ? r.stats->runs_in_flight : 0;
  };
  auto consecutive_failures = [](const Row& r) {
    return r.entry ? r.entry->consecutive_failures() : r.stats ? r.stats->consecutive_failures : 0;
  };
  auto last_started = [](const Row& r) -> std::optional<TimePoint> {
    return r.entry ? r.entry->last_started() : r.stats ? r.stats->last_started : std::nullopt;
  };
  auto success_rate = [](const Row& r) -> std::optional<double> {
    return r.entry ? r.entry->success_rate() : r.stats ? r.stats->success_rate : std::nullopt;
  };
  // With a book, the next fire is the engine's (the slot it last wrote to
  // the ledger as next_fire), computed only for the rows that need it.
  auto next_fire_of = [&](const Row& r) -> std::optional<TimePoint> {
    if (!book) return r.stats ? r.stats->next_fire : std::nullopt;
    auto slots = engine_.upcoming_slots(r.cfg->name, 1);
    return slots.empty() ? std::nullopt : std::optional<TimePoint>(slots.front());
  };
  std::vector<Row> rows;
  rows.reserve(engine_.config().jobs.size());
  for (const auto& cfg : engine_.config().jobs) {
    if (!q.empty() && cfg.name.find(q) == std::string::npos) continue;
    Row row{&cfg, nullptr, nullptr, engine_.paused(cfg.name)};
    if (book) {
      row.entry = book->find(cfg.name);
    } else if (auto it = by_name.find(cfg.name); it != by_name.end()) {
      row.stats = it->second;
    }
    if (state == "enabled" && !cfg.settings->enabled) continue;
    if (state == "disabled" && cfg.settings->enabled) continue;
    if (state == "paused" && !row.paused) continue;
    if (state == "running" && !(runs_in_flight(row) > 0)) continue;
    if (state == "failing" && !(consecutive_failures(row) > 0)) continue;
    rows.push_back(row);
  }
  if (sort == "next_fire") {
    for (auto& r : rows) r.next_fire = next_fire_of(r);
  }

  // Sort key per row, computed once; rows without a value go last in either
  // direction. Names are unique, so the order is total: only the rows up to
  // the page's end are sorted (partial_sort).
  const bool sort_by_name = sort == "name";
  const bool by_next_fire = sort == "next_fire", by_last_run = sort == "last_run";
  auto key = [&](const Row& r) -> std::optional<double> {
    if (!known(r)) return std::nullopt;
    if (by_next_fire) {
      if (!r.cfg->settings->enabled || !r.next_fire) return std::nullopt;
      return static_cast<double>(r.next_fire->time_since_epoch().count());
    }
    if (by_last_run) {
      const auto started = last_started(r);
      if (!started) return std::nullopt;
      return static_cast<double>(started->time_since_epoch().count());
    }
    return success_rate(r);
  };
  if (!sort_by_name) {
    for (auto& r : rows) r.key = key(r);
  }
  auto before = [&](const Row& a, const Row& b) {
    if (!sort_by_name) {
      if (a.key.has_value() != b.key.has_value()) return a.key.has_value();
      if (a.key && *a.key != *b.key) return descending ? *a.key > *b.key : *a.key < *b.key;
    } else if (a.cfg->name != b.cfg->name) {
      return descending ? a.cfg->name > b.cfg->name : a.cfg->name < b.cfg->name;
    }
    return a.cfg->name < b.cfg->name;
  };
  const std::size_t first = std::min(rows.size(), static_cast<std::size_t>(*offset));
  const std::size_t last = std::min(rows.size(), first + static_cast<std::size_t>(*limit));
  if (last < rows.size()) {
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(last), rows.end(),
                      before);
  } else {
    std::sort(rows.begin(), rows.end(), before);
  }
  std::unordered_map<std::string, std::vector<ledger::WindowRun>> windows;
  if (!book && first < last) {
    std::vector<std::string> page_names;
    for (std::size_t i = first; i < last; ++i) page_names.push_back(rows[i].cfg->name);
    auto window = store_.window_runs(page_names);
    if (!window) return respond(ledger_error(window.error()));
    for (auto& [job, runs] : *window) windows.emplace(job, std::move(runs));
  }
  json jobs = json::array();
  for (std::size_t i = first; i < last; ++i) {
    const Row& r = rows[i];
    const auto next_fire = sort == "next_fire" ? r.next_fire : next_fire_of(r);
    if (book) {
      const ledger::JobStats stats = r.entry ? book->stats(*r.entry) : kNoRuns;
      json j = job_json(*r.cfg, &stats, next_fire, r.paused);
      if (const RunWindow* w = r.entry ? r.entry->window() : nullptr; w && !w->empty()) {
        j["mean_duration_ms"] = opt_ms(stats.mean_duration);
        j["p50_duration_ms"] = opt_ms(stats.p50_duration);
        j["p95_duration_ms"] = opt_ms(stats.p95_duration);
        j["recent"] = recent_json(w->newest(kRecentRuns));
      }
      jobs.push_back(std::move(j));
      continue;
    }
    json j = job_json(*r.cfg, r.stats, next_fire, r.paused);
    if (auto it = windows.find(r.cfg->name); it != windows.end()) {
      set_window(j, it->second);
    }
    jobs.push_back(std::move(j));
  }
  respond(ok(
      {{"jobs", std::move(jobs)}, {"total", rows.size()}, {"limit", *limit}, {"offset", *offset}}));
}

void Api::get_job(const Request& request, const Respond& respond) {
  const std::string name = request.params.at("name");
  if (!engine_.config().find_job(name)) {
    return respond(Response::error(404, fmt::format("no job named \"{}\"", name)));
  }
  struct Reads {
    Result<ledger::JobStats> stats;
    Result<std::vector<std::pair<std::string, std::vector<ledger::WindowRun>>>> window;
  };
  reads_->run(
      [name](ledger::Store& store) {
        return Reads{store.job_stats(name), store.window_runs({name})};
      },
      [this, name, respond](Reads read) {
        // The config as of now: a reload may have come meanwhile.
        const config::JobConfig* cfg = engine_.config().find_job(name);
        if (!cfg) return respond(Response::error(404, fmt::format("no job named \"{}\"", name)));
        if (!read.stats) return respond(ledger_error(read.stats.error()));
        if (!read.window) return respond(ledger_error(read.window.error()));
        const ledger::JobStats& stats = *read.stats;
        json j = job_json(*cfg, &stats, stats.next_fire, engine_.paused(name));
        set_window(j, read.window->empty() ? std::vector<ledger::WindowRun>{}
                                           : read.window->front().second);
        // job_stats has the same figures as window_runs, over the same window.
        j["mean_duration_ms"] = opt_ms(stats.mean_duration);
        j["p50_duration_ms"] = opt_ms(stats.p50_duration);
        j["p95_duration_ms"] = opt_ms(stats.p95_duration);
        j["timezone"] = text(cfg->settings->timezone);
        j["definition_hash"] = text(cfg->definition_hash);
        j["last_fire"] = opt_time(stats.last_fire);
        j["paused_at"] = opt_time(stats.paused_at);
        j["paused_by"] = stats.paused_by ? text(*stats.paused_by) : json(nullptr);
        json next = json::array();
        for (TimePoint t : engine_.upcoming_slots(name, kNextFires))
          next.push_back(ledger::format_utc(t));
        j["next_fires"] = std::move(next);
        j["alerts"] = hooks_.alerts ? hooks_.alerts(name) : json(nullptr);
        respond(ok(j));
      });
}

void Api::list_runs(const Request& request, const Respond& respond) {
  ledger::RunQuery query;
  auto limit = int_arg(request, "limit", kDefaultLimit, 1, kMaxLimit);
  if (!limit) return respond(Response::error(400, limit.error()));
  query.limit = static_cast<int>(*limit) + 1;  // one more: is there a next page?
  if (auto job = request.arg("job")) {
    if (job->size() > kMaxQueryText) return respond(Response::error(400, "job: too long"));
    query.job = std::string(*job);
  }
  if (auto outcome = request.arg("outcome")) {
    if (*outcome == "running") {
      query.running_only = true;
    } else if (auto parsed = outcome_from_string(*outcome)) {
      query.outcome = *parsed;
    } else {
      return respond(Response::error(
          400, fmt::format("outcome must be running or one of {}",
                           fmt::join(kOutcomeNames.begin(), kOutcomeNames.end(), ", "))));
    }
  }
  if (auto trigger = request.arg("trigger")) {
    query.trigger = ledger::trigger_from_string(*trigger);
    if (!query.trigger) {
      return respond(Response::error(
          400, "trigger must be one of schedule, manual, retry, catchup, replay, reboot"));
    }
  }
  auto since = time_arg(request, "since");
  if (!since) return respond(Response::error(400, since.error()));
  auto until = time_arg(request, "until");
  if (!until) return respond(Response::error(400, until.error()));
  query.since = *since;
  query.until = *until;
  if (auto cursor = request.arg("cursor")) {
    query.after = decode_cursor(*cursor);
    if (!query.after) {
      return respond(Response::error(400, "cursor: not one this API gave (use next_cursor as is)"));
    }
  }
  reads_->run([query](ledger::Store& store) { return store.query_runs(query); },
              [respond, limit = static_cast<std::size_t>(*limit)](
                  Result<std::vector<ledger::RunRecord>> runs) {
                if (!runs) return respond(ledger_error(runs.error()));
                json next_cursor = nullptr;
                if (runs->size() > limit) {
                  runs->resize(limit);
                  next_cursor = encode_cursor({runs->back().started_at, runs->back().run_id});
                }
                json out = json::array();
                for (const auto& run : *runs) out.push_back(run);
                respond(ok({{"runs", std::move(out)}, {"next_cursor", std::move(next_cursor)}}));
              });
}

void Api::get_run(const Request& request, const Respond& respond) {
  const std::string id = request.params.at("id");
  // The run, its events and the other attempts of its slot, or the response
  // to give instead.
  using Read = std::variant<json, Response>;
  reads_->run(
      [id](ledger::Store& store) -> Read {
        auto run = store.get_run(id);
        if (!run) return ledger_error(run.error());
        if (!*run) return Response::error(404, fmt::format("no run {}", id));
        json j = **run;
        j["output_tail"] = text((*run)->output_tail);
        auto events = store.run_events(id, kRunEvents);
        if (!events) return ledger_error(events.error());
        j["events"] = *events;
        auto attempts = store.slot_runs((*run)->job, (*run)->scheduled_for);
        if (!attempts) return ledger_error(attempts.error());
        json others = json::array();
        for (const auto& a : *attempts) {
          if (a.run_id != id) others.push_back(a);
        }
        j["attempts"] = std::move(others);
        return j;
      },
      [respond](Read read) {
        if (auto* j = std::get_if<json>(&read)) return respond(ok(*j));
        respond(std::move(std::get<Response>(read)));
      });
}

void Api::list_events(const Request& request, const Respond& respond) {
  auto since = int_arg(request, "since", 0, 0, std::numeric_limits<int64_t>::max());
  auto limit = int_arg(request, "limit", 100, 1, kMaxLimit);
  if (!since) return respond(Response::error(400, since.error()));
  if (!limit) return respond(Response::error(400, limit.error()));
  reads_->run([since = *since, limit = static_cast<int>(*limit)](
                  ledger::Store& store) { return store.events_after(since, limit); },
              [respond, since = *since](const Result<std::vector<ledger::Event>>& events) {
                if (!events) return respond(ledger_error(events.error()));
                int64_t next = events->empty() ? since : events->back().id;
                respond(ok({{"events", *events}, {"next_since", next}}));
              });
}

void Api::status(const Request& request, const Respond& respond) {
  const bool with_jobs = request.arg("jobs").value_or("true") != "false";
  // Jobs come in pages of at most kMaxLimit (in config order), so that the
  // answer stays small and quick whatever the number of jobs.
  auto limit = int_arg(request, "limit", kMaxLimit, 1, kMaxLimit);
  auto offset = int_arg(request, "offset", 0, 0, 1'000'000'000);
  if (!limit) return respond(Response::error(400, limit.error()));
  if (!offset) return respond(Response::error(400, offset.error()));
  // With the book: three reads (the pending retries, the paused jobs, the
  // runs in flight), through the read worker; the rest is in memory. Else
  // (tests, tools) the ledger's figures, job by job, here.
  if (!hooks_.book) {
    StatusReads read;
    const json snapshot = engine_.snapshot();
    auto summary = status_summary(store_, snapshot, wall_now());
    if (!summary) return respond(ledger_error(summary.error()));
    read.running = store_.running_runs();
    return status_answer(with_jobs, *limit, *offset, snapshot, std::move(*summary), std::move(read),
                         respond);
  }
  reads_->run(
      [with_jobs](ledger::Store& store) {
        StatusReads read;
        read.retries = store.pending_retries();
        if (with_jobs) read.paused = store.paused_jobs();
        read.running = store.running_runs();
        return read;
      },
      [this, with_jobs, limit = *limit, offset = *offset, respond](StatusReads read) {
        if (!read.retries) return respond(ledger_error(read.retries.error()));
        // The dashboard's header tiles; it asks with jobs=false every
        // second, so thousands of jobs cost nothing then.
        const json snapshot = engine_.snapshot();
        json summary = status_summary(snapshot, *last_hour_json(store_, wall_now(), hooks_.book),
                                      read.retries->size());
        status_answer(with_jobs, limit, offset, snapshot, std::move(summary), std::move(read),
                      respond);
      });
}

void Api::status_answer(bool with_jobs, int64_t limit, int64_t offset, const json& snapshot,
                        json summary, StatusReads read, const Respond& respond) {
  summary["cluster"] = hooks_.cluster ? hooks_.cluster() : json(nullptr);
  const auto& configured = engine_.config().jobs;
  const std::size_t first = std::min(configured.size(), static_cast<std::size_t>(offset));
  const std::size_t last = std::min(configured.size(), first + static_cast<std::size_t>(limit));
  json builds = with_jobs ? engine_.next_builds() : json::array();
  // With the book: its figures, the engine's next fire with the config's
  // definition hash (what the engine writes with upsert_job whenever it
  // plans a fire) and the paused jobs read; else one job_stats per job.
  const JobBook* book = hooks_.book;
  std::unordered_map<std::string_view, const ledger::JobStats*> paused_by_name;
  if (book && with_jobs) {
    if (!read.paused) return respond(ledger_error(read.paused.error()));
    for (const auto& p : *read.paused) paused_by_name.emplace(p.job, &p);
  }
  json jobs = json::array();
  for (std::size_t i = first; with_jobs && i < last; ++i) {
    const auto& cfg = configured[i];
    ledger::JobStats stats;
    if (book) {
      if (const JobBook::Entry* e = book->find(cfg.name)) stats = book->stats(*e);
      stats.job = cfg.name;
      auto slots = engine_.upcoming_slots(cfg.name, 1);
      if (!slots.empty()) {
        stats.next_fire = slots.front();
        stats.definition_hash = cfg.definition_hash;  // written with it (upsert_job)
      } else {
        stats.next_fire.reset();
      }
      stats.paused_at.reset();
      stats.paused_by.reset();
      if (auto it = paused_by_name.find(cfg.name); it != paused_by_name.end()) {
        stats.paused_at = it->second->paused_at;
        stats.paused_by = it->second->paused_by;
      }
    } else {
      auto one = store_.job_stats(cfg.name);
      if (!one) return respond(ledger_error(one.error()));
      stats = std::move(*one);
    }
    json entry = stats;
    entry["enabled"] = cfg.settings->enabled;
    entry["plugin"] = cfg.settings->plugin;
    if (i < builds.size()) {
      entry["next_build"] = builds[i].value("next_build", json(nullptr));
      if (builds[i].contains("blocked")) entry["blocked"] = builds[i]["blocked"];
    }
    jobs.push_back(std::move(entry));
  }
  if (!read.running) return respond(ledger_error(read.running.error()));
  json in_flight = json::array();
  for (const auto& run : *read.running) in_flight.push_back(run);
  respond(ok({{"daemon",
               {{"running", true},
                {"pid", getpid()},
                {"ledger_backlog", snapshot["ledger_backlog"]},
                {"queued", snapshot["queued"]},
                {"groups", snapshot["groups"]}}},
              {"jobs", std::move(jobs)},
              {"jobs_total", configured.size()},
              {"next_offset", with_jobs && last < configured.size() ? json(last) : json(nullptr)},
              {"running", std::move(in_flight)},
              {"summary", std::move(summary)}}));
}

void Api::forecast(const Request& request, const Respond& respond) {
  auto hours = int_arg(request, "hours", 24, 1, kMaxForecastHours);
  auto minutes = int_arg(request, "bucket_minutes", 15, 1, 1440);
  if (!hours) return respond(Response::error(400, hours.error()));
  if (!minutes) return respond(Response::error(400, minutes.error()));
  const int64_t count = (*hours * 60 + *minutes - 1) / *minutes;
  if (count > kMaxForecastBuckets) {
    return respond(
        Response::error(400, fmt::format("hours / bucket_minutes gives {} intervals; at most {}",
                                         count, kMaxForecastBuckets)));
  }
  engine::ForecastInput in = engine_.forecast_input();
  in.to = in.from + std::chrono::hours(*hours);
  in.max_fires = kMaxForecastFires;
  const Duration width = std::chrono::minutes(*minutes);
  if (const JobBook* book = hooks_.book) {
    for (auto& job : in.jobs) {
      const JobBook::Entry* e = book->find(job.name);
      if (e && e->window()) job.p95 = e->window()->p95_duration();
    }
    return respond(ok(forecast_json(in, width, static_cast<std::size_t>(count))));
  }
  std::vector<std::string> names;
  names.reserve(in.jobs.size());
  for (const auto& job : in.jobs) names.push_back(job.name);
  // Every job's stats window in one query.
  using Windows = Result<std::vector<std::pair<std::string, std::vector<ledger::WindowRun>>>>;
  reads_->run([names = std::move(names)](ledger::Store& store) { return store.window_runs(names); },
              [in = std::move(in), width, count, respond](Windows windows) mutable {
                if (!windows) return respond(ledger_error(windows.error()));
                std::unordered_map<std::string_view, std::optional<Duration>> p95;
                for (const auto& [job, runs] : *windows) p95.emplace(job, percentiles_of(runs).p95);
                for (auto& job : in.jobs) {
                  if (auto it = p95.find(job.name); it != p95.end()) job.p95 = it->second;
                }
                respond(ok(forecast_json(in, width, static_cast<std::size_t>(count))));
              });
}

void Api::trigger(const Request& request, const Respond& respond) {
  auto who = authorize(request, respond);
  if (!who) return;
  const std::string& name = request.params.at("name");
  if (!engine_.config().find_job(name)) {
    return respond(Response::error(404, fmt::format("no job named \"{}\"", name)));
  }
  if (engine_.paused(name)) {
    return respond(Response::error(
        409, fmt::format("job \"{}\" is paused: resume it first (POST /api/v1/jobs/{}/resume)",
                         name, name)));
  }
  // A body makes it a webhook: the JSON document is the run's event.
  std::optional<std::string> event;
  if (request.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    int depth = 0;
    const json body = json::parse(
        request.body,
        [&depth](int d, json::parse_event_t, json&) {
          depth = std::max(depth, d);
          return true;
        },
        false);
    if (body.is_discarded()) {
      return respond(Response::error(400, "the body is not a JSON document"));
    }
    if (depth > engine::kMaxEventDepth) {
      return respond(Response::error(
          400, fmt::format("the body nests deeper than {} levels", engine::kMaxEventDepth)));
    }
    event = body.dump();
    if (event->size() > engine::kMaxEventBytes) {
      return respond(Response::error(
          413, fmt::format("the payload is {} bytes (as compact JSON); at most {} are taken",
                           event->size(), engine::kMaxEventBytes)));
    }
  }
  const auto kind = event ? ledger::Trigger::webhook : ledger::Trigger::manual;
  auto slot = engine_.trigger(name, *who, std::move(event), kind);
  if (!slot) return respond(Response::error(503, slot.error().message));
  respond(ok({{"ok", true},
              {"job", name},
              {"scheduled_for", ledger::format_utc(*slot)},
              {"trigger", ledger::to_string(kind)}}));
}

void Api::pause(const Request& request, const Respond& respond, bool paused) {
  auto who = authorize(request, respond);
  if (!who) return;
  const std::string& name = request.params.at("name");
  if (!engine_.config().find_job(name)) {
    return respond(Response::error(404, fmt::format("no job named \"{}\"", name)));
  }
  auto changed = paused ? engine_.pause(name, *who) : engine_.resume(name, *who);
  if (!changed) return respond(Response::error(503, changed.error().message));
  respond(ok({{"ok", true}, {"job", name}, {"paused", paused}, {"changed", *changed}}));
}

void Api::cancel(const Request& request, const Respond& respond) {
  auto who = authorize(request, respond);
  if (!who) return;
  const std::string id = request.params.at("id");
  auto cancelled = engine_.cancel(id, *who);
  if (cancelled) return respond(ok({{"ok", true}, {"run_id", id}}));
  // Not in flight here: 404 if the ledger has no such run, else 409.
  if (refuse_when_reads_wait(respond)) return;
  reads_->run([id](ledger::Store& store) { return store.get_run(id); },
              [id, respond, refused = cancelled.error().message](
                  const Result<std::optional<ledger::RunRecord>>& run) {
                if (run && !*run)
                  return respond(Response::error(404, fmt::format("no run {}", id)));
                respond(Response::error(409, refused));
              });
}

void Api::reload(const Request& request, const Respond& respond) {
  auto who = authorize(request, respond);
  if (!who) return;
  if (!hooks_.reload) return respond(Response::error(503, "reload is not available here"));
  hooks_.reload(*who, [this, respond](json summary) {
    (void)reload_token();
    respond(ok(summary));
  });
}

}  // namespace jobhost::observe
