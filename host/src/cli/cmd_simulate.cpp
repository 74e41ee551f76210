// simulate: the forecast of a window (engine/forecast.h) from the config
// and what the ledger knows: each job's grid, pause and p95, the jitter
// seed, the runs in flight. The model is documented in docs/cli.md.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "daemon/daemon.h"
#include "engine/forecast.h"
#include "ledger/open_store.h"
#include "schedule/schedule.h"

namespace jobhost::cli {
namespace {

using nlohmann::json;

constexpr Duration kDefaultWindow = std::chrono::hours(24);
// How far before `from` the simulation starts, at most: the runs of fires
// before the window that may still be in flight in it.
constexpr Duration kMaxWarmUp = std::chrono::hours(1);

std::expected<TimePoint, std::string> parse_time(const std::string& text, TimePoint now) {
  if (text == "now") return now;
  auto parsed = schedule::parse_rfc3339(text);
  if (!parsed) return std::unexpected(parsed.error().message + " (or \"now\")");
  return *parsed;
}

// What the ledger says of the jobs; empty without a ledger.
struct LedgerView {
  std::unordered_map<std::string, ledger::JobStats> jobs;  // p95_duration filled
  std::optional<uint64_t> seed;
  std::vector<ledger::RunRecord> running;
};

// One job_summaries read, one window_runs read for the jobs that have runs.
Result<LedgerView> read_ledger(ledger::Store& store, bool daemon_running) {
  LedgerView view;
  auto summaries = store.job_summaries();
  if (!summaries) return std::unexpected(summaries.error());
  std::vector<std::string> with_runs;
  for (auto& s : *summaries) {
    if (s.window_runs > 0) with_runs.push_back(s.job);
    std::string name = s.job;
    view.jobs.emplace(std::move(name), std::move(s));
  }
  if (!with_runs.empty()) {
    auto windows = store.window_runs(with_runs);
    if (!windows) return std::unexpected(windows.error());
    for (const auto& [job, runs] : *windows) {
      std::vector<Duration> durations;
      for (const auto& r : runs) {
        if (r.duration) durations.push_back(*r.duration);
      }
      if (durations.empty()) continue;
      std::sort(durations.begin(), durations.end());
      view.jobs[job].p95_duration = ledger::percentile(durations, 95);
    }
  }
  if (auto seed = store.jitter_seed()) view.seed = *seed;
  // Runs the ledger shows open without a daemon were left by one that died:
  // the next start closes them.
  if (daemon_running) {
    auto running = store.running_runs();
    if (!running) return std::unexpected(running.error());
    view.running = std::move(*running);
  }
  return view;
}

// The anchor of an every job's grid as the daemon has it: after its last
// fire; else the slot a running daemon planned; else where a daemon
// starting now would put it.
TimePoint grid_anchor(const config::Config& config, const config::JobConfig& job,
                      const schedule::Every& every, const ledger::JobStats* stats,
                      bool daemon_running, TimePoint now) {
  if (stats && stats->last_fire) return *stats->last_fire;
  if (daemon_running && stats && stats->next_fire &&
      stats->definition_hash == job.definition_hash) {
    return *stats->next_fire - every.period;
  }
  return engine::new_every_anchor(every.period, now, !config.host.store_url.empty());
}

std::string text_time(TimePoint t, const date::time_zone* zone) {
  return schedule::format_rfc3339(t, zone);
}

// The NOTE column of a fire.
std::string fire_note(const engine::ForecastInput& in, const engine::ForecastFire& f) {
  std::vector<std::string> parts;
  if (f.skip != engine::ForecastSkip::none) {
    parts.push_back(fmt::format("skipped: {}", engine::skip_reason(f.skip)));
  }
  if (f.waited() > Duration::zero()) {
    parts.push_back(fmt::format("waited {} for {}", config::format_duration(f.waited()),
                                in.limits[f.waited_for.value_or(0)].name));
  }
  if (f.cut_short) parts.push_back("cut short by a newer fire (concurrency = replace)");
  if (f.start && !in.jobs[f.job].p95) parts.push_back("no history");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

json fire_json(const engine::ForecastInput& in, const engine::ForecastFire& f) {
  const auto& job = in.jobs[f.job];
  auto time = [](const std::optional<TimePoint>& t) {
    return t ? json(ledger::format_utc(*t)) : json(nullptr);
  };
  return {{"job", job.name},
          {"slot", ledger::format_utc(f.slot)},
          {"due", ledger::format_utc(f.due)},
          {"start", time(f.start)},
          {"end", time(f.end)},
          {"expected_run_ms", job.expected_run().count()},
          {"history", job.p95.has_value()},
          {"waited_ms", f.waited().count()},
          {"waited_for", f.waited_for ? json(in.limits[*f.waited_for].name) : json(nullptr)},
          {"skipped",
           f.skip == engine::ForecastSkip::none ? json(nullptr) : json(engine::skip_kind(f.skip))},
          {"reason", f.skip == engine::ForecastSkip::none ? json(nullptr)
                                                          : json(engine::skip_reason(f.skip))},
          {"cut_short", f.cut_short}};
}

// --from and --to or --for; on a bad one, prints why.
std::optional<std::pair<TimePoint, TimePoint>> parse_window(const SimulateOptions& options,
                                                            TimePoint now) {
  auto from = parse_time(options.from, now);
  if (!from) {
    fmt::print(stderr, "--from: {}\n", from.error());
    return std::nullopt;
  }
  TimePoint to = *from + kDefaultWindow;
  if (!options.to.empty()) {
    auto parsed = parse_time(options.to, now);
    if (!parsed) {
      fmt::print(stderr, "--to: {}\n", parsed.error());
      return std::nullopt;
    }
    to = *parsed;
  } else if (!options.duration.empty()) {
    auto length = config::parse_duration(options.duration);
    if (!length) {
      fmt::print(stderr, "--for: {}\n", length.error().message);
      return std::nullopt;
    }
    to = *from + *length;
  }
  if (to <= *from) {
    fmt::print(stderr, "the window is empty: --to must be after --from (or --for longer than 0)\n");
    return std::nullopt;
  }
  return std::pair(*from, to);
}

// The forecast's input, and what the output says of its jobs.
struct Plan {
  engine::ForecastInput input;
  std::vector<std::string> disabled;
  std::vector<std::string> no_history;
};

Plan make_plan(const config::Config& config, const LedgerView& ledger, TimePoint from, TimePoint to,
               TimePoint now, bool daemon_running, int limit) {
  Plan plan;
  engine::ForecastInput& in = plan.input;
  in.from = from;
  in.to = to;
  in.limits.push_back({"max_concurrency", config.host.max_concurrency});
  in.seed = ledger.seed;
  in.max_fires = static_cast<std::size_t>(limit);
  std::unordered_map<std::string_view, std::size_t> index;
  Duration longest_run{};
  for (const auto& cfg : config.jobs) {
    engine::ForecastJob job = engine::forecast_job(cfg);
    const auto found = ledger.jobs.find(cfg.name);
    const ledger::JobStats* stats = found == ledger.jobs.end() ? nullptr : &found->second;
    if (stats) {
      job.paused = stats->paused_at.has_value();
      job.p95 = stats->p95_duration;
    }
    if (auto* every = std::get_if<schedule::Every>(&job.spec)) {
      every->anchor = grid_anchor(config, cfg, *every, stats, daemon_running, now);
    }
    if (!job.fires) {
      plan.disabled.push_back(cfg.name);
    } else if (!job.p95 && !std::holds_alternative<schedule::Manual>(job.spec)) {
      plan.no_history.push_back(cfg.name);
    }
    longest_run = std::max(longest_run, job.expected_run());
    index.emplace(cfg.name, in.jobs.size());
    in.jobs.push_back(std::move(job));
  }
  // Fires before the window are simulated for the runs they leave in
  // flight in it; from now on only: a forecast does not replay the past.
  const TimePoint begin =
      from > now ? std::max(now, from - std::min(longest_run, kMaxWarmUp)) : from;
  for (auto& job : in.jobs) job.after = begin - Duration(1);
  if (begin >= now) {
    for (const auto& run : ledger.running) {
      auto it = index.find(run.job);
      // A fire claimed ahead (parked) of a slot simulated is not counted twice.
      if (it != index.end() && run.scheduled_for < begin) {
        in.running.push_back({it->second, run.started_at});
      }
    }
  }
  engine::add_group_limits(config, in);
  return plan;
}

void print_json(const Plan& plan, const engine::Forecast& forecast, bool have_ledger,
                const std::vector<std::string>& notes) {
  const engine::ForecastInput& in = plan.input;
  json fires = json::array();
  for (const auto& f : forecast.fires) fires.push_back(fire_json(in, f));
  json out = {{"from", ledger::format_utc(in.from)},
              {"to", ledger::format_utc(in.to)},
              {"max_concurrency", in.limits.front().max},
              {"source", have_ledger ? "ledger" : "config"},
              {"jitter", in.seed.has_value()},
              {"fires", std::move(fires)},
              {"summary", engine::summary_json(forecast.summary)},
              {"jobs_without_history", plan.no_history},
              {"disabled", plan.disabled},
              {"notes", notes}};
  fmt::print("{}\n", out.dump(2));
}

void print_text(const config::Config& config, const Plan& plan, const engine::Forecast& forecast,
                const std::vector<std::string>& notes) {
  const engine::ForecastInput& in = plan.input;
  fmt::print("forecast {} to {}, max_concurrency {}\n", ledger::format_utc(in.from),
             ledger::format_utc(in.to), in.limits.front().max);
  fmt::print("{:<20} {:<29} {:<29} {:<29} {}\n", "JOB", "SLOT", "START", "END", "NOTE");
  std::vector<const date::time_zone*> zones;  // in.jobs are config.jobs, in order
  zones.reserve(config.jobs.size());
  for (const auto& cfg : config.jobs) zones.push_back(display_zone(config, cfg));
  for (const auto& f : forecast.fires) {
    const auto* zone = zones[f.job];
    std::string row =
        fmt::format("{:<20} {:<29} {:<29} {:<29} {}", in.jobs[f.job].name, text_time(f.slot, zone),
                    f.start ? text_time(*f.start, zone) : "-",
                    f.end ? text_time(*f.end, zone) : "-", fire_note(in, f));
    row.erase(row.find_last_not_of(' ') + 1);
    fmt::print("{}\n", row);
  }
  const auto& s = forecast.summary;
  std::string line = fmt::format(
      "{} fires: {} run ({} after waiting for a run slot, {} in all), {} skipped by forbid, {} "
      "paused, {} replaced",
      s.fires, s.runs, s.waited, config::format_duration(s.total_wait), s.forbid, s.paused,
      s.replaced);
  if (s.cut_short > 0) line += fmt::format(", {} cut short by a newer fire", s.cut_short);
  if (s.queue_full > 0) line += fmt::format(", {} skipped: dispatch queue full", s.queue_full);
  fmt::print("{}\n", line);
  if (s.peak_at) {
    fmt::print("peak: {} run{} at once, first at {}\n", s.peak, s.peak == 1 ? "" : "s",
               ledger::format_utc(*s.peak_at));
  } else {
    fmt::print("peak: no run\n");
  }
  if (!plan.no_history.empty()) {
    fmt::print("no history ({} assumed per run): {}\n",
               config::format_duration(engine::kNoHistoryRun), fmt::join(plan.no_history, ", "));
  }
  if (!plan.disabled.empty()) {
    fmt::print("disabled (no fires): {}\n", fmt::join(plan.disabled, ", "));
  }
  for (const auto& note : notes) fmt::print("({})\n", note);
  fmt::print("(not forecast: retries, catch-ups of missed fires, triggers)\n");
}

}  // namespace

int cmd_simulate(const SimulateOptions& options) {
  const TimePoint now = wall_now();
  const auto window = parse_window(options, now);
  if (!window) return kExitUsage;
  auto config = load_or_report(resolve_config_path(options.config));
  if (!config) return kExitFailed;

  const bool daemon_running = daemon::running_daemon_pid(config->host.state_dir) != 0;
  std::vector<std::string> notes;
  LedgerView ledger_view;
  bool have_ledger = false;
  if (auto store = ledger::open_store(config->host, ledger::Access::read_only)) {
    auto view = read_ledger(**store, daemon_running);
    if (!view) {
      fmt::print(stderr, "{}\n", view.error().message);
      return kExitFailed;
    }
    ledger_view = std::move(*view);
    have_ledger = true;
    if (!ledger_view.seed) notes.push_back("no jitter seed in the ledger yet: jitter not included");
  } else {
    notes.push_back(fmt::format(
        "no ledger ({}): no run history, no jitter; every grid anchored at the current second",
        store.error().message));
  }

  const Plan plan = make_plan(*config, ledger_view, window->first, window->second, now,
                              daemon_running, options.limit);
  const engine::Forecast forecast = engine::simulate(plan.input);
  if (forecast.truncated) {
    fmt::print(stderr,
               "the window {} to {} has more than {} fires to simulate (the first {} reach "
               "{}): narrow it (--to, --for) or raise --limit (at most {})\n",
               ledger::format_utc(window->first), ledger::format_utc(window->second), options.limit,
               options.limit, ledger::format_utc(forecast.covered_to), kMaxSimulateLimit);
    return kExitFailed;
  }
  if (options.json) {
    print_json(plan, forecast, have_ledger, notes);
  } else {
    print_text(*config, plan, forecast, notes);
  }
  return kExitOk;
}

}  // namespace jobhost::cli
