#include "daemon/membership.h"

#include <fmt/core.h>
#include <unistd.h>

#include "common/log.h"
#include "common/version.h"
#include "ledger/ids.h"

namespace jobhost::daemon {

Membership::Membership(boost::asio::io_context& io, ledger::Store& store,
                       ledger::StoreWorker& worker, const config::HostConfig& host)
    : timer_(io), store_(store), worker_(worker), heartbeat_(host.heartbeat), lease_(host.lease) {
  me_.id = host.id;
  me_.pid = ::getpid();
  me_.version = std::string(kVersion);
  me_.started_at = wall_now();
  me_.incarnation = ledger::new_id(me_.started_at);
}

void Membership::stamp() {
  me_.heartbeat_at = wall_now();
  me_.lease_until = me_.heartbeat_at + lease_;
  if (engine_) {
    me_.definitions = engine_->definitions_digest();
    me_.plugins = engine_->plugin_builds();
  }
}

Result<void> Membership::join() {
  stamp();
  const auto asked = std::chrono::steady_clock::now();
  auto lease = store_.renew_lease(me_);
  if (!lease) return std::unexpected(lease.error());
  if (*lease == ledger::Lease::renewed) renewed_ = asked;
  if (*lease == ledger::Lease::lost) {
    return fail(fmt::format(
        "host id \"{}\" is held by a jobhost started after this one: give each host its own "
        "[host] id",
        me_.id));
  }
  log::info(fmt::format("joined the hosts sharing the ledger as \"{}\" (lease {}, heartbeat {})",
                        me_.id, config::format_duration(lease_),
                        config::format_duration(heartbeat_)));
  return {};
}

void Membership::start(engine::Engine& engine) {
  engine_ = &engine;
  engine_->lease_until(renewed_ + lease_ - heartbeat_);
  // At once: the engine's start may have taken a good part of the lease.
  tick();
}

void Membership::arm() {
  timer_.expires_after(heartbeat_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !left_) tick();
  });
}

void Membership::tick() {
  if (beating_) {
    // The last renewal has not come back: the database is slow or gone.
    fence_if_lapsed("the ledger did not answer");
  } else {
    beat();
  }
  arm();
}

void Membership::beat() {
  beating_ = true;
  stamp();
  const auto asked = std::chrono::steady_clock::now();
  worker_.run(
      [me = me_, message = fmt::format(
                     "interrupted: its host stopped renewing its lease; taken over by host {}",
                     me_.id)](ledger::Store& store) {
        Beat beat{store.renew_lease(me)};
        if (beat.lease && *beat.lease == ledger::Lease::renewed) {
          beat.takeover = store.take_over_expired(me.id, wall_now(), message);
          // Retries another host scheduled, then stopped or died with them
          // pending (a clean stop leaves nothing to take over).
          beat.retries = store.pending_retries();
          beat.hosts = store.hosts();
          // Pauses and resumes made on other hosts.
          beat.paused = store.paused_jobs();
        }
        return beat;
      },
      [this, asked](Beat beat) {
        beating_ = false;
        if (left_) {
          refusing_ |= !beat.lease;  // leave() judges by it
          return;
        }
        on_beat(asked, std::move(beat));
      });
}

void Membership::fence_if_lapsed(const std::string& why) {
  if (std::chrono::steady_clock::now() - renewed_ >= lease_) {
    engine_->fence(fmt::format("this host's lease could not be renewed for {} ({})",
                               config::format_duration(lease_), why));
  }
}

void Membership::on_beat(std::chrono::steady_clock::time_point asked, Beat beat) {
  if (beat.lease && *beat.lease == ledger::Lease::lost) {
    // Another host took this incarnation's runs over (this host was paused
    // or cut off past its lease): they are not its own any more.
    log::error(
        fmt::format("host \"{}\" lost its lease: another host took its runs over; "
                    "joining again as a new incarnation",
                    me_.id));
    engine_->fence("this host's lease was lost");
    me_.started_at = wall_now();
    me_.incarnation = ledger::new_id(me_.started_at);
    return this->beat();
  }
  if (!beat.lease) {
    if (!refusing_) log::warn("cannot renew this host's lease: " + beat.lease.error().message);
    refusing_ = true;
    return fence_if_lapsed(beat.lease.error().message);
  }
  renewed_ = asked;
  if (refusing_) log::info("this host's lease is renewed again");
  refusing_ = false;
  // Claims stop a heartbeat before the lease could run out unrenewed.
  engine_->lease_until(renewed_ + lease_ - heartbeat_);
  // A renewal that came back too late to be sure of (a heartbeat short of
  // the lease) lifts no fence: the next one will.
  if (std::chrono::steady_clock::now() < renewed_ + lease_ - heartbeat_) engine_->unfence();
  if (!beat.takeover) {
    log::warn(beat.takeover.error().message);
  } else if (!beat.takeover->closed.empty() || !beat.takeover->freed.empty()) {
    engine_->adopt(*beat.takeover);
  }
  if (!beat.retries) {
    log::error("cannot read pending retries from the ledger: " + beat.retries.error().message);
  } else {
    engine_->add_retries(*beat.retries);
  }
  if (beat.hosts) note_hosts(*beat.hosts);
  if (beat.paused) engine_->sync_paused(*beat.paused, asked);
}

void Membership::note_hosts(const std::vector<ledger::HostRecord>& hosts) {
  const TimePoint now = wall_now();
  live_hosts_ = 0;
  for (const auto& h : hosts) live_hosts_ += !h.taken_over_at && h.lease_until >= now;
  ledger::Skew skew = ledger::skew_of(hosts, now);
  const bool was_skewed = skew_.any();
  if (skew == skew_) return;
  skew_ = std::move(skew);
  if (!was_skewed && !skew_.any()) return;
  if (!skew_.any()) {
    log::info("the hosts sharing the ledger run the same job definitions and plugin builds again");
    return;
  }
  // Once per change: during a rolling deploy, expected; after it, a host
  // left behind (docs/cluster.md).
  log::warn(
      "the hosts sharing the ledger differ (a deploy in progress, or a host left "
      "behind): " +
      ledger::to_json(skew_).dump() + "; `jobhost cluster status` shows each host's");
}

void Membership::leave() {
  left_ = true;
  timer_.cancel();
  worker_.settle();  // the renewal in flight, if any
  if (refusing_) {
    // The ledger did not answer the last renewal: the lease is left to run
    // out (another host takes over what is open), and the stop not held.
    log::warn("the ledger does not answer: this host's lease is left to run out");
    return;
  }
  // Runs whose end the ledger never got stay open: the lease then runs out
  // and another host takes them over, instead of nobody.
  auto running = store_.running_runs();
  if (!running) {
    log::warn(running.error().message);
    return;
  }
  for (const auto& run : *running) {
    if (run.host == me_.id) {
      log::warn(
          "runs of this host are still open in the ledger: the lease is left to run out, "
          "for another host to take them over");
      return;
    }
  }
  if (auto ended = store_.end_lease(me_.id, me_.incarnation, wall_now()); !ended) {
    log::warn(ended.error().message);
  }
}

nlohmann::json Membership::json() const {
  return {{"id", me_.id},
          {"incarnation", me_.incarnation},
          {"lease_until", ledger::format_utc(me_.lease_until)},
          {"fenced", engine_ && engine_->fenced()},
          {"renewing", !refusing_},
          {"live_hosts", live_hosts_},
          {"skew", ledger::to_json(skew_)}};
}

}  // namespace jobhost::daemon
