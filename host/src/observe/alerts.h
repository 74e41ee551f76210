// Alerts: tells people when a job keeps failing (alert_after) or has not
// succeeded for too long (expect_success_within), and when it recovers,
// through the [alerts.NAME] notifiers (observe/notifier.h). An engine
// Observer: it counts each fire's last attempt; a timer on the loop checks
// the silences. The state lives in the ledger (Store::alert_states), so a
// restart neither repeats an alert nor loses a recovery; every delivery is a
// ledger event with its result. docs/observability.md "Alerts".
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "engine/observer.h"
#include "ledger/store.h"
#include "ledger/store_worker.h"
#include "observe/alert_rules.h"
#include "observe/notifier.h"

namespace jobhost::observe {

// The silence timer looks at least this often (the wall clock may jump).
inline constexpr Duration kSilenceCheckEvery = std::chrono::seconds(60);
// Deliveries in flight at once; more wait in a queue of at most
// kMaxQueuedDeliveries (beyond it a delivery is recorded as dropped).
inline constexpr std::size_t kMaxDeliveriesInFlight = 16;
inline constexpr std::size_t kMaxQueuedDeliveries = 1000;

class Alerter final : public engine::Observer {
 public:
  using Clock = std::function<TimePoint()>;

  // `store` must outlive the alerter. `config` gives the jobs' alert
  // settings and the notifiers (a notifier that cannot be made, e.g. an
  // unloadable CA file, is logged and left out); it must stay valid until
  // the next apply_config (state() looks jobs up in it). `clock` defaults to
  // the wall clock.
  //
  // State is kept only for the jobs with an alert setting (alert_after,
  // expect_success_within or alert_to) and for those with alert state in the
  // ledger: a job without either costs the alerter nothing.
  Alerter(boost::asio::io_context& io, ledger::Store& store, const config::Config& config,
          Clock clock = {});
  // Abandons deliveries still in flight (recorded as such) and kills their commands.
  ~Alerter() override;
  Alerter(const Alerter&) = delete;
  Alerter& operator=(const Alerter&) = delete;

  // Reads the state from the ledger, sends again the notices a previous host
  // decided but did not deliver, checks every silence now (a host that was
  // down past a job's window alerts here), and arms the silence timer.
  void start();
  // Alert state and events are written, and the windows of new silences
  // read (Store::success_bounds), through `writes` from now on, before
  // start() (a worker of its own on PostgreSQL: the loop never waits on
  // them); `writes` must outlive the alerter. Else inline on the store.
  void write_through(ledger::StoreWorker& writes) { writes_ = &writes; }
  // New settings and notifiers (a reload; `config` as for the constructor).
  // Jobs keep their state; a kind turned off while firing is cleared (event
  // alert_cleared, no notice).
  void apply_config(const config::Config& config);
  // Calls `done` once no delivery is queued or in flight, or after
  // `timeout`, when the rest are abandoned (and recorded so). For shutdown.
  void drain(Duration timeout, std::function<void()> done);

  // The job's alert state for the API (GET /api/v1/jobs/{name}): per kind
  // whether it is on, firing, since when, notified when, and its counters;
  // null for a job not in the config.
  nlohmann::json state(std::string_view job) const;
  // The jobs whose alert state is kept (see the constructor).
  std::size_t jobs_kept() const { return jobs_.size(); }

  // engine::Observer
  void on_run_finished(const ledger::RunStart& run, const ledger::RunEnd& end,
                       const exec::RunReport& report) override;
  void on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd& end) override;
  void on_config_applied(const config::Config& config) override { apply_config(config); }

 private:
  struct Job {
    AlertSettings settings;
    std::optional<std::vector<std::string>> alert_to;
    JobAlertState state;
    std::string last_run_id;
    uint64_t failing_seq = 0;  // the latest notice of each kind, for `pending`
    uint64_t silent_seq = 0;
    bool failing_pending = false;
    bool silent_pending = false;
    std::string failing_message;
    std::string silent_message;
  };
  struct NamedNotifier {
    config::NotifierConfig config;
    std::unique_ptr<Notifier> notifier;
  };
  struct Outgoing {
    std::string job;
    AlertKind kind;
    bool recovered;
    uint64_t seq;
    std::string notifier;
    nlohmann::json payload;
  };
  // Deliveries still to finish of one notice, by (job, kind, seq).
  struct NoticeKey {
    std::string job;
    AlertKind kind;
    uint64_t seq;
    auto operator<=>(const NoticeKey&) const = default;
  };

  static bool has_alert_setting(const config::JobConfig& cfg);
  nlohmann::json state_json(const Job& job) const;
  TimePoint now() const { return clock_(); }
  void on_fire_end(const std::string& job, Outcome outcome, const std::string& message,
                   const std::string& run_id);
  void set_jobs(const config::Config& config);
  void set_notifiers(const config::Config& config);
  static bool needs_window(const Job& job) {
    return job.settings.expect_success_within.count() > 0 && !job.state.silent.window_start;
  }
  void ask_windows();
  void check_silences();
  void arm_timer();
  void notify(const std::string& name, Job& job, const Notice& notice);
  void dispatch(const std::string& name, Job& job, AlertKind kind, bool recovered,
                const std::string& message);
  void pump();
  void delivered(const Outgoing& out, const std::string& type, const Delivery& result);
  void notice_done(const NoticeKey& key);
  void save(const std::string& name, const Job& job, AlertKind kind,
            std::optional<ledger::Event> event = std::nullopt);
  void record(const std::string& job, std::string_view kind, nlohmann::json detail);
  void check_drained();

  boost::asio::io_context& io_;
  ledger::Store& store_;
  ledger::StoreWorker inline_writes_{store_};
  ledger::StoreWorker* writes_ = &inline_writes_;  // alert state and events
  Clock clock_;
  std::string host_;
  const config::Config* config_ = nullptr;        // the latest given
  std::map<std::string, Job, std::less<>> jobs_;  // jobs with alerts (has_alert_setting) or state
  std::map<std::string, NamedNotifier, std::less<>> notifiers_;
  std::vector<std::unique_ptr<Notifier>> retiring_;  // replaced, with deliveries in flight
  std::deque<Outgoing> queue_;
  std::size_t in_flight_ = 0;
  std::map<NoticeKey, int> remaining_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer drain_timer_;
  std::function<void()> on_drained_;
  bool started_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // writes_'s answers check it
};

}  // namespace jobhost::observe
