#include "triggers/file_triggers.h"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>

#include "common/log.h"

namespace jobhost::triggers {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// Every watched directory reports its own removal or move.
constexpr uint32_t kSelfMask = IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// An ancestor waited on reports the directories made or moved into it.
constexpr uint32_t kAncestorMask = IN_CREATE | IN_MOVED_TO;

uint32_t mask_of(config::FileEvent event) {
  switch (event) {
    case config::FileEvent::close_write:
      return IN_CLOSE_WRITE;
    case config::FileEvent::moved_to:
      return IN_MOVED_TO;
    case config::FileEvent::create:
      return IN_CREATE;
    case config::FileEvent::deleted:
      return IN_DELETE;
    case config::FileEvent::modify:
      return IN_MODIFY;
    case config::FileEvent::moved_from:
      return IN_MOVED_FROM;
    case config::FileEvent::attrib:
      return IN_ATTRIB;
  }
  return 0;
}

// Only events that leave the file there can be caught up by listing files.
constexpr uint32_t kCatchupEvents =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_ATTRIB;

bool is_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string watch_problem(int err) {
  if (err == ENOSPC) {
    return "the inotify watch limit is reached: raise it, e.g. sysctl "
           "fs.inotify.max_user_watches=524288 (and in /etc/sysctl.d/ to keep it)";
  }
  return std::strerror(err);
}

}  // namespace

FileTriggers::FileTriggers(boost::asio::io_context& io, engine::Engine& engine,
                           ledger::Store& store)
    : io_(io), engine_(engine), inline_reads_(store), inotify_(io), retry_(io) {}

FileTriggers::~FileTriggers() {
  stop();
  engine_.remove_observer(*this);
}

void FileTriggers::start() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    log::error(
        fmt::format("file triggers are off: inotify is not available: {} (raise "
                    "fs.inotify.max_user_instances if it is the limit)",
                    std::strerror(errno)));
    return;
  }
  inotify_.assign(fd);
  started_ = true;
  read_events();
  apply(engine_.config());
}

void FileTriggers::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  retry_.cancel();
  for (auto& [name, job] : jobs_) job.timer->cancel();
  if (inotify_.is_open()) inotify_.close(ignored);
}

void FileTriggers::on_config_applied(const config::Config& config) {
  if (started_ && !stopped_) apply(config);
}

void FileTriggers::on_run_finished(const ledger::RunStart& run, const ledger::RunEnd&,
                                   const exec::RunReport&) {
  recheck_soon(run.job);
}
void FileTriggers::on_run_unstarted(const ledger::RunStart& run, const ledger::RunEnd&) {
  recheck_soon(run.job);
}
void FileTriggers::on_skipped(const ledger::SkipRecord& skip) {
  recheck_soon(skip.job);
}

void FileTriggers::recheck_soon(const std::string& name) {
  auto it = jobs_.find(name);
  if (it == jobs_.end() || !it->second.held) return;
  // Not from inside the engine's call: trigger() would re-enter it.
  boost::asio::post(io_, [this, name, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired() && !stopped_) fire_if_due(name);
  });
}

void FileTriggers::apply(const config::Config& config) {
  std::set<std::string, std::less<>> watched;
  std::vector<std::string> new_watches;
  for (const auto& job : config.jobs) {
    const auto& settings = *job.settings;
    if (!settings.watch || !settings.enabled) continue;
    watched.insert(job.name);
    auto [it, added] = jobs_.try_emplace(job.name);
    Job& state = it->second;
    state.concurrency = settings.concurrency;
    if (!added && state.watch == *settings.watch) continue;
    // A changed watch keeps its batch: those files changed while watched.
    state.watch = *settings.watch;
    state.mask = 0;
    for (auto event : state.watch.events) state.mask |= mask_of(event);
    state.targets.clear();
    for (const auto& path : state.watch.paths) state.targets.push_back({split_watch_path(path)});
    if (!state.timer) state.timer = std::make_unique<boost::asio::steady_timer>(io_);
    ++state.generation;
    new_watches.push_back(job.name);
    log::info(fmt::format("watching {} path(s) for file triggers", state.targets.size()),
              {job.name});
  }
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (watched.contains(it->first)) {
      ++it;
      continue;
    }
    if (!it->second.batch.empty()) {
      log::warn(fmt::format("the watch was removed: {} changed path(s) not fired",
                            it->second.batch.size()),
                {it->first});
    }
    it = jobs_.erase(it);
  }
  resolve();
  for (const auto& name : new_watches) catch_up(name);
}

void FileTriggers::resolve() {
  if (!inotify_.is_open()) return;
  const int fd = inotify_.native_handle();
  // What each directory must report: the union over the targets using it.
  std::map<fs::path, uint32_t> wanted;
  std::map<std::pair<std::string, std::size_t>, fs::path> ancestor_of;
  for (auto& [name, job] : jobs_) {
    for (std::size_t i = 0; i < job.targets.size(); ++i) {
      const fs::path& dir = job.targets[i].path.dir;
      if (is_dir(dir)) {
        wanted[dir] |= job.mask | kSelfMask;
        continue;
      }
      fs::path up = dir.parent_path();
      while (!is_dir(up) && up.has_relative_path()) up = up.parent_path();
      wanted[up] |= kAncestorMask | kSelfMask;
      ancestor_of[{name, i}] = up;
    }
  }
  std::map<int, Dir> dirs;
  std::map<fs::path, int> wd_of;
  std::map<fs::path, int> errors;
  for (const auto& [path, mask] : wanted) {
    int wd = ::inotify_add_watch(fd, path.c_str(), mask);
    if (wd >= 0 && dirs.contains(wd) && dirs[wd].mask != (dirs[wd].mask | mask)) {
      // Two paths of one directory (a symbolic link): one watch, both masks.
      wd = ::inotify_add_watch(fd, path.c_str(), dirs[wd].mask | mask);
    }
    if (wd < 0) {
      errors[path] = errno;
      continue;
    }
    dirs[wd].path = path;
    dirs[wd].mask |= mask;
    wd_of[path] = wd;
  }
  for (const auto& [wd, dir] : dirs_) {
    if (!dirs.contains(wd)) ::inotify_rm_watch(fd, wd);
  }
  dirs_ = std::move(dirs);

  bool failed = false;
  for (auto& [name, job] : jobs_) {
    for (std::size_t i = 0; i < job.targets.size(); ++i) {
      Target& t = job.targets[i];
      const int before = t.wd;
      auto ancestor = ancestor_of.find({name, i});
      const fs::path& watched = ancestor == ancestor_of.end() ? t.path.dir : ancestor->second;
      auto wd = wd_of.find(watched);
      if (wd == wd_of.end()) {
        const std::string why =
            fmt::format("cannot watch {}: {}", watched.string(), watch_problem(errors[watched]));
        if (t.failed_reason != why) log::error(why + "; trying again every 10s", {name});
        t.failed_reason = why;
        t.wd = t.parent_wd = -1;
        failed = true;
        continue;
      }
      if (!t.failed_reason.empty()) log::info("watching " + watched.string() + " now", {name});
      t.failed_reason.clear();
      if (ancestor != ancestor_of.end()) {
        if (t.parent_wd != wd->second) {
          log::info(fmt::format("{} does not exist: waiting for it on {}", t.path.dir.string(),
                                watched.string()),
                    {name});
        }
        t.wd = -1;
        t.parent_wd = wd->second;
      } else {
        t.wd = wd->second;
        t.parent_wd = -1;
        // A directory new to the watch (made, or made again, since): the
        // files already in it were made without an event seen.
        if (t.wd != before && !t.fresh) scan(name, job, t, std::nullopt);
      }
      t.fresh = false;
    }
  }
  if (failed && !stopped_) {
    retry_.expires_after(kRetryWatch);
    retry_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !stopped_) resolve();
    });
  }
}

void FileTriggers::read_events() {
  inotify_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (ec || stopped_) return;
                        drain();
                        read_events();
                      });
}

void FileTriggers::drain() {
  if (!inotify_.is_open()) return;
  alignas(inotify_event) std::array<char, 64 * 1024> buf;
  while (true) {
    const ssize_t n = ::read(inotify_.native_handle(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: drained
    handle_events(buf.data(), static_cast<std::size_t>(n));
  }
}

void FileTriggers::handle_events(const char* data, std::size_t size) {
  const auto now = SteadyClock::now();
  bool moved = false;  // a watched directory went, or one waited for may have come
  for (std::size_t offset = 0; offset + sizeof(inotify_event) <= size;) {
    const auto* event = reinterpret_cast<const inotify_event*>(data + offset);
    offset += sizeof(inotify_event) + event->len;
    const uint32_t mask = event->mask;
    if (mask & IN_Q_OVERFLOW) {
      log::warn(
          "inotify queue overflowed: every watched job fires once with \"overflow\": true (its "
          "paths may be incomplete)");
      for (auto& [name, job] : jobs_) {
        job.batch.overflowed(now);
        arm(name, job);
      }
      moved = true;
      continue;
    }
    if (mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
      moved = true;
      continue;
    }
    const std::string name = event->len > 0 ? std::string(event->name) : std::string();
    if (name.empty()) continue;
    for (auto& [job_name, job] : jobs_) {
      for (const Target& t : job.targets) {
        if (t.parent_wd == event->wd && (mask & IN_ISDIR)) moved = true;
        if (t.wd != event->wd || !(mask & job.mask) || !name_matches(t.path.pattern, name)) {
          continue;
        }
        job.batch.add((t.path.dir / name).string(), now);
        arm(job_name, job);
      }
    }
  }
  if (moved) resolve();
}

void FileTriggers::catch_up(const std::string& name) {
  auto it = jobs_.find(name);
  if (it == jobs_.end() || !(it->second.mask & kCatchupEvents)) return;
  reads_->run(
      [name](ledger::Store& store) { return store.last_claimed(name, ledger::Trigger::file); },
      [this, name, generation = it->second.generation,
       alive = std::weak_ptr<int>(alive_)](Result<std::optional<TimePoint>> last) {
        if (alive.expired() || stopped_) return;
        auto it = jobs_.find(name);
        if (it == jobs_.end() || it->second.generation != generation) return;
        if (!last) {
          log::error(fmt::format("catch-up skipped: {}; files changed while the host was down "
                                 "are listed at the next start",
                                 last.error().message),
                     {name});
          return;
        }
        Job& job = it->second;
        const std::size_t before = job.batch.size();
        const auto since = *last ? std::optional(**last - kCatchupMargin) : std::nullopt;
        for (const Target& t : job.targets) {
          if (t.wd >= 0) scan(name, job, t, since);
        }
        if (job.batch.size() > before) {
          job.batch.mark_catchup();
          log::info(fmt::format("catch-up: {} file(s) changed {}", job.batch.size() - before,
                                *last ? "since the last file fire, " + ledger::format_utc(**last)
                                      : std::string("(no file fire recorded yet)")),
                    {name});
        }
      });
}

void FileTriggers::scan(const std::string& name, Job& job, const Target& target,
                        std::optional<TimePoint> since) {
  const auto now = SteadyClock::now();
  std::error_code ec;
  bool added = false;
  for (fs::directory_iterator it(target.path.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (!name_matches(target.path.pattern, file)) continue;
    if (since) {
      // ctime, not mtime: a rename or a copy that keeps the mtime (mv, cp -p,
      // rsync -t, tar) still sets it, and nothing can set it back.
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0) continue;
      const auto ctime = std::chrono::sys_seconds(std::chrono::seconds(st.st_ctim.tv_sec)) +
                         std::chrono::nanoseconds(st.st_ctim.tv_nsec);
      if (ctime < *since) continue;
    }
    job.batch.add(it->path().string(), now);
    added = true;
  }
  if (added) arm(name, job);
}

void FileTriggers::arm(const std::string& name, Job& job) {
  if (job.held || stopped_) return;  // fire_if_due looks at it again soon
  job.timer->expires_at(job.batch.due(job.watch.debounce));
  job.timer->async_wait([this, name](const boost::system::error_code& ec) {
    if (!ec && !stopped_) fire_if_due(name);
  });
}

void FileTriggers::fire_if_due(const std::string& name) {
  drain();  // events already queued belong to this batch, or extend it
  auto it = jobs_.find(name);
  if (it == jobs_.end() || it->second.batch.empty()) return;
  Job& job = it->second;
  job.held = false;
  if (job.batch.due(job.watch.debounce) > SteadyClock::now()) return arm(name, job);
  const bool busy = job.concurrency == config::Concurrency::forbid && engine_.busy(name);
  if (busy || engine_.paused(name)) {
    // Fired now, it would be recorded skipped with its files: it waits.
    job.held = true;
    job.timer->expires_after(kRecheck);
    job.timer->async_wait([this, name](const boost::system::error_code& ec) {
      if (!ec && !stopped_) fire_if_due(name);
    });
    return;
  }
  const Batch batch = std::exchange(job.batch, {});
  auto slot =
      engine_.trigger(name, {}, batch.payload(engine::kMaxEventBytes), ledger::Trigger::file);
  if (!slot) {
    log::error(fmt::format("{} changed path(s) not fired: {}", batch.size(), slot.error().message),
               {name});
    return;
  }
  log::info(fmt::format("file trigger: {} changed path(s) fired as slot {}", batch.size(),
                        ledger::format_utc(*slot)),
            {name});
}

}  // namespace jobhost::triggers
