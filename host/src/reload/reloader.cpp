#include "reload/reloader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <system_error>

#include "catalog/shadow.h"
#include "common/log.h"
#include "reload/async_probe.h"

namespace jobhost::reload {
namespace {

nlohmann::json build_json(const std::optional<catalog::PluginInfo>& p) {
  if (!p) return nullptr;
  return {{"version", p->version}, {"sha256", p->sha256}};
}

std::string list_text(const std::vector<std::string>& names) {
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));
}

// Sets the mtime of a shadow copy to now: its age for the cleanup counts
// from the last moment something used it, not from when it was written.
void mark_used(const std::filesystem::path& shadow) {
  ::utimensat(AT_FDCWD, shadow.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
}

}  // namespace

Reloader::Reloader(boost::asio::io_context& io, std::filesystem::path config_file,
                   catalog::Catalog& catalog, const catalog::ScanResult& initial,
                   engine::Engine& engine, ledger::Store& store, WatcherOptions options)
    : io_(io),
      config_file_(std::move(config_file)),
      catalog_(catalog),
      engine_(engine),
      inline_ledger_(store),
      watcher_(
          io, catalog.plugin_dirs(), config_file_,
          [this](ChangeSet changes) { request(std::move(changes), {}); }, options),
      gc_timer_(io),
      served_(initial) {
  for (const auto& p : initial.accepted) {
    files_[p.path.string()] =
        PluginFile{p.path, p, std::nullopt, catalog.dir_rank(p.path.parent_path())};
  }
  for (const auto& r : initial.rejected) {
    if (r.path.extension() != ".so") continue;  // a plugin directory itself
    auto& file = files_[r.path.string()];
    file.path = r.path;
    file.dir_rank = catalog.dir_rank(r.path.parent_path());
    if (!file.in_service) file.rejection = r.reason;
  }
}

void Reloader::start() {
  watcher_.watch_includes(engine_.config().host.include);
  watcher_.start();
  collect_shadows();
  arm_gc_timer();
}

void Reloader::stop() {
  stopped_ = true;
  watcher_.stop();
  gc_timer_.cancel();
}

void Reloader::reload_all(const std::string& why, Done done) {
  log::info(fmt::format("{}: reloading plugins and config", why));
  ChangeSet all;
  all.all_plugins = true;
  all.config = true;
  request(std::move(all), std::move(done));
}

void Reloader::request(ChangeSet changes, Done done) {
  if (stopped_) {
    if (done) done(Summary{false, {"the host is shutting down"}});
    return;
  }
  pending_.merge(changes);
  if (done) pending_done_.push_back(std::move(done));
  if (!busy_) start_cycle();
}

void Reloader::start_cycle() {
  busy_ = true;
  if (cycle_started_) cycle_started_();
  cycle_ = std::exchange(pending_, {});
  cycle_done_ = std::exchange(pending_done_, {});
  summary_ = {};
  std::set<std::string> names = cycle_.plugin_files;
  if (cycle_.all_plugins) {
    for (const auto& [path, file] : files_) names.insert(path);
    for (const auto& dir : catalog_.plugin_dirs()) {
      std::error_code ec;
      for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
           it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with('.') && name.ends_with(".so")) names.insert(it->path().string());
      }
      if (ec) log::error(fmt::format("cannot list {}: {}", dir.string(), ec.message()));
    }
  }
  to_probe_.assign(names.begin(), names.end());
  if (!cycle_.all_plugins && !names.empty()) {
    log::info(fmt::format("plugin files changed: {}", fmt::join(names, ", ")));
  }
  probe_next();
}

void Reloader::probe_next() {
  while (!to_probe_.empty()) {
    const std::string name = to_probe_.front();  // the file's path
    to_probe_.pop_front();
    const std::filesystem::path path = name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
      on_removed(name);
      continue;
    }
    // As at start: nothing new is loaded from a directory others could write.
    if (auto bad = catalog_.check_plugin_dir(path.parent_path())) {
      on_rejected(name, catalog::Rejection{path, bad->reason});
      continue;
    }
    auto prepared = catalog_.prepare_probe(path);
    if (auto* info = std::get_if<catalog::PluginInfo>(&prepared)) {
      on_accepted(name, *info);
      continue;
    }
    if (auto* rejection = std::get_if<catalog::Rejection>(&prepared)) {
      on_rejected(name, *rejection);
      continue;
    }
    auto pending = std::get<catalog::Catalog::PendingProbe>(std::move(prepared));
    auto probed = pending.probed;
    probe_async(io_, probed, catalog_.probe_timeout(), name,
                [this, name, pending = std::move(pending)](catalog::ProbeResult result) {
                  if (stopped_) return;
                  auto checked = catalog_.finish_probe(pending, result);
                  if (checked) {
                    on_accepted(name, *checked);
                  } else {
                    on_rejected(name, checked.error());
                  }
                  probe_next();
                });
    return;  // one probe at a time; the callback goes on with the rest
  }
  apply_plugins();
}

void Reloader::on_accepted(const std::string& file, const catalog::PluginInfo& info) {
  auto& state = files_[file];
  const bool same = state.in_service && state.in_service->sha256 == info.sha256;
  state = PluginFile{info.path, info, std::nullopt, catalog_.dir_rank(info.path.parent_path())};
  if (!same) {
    log::info(fmt::format("plugin file {}: accepted {} {} (sha256 {})", file, info.name,
                          info.version, info.sha256.substr(0, 12)));
  }
}

void Reloader::on_rejected(const std::string& file, const catalog::Rejection& rejection) {
  auto& state = files_[file];
  state.path = rejection.path;
  state.rejection = rejection.reason;
  state.dir_rank = catalog_.dir_rank(rejection.path.parent_path());
  std::string kept =
      state.in_service
          ? fmt::format("{} {} (sha256 {}) stays in service", state.in_service->name,
                        state.in_service->version, state.in_service->sha256.substr(0, 12))
          : std::string("no build of this file is in service");
  log::error(fmt::format("plugin file {} rejected: {}; {}", file, rejection.reason, kept));
  summary_.ok = false;
  summary_.lines.push_back(
      fmt::format("plugin file {} rejected: {}; {}", file, rejection.reason, kept));
  tell("plugin", "rejected");
  record(
      "rejected_plugin",
      {{"file", file}, {"reason", rejection.reason}, {"in_service", build_json(state.in_service)}});
}

void Reloader::on_removed(const std::string& file) {
  auto it = files_.find(file);
  if (it == files_.end()) return;
  log::warn(fmt::format("plugin file {} was removed{}", file,
                        it->second.in_service ? fmt::format(": {} {} is no longer in service",
                                                            it->second.in_service->name,
                                                            it->second.in_service->version)
                                              : std::string()));
  files_.erase(it);
}

void Reloader::apply_plugins() {
  if (stopped_) return;
  catalog::ScanResult served = served_plugins(files_);
  auto changes = diff_plugins(engine_.plugins(), served);
  served_ = served;
  engine_.replace_plugins(std::move(served));
  if (!changes.empty()) {
    nlohmann::json detail = nlohmann::json::array();
    for (const auto& change : changes) {
      if (change.before) mark_used(change.before->shadow_path);
      std::string text = "plugin " + describe(change);
      if (!change.after) {
        std::vector<std::string> blocked;
        for (const auto& job : engine_.config().jobs) {
          if (job.settings->plugin == change.name) blocked.push_back(job.name);
        }
        if (!blocked.empty()) {
          text += fmt::format("; blocked until it comes back: {}", list_text(blocked));
        }
      }
      log::info("reloaded: " + text);
      tell("plugin", "applied");
      summary_.lines.push_back(text);
      detail.push_back({{"plugin", change.name},
                        {"before", build_json(change.before)},
                        {"after", build_json(change.after)}});
    }
    record("reloaded", {{"plugins", detail}});
  }
  if (cycle_.config || (config_rejected_ && !changes.empty())) return reload_config();
  end_cycle();
}

void Reloader::reload_config() {
  std::set<std::string> names;
  for (const auto& p : engine_.plugins().accepted) names.insert(p.name);
  auto loaded = config::load_config(config_file_, names);
  // The watched include directories follow the file as it is now, rejected
  // or not: fixing a file of a newly included directory must reload it.
  if (loaded) {
    watcher_.watch_includes(loaded->host.include);
  } else if (auto patterns = config::include_patterns(config_file_)) {
    watcher_.watch_includes(std::move(*patterns));
  }
  if (!loaded) {
    std::vector<std::string> errors;
    for (const auto& error : loaded.error()) errors.push_back(error.to_string());
    const auto count = std::count_if(loaded.error().begin(), loaded.error().end(), [](auto& e) {
      return e.kind != config::ConfigError::Kind::warning;
    });
    log::error(fmt::format("config {} rejected ({} error(s)); the running config stays:",
                           config_file_.string(), count));
    for (const auto& error : errors) log::error(error);
    summary_.ok = false;
    summary_.lines.push_back(fmt::format("config rejected; the running config stays"));
    summary_.lines.insert(summary_.lines.end(), errors.begin(), errors.end());
    tell("config", "rejected");
    record("config_rejected", {{"config", config_file_.string()}, {"errors", errors}});
    config_rejected_ = true;
    return end_cycle();
  }
  config_rejected_ = false;
  for (const auto& warning : loaded->warnings) {
    log::warn(warning.to_string());
    summary_.lines.push_back(warning.to_string());
  }
  for (const auto& setting : settings_needing_restart(engine_.config(), *loaded)) {
    std::string text = fmt::format(
        "config: {} changed; it needs a restart to take effect (the running value stays)", setting);
    log::warn(text);
    summary_.lines.push_back(text);
  }
  // The ledger's part (last fires) is read through the engine's ledger
  // worker; the config is applied when it answers.
  auto config = std::make_shared<config::Config>(std::move(*loaded));
  engine_.read_for_reload(*config, [this, config](engine::ReloadReads reads) {
    if (!stopped_) apply_config(std::move(*config), reads);
  });
}

void Reloader::apply_config(config::Config loaded, const engine::ReloadReads& reads) {
  config::JobDiff diff = engine_.apply_config(std::move(loaded), reads);
  std::string text =
      diff.empty()
          ? std::string("config reloaded: no job changed")
          : fmt::format("config reloaded: jobs added: {}; removed: {}; changed: {}",
                        list_text(diff.added), list_text(diff.removed), list_text(diff.changed));
  log::info(text);
  summary_.lines.push_back(text);
  tell("config", "applied");
  record("reloaded", {{"config", config_file_.string()},
                      {"added", diff.added},
                      {"removed", diff.removed},
                      {"changed", diff.changed}});
  end_cycle();
}

void Reloader::end_cycle() {
  collect_shadows();
  if (summary_.lines.empty()) summary_.lines.push_back("nothing changed");
  if (cycle_ended_) cycle_ended_(summary_);
  auto done = std::exchange(cycle_done_, {});
  for (auto& callback : done) callback(summary_);
  busy_ = false;
  if (!pending_.empty() && !stopped_) start_cycle();
}

std::vector<ShadowFile> Reloader::list_shadows() const {
  std::vector<ShadowFile> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(catalog_.shadow_dir(), ec), end; !ec && it != end;
       it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    files.push_back({it->path().filename().string(),
                     std::chrono::system_clock::time_point(
                         std::chrono::seconds(st.st_mtim.tv_sec) +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::nanoseconds(st.st_mtim.tv_nsec)))});
  }
  return files;
}

void Reloader::collect_shadows() {
  std::set<std::string> in_service;
  for (const auto& [name, file] : files_) {
    if (file.in_service) in_service.insert(file.in_service->sha256);
  }
  // Builds runs in flight use, and those of each job's last runs, are kept
  // too. Asking the ledger costs a query per job (100,000 jobs: a fifth of a
  // second), through the ledger worker: only when some copy would go otherwise.
  if (shadow_files_to_remove(list_shadows(), in_service, std::chrono::system_clock::now(),
                             kShadowMaxAge)
          .empty()) {
    return;
  }
  std::vector<std::string> jobs;
  for (const auto& job : engine_.config().jobs) jobs.push_back(job.name);
  ledger_->run(
      [jobs = std::move(jobs)](ledger::Store& store) -> Result<std::set<std::string>> {
        std::set<std::string> used;
        auto running = store.running_runs();
        if (!running) return std::unexpected(running.error());
        for (const auto& run : *running) {
          if (run.plugin_sha256) used.insert(*run.plugin_sha256);
        }
        for (const auto& job : jobs) {
          auto runs = store.history(job, kShadowKeepRunsPerJob);
          if (!runs) return std::unexpected(runs.error());
          for (const auto& run : *runs) {
            if (run.plugin_sha256) used.insert(*run.plugin_sha256);
          }
        }
        return used;
      },
      [this, alive = std::weak_ptr<int>(alive_)](Result<std::set<std::string>> used) {
        if (alive.expired()) return;
        if (!used) return log::warn("not removing old shadow copies: " + used.error().message);
        remove_shadows(std::move(*used));
      });
}

void Reloader::remove_shadows(std::set<std::string> keep) {
  // What is in service now, which may have changed while the ledger was read.
  for (const auto& [name, file] : files_) {
    if (file.in_service) keep.insert(file.in_service->sha256);
  }
  for (const auto& sha : keep) mark_used(catalog::shadow_path_for(catalog_.shadow_dir(), sha));
  auto doomed =
      shadow_files_to_remove(list_shadows(), keep, std::chrono::system_clock::now(), kShadowMaxAge);
  for (const auto& name : doomed) ::unlink((catalog_.shadow_dir() / name).c_str());
  if (!doomed.empty()) {
    log::info(fmt::format("removed {} unused shadow cop{} from {}: {}", doomed.size(),
                          doomed.size() == 1 ? "y" : "ies", catalog_.shadow_dir().string(),
                          fmt::join(doomed, ", ")));
  }
}

void Reloader::arm_gc_timer() {
  gc_timer_.expires_after(kShadowMaxAge);
  gc_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    if (!busy_) collect_shadows();
    arm_gc_timer();
  });
}

void Reloader::record(const std::string& kind, const nlohmann::json& detail) {
  ledger::Event event{.at = wall_now(),
                      .kind = kind,
                      .job = std::nullopt,
                      .run_id = std::nullopt,
                      .detail = detail.dump()};
  ledger_->run([event](ledger::Store& store) { return store.add_event(event); },
               [](Result<void> added) {
                 if (!added) log::error(added.error().message);
               });
}

nlohmann::json Reloader::plugins_json() const {
  nlohmann::json dirs = nlohmann::json::array();
  for (const auto& dir : catalog_.plugin_dirs()) dirs.push_back(dir.string());
  nlohmann::json out = {{"plugin_dirs", dirs},
                        {"source", "daemon"},
                        {"accepted", nlohmann::json::array()},
                        {"rejected", nlohmann::json::array()},
                        {"jobs", engine_.next_builds()}};
  for (const auto& p : served_.accepted) out["accepted"].push_back(plugin_json(p));
  for (const auto& r : served_.rejected) {
    out["rejected"].push_back({{"path", r.path.string()}, {"reason", r.reason}});
  }
  return out;
}

}  // namespace jobhost::reload
