// The configuration: plain, validated structs loaded from one TOML file and
// the files its [host] include names. See docs/config.md for every key.
// Pure: reads the files, never the clock.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/time.h"
#include "schedule/schedule.h"

namespace jobhost::config {

// Where something was written: file:line:col (1-based; 0 = unknown). `file` is
// the path as the user gave it, so messages read like the command line. It
// views a name kept for the whole process (intern_file_name), so that the
// three positions of each of 100,000 jobs do not each copy the path.
struct SourcePos {
  std::string_view file;
  int line = 0;
  int column = 0;
  bool operator==(const SourcePos&) const = default;
};

// The same text, kept until the process ends: one copy per distinct name.
std::string_view intern_file_name(std::string_view name);

// One validation error; to_string() is "file:line:col: message" (the parts
// that are unknown, 0, are left out: "file: message"). Callers that act on an
// error decide by `kind`, never by searching `message`.
struct ConfigError {
  enum class Kind {
    other,
    unknown_plugin,  // a job names a plugin not accepted from plugin_dir; see `plugin`
    warning,         // accepted, but likely not what was meant; to_string() says "warning:"
  };
  SourcePos where;
  std::string message;
  Kind kind = Kind::other;
  std::string plugin = {};  // for unknown_plugin: the name the job gave
  std::string to_string() const;
};

enum class Jitter { full, equal, none };
enum class Concurrency { allow, forbid, replace };
enum class Misfire { skip, run_once, run_all };
enum class LogFormat { text, json };
enum class Durability { normal, full };
enum class Network { host, none };            // sandbox: the run's network (docs/isolation.md)
enum class SyscallFilter { none, standard };  // sandbox: "none", "default" (docs/isolation.md)

// The names used in the TOML file ("full", "run_once", ...).
std::string_view to_string(Jitter value);
std::string_view to_string(Concurrency value);
std::string_view to_string(Misfire value);
std::string_view to_string(LogFormat value);
std::string_view to_string(Durability value);
std::string_view to_string(Network value);
std::string_view to_string(SyscallFilter value);  // "none", "default"

struct RetryPolicy {
  int max_attempts = 3;  // >= 1; 1 = no retry
  Duration initial_delay = std::chrono::seconds(1);
  Duration max_delay = std::chrono::minutes(5);  // >= initial_delay
  double multiplier = 2.0;                       // >= 1
  Jitter jitter = Jitter::full;
  bool operator==(const RetryPolicy&) const = default;
};

// Resource limits of each run. For every field but output_bytes, 0 = no limit
// (the child keeps the host's own limit).
struct Limits {
  uint64_t memory_bytes = 512ull << 20;          // RLIMIT_AS (and memory.max)
  Duration cpu_time = std::chrono::minutes(10);  // RLIMIT_CPU, whole seconds
  uint64_t open_files = 256;                     // RLIMIT_NOFILE
  uint64_t processes = 64;                       // RLIMIT_NPROC / pids.max
  uint64_t file_size = 1ull << 30;               // RLIMIT_FSIZE
  uint64_t output_bytes = 64ull << 10;           // tail of stdout+stderr kept; 0 = none
  bool operator==(const Limits&) const = default;
};

// Sandbox options of a job's runs (docs/isolation.md "Sandbox options"). Each
// needs the host to run as root; a run whose sandbox cannot be set up fails.
struct Sandbox {
  Network network = Network::host;  // none: a network namespace with loopback only
  bool private_tmp = false;         // a fresh tmpfs on /tmp and /var/tmp, the run's own
  bool read_only = false;           // every mount read-only but the paths below
  // Absolute paths kept writable under read_only (the state directory and a
  // private /tmp are writable anyway). Must exist when a run starts.
  std::vector<std::string> read_write_paths;
  // standard ("default"): a deny list of system calls (exec/sandbox.h); a
  // blocked call kills the run with SIGSYS.
  SyscallFilter syscall_filter = SyscallFilter::standard;
  bool operator==(const Sandbox&) const = default;
};
// One [secrets.NAME]: where a secret's value is read from, at the start of
// each run of a job that lists it (exec/secrets.h reads and checks it; the
// loader only checks the form). Exactly one source.
struct SecretConfig {
  enum class Source {
    file,        // `file = "path"`: a regular file of the host's user, mode 0600 or 0400
    env,         // `env = "VAR"`: a variable of the daemon's environment
    credential,  // `credential = "NAME"`: $CREDENTIALS_DIRECTORY/NAME (systemd)
  };
  std::string name;
  SourcePos pos;  // where [secrets.NAME] starts
  Source source = Source::file;
  // file: absolute path (relative ones are resolved against the config
  // file's directory); env: the variable's name; credential: its name.
  std::string location;
  bool operator==(const SecretConfig&) const = default;
};
std::string_view to_string(SecretConfig::Source value);

// What a file watch reacts to: inotify events on files of a watched directory
// (docs/triggers.md). `deleted` is written "delete" in the file.
enum class FileEvent { close_write, moved_to, create, deleted, modify, moved_from, attrib };
std::string_view to_string(FileEvent value);

// watch = { paths, events, debounce }: file triggers (triggers/file_triggers.h,
// docs/triggers.md). Each path is absolute and lexically normal; its last
// component is a glob on file names (fnmatch), the directory part is literal.
struct Watch {
  std::vector<std::string> paths;  // in the order written, without duplicates; 1 to kMaxWatchPaths
  std::vector<FileEvent> events = {FileEvent::close_write, FileEvent::moved_to};  // enum order
  Duration debounce = std::chrono::seconds(2);  // > 0, at most kMaxDebounce
  bool operator==(const Watch&) const = default;
};
inline constexpr std::size_t kMaxWatchPaths = 64;
inline constexpr Duration kMaxDebounce = std::chrono::hours(1);

// What a job's runs are given and how they are handled: every setting that
// [defaults] or a [jobs.NAME] table sets, plus the plugin and the resolved
// zone. Jobs with the same settings share one block (JobConfig::settings), so
// 100,000 jobs written with [defaults] cost one block, not 100,000.
struct JobSettings {
  std::string plugin;
  std::string timezone;  // resolved: the job's, else [host] timezone

  Duration timeout = std::chrono::minutes(5);  // > 0
  Duration stall_timeout{0};                   // 0 = off
  Duration kill_grace = std::chrono::seconds(5);
  Duration jitter{0};  // random delay added to each fire, in [0, jitter)
  Concurrency concurrency = Concurrency::forbid;
  Misfire misfire = Misfire::run_once;
  int misfire_limit = 10;  // >= 1; how many missed fires run_all runs
  Duration catchup_spread = std::chrono::seconds(10);
  bool enabled = true;
  RetryPolicy retry;
  Limits limits;
  std::map<std::string, std::string> params;  // TOML scalars as strings
  std::optional<std::string> user;            // drop to this user when root
  std::optional<std::string> group;
  // Sandbox: network, private_tmp, read_only, read_write_paths, syscall_filter.
  Sandbox sandbox;
  // Environment and secrets (issue 13; job-only keys, part of the definition):
  // env = { KEY = "value" }, added to the run's documented environment
  // (exec/environment.h); names are [A-Za-z_][A-Za-z0-9_]*, never JOBHOST_*.
  std::map<std::string, std::string> env;
  // secrets = ["db"]: the [secrets.NAME] its runs may read with secret(), in
  // the order given, each with its source resolved. Names and sources are
  // part of the definition, never the values.
  std::vector<SecretConfig> secrets;
  // File triggers (job-only, part of the definition): a job with a watch
  // fires on its debounced batches of changed files as well.
  std::optional<Watch> watch;
  // Retention: the ledger keeps at most this many of the job's newest runs
  // (a few more for a moment); 0 = no count limit. Not part of the definition.
  int keep_last = 10000;

  // Alerts (observe/alerts.h, docs/observability.md "Alerts"). Not part of
  // the definition: they say who is told, not how the job runs.
  // alert_after: this many consecutive failed fires (each after its retries)
  // notify once; 0 = off.
  int alert_after = 0;
  // No succeeded run for this long notifies once (a dead-man's switch); 0 = off.
  Duration expect_success_within{0};
  // The [alerts.NAME] notifiers told; nullopt = every notifier, [] = none
  // (the alert state is still kept and recorded in the ledger).
  std::optional<std::vector<std::string>> alert_to;

  // Chaining (docs/schedules.md "Chains"): the jobs fired when a fire of this
  // one ends, after its retries: on success, on failure (an outcome that
  // counts as one), and on either or any other end. Not part of the
  // definition: they say what follows, not how the job runs.
  std::vector<std::string> on_success;
  std::vector<std::string> on_failure;
  std::vector<std::string> on_done;

  // Dispatch (docs/config.md "Groups and priority"), not part of the
  // definition: the [groups.NAME] whose max_concurrency its runs count
  // against ("" = none; `group` is the Unix group of the run's user), and
  // its place among fires waiting for a run slot (higher first).
  std::string concurrency_group;
  int priority = 0;

  bool operator==(const JobSettings&) const = default;
};

// One block of the built-in defaults for the whole process: a JobConfig made
// without settings points at it (no allocation per job).
const std::shared_ptr<const JobSettings>& builtin_job_settings();

struct JobConfig {
  std::string name;
  SourcePos pos;         // where [jobs.<name>] starts
  SourcePos plugin_pos;  // where `plugin = ...` is, for "unknown plugin" errors

  schedule::Spec schedule;    // Cron (zone resolved), Every (anchor at epoch), At or Manual
  std::string schedule_text;  // as written: the cron text, "every 90s", the `at` instant
  bool on_reboot = false;     // schedule = "@reboot" (schedule is then Manual)

  // Shared with every job of the same settings; never null (the built-in
  // defaults' block until set). To change one job's settings, give it a new
  // block (own_settings; the loader builds each job's and then shares it).
  std::shared_ptr<const JobSettings> settings = builtin_job_settings();

  // Dynamic users: the uid from [host] dynamic_users that runs of a job
  // without `user` get when the host is root (filled by load_config; unset
  // when the job names a user). Part of the definition: it is how the job runs.
  std::optional<uint32_t> dynamic_uid;
  // compute_definition_hash(*this), filled by load_config.
  std::string definition_hash;
};

// The settings of `job` alone, to change: they are copied first, so the jobs
// that shared its block keep theirs.
JobSettings& own_settings(JobConfig& job);

// The schedule as it runs: schedule_text with each cron H written out as the
// job's value ("H * * * *" -> "37 * * * *"); schedule_text itself without H.
std::string resolved_schedule(const JobConfig& job);

// An inclusive range of uids, as `[host] dynamic_users = "61184-65519"`.
struct UidRange {
  uint32_t first = 61184;
  uint32_t last = 65519;
  bool operator==(const UidRange&) const = default;
};

struct HostConfig {
  // [host] plugin_dir, a directory or a list of them, each absolute, no
  // duplicates; default [<config dir>/plugins]. The catalog scans them in
  // order: of two files with one plugin name, the earlier directory's wins.
  std::vector<std::filesystem::path> plugin_dirs;
  std::filesystem::path state_dir;  // absolute; default <config dir>/var; ledger at jobhost.db
  // This host's name in the ledger (each run records it) and among the hosts
  // that share a PostgreSQL ledger: letters, digits, '.', '-', '_', at most
  // 64; default the machine's hostname.
  std::string id;
  // [store] url: the PostgreSQL ledger several hosts may share
  // (docs/cluster.md); empty = the SQLite ledger in state_dir.
  std::string store_url;
  // [store] heartbeat and lease (PostgreSQL only): each host renews its lease
  // every heartbeat; a host whose lease has run out for `lease` is taken over.
  // lease >= 2 x heartbeat.
  Duration heartbeat = std::chrono::seconds(2);
  Duration lease = std::chrono::seconds(8);
  int max_concurrency = 4;       // >= 1
  std::string timezone = "UTC";  // a valid IANA name
  LogFormat log_format = LogFormat::text;
  Durability durability = Durability::normal;
  // Retention: runs and events older than this are deleted; 0 = kept forever.
  Duration keep_runs = std::chrono::days(30);
  // Dynamic users: the uids (gid = the same number) given to jobs without a
  // `user` when the host is root (config/dynamic_users.h). systemd's range.
  UidRange dynamic_users;
  // Who may use the control socket besides root and the host's user: the
  // members of this group (a name or a numeric gid, checked to exist).
  std::optional<std::string> control_group;
  // Parking (docs/running.md): scheduled fires due within park_lead are
  // claimed, and their processes forked and set up, ahead of their instant,
  // then released at it. 0 = off. At most kMaxParkLead.
  Duration park_lead = std::chrono::seconds(2);
  // Most runs parked at once (each is a process with its plugin loaded);
  // never more than max_concurrency either.
  int max_parked = 256;
  // include = ["jobs.d/*.toml"]: patterns of the files that hold more
  // [jobs.NAME] tables, absolute (relative ones resolved against the config
  // file's directory), without duplicates; wildcards only in the file name.
  std::vector<std::filesystem::path> include;
};
inline constexpr Duration kMaxParkLead = std::chrono::seconds(60);

struct HttpConfig {
  std::string listen = "127.0.0.1:9187";  // "HOST:PORT" ("[::1]:PORT" for IPv6); "" = off
  // A listen address that is not loopback needs allow_remote = true and a token_file.
  bool allow_remote = false;
  // The bearer token HTTP actions need (one line); not group/world readable.
  // Empty: actions over HTTP are refused (403); the control socket remains.
  std::filesystem::path token_file;  // absolute once loaded
  // Per-job metric series: unset = on up to kPerJobMetricsAuto jobs, true = always, false = never.
  std::optional<bool> per_job_metrics;
};
inline constexpr std::size_t kPerJobMetricsAuto = 1000;

// One [alerts.NAME] notifier: how an alert or a recovery is delivered.
struct NotifierConfig {
  enum class Type { command, webhook };
  std::string name;
  SourcePos pos;  // where [alerts.NAME] starts
  Type type = Type::command;
  // command: argv; command[0] is an absolute path to an executable (a
  // relative one is resolved against the config file's directory). No shell.
  std::vector<std::string> command;
  // webhook: an http:// or https:// URL, POSTed the alert as JSON.
  std::string url;
  // webhook over https: PEM file of the CAs to trust instead of the system's.
  std::filesystem::path ca_file;  // absolute once loaded; empty = system CAs
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  Duration timeout = std::chrono::seconds(10);               // one attempt (command: the whole run)
  int retries = 3;  // webhook: further attempts after a failed one, 0..kMaxNotifierRetries
  // command: the user and group it runs as (names or numeric ids, checked to
  // exist when loaded). Unset while the daemon is root: nobody/nogroup.
  std::optional<std::string> user;
  std::optional<std::string> group;
};
inline constexpr int kMaxNotifierRetries = 10;
std::string_view to_string(NotifierConfig::Type value);

// An http(s) URL split for a client: "https://hooks.example:8443/a?b" gives
// tls, host "hooks.example", port 8443, target "/a?b". IPv6 hosts are
// written in brackets and returned without them. No user info, no fragment.
struct Url {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  std::string target = "/";
};
Result<Url> parse_url(std::string_view text);

// One [groups.NAME]: jobs sharing a limit of runs at once (a database, an
// API quota), on top of [host] max_concurrency.
struct GroupConfig {
  std::string name;
  int max_concurrency = 1;  // >= 1
  SourcePos pos;            // where [groups.NAME] starts
};

struct Config {
  std::filesystem::path file;  // absolute, lexically normal path of the TOML file
  HostConfig host;
  HttpConfig http;
  std::vector<GroupConfig> groups;     // [groups.NAME], in file order
  std::vector<JobConfig> jobs;         // in file order, the main file's first
  std::vector<NotifierConfig> alerts;  // [alerts.NAME], in file order
  std::vector<SecretConfig> secrets;   // [secrets.NAME], in file order
  // The files [host] include matched, in the order their jobs were read
  // (after the main file's); absolute.
  std::vector<std::filesystem::path> included_files;
  // What loaded but is likely not what was meant (kind warning, file order),
  // e.g. a cron step wider than its range. `validate` prints them, the daemon
  // logs them at start and on reload. A file that fails to load returns its
  // warnings among its errors.
  std::vector<ConfigError> warnings;

  // The job called `name`, or nullptr. The pointer lives as long as `jobs`.
  const JobConfig* find_job(std::string_view name) const;
  // The group called `name`, or nullptr.
  const GroupConfig* find_group(std::string_view name) const;
};

// Loads and validates `file` and the files its [host] include matches. On
// failure returns every error found (not just the first), each with
// file:line:col of the file it is in, in file order (the main file's first,
// then each included file's in the order they were read). Never throws.
std::expected<Config, std::vector<ConfigError>> load_config(const std::filesystem::path& file);

// The same, and also reports jobs naming a plugin not in `plugin_names`
// (check_plugins), merged with the other errors in file order.
std::expected<Config, std::vector<ConfigError>> load_config(
    const std::filesystem::path& file, const std::set<std::string>& plugin_names);

// Called once [host] is read (paths resolved) to learn which plugin names the
// catalog has, e.g. by scanning host.plugin_dirs; nullopt skips the check. Not
// called when [host] itself has errors. Exceptions it throws become an error.
using PluginNamesFor = std::function<std::optional<std::set<std::string>>(const HostConfig&)>;

// The same, with the plugin names learnt from `plugin_names_for`: lets
// `jobhost validate` report unknown plugins with all other errors at once.
std::expected<Config, std::vector<ConfigError>> load_config(const std::filesystem::path& file,
                                                            const PluginNamesFor& plugin_names_for);

// What a command that only needs the state directory reads of the config
// (history, trigger, pause, resume, cancel, reload): [host], checked as
// load_config checks it but for its time zone, which is not resolved, and
// the names of the jobs. Nothing else in the file is checked: the jobs,
// their zones, definition hashes and uids would cost such a command most of
// its time (docs/cli.md says what a mistake elsewhere does to it).
struct HostSection {
  std::filesystem::path file;          // absolute, lexically normal path of the TOML file
  HostConfig host;                     // host.timezone as written, not checked
  std::vector<std::string> job_names;  // of each [jobs.NAME] table, included ones too, sorted

  bool has_job(std::string_view name) const;
};

// Reads [host] and the job names of `file` and of its included files. Fails
// on what it reads: the files, TOML syntax (each file is parsed whole),
// [host] and what an included file may hold, every error with
// file:line:col. Never throws.
std::expected<HostSection, std::vector<ConfigError>> load_host_section(
    const std::filesystem::path& file);

// The include patterns of [host] in `file`, as load_config resolves them,
// whatever else in the config is wrong (its included files are not read);
// nullopt when the file cannot be read or is not TOML. The watcher follows
// them while a config is rejected: fixing an included file must reload it.
std::optional<std::vector<std::filesystem::path>> include_patterns(
    const std::filesystem::path& file);

// Whether file name `name` matches `glob`, the last component of an include
// pattern: shell wildcards (* ? [...]), a leading '.' only matched by a '.'
// written in the pattern (so editors' ".x.toml.swp" never is). The loader
// and the watcher decide by it alike.
bool include_name_matches(std::string_view glob, std::string_view name);

// The entries of an include pattern's directory whose name matches it
// (include_name_matches), sorted by name, whatever their type. Fails when
// the directory cannot be listed.
Result<std::vector<std::filesystem::path>> match_include(const std::filesystem::path& pattern);

// Errors for jobs naming a plugin that is not in `plugin_names`, pointing at
// each job's `plugin =` value, with a "did you mean" when one is close.
std::vector<ConfigError> check_plugins(const Config& config,
                                       const std::set<std::string>& plugin_names);

// sha256 (hex) of a canonical serialization of the job's effective settings:
// the same for the same settings whatever the order or source ([defaults] or
// the job) in the file; different when any setting differs. Not part of it:
// the job's name, the Every anchor, the time zone of a schedule that is not
// cron, keep_last (it is about the ledger, not about how the job runs), and
// the alert settings alert_after, expect_success_within and alert_to (they
// say who is told about the runs, not how the job runs: changing them must
// not make a reload treat the job as changed or mark its runs as another
// definition).
std::string compute_definition_hash(const JobConfig& job);
// The same, into each job's definition_hash: the part of the text that comes
// from the settings is written once per shared block (load_config calls it).
void compute_definition_hashes(std::vector<JobConfig>& jobs);

// How a job table changes, by job name (definition hashes compared), each
// list sorted. The engine applies it; reload reports it.
struct JobDiff {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<std::string> changed;    // the definition hash differs
  std::vector<std::string> unchanged;  // same hash: keeps timers and anchors
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};
JobDiff diff_jobs(const std::vector<JobConfig>& before, const std::vector<JobConfig>& after);

// A cycle of chains (on_success, on_failure, on_done) among `jobs`, as the
// path that closes it ({"a", "b", "a"}), or nullopt. Names not in `jobs`
// are no links.
std::optional<std::vector<std::string>> find_chain_cycle(const std::vector<JobConfig>& jobs);

// "250ms", "30s", "5m", "2h", "1d", sums like "1h30m", and "0". Whole numbers
// only; the error says what is accepted.
Result<Duration> parse_duration(std::string_view text);
// The shortest text parse_duration reads back as `d` ("1h30m", "250ms", "0s").
// `d` must not be negative.
std::string format_duration(Duration d);
// "64KiB", "512MiB", "1GiB", "1000" (bytes), also KB/MB/GB/TB (powers of
// 1000) and B; units are case-insensitive. Whole numbers only.
Result<uint64_t> parse_size(std::string_view text);

}  // namespace jobhost::config
