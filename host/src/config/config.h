// The configuration: plain, validated structs loaded from one TOML file.
// See docs/config.md for every key.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/time.h"
#include "schedule/schedule.h"

namespace jobhost::config {

// Where something was written: file:line:col (1-based; 0 = unknown).
struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
};

// One validation error; to_string() is "file:line:col: message".
struct ConfigError {
  SourcePos where;
  std::string message;
  std::string to_string() const;
};

enum class Jitter { full, equal, none };
enum class Concurrency { allow, forbid, replace };
enum class Misfire { skip, run_once, run_all };
enum class LogFormat { text, json };
enum class Durability { normal, full };

struct RetryPolicy {
  int max_attempts = 3;  // 1 = no retry
  Duration initial_delay = std::chrono::seconds(1);
  Duration max_delay = std::chrono::minutes(5);
  double multiplier = 2.0;
  Jitter jitter = Jitter::full;
};

struct Limits {
  uint64_t memory_bytes = 512ull << 20;          // RLIMIT_AS; 0 = unlimited
  Duration cpu_time = std::chrono::minutes(10);  // RLIMIT_CPU; 0 = unlimited
  uint64_t open_files = 256;                     // RLIMIT_NOFILE
  uint64_t processes = 64;                       // RLIMIT_NPROC / pids.max
  uint64_t file_size = 1ull << 30;               // RLIMIT_FSIZE
  uint64_t output_bytes = 64ull << 10;           // tail of stdout+stderr kept
};

struct JobConfig {
  std::string name;
  SourcePos pos;  // where [jobs.<name>] starts

  std::string plugin;
  SourcePos plugin_pos;  // where `plugin = ...` is, for "unknown plugin" errors

  schedule::Spec schedule;    // Cron (zone resolved), Every, At or Manual
  std::string schedule_text;  // as written: the cron text, "every 90s", the `at` instant
  bool on_reboot = false;     // schedule = "@reboot"
  std::string timezone;       // resolved: the job's, else [host] timezone

  Duration timeout = std::chrono::minutes(5);
  Duration stall_timeout{0};  // 0 = off
  Duration kill_grace = std::chrono::seconds(5);
  Duration jitter{0};
  Concurrency concurrency = Concurrency::forbid;
  Misfire misfire = Misfire::run_once;
  int misfire_limit = 10;
  Duration catchup_spread = std::chrono::seconds(10);
  bool enabled = true;
  RetryPolicy retry;
  Limits limits;
  std::map<std::string, std::string> params;  // TOML scalars as strings
  std::optional<std::string> user;            // drop to this user when root
  std::optional<std::string> group;

  // sha256 over the job's effective settings: changes iff the job changes.
  std::string definition_hash;
};

struct HostConfig {
  std::filesystem::path plugin_dir;  // absolute
  std::filesystem::path state_dir;   // absolute; ledger at state_dir/jobhost.db
  int max_concurrency = 4;
  std::string timezone = "UTC";
  LogFormat log_format = LogFormat::text;
  Durability durability = Durability::normal;
};

struct HttpConfig {
  std::string listen = "127.0.0.1:9187";  // "" = off
};

struct Config {
  std::filesystem::path file;  // absolute path of the TOML file
  HostConfig host;
  HttpConfig http;
  std::vector<JobConfig> jobs;  // in file order

  const JobConfig* find_job(std::string_view name) const;
};

// Loads and validates `file`. On failure returns every error found (not just
// the first), each with file:line:col, in file order.
std::expected<Config, std::vector<ConfigError>> load_config(const std::filesystem::path& file);

// Errors for jobs naming a plugin that is not in `plugin_names`, pointing at
// each job's `plugin =` line.
std::vector<ConfigError> check_plugins(const Config& config,
                                       const std::set<std::string>& plugin_names);

// "250ms", "30s", "5m", "2h", "1d" and sums like "1h30m"; error says what is accepted.
Result<Duration> parse_duration(std::string_view text);
// "64KiB", "512MiB", "1GiB", "1000" (bytes), also KB/MB/GB (powers of 1000).
Result<uint64_t> parse_size(std::string_view text);

}  // namespace jobhost::config
