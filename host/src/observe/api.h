// The JSON API under /api/v1/ (docs/observability.md "JSON API", shapes in
// observe/openapi.json, served at /api/v1/openapi.json): jobs, runs, events
// and status read from the engine and short ledger reads; actions (trigger,
// pause, resume, cancel, reload) behind a bearer token. Handlers run on the
// loop's thread and never block it: every read is one short query.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "observe/http.h"
#include "observe/job_book.h"

namespace jobhost::observe {

// What other parts of the daemon lend the API; each may be empty.
struct ApiHooks {
  // A job's alert state (the alerts box), shown as jobs/{name}'s `alerts`;
  // null when absent.
  std::function<nlohmann::json(std::string_view job)> alerts;
  // Starts a reload of plugins and config; calls `done` once, later, from
  // the loop's thread, with its summary ({"ok": bool, "lines": [...]}).
  // `who` names the caller for the reload's log and events.
  std::function<void(std::string who, std::function<void(nlohmann::json)> done)> reload;
  // The jobs' figures kept in memory (the daemon's, seeded before the engine
  // starts and watching it): GET jobs and status read them instead of
  // aggregating each job's runs in the ledger at every request. Without it
  // (tests, tools) they come from the ledger's queries, with equal figures.
  const JobBook* book = nullptr;
  // On a shared ledger: {"live_hosts", "skew"} (daemon/membership.h), shown
  // as status's summary.cluster; unset: null.
  std::function<nlohmann::json()> cluster;
};

// The opaque cursor of GET runs: the last run of a page.
std::string encode_cursor(const ledger::RunCursor& cursor);
std::optional<ledger::RunCursor> decode_cursor(std::string_view text);

// True iff a and b are equal, in a time that does not depend on where they
// differ (bearer tokens).
bool constant_time_equal(std::string_view a, std::string_view b);

// The committed OpenAPI 3.0 document (observe/openapi.json), as built in.
std::string_view openapi_document();

class Api {
 public:
  // `engine` and `store` must outlive the Api. Reads the token file named
  // by engine.config().http.token_file (see reload_token).
  Api(engine::Engine& engine, ledger::Store& store, ApiHooks hooks = {});

  // Adds every /api/v1/ route to `router`; the Api must outlive it.
  void add_routes(Router& router);

  // Reads the token file again (at start, and after each reload). With no
  // token_file configured, actions are refused (403); with one that cannot
  // be read or is empty, too (403, naming the file), and the error is returned.
  Result<void> reload_token();
  // The reads of GET jobs/{name}, runs, runs/{id}, events and status (with
  // the job book), and of the cancel of a run not in flight, go through
  // `reads` from now on: on PostgreSQL a worker with a connection of its
  // own, so that a request never holds the loop while the database answers.
  // `reads` must outlive the Api.
  void read_through(ledger::StoreWorker& reads) { reads_ = &reads; }

 private:
  // The caller's name for ledger events, or the refusal (401/403).
  std::optional<std::string> authorize(const Request& request, const Respond& respond) const;
  // True, having answered 503, when too many reads wait for reads_ already.
  bool refuse_when_reads_wait(const Respond& respond) const;

  void list_jobs(const Request& request, const Respond& respond);
  void get_job(const Request& request, const Respond& respond);
  void list_runs(const Request& request, const Respond& respond);
  void get_run(const Request& request, const Respond& respond);
  void list_events(const Request& request, const Respond& respond);
  void status(const Request& request, const Respond& respond);
  // What status reads from the ledger (paused: with the book and jobs only).
  struct StatusReads {
    Result<std::vector<ledger::PendingRetry>> retries{};
    Result<std::vector<ledger::JobStats>> paused{};
    Result<std::vector<ledger::RunRecord>> running{};
  };
  // `snapshot`: the engine's, from which `summary` was made.
  void status_answer(bool with_jobs, int64_t limit, int64_t offset, const nlohmann::json& snapshot,
                     nlohmann::json summary, StatusReads read, const Respond& respond);
  // The forecast from now (engine/forecast.h) in intervals, for the
  // dashboard's chart; p95s from the book, else read through `reads_`.
  void forecast(const Request& request, const Respond& respond);
  void trigger(const Request& request, const Respond& respond);
  void pause(const Request& request, const Respond& respond, bool paused);
  void cancel(const Request& request, const Respond& respond);
  void reload(const Request& request, const Respond& respond);

  engine::Engine& engine_;
  ledger::Store& store_;
  ledger::StoreWorker inline_reads_{store_};
  ledger::StoreWorker* reads_ = &inline_reads_;  // see read_through
  ApiHooks hooks_;
  std::filesystem::path token_file_;  // empty: none configured
  std::optional<std::string> token_;  // nullopt: none usable
  std::string token_problem_;         // why, when token_file_ is set and token_ is not
};

}  // namespace jobhost::observe
