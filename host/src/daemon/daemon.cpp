#include "daemon/daemon.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <grp.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <charconv>
#include <csignal>

#include "catalog/catalog.h"
#include "common/log.h"
#include "common/version.h"
#include "daemon/control.h"
#include "daemon/membership.h"
#include "daemon/notify.h"
#include "daemon/pid_lock.h"
#include "engine/engine.h"
#include "exec/fork_executor.h"
#include "exec/isolation.h"
#include "exec/run_user.h"
#include "exec/sandbox.h"
#include "ledger/open_store.h"
#include "ledger/store_worker.h"
#include "observe/alerts.h"
#include "observe/api.h"
#include "observe/dashboard.h"
#include "observe/health.h"
#include "observe/http.h"
#include "observe/http_server.h"
#include "observe/job_book.h"
#include "observe/metrics.h"
#include "observe/timed_store.h"
#include "reload/reloader.h"
#include "triggers/file_triggers.h"

namespace jobhost::daemon {
namespace {

// How long a stopping daemon waits for alert notices still being delivered.
constexpr Duration kAlertDrain = std::chrono::seconds(5);

// [host] control_group as a gid (load_config checked that it exists).
ControlAccess control_access(const config::Config& config) {
  ControlAccess access;
  if (!config.host.control_group) return access;
  const std::string& name = *config.host.control_group;
  access.group_name = name;
  gid_t id = 0;
  if (std::from_chars(name.data(), name.data() + name.size(), id).ptr ==
      name.data() + name.size()) {
    access.group = id;
  } else if (const struct group* g = ::getgrnam(name.c_str())) {
    access.group = g->gr_gid;
  } else {
    log::warn(
        fmt::format("control_group \"{}\" is unknown: only root and uid {} may use the "
                    "control socket",
                    name, ::geteuid()));
  }
  return access;
}

// One line on who the runs are (docs/security.md "Users, state directories
// and the host's files").
void log_run_users(const config::Config& config, const exec::IsolationCaps& caps) {
  const auto& range = config.host.dynamic_users;
  if (::geteuid() == 0) {
    log::info(fmt::format(
        "runs: jobs without a user run as dynamic users (uids {}-{}), with no capability; each "
        "job's state directory is under {}",
        range.first, range.last, (config.host.state_dir / "jobs").string()));
    return;
  }
  if (!caps.hidden_state_dir.empty()) {
    log::info(fmt::format(
        "runs: the host is not root (uid {}): every run keeps its uid, in user, pid and mount "
        "namespaces of its own (see docs/security.md)",
        ::geteuid()));
    return;
  }
  log::warn(fmt::format(
      "runs: the host is not root (uid {}) and cannot make user namespaces: every run keeps its "
      "uid, so a plugin can signal the daemon and write its state dir; run jobhost as root to "
      "give runs users of their own (see docs/security.md)",
      ::geteuid()));
}

}  // namespace

int run_daemon(config::Config config) {
  log::init(config.host.log_format == config::LogFormat::json ? log::Format::json
                                                              : log::Format::text);
  std::signal(SIGPIPE, SIG_IGN);
  // Taken out of the environment first, while the daemon has one thread.
  NotifyTarget notify_target = take_notify_target();
  auto lock = PidLock::acquire(config.host.state_dir);
  if (!lock) {
    log::error(lock.error().message);
    return 1;
  }
  auto store = ledger::open_store(config.host);
  if (!store) {
    log::error(store.error().message);
    return 1;
  }
  log::info(fmt::format("jobhost {} starting: config {}, state dir {}", getpid(),
                        config.file.string(), config.host.state_dir.string()));
  // Runs must not reach the host's files (docs/security.md), nor, when they
  // share the host's uid, ptrace it or read its memory: not dumpable (the
  // fork server inherits it).
  if (auto secured = exec::secure_state_dir(config.host.state_dir); !secured) {
    log::warn(secured.error().message);
  }
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  for (const auto& warning : config.warnings) log::warn(warning.to_string());

  exec::DetectOptions detect;
  detect.parent_name = exec::parent_cgroup_name(config.host.state_dir);
  exec::IsolationCaps caps = exec::detect_isolation(detect);
  exec::use_run_namespaces(caps, config.host.state_dir);
  log::info("isolation: " + caps.description);
  log_run_users(config, caps);
  auto stale = exec::cleanup_stale(caps);
  if (stale.removed > 0) {
    log::info(
        fmt::format("killed and removed {} run cgroup(s) left by a previous host", stale.removed));
  }
  for (const auto& problem : stale.problems) log::warn(problem);

  auto now = wall_now();
  auto orphans = (*store)->close_orphaned_runs(
      now, "interrupted: the host that started this run exited before it finished");
  if (!orphans) {
    log::error(orphans.error().message);
    return 1;
  }
  for (const auto& run : orphans->closed) {
    log::warn(fmt::format("run left open by host pid {} closed as interrupted", run.host_pid),
              {run.job, run.run_id, run.trace_id});
  }

  catalog::Catalog catalog(config.host.plugin_dirs, config.host.state_dir / "plugins");
  auto plugins = catalog.scan();
  for (const auto& p : plugins.accepted) {
    log::info(fmt::format("plugin {} {} accepted ({}, sha256 {})", p.name, p.version,
                          p.path.filename().string(), p.sha256.substr(0, 12)));
  }
  for (const auto& r : plugins.rejected) {
    log::error(fmt::format("plugin file {} rejected: {}", r.path.string(), r.reason));
  }

  boost::asio::io_context io;
  // On PostgreSQL, the engine's write groups go through a worker thread with
  // a connection of its own, so that the loop never waits on the network;
  // retention's batches and the alerts' writes through another, and the
  // lease's renewals through a third, so that none waits behind another on
  // a lock (a host paused mid-group holds its rows for
  // idle_in_transaction_session_timeout); the JSON API's reads through a
  // fourth. On SQLite, all go inline.
  observe::Metrics* metrics_ptr = nullptr;  // set once the metrics exist
  std::unique_ptr<ledger::Store> worker_store, background_store, lease_store, reader_store;
  std::optional<observe::TimedStore> worker_timed;
  std::optional<ledger::StoreWorker> ledger_worker, background_worker, lease_worker, reader_worker;
  const auto deliver = [&io](std::function<void()> delivered) {
    boost::asio::post(io, std::move(delivered));
  };
  // Several hosts on one PostgreSQL ledger: this host's lease (docs/cluster.md).
  std::optional<Membership> membership;
  if (!config.host.store_url.empty()) {
    for (auto* connection : {&worker_store, &background_store, &lease_store, &reader_store}) {
      auto opened = ledger::open_store(config.host);
      if (!opened) {
        log::error(opened.error().message);
        return 1;
      }
      *connection = std::move(*opened);
    }
    worker_timed.emplace(*worker_store, [&io, &metrics_ptr](observe::LedgerOp op, double seconds) {
      boost::asio::post(io, [&metrics_ptr, op, seconds] {
        if (metrics_ptr) metrics_ptr->observe_ledger_write(op, seconds);
      });
    });
    ledger_worker.emplace(*worker_timed, deliver);
    background_worker.emplace(*background_store, deliver);
    lease_worker.emplace(*lease_store, deliver);
    reader_worker.emplace(*reader_store, deliver);
    membership.emplace(io, **store, *lease_worker, config.host);
    if (auto joined = membership->join(); !joined) {
      log::error(joined.error().message);
      return 1;
    }
  }
  exec::ExecutorOptions exec_options;
  exec_options.isolation = caps;
  engine::Engine* engine_ptr = nullptr;  // set below; the executor calls back only from io.run()
  exec_options.on_heartbeat = [&](std::string_view run_id, std::optional<double> progress) {
    if (engine_ptr) engine_ptr->note_heartbeat(run_id, progress);
  };
  exec::ForkExecutor executor(io, std::move(exec_options));
  // The ledger keeps the seed, so a restart delays each slot the same way.
  auto seed = (*store)->jitter_seed();
  if (!seed) {
    log::error(seed.error().message);
    return 1;
  }
  // The jobs' figures the JSON API answers from (observe/job_book.h): read
  // from the ledger once, before the engine starts, then kept by watching it
  // (declared before the engine: it must outlive it).
  // If the ledger cannot be read now, the API reads it at each request, on
  // the loop: on PostgreSQL, where that would hold every timer while the
  // database answers, the daemon does not start instead.
  observe::JobBook job_book;
  const auto seeded = job_book.seed(**store, wall_now());
  if (!seeded && !config.host.store_url.empty()) {
    log::error("cannot read the jobs' figures from the ledger at start: " + seeded.error().message +
               "; on PostgreSQL the daemon does not run without them: it exits, and systemd "
               "starts it again (Restart=on-failure)");
    return 1;
  }
  if (!seeded) {
    log::warn("the JSON API reads the ledger at each request: " + seeded.error().message);
  }
  // Its windows are read again after a prune on the worker that prunes: in
  // order with retention's batches, not counted among the API's waiting
  // reads, and a long one delays retention rather than a request.
  if (background_worker) job_book.read_through(*background_worker);
  // Metrics watch the engine and time its ledger writes (TimedStore). Their
  // per-job gauges start from the book's figures (or the ledger's) when
  // per-job series are on.
  auto job_gauges = [&]() {
    std::vector<observe::Metrics::JobGauges> out;
    auto add = [&](std::string_view job, int consecutive_failures,
                   std::optional<TimePoint> last_run) {
      if (consecutive_failures == 0 && !last_run) return;
      out.push_back({std::string(job), consecutive_failures, last_run});
    };
    if (seeded) {
      job_book.for_each([&](std::string_view job, const observe::JobBook::Entry& e) {
        add(job, e.consecutive_failures(), e.last_started());
      });
    } else if (auto stats = (*store)->job_summaries()) {
      for (const auto& s : *stats) add(s.job, s.consecutive_failures, s.last_started);
    } else {
      log::warn("per-job metrics start without the ledger's job figures: " + stats.error().message);
    }
    return out;
  };
  observe::Metrics metrics({.version = std::string(kVersion),
                            .engine = nullptr,
                            .fork_server_restarts = [&] { return executor.fork_server_restarts(); },
                            .cluster = membership ? std::function([&membership] {
                              const ledger::Skew& skew = membership->skew();
                              return observe::Metrics::ClusterFigures{
                                  membership->live_hosts(),
                                  static_cast<int>(skew.other_definitions.size()),
                                  static_cast<int>(skew.plugins.size())};
                            })
                                                  : nullptr,
                            .clock = {}});
  metrics.set_job_gauges(job_gauges);
  metrics_ptr = &metrics;
  observe::TimedStore timed_store(**store, metrics);
  // Told of every run's end and of every reload by the engine; declared
  // before it, so that it outlives it. Its own ledger writes are not the
  // engine's: it uses the store directly.
  observe::Alerter alerter(io, **store, config);
  engine::Engine engine(io, std::move(config), plugins, timed_store, executor, *seed);
  if (ledger_worker) {
    engine.write_through(*ledger_worker);
    engine.prune_through(*background_worker);
    alerter.write_through(*background_worker);
  }
  engine_ptr = &engine;
  metrics.set_engine(&engine);
  engine.add_observer(metrics);
  engine.add_observer(alerter);
  engine.add_observer(job_book);
  reload::Reloader reloader(io, engine.config().file, catalog, plugins, engine, timed_store);
  if (background_worker) reloader.write_through(*background_worker);
  reloader.on_result(
      [&](std::string_view kind, std::string_view result) { metrics.note_reload(kind, result); });
  triggers::FileTriggers file_triggers(io, engine, **store);
  if (reader_worker) file_triggers.read_through(*reader_worker);
  engine.add_observer(file_triggers);

  // The JSON API (/api/v1/); its routes join the router below.
  observe::ApiHooks api_hooks;
  api_hooks.alerts = [&](std::string_view job) { return alerter.state(job); };
  observe::Api* api_ptr = nullptr;
  api_hooks.reload = [&](std::string who, std::function<void(nlohmann::json)> done) {
    reloader.reload_all(who, [done = std::move(done)](const reload::Reloader::Summary& s) {
      done({{"ok", s.ok}, {"lines", s.lines}});
    });
  };
  if (seeded) api_hooks.book = &job_book;
  if (membership) {
    api_hooks.cluster = [&membership] {
      const nlohmann::json all = membership->json();
      return nlohmann::json{{"live_hosts", all["live_hosts"]}, {"skew", all["skew"]}};
    };
  }
  observe::Api api(engine, **store, api_hooks);
  if (reader_worker) api.read_through(*reader_worker);
  api_ptr = &api;
  // Who asked over the control socket, for the ledger events of actions.
  auto socket_peer = [](const nlohmann::json& request) {
    const auto& peer = request["peer"];
    return peer.is_object() ? fmt::format("uid {}", peer.value("uid", -1))
                            : std::string("control socket");
  };

  auto control = ControlServer::listen_async(
      io, control_socket_path(engine.config().host.state_dir),
      [&](const nlohmann::json& request, const ControlServer::Respond& respond) {
        std::string op = request.value("op", "");
        if (op == "reload") {
          return reloader.reload_all("jobhost reload (" + socket_peer(request) + ")",
                                     [respond, &api_ptr](const reload::Reloader::Summary& s) {
                                       if (api_ptr) (void)api_ptr->reload_token();
                                       respond({{"ok", s.ok}, {"lines", s.lines}});
                                     });
        }
        if (op == "plugins") {
          auto out = reloader.plugins_json();
          out["ok"] = true;
          return respond(out);
        }
        if (op == "ping") return respond({{"ok", true}, {"pid", getpid()}});
        if (op == "status") {
          auto snapshot = engine.snapshot();
          snapshot["ok"] = true;
          snapshot["cluster"] = membership ? membership->json() : nlohmann::json(nullptr);
          snapshot["jobs"] = engine.next_builds();
          return respond(snapshot);
        }
        if (op == "next_fires") return respond({{"ok", true}, {"jobs", engine.next_fires()}});
        if (op == "trigger") {
          std::optional<std::string> event;
          if (request.contains("payload")) event = request["payload"].dump();
          auto slot = engine.trigger(request.value("job", ""), socket_peer(request), event);
          if (!slot) return respond({{"ok", false}, {"error", slot.error().message}});
          return respond({{"ok", true}, {"scheduled_for", ledger::format_utc(*slot)}});
        }
        if (op == "pause" || op == "resume") {
          const std::string job = request.value("job", "");
          auto changed = op == "pause" ? engine.pause(job, socket_peer(request))
                                       : engine.resume(job, socket_peer(request));
          if (!changed) return respond({{"ok", false}, {"error", changed.error().message}});
          return respond({{"ok", true}, {"changed", *changed}});
        }
        if (op == "cancel") {
          auto cancelled = engine.cancel(request.value("run_id", ""), socket_peer(request));
          if (!cancelled) return respond({{"ok", false}, {"error", cancelled.error().message}});
          return respond({{"ok", true}});
        }
        respond({{"ok", false}, {"error", fmt::format("unknown op \"{}\"", op)}});
      },
      control_access(engine.config()));
  if (!control) {
    log::error(control.error().message);
    return 1;
  }

  // HTTP ([http] listen): every route is registered in this one block, on
  // this one router, before the server starts; handlers run on the loop.
  observe::Router router;
  observe::LedgerWriteProbe ledger_probe(**store);
  if (background_worker) ledger_probe.write_through(*background_worker);
  bool stopping = false;  // set by the first SIGTERM/SIGINT
  observe::add_health_routes(router, [&] {
    observe::Readiness readiness;
    readiness.stopping = stopping;
    readiness.config_loaded = !engine.config().file.empty();
    readiness.ledger_writable = ledger_probe.check();
    const auto backlog = engine.snapshot()["ledger_backlog"];
    readiness.ledger_backlog = backlog.value("records", std::size_t{0});
    if (backlog["oldest_kept_since"].is_string()) {
      readiness.backlog_since = backlog["oldest_kept_since"].get<std::string>();
    }
    return readiness;
  });
  observe::add_metrics_route(router, metrics);
  api.add_routes(router);
  observe::add_dashboard_routes(router);
  std::unique_ptr<observe::HttpServer> http;
  if (!engine.config().http.listen.empty()) {
    auto server = observe::HttpServer::listen(io, engine.config().http.listen, router);
    if (!server) {
      log::error(server.error().message);
      return 1;
    }
    http = std::move(*server);
    log::info("http: listening on " + observe::format_endpoint(http->local_endpoint()));
  }

  // systemd's Type=notify (daemon/notify.h): what STATUS= shows, read on the loop.
  ServiceNotifier notifier(io, std::move(notify_target), [&] {
    ServiceFigures figures;
    for (const auto& job : engine.config().jobs) figures.jobs += job.settings->enabled ? 1 : 0;
    figures.plugins = engine.plugins().accepted.size();
    const auto snapshot = engine.snapshot();
    figures.runs_in_flight = snapshot["running"].size();
    const auto& backlog = snapshot["ledger_backlog"];
    figures.ledger_kept = backlog.value("records", std::size_t{0});
    if (backlog["refusing_since"].is_string()) {
      figures.ledger_refusing_since = backlog["refusing_since"].get<std::string>();
    }
    figures.fenced = engine.fenced();
    return figures;
  });
  reloader.on_cycle(
      [&] { notifier.reloading(); },
      [&](const reload::Reloader::Summary& s) {
        const auto shown = std::min<std::size_t>(s.lines.size(), 3);
        notifier.reloaded(
            s.ok, fmt::format("{}", fmt::join(s.lines.begin(), s.lines.begin() + shown, "; ")));
      });

  boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  int stop_requests = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (signo == SIGHUP) {
          reloader.reload_all("SIGHUP",
                              [&](const reload::Reloader::Summary&) { (void)api.reload_token(); });
        } else if (++stop_requests == 1) {
          stopping = true;
          notifier.stopping();
          log::info(fmt::format("{}: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT"));
          reloader.stop();
          file_triggers.stop();
          // Nothing is left to do once the last run is recorded and its
          // alert notices are out (or given up after kAlertDrain).
          engine.shutdown([&] { alerter.drain(kAlertDrain, [&] { io.stop(); }); });
        } else {
          log::info("second stop request: stopping runs in flight now");
          engine.stop_now();
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  alerter.start();
  engine.start();
  if (membership) {
    // The slots of this host's parked claims undone above: alone on an
    // SQLite ledger, its misfire handling fires them again (the job's last
    // fire went back); on a shared one other hosts may have fired later
    // slots since, so they are fired here.
    if (!orphans->freed.empty()) engine.adopt(ledger::Takeover{{}, std::move(orphans->freed)});
    membership->start(engine);
  }
  reloader.start();
  file_triggers.start();
  // The config's parse tree and the start's batches are freed by now; give
  // the whole pages among them back (at 100,000 jobs, about 8 MiB).
  ::malloc_trim(0);
  log::info(fmt::format("ready: {} job(s), max_concurrency {}", engine.config().jobs.size(),
                        engine.config().host.max_concurrency));
  // READY=1 from the loop, once it runs: after everything above (nothing can
  // fail the start any more) and after the handlers the start queued.
  boost::asio::post(io, [&] { notifier.ready(); });
  io.run();
  // Reads nobody waits for any more: not run at the exit (each could wait
  // for the answer timeout of a database that hangs).
  if (reader_worker) reader_worker->drop_pending();
  if (membership) membership->leave();
  // io.stop() may have left ready handlers, such as giving the last run's
  // cgroup back; the parent cgroups can only go after them and the idle ones.
  io.restart();
  io.poll();
  executor.remove_idle_cgroups();
  exec::remove_parent_cgroups(caps);
  log::info("stopped");
  return 0;
}

}  // namespace jobhost::daemon
