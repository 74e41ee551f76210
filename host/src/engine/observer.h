// What the engine tells those who watch it (observe/: metrics, alerts, the
// live dashboard): every run started, every run finished, every skipped fire,
// and every fire given to the dispatch queue. Called on the loop's thread,
// after the ledger write was committed (its write group, engine/backlog.h)
// or kept in the backlog; an observer must return quickly and never call
// back into the engine from inside a call.
#pragma once

#include <string_view>

#include "common/time.h"
#include "config/config.h"
#include "exec/executor.h"
#include "ledger/records.h"
#include "retention/retention.h"

namespace jobhost::engine {

class Observer {
 public:
  virtual ~Observer() = default;

  // A run was claimed and its process started. `lateness` is the run's
  // start minus the instant its fire was due (the slot plus its jitter or
  // catch-up delay, or the retry's time), so jitter is not counted as late.
  virtual void on_run_started(const ledger::RunStart& /*run*/, Duration /*lateness*/) {}

  // A started run ended. `end` is what the ledger records (end.retry_at set
  // when a retry follows), `report` what the executor saw (resources,
  // metrics). Not called for claims that never started (unstarted runs end
  // through on_run_unstarted).
  virtual void on_run_finished(const ledger::RunStart& /*run*/, const ledger::RunEnd& /*end*/,
                               const exec::RunReport& /*report*/) {}

  // A claimed run that could not start (executor refused it, plugin gone):
  // it is recorded failed with end.message.
  virtual void on_run_unstarted(const ledger::RunStart& /*run*/, const ledger::RunEnd& /*end*/) {}

  // A fire recorded as skipped (concurrency, misfire, queue full, blocked,
  // paused, shutdown), with its reason as skip.reason.
  virtual void on_skipped(const ledger::SkipRecord& /*skip*/) {}

  // A reload's config was applied (Engine::apply_config): `config` is the
  // engine's new one (settings that need a restart keep their running values).
  virtual void on_config_applied(const config::Config& /*config*/) {}

  // Retention deleted runs from the ledger: `pruned.job`'s runs beyond its
  // keep_last, or (job empty) finished runs of any job that started before
  // `pruned.before`. Told once per prune step, after its last batch.
  virtual void on_runs_pruned(const retention::PrunedRuns& /*pruned*/) {}
};

}  // namespace jobhost::engine
