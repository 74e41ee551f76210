// load_config: TOML text -> validated Config, collecting every error on the way.
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <arpa/inet.h>
#include <grp.h>
#include <linux/limits.h>
#include <pwd.h>
#include <sys/stat.h>

#include <date/tz.h>
#include <fmt/core.h>
#include <fmt/ostream.h>
#include <fnmatch.h>
#include <toml++/toml.h>
#include <unistd.h>

#include "config/config.h"
#include "config/dynamic_users.h"
#include "config/suggest.h"

namespace jobhost::config {
namespace {

// Why `id` is not a host id, or empty.
std::string check_host_id(std::string_view id) {
  constexpr std::size_t kMaxHostId = 64;
  if (id.empty() || id.size() > kMaxHostId) {
    return fmt::format("1 to {} characters, got {}", kMaxHostId, id.size());
  }
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return fmt::format("letters, digits, '.', '-' and '_' only, got \"{}\"", id);
    }
  }
  return {};
}

// The machine's hostname, or "localhost" when it is not a valid id.
std::string default_host_id() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !check_host_id(name).empty()) {
    return "localhost";
  }
  return name;
}

namespace fs = std::filesystem;
using KeyList = std::span<const std::string_view>;

constexpr std::array<std::string_view, 8> kTopKeys = {"host", "store",  "http",    "defaults",
                                                      "jobs", "alerts", "secrets", "groups"};
constexpr std::array<std::string_view, 3> kStoreKeys = {"url", "heartbeat", "lease"};
constexpr std::array<std::string_view, 13> kHostKeys = {
    "id",         "plugin_dir", "state_dir", "max_concurrency", "timezone",
    "log_format", "durability", "keep_runs", "dynamic_users",   "control_group",
    "park_lead",  "max_parked", "include"};
// What an included file may hold.
constexpr std::array<std::string_view, 1> kIncludedTopKeys = {"jobs"};
constexpr std::array<std::string_view, 4> kHttpKeys = {"listen", "allow_remote", "token_file",
                                                       "per_job_metrics"};
constexpr std::array<std::string_view, 27> kSettingKeys = {
    "timeout", "stall_timeout", "kill_grace", "retry", "limits", "jitter", "concurrency", "misfire",
    "misfire_limit", "catchup_spread", "enabled", "user", "group", "keep_last", "alert_after",
    "expect_success_within", "alert_to", "on_success", "on_failure", "on_done", "concurrency_group",
    "priority",
    // sandbox
    "network", "private_tmp", "read_only", "read_write_paths", "syscall_filter"};
constexpr std::array<std::string_view, 13> kJobOnlyKeys = {
    "plugin",  "schedule", "every",   "at",    "timezone", "params", "env",
    "secrets", "watch",    "command", "shell", "cwd",      "stdin"};
constexpr std::array<std::string_view, 40> kJobKeys = {
    "plugin", "schedule", "every", "at", "timezone", "params", "timeout", "stall_timeout",
    "kill_grace", "retry", "limits", "jitter", "concurrency", "misfire", "misfire_limit",
    "catchup_spread", "enabled", "user", "group", "keep_last", "alert_after",
    "expect_success_within", "alert_to", "on_success", "on_failure", "on_done", "concurrency_group",
    "priority",
    // sandbox
    "network", "private_tmp", "read_only", "read_write_paths", "syscall_filter",
    // environment and secrets
    "env", "secrets",
    // file triggers
    "watch",
    // the exec plugin (plugins/exec)
    "command", "shell", "cwd", "stdin"};
// The exec plugin's job keys, handed to it as params of the same names (the
// plugin reads them with param()); an exec job cannot set them in params.
constexpr std::array<std::string_view, 4> kExecKeys = {"command", "shell", "cwd", "stdin"};
// The plugin a job with `command` runs (it may leave `plugin` out).
constexpr std::string_view kExecPlugin = "exec";
// Most bytes of `stdin`: it travels to the run with the params, which share
// the fork server's request limit with the secrets.
constexpr std::size_t kMaxStdin = 64 * 1024;
constexpr std::array<std::string_view, 5> kRetryKeys = {"max_attempts", "initial_delay",
                                                        "max_delay", "multiplier", "jitter"};
constexpr std::array<std::string_view, 6> kLimitKeys = {"memory",    "cpu_time",  "open_files",
                                                        "processes", "file_size", "output"};
constexpr std::array<std::string_view, 3> kScheduleKeys = {"schedule", "every", "at"};
constexpr std::array<std::string_view, 3> kWatchKeys = {"paths", "events", "debounce"};
constexpr std::array<std::string_view, 9> kNotifierKeys = {
    "type", "command", "url", "ca_file", "timeout", "retries", "headers", "user", "group"};
// Bind mounts a run's read_only sandbox makes at most.
constexpr std::size_t kMaxReadWritePaths = 64;
// [secrets.NAME]: exactly one of these.
constexpr std::array<std::string_view, 3> kSecretKeys = {"file", "env", "credential"};
// How much of a ca_file is read to check that it holds a certificate.
constexpr std::size_t kMaxCaFile = 1 << 20;
// Headers the webhook client writes itself.
constexpr std::array<std::string_view, 5> kReservedHeaders = {
    "host", "content-length", "transfer-encoding", "connection", "content-type"};

template <class E>
struct Named {
  std::string_view name;
  E value;
};
constexpr std::array<Named<Jitter>, 3> kJitterNames = {
    {{"full", Jitter::full}, {"equal", Jitter::equal}, {"none", Jitter::none}}};
constexpr std::array<Named<Concurrency>, 3> kConcurrencyNames = {
    {{"allow", Concurrency::allow},
     {"forbid", Concurrency::forbid},
     {"replace", Concurrency::replace}}};
constexpr std::array<Named<Misfire>, 3> kMisfireNames = {
    {{"skip", Misfire::skip}, {"run_once", Misfire::run_once}, {"run_all", Misfire::run_all}}};
constexpr std::array<Named<LogFormat>, 2> kLogFormatNames = {
    {{"text", LogFormat::text}, {"json", LogFormat::json}}};
constexpr std::array<Named<Durability>, 2> kDurabilityNames = {
    {{"normal", Durability::normal}, {"full", Durability::full}}};
constexpr std::array<Named<Network>, 2> kNetworkNames = {
    {{"host", Network::host}, {"none", Network::none}}};
constexpr std::array<Named<SyscallFilter>, 2> kSyscallFilterNames = {
    {{"default", SyscallFilter::standard}, {"none", SyscallFilter::none}}};
constexpr std::array<Named<FileEvent>, 7> kFileEventNames = {
    {{"close_write", FileEvent::close_write},
     {"moved_to", FileEvent::moved_to},
     {"create", FileEvent::create},
     {"delete", FileEvent::deleted},
     {"modify", FileEvent::modify},
     {"moved_from", FileEvent::moved_from},
     {"attrib", FileEvent::attrib}}};
constexpr std::array<Named<NotifierConfig::Type>, 2> kNotifierTypeNames = {
    {{"command", NotifierConfig::Type::command}, {"webhook", NotifierConfig::Type::webhook}}};

template <class E, std::size_t N>
std::string_view name_of(const std::array<Named<E>, N>& names, E value) {
  for (const auto& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";
}

bool contains(KeyList list, std::string_view key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

std::string quoted_list(KeyList items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += fmt::format("\"{}\"", item);
  }
  return out;
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Where a key that does not belong in the current table does belong, if anywhere.
std::string_view home_of(std::string_view key) {
  if (contains(kHostKeys, key)) return "[host]";
  if (contains(kHttpKeys, key)) return "[http]";
  if (contains(kSettingKeys, key)) return "[defaults] or [jobs.NAME]";
  if (contains(kJobOnlyKeys, key)) return "[jobs.NAME]";
  if (contains(kRetryKeys, key)) return "retry = { ... }";
  if (contains(kLimitKeys, key)) return "limits = { ... }";
  if (contains(kWatchKeys, key)) return "watch = { ... }";
  if (contains(kNotifierKeys, key)) return "[alerts.NAME]";
  if (contains(kSecretKeys, key)) return "[secrets.NAME]";
  return {};
}

bool valid_job_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  const auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '_' || c == '-'; });
}

// An environment variable name a run may be given: [A-Za-z_][A-Za-z0-9_]*.
bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  const auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  if (!word(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return word(c) || (c >= '0' && c <= '9'); });
}

// A systemd credential name: a file name in $CREDENTIALS_DIRECTORY.
bool valid_credential_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == '@' || c == ':';
  });
}

fs::path resolve_path(const fs::path& base_dir, const std::string& text) {
  const fs::path p(text);
  fs::path out = (p.is_absolute() ? p : base_dir / p).lexically_normal();
  if (!out.has_filename() && out != out.root_path()) out = out.parent_path();
  return out;
}

// "HOST:PORT" or "[IPv6]:PORT"; empty on success, else why not.
std::string check_listen(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return "an IPv6 address needs a port: \"[::1]:9187\"";
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return "missing \":PORT\"";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return "write an IPv6 address in brackets: \"[::1]:9187\"";
    }
  }
  if (host.empty()) return "missing host (use 127.0.0.1 for this machine only)";
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(std::string(port)) > 65535) {
    return "the port must be a number from 0 to 65535";
  }
  if (host == "localhost") return {};
  const std::string h(host);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, h.c_str(), &v4) != 1 && inet_pton(AF_INET6, h.c_str(), &v6) != 1) {
    return fmt::format("\"{}\" is not an IP address (host names are not resolved)", host);
  }
  return {};
}

// Whether a listen address that check_listen accepted is reachable from
// this machine only: 127.0.0.0/8, ::1 (or ::ffff:127.x.x.x), "localhost".
bool is_loopback_listen(std::string_view text) {
  std::string host(text.starts_with('[') ? text.substr(1, text.find("]:") - 1)
                                         : text.substr(0, text.rfind(':')));
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

// Empty when `file` may hold the HTTP bearer token: a regular file, not
// empty, at most 4 KiB, no access for group or others; else why not.
std::string check_token_file(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return fmt::format(
        "cannot use \"{}\": {}; create it with the token on one line and "
        "`chmod 600 {}`",
        file.string(), std::strerror(errno), file.string());
  }
  if (!S_ISREG(st.st_mode)) {
    return fmt::format(
        "\"{}\" is not a regular file; point token_file at a file holding the "
        "token on one line",
        file.string());
  }
  if ((st.st_mode & 077) != 0) {
    return fmt::format("\"{}\" is open to group or others (mode {:04o}); run `chmod 600 {}`",
                       file.string(), st.st_mode & 07777, file.string());
  }
  if (st.st_size > 4096) {
    return fmt::format("\"{}\" is larger than 4 KiB; it must hold only the token, on one line",
                       file.string());
  }
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) {
    return fmt::format("cannot read \"{}\": {}", file.string(), std::strerror(errno));
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return fmt::format("\"{}\" is empty; write the token in it, on one line", file.string());
  }
  return {};
}

// Every zone and link name the tz database knows, for "did you mean".
std::vector<std::string> all_zone_names() {
  std::vector<std::string> names;
  try {
    const auto& db = date::get_tzdb();
    for (const auto& zone : db.zones) names.push_back(zone.name());
  } catch (const std::exception&) {
    // No database: no suggestion; find_zone has already said what failed.
  }
  return names;
}

ConfigError unknown_plugin_error(SourcePos where, const std::string& section,
                                 const std::string& plugin, const std::set<std::string>& known) {
  std::vector<std::string_view> names(known.begin(), known.end());
  std::string list;
  for (std::string_view n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  if (list.empty()) list = "none; check [host] plugin_dir";
  std::string hint;
  if (auto close = closest_match(plugin, names))
    hint = fmt::format("did you mean \"{}\"? ", *close);
  return ConfigError{
      std::move(where),
      fmt::format("unknown plugin \"{}\" in [{}] ({}known: {})", plugin, section, hint, list),
      ConfigError::Kind::unknown_plugin, plugin};
}

class Loader {
 public:
  Loader(std::string_view file_as_given, fs::path config_dir, std::string text,
         const PluginNamesFor* plugin_names_for)
      : file_(intern_file_name(file_as_given)),
        config_dir_(std::move(config_dir)),
        text_(std::move(text)),
        files_read_{file_},
        plugin_names_for_(plugin_names_for) {}

  // Parses the text into `config`; every problem lands in errors().
  void load(Config& config) {
    toml::table root;
    if (!parse_root(root)) return;
    for (auto&& [key, node] : root) {
      if (!contains(kTopKeys, key.str())) unknown_key(key, "", kTopKeys);
    }
    const std::size_t errors_before_host = errors_.size();
    read_host_section(root, config.host);
    // A [host] with mistakes may name the wrong plugin_dir: no plugin check then.
    if (plugin_names_for_ != nullptr && *plugin_names_for_ &&
        errors_.size() == errors_before_host) {
      plugin_names_ = (*plugin_names_for_)(config.host);
    }
    resolve_host_zone(config.host);
    if (const toml::node* http = root.get("http")) read_http(*http, config.http);

    if (const toml::node* alerts = root.get("alerts")) read_alerts(*alerts, config.alerts);
    if (const toml::node* secrets = root.get("secrets")) read_secrets(*secrets, config.secrets);
    if (const toml::node* groups = root.get("groups")) read_groups(*groups, config.groups);

    JobSettings defaults;
    if (const toml::node* node = root.get("defaults")) read_defaults(*node, defaults);
    if (const toml::node* jobs = root.get("jobs")) read_jobs(*jobs, defaults, config);
    for_each_included(config.file, [&](const fs::path& file, const toml::node* jobs) {
      config.included_files.push_back(file);
      if (jobs != nullptr) read_jobs(*jobs, defaults, config);
    });
    check_chains(config);
    assign_dynamic_users(config);
  }

  // Only [host] (its zone not resolved) and the job names: load_host_section.
  void load_host_section(HostSection& out) {
    toml::table root;
    if (!parse_root(root)) return;
    read_host_section(root, out.host);
    const auto add_names = [&](const toml::node* jobs) {
      if (const toml::table* table = jobs != nullptr ? jobs->as_table() : nullptr) {
        for (auto&& [key, node] : *table) {
          if (node.is_table()) out.job_names.emplace_back(key.str());
        }
      }
    };
    add_names(root.get("jobs"));
    for_each_included(out.file, [&](const fs::path&, const toml::node* jobs) { add_names(jobs); });
    std::sort(out.job_names.begin(), out.job_names.end());
    out.job_names.erase(std::unique(out.job_names.begin(), out.job_names.end()),
                        out.job_names.end());
  }

  // Only the include patterns, nullopt if the text is not TOML: include_patterns.
  std::optional<std::vector<fs::path>> read_include_patterns() {
    toml::table root;
    if (!parse_root(root)) return std::nullopt;
    HostConfig host;
    if (const toml::table* table = root["host"].as_table()) {
      if (const toml::node* include = table->get("include")) read_include(*include, host);
    }
    return host.include;
  }

  std::vector<ConfigError>& errors() { return errors_; }
  std::vector<ConfigError>& warnings() { return warnings_; }
  // The files errors can be in, in the order they were read: the main file first.
  const std::vector<std::string_view>& files_read() const { return files_read_; }

 private:
  // The text as a TOML table; false (with the syntax error) if it is not one.
  bool parse_root(toml::table& root) {
    try {
      root = toml::parse(text_, file_);
      return true;
    } catch (const toml::parse_error& e) {
      syntax_error(e);
      return false;
    }
  }

  // [host], with the paths it leaves out defaulted next to the config file.
  void read_host_section(const toml::table& root, HostConfig& host) {
    if (const toml::node* node = root.get("host")) read_host(*node, host);
    if (const toml::node* node = root.get("store")) read_store(*node, host);
    if (host.plugin_dirs.empty()) host.plugin_dirs = {config_dir_ / "plugins"};
    if (host.state_dir.empty()) host.state_dir = config_dir_ / "var";
    if (host.id.empty()) host.id = default_host_id();
    if (!host.store_url.empty() && (host.id == "localhost" || host.id == "localhost.localdomain")) {
      // Every host named so would be one host to the others: each would
      // take the others' lease, and fence them in turn.
      error(store_url_pos_,
            fmt::format("[host] id \"{}\" cannot tell this host from the others sharing the "
                        "ledger at [store] url: set [host] id to a name of its own (e.g. the "
                        "machine's DNS name)",
                        host.id));
    }
  }

  // Where each setting of a job (or of [defaults]) was written, by dotted key.
  using Origins = std::map<std::string, SourcePos>;

  SourcePos at(const toml::source_position& p) const {
    return SourcePos{file_, static_cast<int>(p.line), static_cast<int>(p.column)};
  }
  SourcePos at(const toml::node& n) const { return at(n.source().begin); }
  SourcePos at(const toml::key& k) const { return at(k.source().begin); }

  void error(SourcePos where, std::string message) {
    errors_.push_back(ConfigError{std::move(where), std::move(message)});
  }
  void warn(SourcePos where, std::string message) {
    warnings_.push_back(
        ConfigError{std::move(where), std::move(message), ConfigError::Kind::warning});
  }
  void type_error(const toml::node& v, const std::string& what, std::string_view expected) {
    error(at(v), fmt::format("{}: expected {}, got {}", what, expected, type_name(v)));
  }

  // "at the top level" or "in [jobs.a.retry]".
  // Both are built for every key read, error or not: by concatenation, which
  // costs 100,000 jobs a tenth of what fmt::format did.
  static std::string in_section(std::string_view section) {
    if (section.empty()) return "at the top level";
    std::string out = "in [";
    out += section;
    out += ']';
    return out;
  }
  // How messages name a key: "max_attempts in [jobs.a.retry]".
  static std::string what(std::string_view key, std::string_view section) {
    std::string out(key);
    out += ' ';
    out += in_section(section);
    return out;
  }

  void unknown_key(const toml::key& key, std::string_view section, KeyList allowed) {
    std::string message = fmt::format("unknown key \"{}\" {}", key.str(), in_section(section));
    const std::string_view home = home_of(key.str());
    if (!home.empty()) {
      message += fmt::format(": it belongs in {}", home);
    } else if (auto close = closest_match(key.str(), allowed)) {
      message += fmt::format(" (did you mean \"{}\"?)", *close);
    } else if (allowed.size() <= 8) {
      message += fmt::format(" (known keys: {})", quoted_list(allowed));
    } else {
      message += " (see docs/config.md for the keys)";
    }
    error(at(key), std::move(message));
  }

  // toml++ stops at the first syntax error; say it in words a user can act on.
  void syntax_error(const toml::parse_error& e) {
    std::string message(e.description());
    std::string context;
    if (message.starts_with("Error while parsing ")) {
      const auto colon = message.find(": ");
      if (colon != std::string::npos) {
        context = message.substr(20, colon - 20);
        message = message.substr(colon + 2);
      }
    }
    std::smatch m;
    static const std::regex kRedefinedTable(R"(^cannot redefine existing table '(.+)'$)");
    static const std::regex kRedefinedKey(R"(^cannot redefine existing [a-z-]+ '(.+)'$)");
    if (std::regex_match(message, m, kRedefinedTable)) {
      const std::string name = m[1];
      const int first = first_header_line(name, static_cast<int>(e.source().begin.line));
      const std::string where = first > 0 ? fmt::format(" (first defined at line {})", first) : "";
      if (name.starts_with("jobs.") && name.find('.', 5) == std::string::npos) {
        message =
            fmt::format("duplicate job \"{}\": [{}] is defined twice{}; give each job its own name",
                        name.substr(5), name, where);
      } else {
        message = fmt::format("duplicate table [{}]{}; merge the two into one", name, where);
      }
    } else if (std::regex_match(message, m, kRedefinedKey)) {
      message = fmt::format("duplicate key \"{}\": it is already set in this table", m[1].str());
    } else {
      message = "invalid TOML: " + message;
      if (!context.empty()) message += fmt::format(" (while reading a {})", context);
    }
    error(at(e.source().begin), std::move(message));
  }

  // The line of the first `[name]` header before `before`, or 0.
  int first_header_line(const std::string& name, int before) const {
    std::istringstream lines(text_);
    std::string line;
    for (int number = 1; number < before && std::getline(lines, line); ++number) {
      std::string compact;
      for (char c : line) {
        if (c == '#') break;
        if (c != ' ' && c != '\t' && c != '"' && c != '\'') compact += c;
      }
      if (compact == "[" + name + "]") return number;
    }
    return 0;
  }

  // The position of byte `offset` of string value `v`, when the text between
  // the quotes is exactly the value (no escapes, one line); else the value's start.
  SourcePos inside_string(const toml::node& v, std::size_t offset) const {
    SourcePos pos = at(v);
    const std::string& value = v.as_string()->get();
    std::istringstream lines(text_);
    std::string line;
    for (int number = 1; number <= pos.line; ++number) {
      if (!std::getline(lines, line)) return pos;
    }
    // Column (in code points) -> byte offset in the line.
    std::size_t byte = 0;
    for (int column = 1; column < pos.column && byte < line.size(); ++byte) {
      if ((static_cast<unsigned char>(line[byte]) & 0xC0) != 0x80) ++column;
    }
    while (byte < line.size() && (static_cast<unsigned char>(line[byte]) & 0xC0) == 0x80) ++byte;
    if (byte >= line.size() || (line[byte] != '"' && line[byte] != '\'')) return pos;
    const char quote = line[byte];
    if (line.compare(byte + 1, value.size(), value) != 0 ||
        byte + 1 + value.size() >= line.size() || line[byte + 1 + value.size()] != quote) {
      return pos;
    }
    int code_points = 0;
    for (std::size_t i = 0; i < offset && i < value.size(); ++i) {
      if ((static_cast<unsigned char>(value[i]) & 0xC0) != 0x80) ++code_points;
    }
    pos.column += 1 + code_points;
    return pos;
  }

  // --- scalar readers: nullopt after reporting an error ---

  std::optional<std::string> read_string(const toml::node& v, const std::string& w) {
    if (const auto* s = v.as_string()) return s->get();
    type_error(v, w, "a string");
    return std::nullopt;
  }

  std::optional<std::string> read_name(const toml::node& v, const std::string& w) {
    auto s = read_string(v, w);
    if (s && s->empty()) {
      error(at(v), fmt::format("{}: must not be empty", w));
      return std::nullopt;
    }
    return s;
  }

  std::optional<bool> read_bool(const toml::node& v, const std::string& w) {
    if (const auto* b = v.as_boolean()) return b->get();
    type_error(v, w, "true or false");
    return std::nullopt;
  }

  std::optional<int64_t> read_int(const toml::node& v, const std::string& w, int64_t min,
                                  int64_t max = std::numeric_limits<int>::max()) {
    const auto* i = v.as_integer();
    if (i == nullptr) {
      type_error(v, w, "an integer");
      return std::nullopt;
    }
    if (i->get() < min) {
      error(at(v), fmt::format("{}: must be at least {}, got {}", w, min, i->get()));
      return std::nullopt;
    }
    if (i->get() > max) {
      error(at(v), fmt::format("{}: must be at most {}, got {}", w, max, i->get()));
      return std::nullopt;
    }
    return i->get();
  }

  enum class Zero { allowed, refused };

  std::optional<Duration> read_duration(const toml::node& v, const std::string& w,
                                        Zero zero = Zero::allowed) {
    const auto* s = v.as_string();
    if (s == nullptr) {
      type_error(v, w, "a duration string like \"30s\"");
      return std::nullopt;
    }
    auto d = parse_duration(s->get());
    if (!d) {
      error(at(v), fmt::format("{}: {}", w, d.error().message));
      return std::nullopt;
    }
    if (zero == Zero::refused && d->count() == 0) {
      error(at(v), fmt::format("{}: must be longer than 0", w));
      return std::nullopt;
    }
    return *d;
  }

  std::optional<uint64_t> read_size(const toml::node& v, const std::string& w) {
    if (const auto* i = v.as_integer()) {
      if (i->get() >= 0) return static_cast<uint64_t>(i->get());
      error(at(v), fmt::format("{}: must not be negative, got {}", w, i->get()));
      return std::nullopt;
    }
    const auto* s = v.as_string();
    if (s == nullptr) {
      type_error(v, w, "a size like \"64MiB\" or a number of bytes");
      return std::nullopt;
    }
    auto size = parse_size(s->get());
    if (!size) {
      error(at(v), fmt::format("{}: {}", w, size.error().message));
      return std::nullopt;
    }
    return *size;
  }

  template <class E, std::size_t N>
  std::optional<E> read_enum(const toml::node& v, const std::string& w,
                             const std::array<Named<E>, N>& names) {
    std::array<std::string_view, N> allowed;
    for (std::size_t i = 0; i < N; ++i) allowed[i] = names[i].name;
    const auto* s = v.as_string();
    if (s == nullptr) {
      type_error(v, w, "one of " + quoted_list(allowed));
      return std::nullopt;
    }
    for (const auto& n : names) {
      if (n.name == s->get()) return n.value;
    }
    std::string message =
        fmt::format("{}: \"{}\" is not one of {}", w, s->get(), quoted_list(allowed));
    if (auto close = closest_match(s->get(), allowed)) {
      message += fmt::format(" (did you mean \"{}\"?)", *close);
    }
    error(at(v), std::move(message));
    return std::nullopt;
  }

  std::optional<std::string> read_path(const toml::node& v, const std::string& w) {
    auto s = read_name(v, w);
    if (s && s->starts_with('~')) {
      error(at(v), fmt::format("{}: \"~\" is not expanded; write the full path, or a path relative "
                               "to the config file",
                               w));
      return std::nullopt;
    }
    return s;
  }

  const toml::table* read_table(const toml::node& v, const std::string& w,
                                std::string_view example) {
    if (const auto* t = v.as_table()) return t;
    type_error(v, w, example);
    return nullptr;
  }

  // --- sections ---

  void read_host(const toml::node& node, HostConfig& host) {
    const toml::table* table = read_table(node, "[host]", "a table");
    if (table == nullptr) return;
    for (auto&& [key, v] : *table) {
      const std::string k(key.str());
      const std::string w = what(k, "host");
      if (k == "id") {
        if (auto s = read_name(v, w)) {
          if (auto bad = check_host_id(*s); !bad.empty()) {
            error(at(v), fmt::format("{}: {}", w, bad));
          } else {
            host.id = *s;
          }
        }
      } else if (k == "plugin_dir") {
        read_plugin_dirs(v, host);
      } else if (k == "state_dir") {
        if (auto s = read_path(v, w)) host.state_dir = resolve_path(config_dir_, *s);
      } else if (k == "max_concurrency") {
        if (auto i = read_int(v, w, 1)) host.max_concurrency = static_cast<int>(*i);
      } else if (k == "timezone") {
        if (auto s = read_name(v, w)) {
          host.timezone = *s;
          host_zone_pos_ = at(v);
          host_zone_set_ = true;
        } else {
          host_zone_failed_ = true;
        }
      } else if (k == "log_format") {
        if (auto e = read_enum(v, w, kLogFormatNames)) host.log_format = *e;
      } else if (k == "durability") {
        if (auto e = read_enum(v, w, kDurabilityNames)) host.durability = *e;
      } else if (k == "keep_runs") {
        if (auto d = read_duration(v, w)) host.keep_runs = *d;
      } else if (k == "park_lead") {
        if (auto d = read_duration(v, w)) {
          if (*d > kMaxParkLead) {
            error(at(v), fmt::format("{}: at most {} (a longer lead holds claims and processes "
                                     "longer for nothing), got {}",
                                     w, format_duration(kMaxParkLead), format_duration(*d)));
          } else {
            host.park_lead = *d;
          }
        }
      } else if (k == "max_parked") {
        if (auto i = read_int(v, w, 1)) host.max_parked = static_cast<int>(*i);
      } else if (k == "dynamic_users") {
        if (auto s = read_name(v, w)) {
          if (auto range = parse_uid_range(*s)) {
            host.dynamic_users = *range;
            dynamic_users_pos_ = at(v);
          } else {
            error(at(v), fmt::format("{}: {}", w, range.error().message));
          }
        }
      } else if (k == "include") {
        read_include(v, host);
      } else if (k == "control_group") {
        if (auto s = read_name(v, w)) {
          if (account_exists(*s, false)) {
            host.control_group = *s;
          } else {
            error(at(v), fmt::format("{}: unknown group \"{}\": no such group in the group "
                                     "database (create it, or name another)",
                                     w, *s));
          }
        }
      } else {
        unknown_key(key, "host", kHostKeys);
      }
    }
  }

  // [store]: where the ledger is. url: a PostgreSQL connection URI; left
  // out, the SQLite file in state_dir.
  void read_store(const toml::node& node, HostConfig& host) {
    const toml::table* table = read_table(node, "[store]", "a table");
    if (table == nullptr) return;
    std::optional<SourcePos> lease_pos;
    for (auto&& [key, v] : *table) {
      const std::string k(key.str());
      const std::string w = what(k, "store");
      if (k == "heartbeat" || k == "lease") {
        if (auto d = read_duration(v, w)) {
          if (*d < std::chrono::milliseconds(100)) {
            error(at(v), fmt::format("{}: at least 100ms (every heartbeat writes to the "
                                     "database), got {}",
                                     w, format_duration(*d)));
          } else {
            (k == "heartbeat" ? host.heartbeat : host.lease) = *d;
            if (k == "lease") lease_pos = at(v);
          }
        }
        continue;
      }
      if (k != "url") {
        unknown_key(key, "store", kStoreKeys);
        continue;
      }
      auto s = read_name(v, w);
      if (!s) continue;
      if (!s->starts_with("postgresql://") && !s->starts_with("postgres://")) {
        error(at(v), fmt::format("{}: a PostgreSQL connection URI, as "
                                 "\"postgresql://USER@HOST:PORT/DATABASE\" (leave [store] out "
                                 "for the SQLite ledger in state_dir), got \"{}\"",
                                 w, *s));
        continue;
      }
      host.store_url = *s;
      store_url_pos_ = at(v);
    }
    if (host.lease < 2 * host.heartbeat) {
      error(lease_pos.value_or(at(node)),
            fmt::format("lease in [store]: at least twice the heartbeat ({}), got {}: a lease "
                        "that one late heartbeat loses would fence a healthy host",
                        format_duration(2 * host.heartbeat), format_duration(host.lease)));
    }
  }

  // plugin_dir = "plugins" or ["/etc/jobhost/plugins", "/usr/lib/jobhost/plugins"]:
  // one directory, or several scanned in order (an empty list is none at all,
  // which is surely a mistake). A directory listed twice would offer each of
  // its plugins twice.
  void read_plugin_dirs(const toml::node& node, HostConfig& host) {
    const std::string w = what("plugin_dir", "host");
    if (node.is_string()) {
      if (auto s = read_path(node, w)) host.plugin_dirs = {resolve_path(config_dir_, *s)};
      return;
    }
    const toml::array* list = node.as_array();
    if (list == nullptr) {
      type_error(
          node, w,
          "a directory, or a list of directories like [\"plugins\", \"/usr/lib/jobhost/plugins\"]");
      return;
    }
    if (list->empty()) {
      error(at(node), fmt::format("{}: the list is empty: name at least one directory", w));
      return;
    }
    std::vector<fs::path> dirs;
    for (const toml::node& item : *list) {
      auto text = read_path(item, w);
      if (!text) continue;
      fs::path dir = resolve_path(config_dir_, *text);
      if (std::find(dirs.begin(), dirs.end(), dir) != dirs.end()) {
        error(at(item), fmt::format("{}: \"{}\" is listed twice ({})", w, *text, dir.string()));
        continue;
      }
      dirs.push_back(std::move(dir));
    }
    if (!dirs.empty()) host.plugin_dirs = std::move(dirs);
  }

  // include = ["jobs.d/*.toml", ...]. A wildcard in a directory would leave
  // the watcher no directory to watch: file names only.
  void read_include(const toml::node& node, HostConfig& host) {
    const std::string w = what("include", "host");
    const toml::array* list = node.as_array();
    if (list == nullptr) {
      type_error(node, w, "a list of file patterns like [\"jobs.d/*.toml\"]");
      return;
    }
    for (const toml::node& item : *list) {
      auto text = read_path(item, w);
      if (!text) continue;
      const fs::path pattern = resolve_path(config_dir_, *text);
      if (pattern.parent_path().string().find_first_of("*?[") != std::string::npos) {
        error(at(item), fmt::format("{}: \"{}\": wildcards are allowed in the file name only, "
                                    "as in \"jobs.d/*.toml\"",
                                    w, *text));
        continue;
      }
      if (std::find(host.include.begin(), host.include.end(), pattern) != host.include.end()) {
        continue;
      }
      host.include.push_back(pattern);
      include_.push_back({*text, pattern, at(item)});
    }
  }

  // Reads each file the include patterns match, in order: a file once, never
  // the main file `main_file`. `read` gets its path and its top-level "jobs"
  // node (nullptr when it has none) while errors point into that file.
  template <class Read>
  void for_each_included(const fs::path& main_file, Read&& read) {
    const std::string w = what("include", "host");
    std::set<fs::path> seen;
    for (const IncludePattern& pattern : include_) {
      auto matches = match_include(pattern.absolute);
      if (!matches) {
        error(pattern.pos, fmt::format("{}: \"{}\": {}", w, pattern.text, matches.error().message));
        continue;
      }
      const std::string name = pattern.absolute.filename().string();
      if (matches->empty() && name.find_first_of("*?[") == std::string::npos) {
        error(pattern.pos, fmt::format("{}: \"{}\": no such file {}", w, pattern.text,
                                       pattern.absolute.string()));
      }
      for (const fs::path& file : *matches) {
        std::error_code ec;
        if (!seen.insert(file).second || fs::equivalent(file, main_file, ec)) continue;
        std::string text;
        if (auto why = read_included_text(file, text); !why.empty()) {
          error(pattern.pos,
                fmt::format("{}: \"{}\" matches {}: {}", w, pattern.text, file.string(), why));
          continue;
        }
        // Named as the main file was given: from the same place, or absolute.
        const fs::path shown =
            fs::path(pattern.text).is_absolute()
                ? file
                : (fs::path(file_).parent_path() / file.lexically_relative(config_dir_))
                      .lexically_normal();
        const std::string_view main_shown = file_;
        std::string main_text = std::exchange(text_, std::move(text));
        file_ = intern_file_name(shown.string());
        files_read_.push_back(file_);
        toml::table root;
        if (parse_root(root)) {
          for (auto&& [key, node] : root) {
            if (key.str() == "jobs") continue;
            if (contains(kTopKeys, key.str())) {
              error(at(key), fmt::format("[{}] cannot be set in an included file, which holds "
                                         "only [jobs.NAME] tables: set it in {}",
                                         key.str(), main_shown));
            } else {
              unknown_key(key, "", kIncludedTopKeys);
            }
          }
          read(file, root.get("jobs"));
        }
        file_ = main_shown;
        text_ = std::move(main_text);
      }
    }
  }

  // Why an included file cannot be read, or empty with its text in `text`.
  static std::string read_included_text(const fs::path& file, std::string& text) {
    std::error_code ec;
    const fs::file_status status = fs::status(file, ec);  // follows symbolic links
    if (ec) return ec.message();
    if (!fs::is_regular_file(status)) return "not a regular file";
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::strerror(errno);
    std::ostringstream out;
    out << in.rdbuf();
    if (in.bad()) return std::strerror(errno);
    text = std::move(out).str();
    return {};
  }

  void resolve_host_zone(const HostConfig& host) {
    host_timezone_ = host.timezone;
    if (host_zone_failed_) return;
    auto zone = schedule::find_zone(host.timezone);
    if (zone) {
      host_zone_ = *zone;
      return;
    }
    host_zone_failed_ = true;
    if (host_zone_set_)
      error(host_zone_pos_, zone_message(what("timezone", "host"), host.timezone));
  }

  std::string zone_message(const std::string& w, const std::string& name) {
    std::string message = fmt::format("{}: unknown time zone \"{}\"", w, name);
    if (zone_names_.empty()) zone_names_ = all_zone_names();
    std::vector<std::string_view> names(zone_names_.begin(), zone_names_.end());
    if (auto close = closest_match(name, names)) {
      message += fmt::format(" (did you mean \"{}\"?)", *close);
    } else {
      message += " (use an IANA name like \"Europe/Berlin\" or \"UTC\")";
    }
    return message;
  }

  void read_http(const toml::node& node, HttpConfig& http) {
    const toml::table* table = read_table(node, "[http]", "a table");
    if (table == nullptr) return;
    std::optional<SourcePos> listen_at;
    std::optional<SourcePos> allow_remote_at;
    bool listen_ok = true;
    for (auto&& [key, v] : *table) {
      const std::string k(key.str());
      const std::string w = what(k, "http");
      if (k == "listen") {
        auto s = read_string(v, w);
        listen_ok = s.has_value();
        if (!s) continue;
        if (auto why = check_listen(*s); !s->empty() && !why.empty()) {
          error(at(v), fmt::format("{}: invalid address \"{}\": {}; expected \"HOST:PORT\" like "
                                   "\"127.0.0.1:9187\", or \"\" to turn HTTP off",
                                   w, *s, why));
          listen_ok = false;
          continue;
        }
        http.listen = *s;
        listen_at = at(v);
      } else if (k == "allow_remote") {
        if (auto b = read_bool(v, w)) {
          http.allow_remote = *b;
          allow_remote_at = at(v);
        }
      } else if (k == "token_file") {
        auto s = read_path(v, w);
        if (!s) continue;
        http.token_file = resolve_path(config_dir_, *s);
        if (auto why = check_token_file(http.token_file); !why.empty()) {
          error(at(v), fmt::format("{}: {}", w, why));
        }
      } else if (k == "per_job_metrics") {
        if (auto b = read_bool(v, w)) http.per_job_metrics = *b;
      } else {
        unknown_key(key, "http", kHttpKeys);
      }
    }
    // Off the loopback, the dashboard, metrics and API reach other machines:
    // only when asked for, and with actions behind a token.
    if (!listen_ok || http.listen.empty() || is_loopback_listen(http.listen)) return;
    const SourcePos where = listen_at.value_or(at(node));
    if (!http.allow_remote) {
      error(where, fmt::format("listen in [http]: \"{}\" is not a loopback address: other "
                               "machines could reach it; set allow_remote = true and token_file "
                               "in [http] to allow that, or listen on \"127.0.0.1:PORT\"",
                               http.listen));
    } else if (http.token_file.empty()) {
      error(allow_remote_at.value_or(where),
            fmt::format("allow_remote in [http]: listening on \"{}\" (not loopback) also needs "
                        "token_file = \"FILE\" (the bearer token HTTP actions need, mode 600)",
                        http.listen));
    }
  }

  void read_defaults(const toml::node& node, JobSettings& defaults) {
    const toml::table* table = read_table(node, "[defaults]", "a table");
    if (table == nullptr) return;
    Origins origins;
    for (auto&& [key, v] : *table) {
      const std::string k(key.str());
      if (apply_setting(defaults, origins, k, v, "defaults")) continue;
      if (k == "timezone") {
        error(at(key),
              "\"timezone\" cannot be set in [defaults]: set [host] timezone for every job, or "
              "timezone in a [jobs.NAME]");
      } else if (contains(kJobOnlyKeys, k)) {
        error(at(key),
              fmt::format("\"{}\" cannot be set in [defaults]: set it in each [jobs.NAME]", k));
      } else {
        unknown_key(key, "defaults", kSettingKeys);
      }
    }
    check_retry_delays(defaults, origins, "defaults");
  }

  // Applies a key that [defaults] and [jobs.NAME] share; false if `key` is not one.
  bool apply_setting(JobSettings& job, Origins& origins, const std::string& key,
                     const toml::node& v, const std::string& section) {
    const std::string w = what(key, section);
    if (key == "timeout") {
      if (auto d = read_duration(v, w, Zero::refused)) job.timeout = *d;
    } else if (key == "stall_timeout") {
      if (auto d = read_duration(v, w)) job.stall_timeout = *d;
    } else if (key == "kill_grace") {
      if (auto d = read_duration(v, w)) job.kill_grace = *d;
    } else if (key == "jitter") {
      if (auto d = read_duration(v, w)) job.jitter = *d;
    } else if (key == "catchup_spread") {
      if (auto d = read_duration(v, w)) job.catchup_spread = *d;
    } else if (key == "concurrency") {
      if (auto e = read_enum(v, w, kConcurrencyNames)) job.concurrency = *e;
    } else if (key == "misfire") {
      if (auto e = read_enum(v, w, kMisfireNames)) job.misfire = *e;
    } else if (key == "misfire_limit") {
      if (auto i = read_int(v, w, 1)) job.misfire_limit = static_cast<int>(*i);
    } else if (key == "keep_last") {
      if (auto i = read_int(v, w, 0)) job.keep_last = static_cast<int>(*i);
    } else if (key == "enabled") {
      if (auto b = read_bool(v, w)) job.enabled = *b;
    } else if (key == "user") {
      if (auto s = read_name(v, w)) {
        job.user = *s;
        if (*s == "root" || *s == "0") {
          warn(at(v), fmt::format("{}: runs as root, with every capability: a plugin can then "
                                  "do anything on this machine; leave user out to run it as "
                                  "a dynamic user (see docs/security.md)",
                                  w));
        }
      }
    } else if (key == "group") {
      if (auto s = read_name(v, w)) job.group = *s;
    } else if (key == "network") {
      if (auto e = read_enum(v, w, kNetworkNames)) job.sandbox.network = *e;
    } else if (key == "private_tmp") {
      if (auto b = read_bool(v, w)) job.sandbox.private_tmp = *b;
    } else if (key == "read_only") {
      if (auto b = read_bool(v, w)) job.sandbox.read_only = *b;
    } else if (key == "read_write_paths") {
      read_write_paths(v, w, job.sandbox);
    } else if (key == "syscall_filter") {
      if (auto e = read_enum(v, w, kSyscallFilterNames)) job.sandbox.syscall_filter = *e;
    } else if (key == "alert_after") {
      if (auto i = read_int(v, w, 0)) job.alert_after = static_cast<int>(*i);
    } else if (key == "expect_success_within") {
      if (auto d = read_duration(v, w)) job.expect_success_within = *d;
    } else if (key == "alert_to") {
      read_alert_to(v, w, job);
    } else if (key == "concurrency_group") {
      if (auto name = read_name(v, w)) {
        if (group_names_.contains(*name)) {
          job.concurrency_group = *name;
        } else {
          std::vector<std::string_view> known(group_names_.begin(), group_names_.end());
          std::string message = fmt::format("{}: unknown group \"{}\"", w, *name);
          if (auto close = closest_match(*name, known)) {
            message += fmt::format(" (did you mean \"{}\"?)", *close);
          } else {
            message += " (define it: [groups.NAME] max_concurrency = N)";
          }
          error(at(v), std::move(message));
        }
      }
    } else if (key == "priority") {
      if (auto i = read_int(v, w, -1000000, 1000000)) job.priority = static_cast<int>(*i);
    } else if (key == "on_success" || key == "on_failure" || key == "on_done") {
      read_chain(v, w, section,
                 key == "on_success"   ? job.on_success
                 : key == "on_failure" ? job.on_failure
                                       : job.on_done);
    } else if (key == "retry") {
      if (auto* t = read_table(v, w, "a table like { max_attempts = 3 }")) {
        read_retry(*t, job.retry, origins, section + ".retry");
      }
    } else if (key == "limits") {
      if (auto* t = read_table(v, w, "a table like { memory = \"512MiB\" }")) {
        read_limits(*t, job.limits, section + ".limits");
      }
    } else {
      return false;
    }
    return true;
  }

  void read_retry(const toml::table& table, RetryPolicy& retry, Origins& origins,
                  const std::string& section) {
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what(k, section);
      if (k == "max_attempts") {
        if (auto i = read_int(v, w, 1)) retry.max_attempts = static_cast<int>(*i);
      } else if (k == "initial_delay" || k == "max_delay") {
        if (auto d = read_duration(v, w)) {
          (k == "initial_delay" ? retry.initial_delay : retry.max_delay) = *d;
          origins["retry." + k] = at(v);
        }
      } else if (k == "multiplier") {
        std::optional<double> m;
        if (const auto* f = v.as_floating_point()) m = f->get();
        if (const auto* i = v.as_integer()) m = static_cast<double>(i->get());
        if (!m) {
          type_error(v, w, "a number like 2.0");
        } else if (!std::isfinite(*m) || *m < 1.0) {
          error(at(v), fmt::format("{}: must be a number of at least 1 (1 = the same delay every "
                                   "time), got {}",
                                   w, *m));
        } else {
          retry.multiplier = *m;
        }
      } else if (k == "jitter") {
        if (auto e = read_enum(v, w, kJitterNames)) retry.jitter = *e;
      } else {
        unknown_key(key, section, kRetryKeys);
      }
    }
  }

  // max_delay below initial_delay is a mistake; reported where one of the two
  // was written in `own` (the table being read), so an inherited pair is
  // reported once, in [defaults].
  void check_retry_delays(const JobSettings& job, const Origins& own, const std::string& section) {
    if (job.retry.max_delay >= job.retry.initial_delay) return;
    auto it = own.find("retry.max_delay");
    if (it == own.end()) it = own.find("retry.initial_delay");
    if (it == own.end()) return;
    error(it->second,
          fmt::format("[{}.retry]: max_delay ({}) is shorter than initial_delay ({}); raise "
                      "max_delay or lower initial_delay",
                      section, format_duration(job.retry.max_delay),
                      format_duration(job.retry.initial_delay)));
  }

  void read_limits(const toml::table& table, Limits& limits, const std::string& section) {
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what(k, section);
      if (k == "memory") {
        if (auto s = read_size(v, w)) limits.memory_bytes = *s;
      } else if (k == "cpu_time") {
        if (auto d = read_duration(v, w)) limits.cpu_time = *d;
      } else if (k == "open_files") {
        if (auto i = read_int(v, w, 0, std::numeric_limits<int64_t>::max())) limits.open_files = *i;
      } else if (k == "processes") {
        if (auto i = read_int(v, w, 0, std::numeric_limits<int64_t>::max())) limits.processes = *i;
      } else if (k == "file_size") {
        if (auto s = read_size(v, w)) limits.file_size = *s;
      } else if (k == "output") {
        if (auto s = read_size(v, w)) limits.output_bytes = *s;
      } else {
        unknown_key(key, section, kLimitKeys);
      }
    }
  }

  // watch = { paths = [...], events = [...], debounce = "2s" }: file triggers.
  // `where` is the table's position, for a missing `paths`.
  void read_watch(const toml::table& table, SourcePos where, JobSettings& settings,
                  const std::string& section) {
    Watch watch;
    bool ok = true;
    bool has_paths = false;
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what(k, section);
      if (k == "paths") {
        has_paths = true;
        ok = read_watch_paths(v, w, watch) && ok;
      } else if (k == "events") {
        ok = read_watch_events(v, w, watch) && ok;
      } else if (k == "debounce") {
        auto d = read_duration(v, w, Zero::refused);
        if (d && *d > kMaxDebounce) {
          error(at(v), fmt::format("{}: at most {} (a batch waits up to ten times as long)", w,
                                   format_duration(kMaxDebounce)));
          d.reset();
        }
        if (d) watch.debounce = *d;
        ok = d.has_value() && ok;
      } else {
        unknown_key(key, section, kWatchKeys);
        ok = false;
      }
    }
    if (!has_paths) {
      error(where, fmt::format("[{}] has no paths: add paths = [\"/dir/*.csv\"], absolute "
                               "paths whose file names may be globs",
                               section));
      ok = false;
    }
    if (ok) settings.watch = std::move(watch);
  }

  // paths = ["/srv/in/*.csv", ...]: absolute, a file name (pattern) after the
  // last '/', no glob in the directory part.
  bool read_watch_paths(const toml::node& v, const std::string& w, Watch& watch) {
    const toml::array* list = v.as_array();
    if (list == nullptr || list->empty()) {
      if (list == nullptr) {
        type_error(v, w, "a list of absolute paths like [\"/srv/in/*.csv\"]");
      } else {
        error(at(v), fmt::format("{}: must not be empty", w));
      }
      return false;
    }
    bool ok = true;
    for (const toml::node& item : *list) {
      auto path = read_name(item, w);
      if (!path) {
        ok = false;
        continue;
      }
      if (std::string why = watch_path_problem(*path); !why.empty()) {
        error(at(item), fmt::format("{}: \"{}\" {}", w, *path, why));
        ok = false;
        continue;
      }
      std::string normal = fs::path(*path).lexically_normal().string();
      if (std::find(watch.paths.begin(), watch.paths.end(), normal) == watch.paths.end()) {
        watch.paths.push_back(std::move(normal));
      }
    }
    if (watch.paths.size() > kMaxWatchPaths) {
      error(at(v),
            fmt::format("{}: at most {} paths (got {})", w, kMaxWatchPaths, watch.paths.size()));
      ok = false;
    }
    return ok;
  }

  // Why `path` cannot be watched, or empty.
  static std::string watch_path_problem(const std::string& path) {
    if (!path.starts_with('/') || path.find('\0') != std::string::npos) {
      return "is not an absolute path; write it from / (like \"/srv/in/*.csv\")";
    }
    if (path.size() >= PATH_MAX) return fmt::format("is longer than {} bytes", PATH_MAX - 1);
    const std::string normal = fs::path(path).lexically_normal().string();
    const auto slash = normal.rfind('/');
    const std::string_view name = std::string_view(normal).substr(slash + 1);
    if (name.empty() || name == "." || name == "..") {
      return "names no file: end it with a file name or a pattern, like \"/srv/in/*\"";
    }
    if (normal.find_first_of("*?[") < slash) {
      return "has a glob in its directory part: only the file name (after the last '/') may "
             "be a pattern";
    }
    return {};
  }

  // events = ["close_write", ...]: names of kFileEventNames, kept in enum order.
  bool read_watch_events(const toml::node& v, const std::string& w, Watch& watch) {
    const toml::array* list = v.as_array();
    if (list == nullptr || list->empty()) {
      if (list == nullptr) {
        type_error(v, w, "a list of event names like [\"close_write\", \"moved_to\"]");
      } else {
        error(at(v), fmt::format("{}: must not be empty", w));
      }
      return false;
    }
    std::set<FileEvent> events;
    bool ok = true;
    for (const toml::node& item : *list) {
      if (auto e = read_enum(item, w, kFileEventNames)) {
        events.insert(*e);
      } else {
        ok = false;
      }
    }
    watch.events.assign(events.begin(), events.end());
    return ok;
  }

  // alert_to = ["ops", ...]: names of [alerts.NAME] sections ([alerts] is
  // read before [defaults] and the jobs, so unknown names are reported here).
  // read_write_paths = ["/abs/path", ...]: absolute, normalised, no duplicates.
  void read_write_paths(const toml::node& v, const std::string& w, Sandbox& sandbox) {
    const toml::array* list = v.as_array();
    if (list == nullptr) {
      type_error(v, w, "a list of absolute paths like [\"/var/cache/reports\"]");
      return;
    }
    std::vector<std::string> paths;
    bool ok = true;
    for (const toml::node& item : *list) {
      auto path = read_name(item, w);
      if (!path) {
        ok = false;
        continue;
      }
      const fs::path p(*path);
      if (!p.is_absolute() || path->find('\0') != std::string::npos) {
        error(at(item), fmt::format("{}: \"{}\" is not an absolute path; write it from / "
                                    "(like \"/var/cache/reports\")",
                                    w, *path));
        ok = false;
        continue;
      }
      std::string normal = p.lexically_normal().string();
      if (normal.size() > 1 && normal.ends_with('/')) normal.pop_back();
      if (normal == "/") {
        error(at(item), fmt::format("{}: \"/\" would make the whole file system writable; "
                                    "set read_only = false instead",
                                    w));
        ok = false;
        continue;
      }
      if (normal.size() >= PATH_MAX) {
        error(at(item), fmt::format("{}: the path is longer than {} bytes", w, PATH_MAX - 1));
        ok = false;
        continue;
      }
      if (std::find(paths.begin(), paths.end(), normal) == paths.end()) paths.push_back(normal);
    }
    if (paths.size() > kMaxReadWritePaths) {
      error(at(v),
            fmt::format("{}: at most {} paths (got {})", w, kMaxReadWritePaths, paths.size()));
      ok = false;
    }
    if (ok) sandbox.read_write_paths = std::move(paths);
  }

  // on_success / on_failure / on_done = ["job", ...]: checked against the
  // jobs once all are read (check_chains).
  void read_chain(const toml::node& v, const std::string& w, const std::string& section,
                  std::vector<std::string>& out) {
    const toml::array* list = v.as_array();
    if (list == nullptr) {
      type_error(v, w, "a list of job names like [\"report\"]");
      return;
    }
    std::vector<std::string> names;
    for (const toml::node& item : *list) {
      auto name = read_name(item, w);
      if (!name) return;
      chain_refs_.push_back({section, *name, w, at(item)});
      if (std::find(names.begin(), names.end(), *name) == names.end()) names.push_back(*name);
    }
    out = std::move(names);
  }

  // Every chain names a job of the config, and no job triggers itself
  // through chains (a → b → a would fire for ever).
  void check_chains(const Config& config) {
    std::set<std::string, std::less<>> names;
    for (const auto& job : config.jobs) names.insert(job.name);
    for (const auto& ref : chain_refs_) {
      if (names.contains(ref.target)) continue;
      std::string message = fmt::format("{}: no job named \"{}\"", ref.what, ref.target);
      std::vector<std::string_view> known(names.begin(), names.end());
      if (auto close = closest_match(ref.target, known)) {
        message += fmt::format(" (did you mean \"{}\"?)", *close);
      }
      error(ref.pos, std::move(message));
    }
    if (!errors_.empty()) return;
    if (auto cycle = find_chain_cycle(config.jobs)) {
      // Where the cycle's first link is written: its job's own key, else [defaults].
      SourcePos pos = config.jobs.front().pos;
      for (const auto& ref : chain_refs_) {
        if (ref.target == (*cycle)[1] &&
            (ref.section == "jobs." + (*cycle)[0] || ref.section == "defaults")) {
          pos = ref.pos;
          if (ref.section != "defaults") break;
        }
      }
      error(pos, fmt::format("chain cycle: {}: a job may not trigger itself through "
                             "on_success, on_failure or on_done (a job that gets a chain from "
                             "[defaults] can set its own, e.g. on_failure = [])",
                             fmt::join(*cycle, " → ")));
    }
  }

  void read_alert_to(const toml::node& v, const std::string& w, JobSettings& job) {
    const toml::array* list = v.as_array();
    if (list == nullptr) {
      type_error(v, w, "a list of notifier names like [\"ops\"]");
      return;
    }
    std::vector<std::string> names;
    bool ok = true;
    for (const toml::node& item : *list) {
      auto name = read_name(item, w);
      if (!name) {
        ok = false;
        continue;
      }
      if (!notifier_names_.contains(*name)) {
        std::vector<std::string_view> known(notifier_names_.begin(), notifier_names_.end());
        std::string message = fmt::format("{}: unknown notifier \"{}\"", w, *name);
        if (auto close = closest_match(*name, known)) {
          message += fmt::format(" (did you mean \"{}\"?)", *close);
        } else if (known.empty()) {
          message += " (no [alerts.NAME] section is defined)";
        } else {
          message += fmt::format(" (known: {})", quoted_list(known));
        }
        error(at(item), std::move(message));
        ok = false;
        continue;
      }
      if (std::find(names.begin(), names.end(), *name) == names.end()) names.push_back(*name);
    }
    if (!ok) return;
    job.alert_to = std::move(names);
  }

  void read_alerts(const toml::node& node, std::vector<NotifierConfig>& out) {
    const toml::table* table = read_table(node, "alerts", "tables like [alerts.NAME]");
    if (table == nullptr) return;
    for (auto&& [key, v] : *table) {
      const std::string name(key.str());
      notifier_names_.insert(name);  // known even when broken: one error, not two
      if (!valid_job_name(name)) {
        error(at(key), fmt::format("invalid notifier name \"{}\": use letters, digits, '_' and "
                                   "'-', starting with a letter or digit, at most 64 characters",
                                   name));
      }
      const toml::table* t = v.as_table();
      if (t == nullptr) {
        type_error(v, fmt::format("[alerts.{}]", name), "a table of settings");
        continue;
      }
      NotifierConfig notifier;
      notifier.name = name;
      notifier.pos = at(v);
      if (read_notifier(*t, notifier)) out.push_back(std::move(notifier));
    }
    std::stable_sort(out.begin(), out.end(), [](const NotifierConfig& a, const NotifierConfig& b) {
      return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
    });
  }

  // A user (or group) name or numeric id in the account database. A bare id
  // is taken as it is, like a job's user.
  static bool account_exists(const std::string& name, bool user) {
    if (std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); })) {
      return true;
    }
    std::vector<char> buf(16384);
    for (;;) {
      int err;
      bool found;
      if (user) {
        passwd pw{};
        passwd* result = nullptr;
        err = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result);
        found = result != nullptr;
      } else {
        struct group gr {};
        struct group* result = nullptr;
        err = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result);
        found = result != nullptr;
      }
      if (err == ERANGE && buf.size() < (1u << 20)) {
        buf.resize(buf.size() * 2);
        continue;
      }
      return found;
    }
  }

  // False after reporting an error.
  bool read_notifier(const toml::table& table, NotifierConfig& n) {
    const std::string section = "alerts." + n.name;
    const std::size_t errors_before = errors_.size();
    const toml::node* type_node = table.get("type");
    std::optional<NotifierConfig::Type> type;
    if (type_node == nullptr) {
      error(n.pos,
            fmt::format("[{}] has no type: add type = \"command\" or type = \"webhook\"", section));
    } else {
      type = read_enum(*type_node, what("type", section), kNotifierTypeNames);
    }
    const bool is_command = type == NotifierConfig::Type::command;
    const bool is_webhook = type == NotifierConfig::Type::webhook;
    const auto only_for = [&](const toml::key& key, std::string_view wanted) {
      error(at(key),
            fmt::format("{}: only a {} notifier has it", what(key.str(), section), wanted));
    };
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what(k, section);
      if (k == "type") {
        continue;
      } else if (k == "command") {
        if (type && !is_command) {
          only_for(key, "command");
          continue;
        }
        read_command(v, w, n);
      } else if (k == "url") {
        if (type && !is_webhook) {
          only_for(key, "webhook");
          continue;
        }
        if (auto s = read_name(v, w)) {
          if (auto url = parse_url(*s); !url) {
            error(at(v), fmt::format("{}: {}", w, url.error().message));
          } else {
            n.url = *s;
          }
        }
      } else if (k == "ca_file") {
        if (type && !is_webhook) {
          only_for(key, "webhook");
          continue;
        }
        if (auto s = read_path(v, w)) {
          const fs::path path = resolve_path(config_dir_, *s);
          std::error_code ec;
          std::ifstream probe(path, std::ios::binary);
          std::string head(kMaxCaFile, '\0');
          if (probe) {
            probe.read(head.data(), static_cast<std::streamsize>(head.size()));
            head.resize(static_cast<std::size_t>(probe.gcount()));
          }
          if (fs::is_directory(path, ec) || !probe.is_open()) {
            error(at(v), fmt::format("{}: cannot read \"{}\": {}", w, path.string(),
                                     fs::is_directory(path, ec) ? "it is a directory"
                                                                : std::strerror(errno)));
          } else if (head.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
            error(at(v), fmt::format("{}: \"{}\" holds no PEM certificate (\"-----BEGIN "
                                     "CERTIFICATE-----\")",
                                     w, path.string()));
          } else {
            n.ca_file = path;
          }
        }
      } else if (k == "timeout") {
        if (auto d = read_duration(v, w, Zero::refused)) n.timeout = *d;
      } else if (k == "retries") {
        if (type && !is_webhook) {
          only_for(key, "webhook");
          continue;
        }
        if (auto i = read_int(v, w, 0, kMaxNotifierRetries)) n.retries = static_cast<int>(*i);
      } else if (k == "user" || k == "group") {
        if (type && !is_command) {
          only_for(key, "command");
          continue;
        }
        auto name = read_name(v, w);
        if (!name) continue;
        if (!account_exists(*name, k == "user")) {
          error(at(v), fmt::format("{}: unknown {} \"{}\": no such {} in the {} database "
                                   "(create it, or name another)",
                                   w, k, *name, k, k));
          continue;
        }
        (k == "user" ? n.user : n.group) = *name;
        if (k == "user" && (*name == "root" || *name == "0")) {
          warn(at(v), fmt::format("{}: the command runs as root, with no privilege drop", w));
        }
      } else if (k == "headers") {
        if (type && !is_webhook) {
          only_for(key, "webhook");
          continue;
        }
        if (auto* t = read_table(v, w, "a table like { Authorization = \"Bearer ...\" }")) {
          read_headers(*t, n, section);
        }
      } else {
        unknown_key(key, section, kNotifierKeys);
      }
    }
    if (is_command && !table.contains("command")) {
      error(n.pos, fmt::format("[{}] has no command: add command = [\"/path/to/program\", "
                               "\"arg\", ...]",
                               section));
    }
    if (is_webhook && !table.contains("url")) {
      error(n.pos, fmt::format("[{}] has no url: add url = \"https://host/path\"", section));
    }
    if (type) n.type = *type;
    if (is_webhook && !n.ca_file.empty() && !n.url.empty() && n.url.starts_with("http:")) {
      warn(n.pos, fmt::format("[{}]: ca_file is used only for https URLs", section));
    }
    return errors_.size() == errors_before;
  }

  void read_command(const toml::node& v, const std::string& w, NotifierConfig& n) {
    const toml::array* list = v.as_array();
    if (list == nullptr || list->empty()) {
      if (list == nullptr) {
        type_error(v, w, "a list like [\"/usr/local/bin/notify\", \"--to\", \"ops\"]");
      } else {
        error(at(v), fmt::format("{}: must name a program: [\"/path/to/program\", ...]", w));
      }
      return;
    }
    std::vector<std::string> argv;
    for (const toml::node& item : *list) {
      auto s = read_string(item, w);
      if (!s) return;
      if (s->find('\0') != std::string::npos) {
        error(at(item), fmt::format("{}: an argument must not contain a NUL byte", w));
        return;
      }
      argv.push_back(*s);
    }
    if (argv[0].empty()) {
      error(at(*list->get(0)), fmt::format("{}: the program must not be empty", w));
      return;
    }
    const fs::path program = resolve_path(config_dir_, argv[0]);
    std::error_code ec;
    if (!fs::is_regular_file(program, ec) || ::access(program.c_str(), X_OK) != 0) {
      error(at(*list->get(0)),
            fmt::format("{}: \"{}\" is not an executable file{} (no shell or PATH lookup: "
                        "give the program's full path)",
                        w, program.string(), fs::exists(program, ec) ? "" : ": no such file"));
      return;
    }
    argv[0] = program.string();
    n.command = std::move(argv);
  }

  void read_headers(const toml::table& table, NotifierConfig& n, const std::string& section) {
    const auto token_char = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    };
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what("headers." + k, section);
      if (k.empty() || !std::all_of(k.begin(), k.end(), token_char)) {
        error(at(key), fmt::format("{}: not a valid header name", w));
        continue;
      }
      std::string lower = k;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (contains(kReservedHeaders, lower)) {
        error(at(key), fmt::format("{}: jobhost sets this header itself", w));
        continue;
      }
      auto value = read_string(v, w);
      if (!value) continue;
      if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        error(at(v), fmt::format("{}: a header value must not contain CR, LF or NUL", w));
        continue;
      }
      n.headers.emplace_back(k, *value);
    }
  }

  void read_jobs(const toml::node& node, const JobSettings& defaults, Config& config) {
    const toml::table* table = read_table(node, "jobs", "tables like [jobs.NAME]");
    if (table == nullptr) return;
    // toml++ keeps a table's keys sorted by name: put the jobs in file order
    // first (cheap pointers), then build each once, in place.
    std::vector<std::pair<const toml::key*, const toml::node*>> in_file;
    in_file.reserve(table->size());
    for (auto&& [key, v] : *table) in_file.emplace_back(&key, &v);
    std::stable_sort(in_file.begin(), in_file.end(), [&](const auto& a, const auto& b) {
      const auto& pa = a.second->source().begin;
      const auto& pb = b.second->source().begin;
      return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
    });
    std::vector<JobConfig>& jobs = config.jobs;
    // The main file's at once; those of included files grow the vector as it does.
    if (jobs.empty()) jobs.reserve(in_file.size());
    for (const auto& [key, v] : in_file) {
      const std::string name(key->str());
      // TOML itself refuses a job twice in one file; across files, here.
      if (!include_.empty()) {
        const auto [first, added] = defined_at_.emplace(name, at(*v));
        if (!added) {
          error(at(*v), fmt::format("duplicate job \"{}\": [jobs.{}] is also defined at {}:{}:{}; "
                                    "give each job its own name, in one file",
                                    name, name, first->second.file, first->second.line,
                                    first->second.column));
          continue;
        }
      }
      if (!valid_job_name(name)) {
        error(at(*key), fmt::format("invalid job name \"{}\": use letters, digits, '_' and '-', "
                                    "starting with a letter or digit, at most 64 characters",
                                    name));
      }
      const toml::table* job_table = v->as_table();
      if (job_table == nullptr) {
        type_error(*v, fmt::format("[jobs.{}]", name), "a table of settings");
        continue;
      }
      JobConfig& job = jobs.emplace_back();
      job.name = name;
      job.pos = at(*v);
      JobSettings settings = defaults;
      read_job(*job_table, job, settings);
      job.settings = share(std::move(settings));
    }
  }

  // Dynamic users: a uid for each job without a user (config/dynamic_users.h).
  void assign_dynamic_users(Config& config) {
    std::vector<std::string> names;
    std::set<uint32_t> taken;
    for (JobConfig& job : config.jobs) {
      if (!job.settings->user) {
        names.push_back(job.name);
        continue;
      }
      uint32_t id = 0;
      const auto& u = *job.settings->user;
      if (std::from_chars(u.data(), u.data() + u.size(), id).ptr == u.data() + u.size()) {
        taken.insert(id);
      }
    }
    if (names.empty()) return;
    auto uids = allocate_dynamic_uids(config.host.dynamic_users, names, taken, account_ids_known());
    if (!uids) {
      SourcePos where = dynamic_users_pos_.line > 0 ? dynamic_users_pos_ : SourcePos{file_, 0, 0};
      error(where, uids.error().message);
      return;
    }
    for (JobConfig& job : config.jobs) {
      if (auto it = uids->find(job.name); !job.settings->user && it != uids->end()) {
        job.dynamic_uid = it->second;
      }
    }
  }

  void read_job(const toml::table& table, JobConfig& job, JobSettings& settings) {
    const std::string section = "jobs." + job.name;
    Origins origins;
    std::vector<std::pair<const toml::key*, const toml::node*>> schedules;
    const toml::node* zone_node = nullptr;
    std::optional<std::string> zone_name;
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what(k, section);
      if (apply_setting(settings, origins, k, v, section)) continue;
      if (k == "plugin") {
        if (auto s = read_name(v, w)) {
          settings.plugin = *s;
          job.plugin_pos = at(v);
          if (plugin_names_ && !plugin_names_->contains(settings.plugin)) {
            errors_.push_back(
                unknown_plugin_error(job.plugin_pos, section, settings.plugin, *plugin_names_));
          }
        }
      } else if (contains(kScheduleKeys, k)) {
        schedules.emplace_back(&key, &v);
      } else if (k == "timezone") {
        zone_node = &v;
        zone_name = read_name(v, w);
      } else if (k == "params") {
        if (auto* t = read_table(v, w, "a table like { greeting = \"hi\" }")) {
          read_params(*t, settings.params, section);
        }
      } else if (k == "env") {
        if (auto* t = read_table(v, w, "a table like { LOG_LEVEL = \"debug\" }")) {
          read_env(*t, settings.env, section);
        }
      } else if (k == "secrets") {
        read_job_secrets(v, w, settings);
      } else if (k == "watch") {
        if (auto* t = read_table(v, w, "a table like { paths = [\"/srv/in/*.csv\"] }")) {
          read_watch(*t, at(v), settings, section + ".watch");
        }
      } else if (contains(kExecKeys, k)) {
        continue;  // read_exec, once the plugin is known
      } else {
        unknown_key(key, section, kJobKeys);
      }
    }
    read_exec(table, job, settings, section);
    check_retry_delays(settings, origins, section);
    if (!settings.sandbox.read_write_paths.empty() && !settings.sandbox.read_only) {
      warn(job.pos, fmt::format("[{}]: read_write_paths has no effect without read_only = true "
                                "(everything the run's user may write is writable anyway)",
                                section));
    }
    if (!table.contains("plugin") && !table.contains("command")) {
      error(job.pos, fmt::format("[{}] has no plugin: add plugin = \"NAME\", the name in the "
                                 "plugin's descriptor (see jobhost plugins), or command = "
                                 "[\"/path/to/program\", \"arg\"] to run a program",
                                 section));
    }

    // The zone: the job's own, else [host] timezone.
    const date::time_zone* zone = nullptr;
    bool zone_failed = false;
    if (zone_node != nullptr) {
      if (zone_name) {
        auto found = schedule::find_zone(*zone_name);
        if (found) {
          zone = *found;
          settings.timezone = *zone_name;
        } else {
          error(at(*zone_node), zone_message(what("timezone", section), *zone_name));
          zone_failed = true;
        }
      } else {
        zone_failed = true;
      }
    } else {
      zone = host_zone_;
      zone_failed = host_zone_failed_;
      settings.timezone = host_timezone_;
    }

    std::sort(schedules.begin(), schedules.end(), [](const auto& a, const auto& b) {
      const auto& pa = a.first->source().begin;
      const auto& pb = b.first->source().begin;
      return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
    });
    if (schedules.empty() && table.contains("watch")) {
      job.schedule = schedule::Manual{};  // fired by its watch (and triggers) only
      job.schedule_text = "@manual";
    } else if (schedules.empty()) {
      error(job.pos,
            fmt::format("[{}] has no schedule: set one of schedule (cron, e.g. \"0 3 * * *\"), "
                        "every (an interval, e.g. \"30s\") or at (one instant); "
                        "schedule = \"@manual\" for a job that only runs when triggered",
                        section));
    }
    for (std::size_t i = 1; i < schedules.size(); ++i) {
      error(at(*schedules[i].first),
            fmt::format("[{}] sets both \"{}\" (line {}) and \"{}\": keep exactly one of "
                        "schedule, every and at",
                        section, schedules[0].first->str(), schedules[0].first->source().begin.line,
                        schedules[i].first->str()));
    }
    for (std::size_t i = 0; i < schedules.size(); ++i) {
      JobConfig scratch;
      scratch.name = job.name;  // cron H is derived from it
      read_schedule(schedules[i].first->str(), *schedules[i].second, section, zone, zone_failed,
                    i == 0 ? job : scratch);
    }
  }

  void read_schedule(std::string_view key, const toml::node& v, const std::string& section,
                     const date::time_zone* zone, bool zone_failed, JobConfig& job) {
    const std::string w = what(key, section);
    if (key == "every") {
      if (auto d = read_duration(v, w, Zero::refused)) {
        job.schedule = schedule::Every{*d, TimePoint{}};
        job.schedule_text = "every " + v.as_string()->get();
      }
      return;
    }
    if (key == "at") {
      read_at(v, w, job);
      return;
    }
    auto text = read_name(v, w);
    if (!text) return;
    if (*text == "@manual") {
      job.schedule = schedule::Manual{};
      job.schedule_text = *text;
      return;
    }
    // Jobs on the same expression share its compiled fields (~350 bytes),
    // unless it has H: then its values are the job's own.
    const auto cached = parsed_cron_.find(*text);
    auto expr = cached != parsed_cron_.end()
                    ? std::expected<schedule::CronExpr, schedule::CronError>(cached->second)
                    : schedule::CronExpr::parse(*text, job.name);
    if (expr && cached == parsed_cron_.end() && expr->resolved() == expr->text()) {
      parsed_cron_.emplace(*text, *expr);
    }
    if (!expr) {
      error(inside_string(v, expr.error().column),
            fmt::format("{}: bad cron expression \"{}\": {}", w, *text, expr.error().message));
      return;
    }
    for (const auto& note : expr->warnings()) {
      warn(inside_string(v, note.column),
           fmt::format("{}: cron expression \"{}\": {}", w, *text, note.message));
    }
    job.schedule_text = *text;
    if (expr->is_reboot()) {
      job.schedule = schedule::Manual{};
      job.on_reboot = true;
      return;
    }
    if (zone == nullptr) {
      if (!zone_failed) {
        error(at(v), fmt::format("{}: no time zone to run the cron schedule in; set timezone", w));
      }
      return;
    }
    job.schedule = schedule::Cron{*expr, zone};
  }

  void read_at(const toml::node& v, const std::string& w, JobConfig& job) {
    constexpr std::string_view kExample = "an instant like \"2026-12-01T00:00:00Z\"";
    if (const auto* s = v.as_string()) {
      auto t = schedule::parse_rfc3339(s->get());
      if (!t) {
        error(at(v), fmt::format("{}: {}", w, t.error().message));
        return;
      }
      job.schedule = schedule::At{*t};
      job.schedule_text = s->get();
      return;
    }
    const auto* dt = v.as_date_time();
    if (dt == nullptr) {
      type_error(v, w, kExample);
      return;
    }
    const toml::date_time& value = dt->get();
    if (!value.offset) {
      error(at(v), fmt::format("{}: {} has no UTC offset; add \"Z\" for UTC or an offset like "
                               "\"+02:00\"",
                               w, fmt::streamed(value)));
      return;
    }
    using namespace std::chrono;
    const sys_days day_point =
        year_month_day{year{value.date.year}, month{value.date.month}, day{value.date.day}};
    const TimePoint t = time_point_cast<Duration>(day_point) + hours{value.time.hour} +
                        minutes{value.time.minute} + seconds{value.time.second} +
                        duration_cast<Duration>(nanoseconds{value.time.nanosecond}) -
                        minutes{value.offset->minutes};
    job.schedule = schedule::At{t};
    job.schedule_text = fmt::format("{}", fmt::streamed(value));
  }

  // command, shell, cwd and stdin: a job that runs a program through the exec
  // plugin (docs/plugins.md "The exec plugin"). They reach it as params of
  // the same names: command as a JSON array of strings (the argv), or the
  // string itself with shell = true; shell = "true" (absent otherwise); cwd
  // absolute; stdin as written. A job with command may leave plugin out.
  void read_exec(const toml::table& table, JobConfig& job, JobSettings& settings,
                 const std::string& section) {
    const toml::node* command = table.get("command");
    const toml::node* plugin = table.get("plugin");
    if (command == nullptr) {
      for (auto&& [key, v] : table) {
        if (!contains(kExecKeys, key.str())) continue;
        error(at(key), fmt::format("{}: only a job with a command has it; add command = "
                                   "[\"/path/to/program\", \"arg\"] (or remove it)",
                                   what(key.str(), section)));
      }
      if (settings.plugin == kExecPlugin) {
        error(job.pos, fmt::format("[{}] runs plugin \"exec\" but has no command: add command = "
                                   "[\"/path/to/program\", \"arg\"]",
                                   section));
        check_exec_params(table, section);
      }
      return;
    }
    if (plugin != nullptr) {
      // An invalid plugin value was reported already.
      if (!settings.plugin.empty() && settings.plugin != kExecPlugin) {
        error(at(*command),
              fmt::format("{}: command runs a program through the exec plugin, but the job's "
                          "plugin is \"{}\"; remove plugin (command implies plugin = \"exec\"), "
                          "or remove command and give {} what it needs in params",
                          what("command", section), settings.plugin, settings.plugin));
        return;
      }
    } else {
      settings.plugin = kExecPlugin;
      job.plugin_pos = at(*command);
      if (plugin_names_ && !plugin_names_->contains(settings.plugin)) {
        errors_.push_back(
            unknown_plugin_error(job.plugin_pos, section, settings.plugin, *plugin_names_));
      }
    }
    check_exec_params(table, section);

    std::optional<bool> shell = false;
    if (const toml::node* v = table.get("shell")) shell = read_bool(*v, what("shell", section));
    if (shell) {
      if (auto text = read_command_line(*command, what("command", section), *shell)) {
        settings.params["command"] = std::move(*text);
        if (*shell) settings.params["shell"] = "true";
      }
    }
    if (const toml::node* v = table.get("cwd")) {
      if (auto s = read_path(*v, what("cwd", section))) {
        if (s->find('\0') != std::string::npos) {
          error(at(*v), fmt::format("{}: a path must not contain NUL", what("cwd", section)));
        } else {
          settings.params["cwd"] = resolve_path(config_dir_, *s).string();
        }
      }
    }
    if (const toml::node* v = table.get("stdin")) {
      const std::string w = what("stdin", section);
      if (auto s = read_string(*v, w)) {
        if (s->find('\0') != std::string::npos) {
          error(at(*v), fmt::format("{}: must not contain NUL", w));
        } else if (s->size() > kMaxStdin) {
          error(at(*v), fmt::format("{}: at most {} bytes (got {}); for more, have the command "
                                    "read a file",
                                    w, kMaxStdin, s->size()));
        } else {
          settings.params["stdin"] = std::move(*s);
        }
      }
    }
  }

  // An exec job's params must not hold the names its job keys are handed
  // over as: they would be overwritten, or taken for them.
  void check_exec_params(const toml::table& table, const std::string& section) {
    const toml::table* params = table.get_as<toml::table>("params");
    if (params == nullptr) return;
    for (auto&& [key, v] : *params) {
      if (!contains(kExecKeys, key.str())) continue;
      error(at(key), fmt::format("{}: an exec job takes {} from the job key of that name, not "
                                 "from params: write {} = ... in [{}] itself",
                                 what("params." + std::string(key.str()), section), key.str(),
                                 key.str(), section));
    }
  }

  // command = ["prog", "arg", ...] (shell = false) as a JSON array of
  // strings, or command = "a shell command line" (shell = true) as it is;
  // nullopt after reporting an error.
  std::optional<std::string> read_command_line(const toml::node& v, const std::string& w,
                                               bool shell) {
    if (shell) {
      if (v.is_array()) {
        error(at(v), fmt::format("{}: with shell = true, write the command as one string for "
                                 "/bin/sh -c, e.g. command = \"pg_dump db | gzip > db.gz\"",
                                 w));
        return std::nullopt;
      }
      if (!v.is_string()) {
        type_error(v, w, "a string (shell = true runs /bin/sh -c COMMAND)");
        return std::nullopt;
      }
      auto line = read_name(v, w);
      if (line && line->find('\0') != std::string::npos) {
        error(at(v), fmt::format("{}: must not contain NUL", w));
        return std::nullopt;
      }
      return line;
    }
    if (v.is_string()) {
      error(at(v), fmt::format("{}: a string is a shell command line: add shell = true to run it "
                               "with /bin/sh -c, or write the program and its arguments as a "
                               "list: [\"/usr/local/bin/backup\", \"--full\"]",
                               w));
      return std::nullopt;
    }
    const toml::array* list = v.as_array();
    if (list == nullptr) {
      type_error(v, w, "a list like [\"/usr/local/bin/backup\", \"--full\"]");
      return std::nullopt;
    }
    if (list->empty()) {
      error(at(v), fmt::format("{}: must name a program: [\"/path/to/program\", \"arg\", ...]", w));
      return std::nullopt;
    }
    std::vector<std::string> argv;
    for (const toml::node& item : *list) {
      auto s = read_string(item, w);
      if (!s) return std::nullopt;
      if (s->find('\0') != std::string::npos) {
        error(at(item), fmt::format("{}: an argument must not contain a NUL byte", w));
        return std::nullopt;
      }
      argv.push_back(std::move(*s));
    }
    if (argv[0].empty()) {
      error(at(*list->get(0)), fmt::format("{}: the program must not be empty", w));
      return std::nullopt;
    }
    return json_string_array(argv);
  }

  // ["a", "b\"c"]: JSON text of strings that are valid UTF-8 (TOML's are).
  static std::string json_string_array(const std::vector<std::string>& items) {
    std::string out = "[";
    for (const std::string& item : items) {
      if (out.size() > 1) out += ',';
      out += '"';
      for (char c : item) {
        if (c == '"' || c == '\\') {
          out += '\\';
          out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
      }
      out += '"';
    }
    out += ']';
    return out;
  }

  // env = { KEY = "value" }: strings only, names a shell would accept, and
  // none of the JOBHOST_* names the host sets itself.
  void read_env(const toml::table& table, std::map<std::string, std::string>& env,
                const std::string& section) {
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      const std::string w = what("env." + k, section);
      if (!valid_env_name(k)) {
        error(at(key), fmt::format("{}: invalid variable name: use letters, digits and '_', "
                                   "not starting with a digit",
                                   w));
        continue;
      }
      if (k.starts_with("JOBHOST_")) {
        error(at(key), fmt::format("{}: JOBHOST_* variables are set by the host and cannot be "
                                   "overridden; choose another name",
                                   w));
        continue;
      }
      auto value = read_string(v, w);
      if (!value) continue;
      if (value->find('\0') != std::string::npos) {
        error(at(v), fmt::format("{}: a value must not contain NUL", w));
        continue;
      }
      env[k] = *value;
    }
  }

  // secrets = ["db", ...]: names of [secrets.NAME] sections (read before the jobs).
  void read_job_secrets(const toml::node& v, const std::string& w, JobSettings& job) {
    const toml::array* list = v.as_array();
    if (list == nullptr) {
      type_error(v, w, "a list of secret names like [\"db\"]");
      return;
    }
    std::vector<SecretConfig> secrets;
    for (const toml::node& item : *list) {
      auto name = read_name(item, w);
      if (!name) continue;
      auto found = std::find_if(secrets_.begin(), secrets_.end(),
                                [&](const SecretConfig& s) { return s.name == *name; });
      if (found == secrets_.end()) {
        std::vector<std::string_view> known;
        for (const auto& s : secrets_) known.push_back(s.name);
        std::string message = fmt::format("{}: unknown secret \"{}\"", w, *name);
        if (secret_names_.contains(*name)) {
          message += " (its [secrets." + *name + "] section has errors)";
        } else if (auto close = closest_match(*name, known)) {
          message += fmt::format(" (did you mean \"{}\"?)", *close);
        } else if (known.empty()) {
          message += " (no [secrets.NAME] section is defined)";
        } else {
          message += fmt::format(" (known: {})", quoted_list(known));
        }
        error(at(item), std::move(message));
        continue;
      }
      const bool listed = std::any_of(secrets.begin(), secrets.end(),
                                      [&](const SecretConfig& s) { return s.name == *name; });
      if (!listed) secrets.push_back(*found);
    }
    job.secrets = std::move(secrets);
  }

  // Each [KIND.NAME] table of `node`: its name goes into `names` (known even
  // when broken: one error, not two); a name that is not valid, or a value
  // that is not a table (`example` says what is), is an error; the others go
  // to read(name, section, table, value).
  template <class Read>
  void read_named_tables(const toml::node& node, std::string_view kind, std::string_view noun,
                         std::string_view example, std::set<std::string>& names, Read read) {
    const toml::table* table =
        read_table(node, std::string(kind), fmt::format("tables like [{}.NAME]", kind));
    if (table == nullptr) return;
    for (auto&& [key, v] : *table) {
      const std::string name(key.str());
      names.insert(name);
      const std::string section = fmt::format("{}.{}", kind, name);
      if (!valid_job_name(name)) {
        error(at(key), fmt::format("invalid {} name \"{}\": use letters, digits, '_' and "
                                   "'-', starting with a letter or digit, at most 64 characters",
                                   noun, name));
        continue;
      }
      const toml::table* t = v.as_table();
      if (t == nullptr) {
        type_error(v, fmt::format("[{}]", section), std::string(example));
        continue;
      }
      read(name, section, *t, v);
    }
  }

  // [groups.NAME] max_concurrency = N.
  void read_groups(const toml::node& node, std::vector<GroupConfig>& out) {
    static constexpr std::array<std::string_view, 1> kGroupKeys = {"max_concurrency"};
    read_named_tables(node, "groups", "group", "a table like { max_concurrency = 2 }", group_names_,
                      [&](const std::string& name, const std::string& section, const toml::table& t,
                          const toml::node& v) {
                        GroupConfig group{name, 1, at(v)};
                        if (!t.contains("max_concurrency")) {
                          error(at(v),
                                fmt::format("[{}] has no max_concurrency: add max_concurrency = N "
                                            "(>= 1), the most runs of its jobs at once",
                                            section));
                        }
                        for (auto&& [gkey, gv] : t) {
                          const std::string k(gkey.str());
                          if (k != "max_concurrency") {
                            unknown_key(gkey, section, kGroupKeys);
                          } else if (auto i = read_int(gv, what(k, section), 1)) {
                            group.max_concurrency = static_cast<int>(*i);
                          }
                        }
                        out.push_back(std::move(group));
                      });
  }

  // [secrets.NAME] = { file = "..." } or { env = "VAR" } or { credential = "NAME" }.
  void read_secrets(const toml::node& node, std::vector<SecretConfig>& out) {
    read_named_tables(
        node, "secrets", "secret", "a table like { file = \"/etc/jobhost/db\" }", secret_names_,
        [&](const std::string& name, const std::string& section, const toml::table& t,
            const toml::node& v) {
          SecretConfig secret;
          secret.name = name;
          secret.pos = at(v);
          int sources = 0;
          bool ok = true;
          for (auto&& [skey, sv] : t) {
            const std::string k(skey.str());
            const std::string w = what(k, section);
            if (!contains(kSecretKeys, k)) {
              unknown_key(skey, section, kSecretKeys);
              ok = false;
              continue;
            }
            ++sources;
            auto text = read_name(sv, w);
            if (!text) {
              ok = false;
              continue;
            }
            if (k == "file") {
              secret.source = SecretConfig::Source::file;
              secret.location = resolve_path(config_dir_, *text).string();
            } else if (k == "env") {
              secret.source = SecretConfig::Source::env;
              secret.location = *text;
              if (!valid_env_name(*text)) {
                error(at(sv), fmt::format("{}: \"{}\" is not a variable name (letters, digits and "
                                          "'_', not starting with a digit)",
                                          w, *text));
                ok = false;
              }
            } else {
              secret.source = SecretConfig::Source::credential;
              secret.location = *text;
              if (!valid_credential_name(*text)) {
                error(at(sv), fmt::format("{}: \"{}\" is not a credential name (a file name in "
                                          "$CREDENTIALS_DIRECTORY, no '/')",
                                          w, *text));
                ok = false;
              }
            }
          }
          if (sources != 1) {
            error(secret.pos, fmt::format("[{}] needs exactly one source: file = \"PATH\", env = "
                                          "\"VARIABLE\" or credential = \"NAME\" (it has {})",
                                          section, sources));
            ok = false;
          }
          if (ok) out.push_back(std::move(secret));
        });
    std::stable_sort(out.begin(), out.end(), [](const SecretConfig& a, const SecretConfig& b) {
      return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
    });
    secrets_ = out;
  }

  void read_params(const toml::table& table, std::map<std::string, std::string>& params,
                   const std::string& section) {
    for (auto&& [key, v] : table) {
      const std::string k(key.str());
      std::ostringstream text;
      if (const auto* s = v.as_string()) {
        text << s->get();
      } else if (const auto* i = v.as_integer()) {
        text << i->get();
      } else if (const auto* f = v.as_floating_point()) {
        text << fmt::format("{}", f->get());
      } else if (const auto* b = v.as_boolean()) {
        text << (b->get() ? "true" : "false");
      } else if (const auto* d = v.as_date()) {
        text << d->get();
      } else if (const auto* t = v.as_time()) {
        text << t->get();
      } else if (const auto* dt = v.as_date_time()) {
        text << dt->get();
      } else {
        type_error(v, what("params." + k, section), "a string, number, boolean or date");
        continue;
      }
      params[k] = text.str();
    }
  }

  // The block of `settings` shared by every job with the same (by value).
  std::shared_ptr<const JobSettings> share(JobSettings settings) {
    std::size_t h = 0;
    const auto mix = [&h](std::string_view text) {
      h = h * 1000003 ^ std::hash<std::string_view>{}(text);
    };
    mix(settings.plugin);
    mix(settings.timezone);
    mix(settings.user.value_or(""));
    for (const auto* map : {&settings.params, &settings.env}) {
      for (const auto& [key, value] : *map) {
        mix(key);
        mix(value);
      }
    }
    for (const SecretConfig& secret : settings.secrets) mix(secret.name);
    for (const std::string& path : settings.sandbox.read_write_paths) mix(path);
    h = h * 1000003 ^ static_cast<std::size_t>(settings.timeout.count());
    auto& blocks = shared_settings_[h];
    for (const auto& block : blocks) {
      if (*block == settings) return block;
    }
    return blocks.emplace_back(std::make_shared<const JobSettings>(std::move(settings)));
  }

  // An include pattern of [host], for errors about what it matches.
  struct IncludePattern {
    std::string text;   // as written
    fs::path absolute;  // as in HostConfig::include
    SourcePos pos;
  };

  // The file being read (the main file, or an included one while it is
  // read): its name as shown, intern_file_name, and its text.
  std::string_view file_;
  fs::path config_dir_;  // the main file's: every relative path is resolved against it
  std::string text_;
  std::vector<std::string_view> files_read_;
  std::vector<IncludePattern> include_;
  // Where each job was defined, kept only when files are included: a job
  // defined in two files is found here.
  std::unordered_map<std::string, SourcePos> defined_at_;
  const PluginNamesFor* plugin_names_for_;
  std::optional<std::set<std::string>> plugin_names_;
  std::set<std::string> notifier_names_;  // every [alerts.NAME], valid or not
  std::set<std::string> group_names_;     // every [groups.NAME], valid or not
  // Every job a chain names, where (check_chains).
  struct ChainRef {
    std::string section;  // "defaults" or "jobs.NAME"
    std::string target;
    std::string what;  // the key, for messages
    SourcePos pos;
  };
  std::vector<ChainRef> chain_refs_;
  std::set<std::string> secret_names_;  // every [secrets.NAME], valid or not
  std::vector<SecretConfig> secrets_;   // the valid ones
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
  std::unordered_map<std::string, schedule::CronExpr> parsed_cron_;  // by text
  // share(): the distinct settings blocks made, by a hash of what most often
  // differs between them.
  std::unordered_map<std::size_t, std::vector<std::shared_ptr<const JobSettings>>> shared_settings_;

  std::string host_timezone_ = "UTC";
  SourcePos dynamic_users_pos_;  // where [host] dynamic_users is, if written
  SourcePos host_zone_pos_;
  bool host_zone_set_ = false;
  bool host_zone_failed_ = false;
  SourcePos store_url_pos_{};  // [store] url, for errors about it
  const date::time_zone* host_zone_ = nullptr;
  std::vector<std::string> zone_names_;
};

}  // namespace

std::string_view intern_file_name(std::string_view name) {
  static std::mutex mutex;
  static std::set<std::string, std::less<>> names;
  std::lock_guard lock(mutex);
  auto it = names.find(name);
  if (it == names.end()) it = names.emplace(name).first;
  return *it;  // std::set never moves its elements
}

namespace {

// The config file's absolute, lexically normal path and its text.
struct ConfigText {
  fs::path absolute;
  std::string text;
};

std::expected<ConfigText, std::vector<ConfigError>> read_config_text(const fs::path& file,
                                                                     std::string_view shown) {
  const auto failure = [&](std::string message) {
    return std::unexpected(std::vector<ConfigError>{{SourcePos{shown, 0, 0}, std::move(message)}});
  };
  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  if (ec) return failure(fmt::format("cannot locate the config file: {}", ec.message()));
  absolute = absolute.lexically_normal();
  if (fs::is_directory(absolute, ec)) {
    return failure("cannot read the config file: it is a directory");
  }
  std::ifstream in(absolute, std::ios::binary);
  if (!in) {
    return failure(
        fmt::format("cannot read the config file: {} (pass --config or set "
                    "JOBHOST_CONFIG)",
                    std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return failure(fmt::format("cannot read the config file: {}", std::strerror(errno)));
  return ConfigText{std::move(absolute), std::move(text).str()};
}

// By file (in the order `files` were read), then line and column.
void sort_in_file_order(std::vector<ConfigError>& list,
                        const std::vector<std::string_view>& files) {
  const auto rank = [&](std::string_view file) {
    return std::find(files.begin(), files.end(), file) - files.begin();
  };
  std::stable_sort(list.begin(), list.end(), [&](const ConfigError& a, const ConfigError& b) {
    return std::tuple(rank(a.where.file), a.where.line, a.where.column) <
           std::tuple(rank(b.where.file), b.where.line, b.where.column);
  });
}

std::expected<Config, std::vector<ConfigError>> load(const fs::path& file,
                                                     const PluginNamesFor* plugin_names_for) {
  const std::string_view shown = intern_file_name(file.string());
  auto read = read_config_text(file, shown);
  if (!read) return std::unexpected(std::move(read.error()));
  const fs::path& absolute = read->absolute;

  Config config;
  config.file = absolute;
  Loader loader(shown, absolute.parent_path(), std::move(read->text), plugin_names_for);
  try {
    loader.load(config);
  } catch (const std::exception& e) {
    // Only a bug or an exhausted machine gets here; still a value, not a crash.
    loader.errors().push_back({SourcePos{shown, 0, 0}, fmt::format("cannot load: {}", e.what())});
  }
  auto& errors = loader.errors();
  auto& warnings = loader.warnings();
  if (!errors.empty()) {
    errors.insert(errors.end(), warnings.begin(), warnings.end());
    sort_in_file_order(errors, loader.files_read());
    return std::unexpected(std::move(errors));
  }
  sort_in_file_order(warnings, loader.files_read());
  config.warnings = std::move(warnings);
  compute_definition_hashes(config.jobs);
  return config;
}

}  // namespace

std::optional<std::vector<std::string>> find_chain_cycle(const std::vector<JobConfig>& jobs) {
  std::unordered_map<std::string_view, const JobSettings*> links;
  for (const auto& job : jobs) links.emplace(job.name, job.settings.get());
  enum class Seen { no, on_path, done };
  std::unordered_map<std::string_view, Seen> seen;
  // Depth first, iteratively (chains may be long): the path from the root,
  // each with the index of its next link to follow.
  struct Step {
    std::string_view job;
    std::size_t next = 0;
  };
  const auto targets = [&](std::string_view job, std::size_t i) -> const std::string* {
    const JobSettings& s = *links.at(job);
    for (const auto* list : {&s.on_success, &s.on_failure, &s.on_done}) {
      if (i < list->size()) return &(*list)[i];
      i -= list->size();
    }
    return nullptr;
  };
  for (const auto& root : jobs) {
    if (seen[root.name] != Seen::no) continue;
    std::vector<Step> path{{root.name}};
    seen[root.name] = Seen::on_path;
    while (!path.empty()) {
      Step& top = path.back();
      const std::string* target = targets(top.job, top.next++);
      if (target == nullptr) {
        seen[top.job] = Seen::done;
        path.pop_back();
        continue;
      }
      if (!links.contains(*target)) continue;
      Seen& state = seen[*target];
      if (state == Seen::done) continue;
      if (state == Seen::on_path) {
        std::vector<std::string> cycle;
        auto from =
            std::find_if(path.begin(), path.end(), [&](const Step& s) { return s.job == *target; });
        for (; from != path.end(); ++from) cycle.emplace_back(from->job);
        cycle.push_back(*target);
        return cycle;
      }
      state = Seen::on_path;
      path.push_back({*target});
    }
  }
  return std::nullopt;
}

std::string_view to_string(Jitter value) {
  return name_of(kJitterNames, value);
}
std::string_view to_string(Concurrency value) {
  return name_of(kConcurrencyNames, value);
}
std::string_view to_string(Misfire value) {
  return name_of(kMisfireNames, value);
}
std::string_view to_string(LogFormat value) {
  return name_of(kLogFormatNames, value);
}
std::string_view to_string(Durability value) {
  return name_of(kDurabilityNames, value);
}
std::string_view to_string(Network value) {
  return name_of(kNetworkNames, value);
}
std::string_view to_string(SyscallFilter value) {
  return name_of(kSyscallFilterNames, value);
}
std::string_view to_string(FileEvent value) {
  return name_of(kFileEventNames, value);
}
std::string_view to_string(SecretConfig::Source value) {
  switch (value) {
    case SecretConfig::Source::file:
      return "file";
    case SecretConfig::Source::env:
      return "env";
    case SecretConfig::Source::credential:
      return "credential";
  }
  return "file";
}

std::string_view to_string(NotifierConfig::Type value) {
  return name_of(kNotifierTypeNames, value);
}

Result<Url> parse_url(std::string_view text) {
  Url url;
  std::string_view rest;
  if (text.starts_with("https://")) {
    url.tls = true;
    rest = text.substr(8);
  } else if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else {
    return fail(fmt::format("\"{}\" is not an http:// or https:// URL", text));
  }
  if (rest.find_first_of(std::string_view(" \t\r\n\0", 5)) != std::string_view::npos) {
    return fail("a URL must not contain spaces or control characters");
  }
  if (rest.find('#') != std::string_view::npos) return fail("a webhook URL has no #fragment");
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (url.target.starts_with('?')) url.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) {
    return fail("no user:password@ in the URL: send credentials with headers = { ... }");
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed [ in the URL's host");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return fail("expected :PORT after the ]");
      port = after.substr(1);
      if (port.empty()) return fail("empty port in the URL");
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return fail("empty port in the URL");
    }
  }
  if (url.host.empty()) return fail("the URL has no host");
  if (url.host.size() > 253) return fail("the URL's host name is too long");
  url.port = url.tls ? 443 : 80;
  if (!port.empty()) {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535) {
      return fail("the URL's port must be a number from 1 to 65535");
    }
    url.port = static_cast<uint16_t>(std::stoi(std::string(port)));
  }
  return url;
}

std::string ConfigError::to_string() const {
  const std::string text = kind == Kind::warning ? "warning: " + message : message;
  if (where.line <= 0) return fmt::format("{}: {}", where.file, text);
  if (where.column <= 0) return fmt::format("{}:{}: {}", where.file, where.line, text);
  return fmt::format("{}:{}:{}: {}", where.file, where.line, where.column, text);
}

const std::shared_ptr<const JobSettings>& builtin_job_settings() {
  static const auto block = std::make_shared<const JobSettings>();
  return block;
}

JobSettings& own_settings(JobConfig& job) {
  auto copy = std::make_shared<JobSettings>(*job.settings);
  job.settings = copy;
  return *copy;
}

std::string resolved_schedule(const JobConfig& job) {
  const auto* cron = std::get_if<schedule::Cron>(&job.schedule);
  if (cron && cron->expr.resolved() != cron->expr.text()) return cron->expr.resolved();
  return job.schedule_text;
}

const JobConfig* Config::find_job(std::string_view name) const {
  for (const JobConfig& job : jobs) {
    if (job.name == name) return &job;
  }
  return nullptr;
}

const GroupConfig* Config::find_group(std::string_view name) const {
  for (const GroupConfig& group : groups) {
    if (group.name == name) return &group;
  }
  return nullptr;
}

bool HostSection::has_job(std::string_view name) const {
  return std::binary_search(job_names.begin(), job_names.end(), name);
}

std::expected<HostSection, std::vector<ConfigError>> load_host_section(
    const std::filesystem::path& file) {
  const std::string_view shown = intern_file_name(file.string());
  auto read = read_config_text(file, shown);
  if (!read) return std::unexpected(std::move(read.error()));
  HostSection section;
  section.file = read->absolute;
  Loader loader(shown, read->absolute.parent_path(), std::move(read->text), nullptr);
  try {
    loader.load_host_section(section);
  } catch (const std::exception& e) {
    loader.errors().push_back({SourcePos{shown, 0, 0}, fmt::format("cannot load: {}", e.what())});
  }
  auto& errors = loader.errors();
  if (!errors.empty()) {
    sort_in_file_order(errors, loader.files_read());
    return std::unexpected(std::move(errors));
  }
  return section;
}

std::optional<std::vector<std::filesystem::path>> include_patterns(
    const std::filesystem::path& file) {
  const std::string_view shown = intern_file_name(file.string());
  auto read = read_config_text(file, shown);
  if (!read) return std::nullopt;
  Loader loader(shown, read->absolute.parent_path(), std::move(read->text), nullptr);
  try {
    return loader.read_include_patterns();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool include_name_matches(std::string_view glob, std::string_view name) {
  return ::fnmatch(std::string(glob).c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

Result<std::vector<std::filesystem::path>> match_include(const std::filesystem::path& pattern) {
  const fs::path dir = pattern.parent_path();
  const std::string glob = pattern.filename().string();
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (include_name_matches(glob, it->path().filename().string())) out.push_back(it->path());
  }
  if (ec == std::errc::no_such_file_or_directory) {
    return fail(fmt::format("no directory {} (create it, even empty, or remove the pattern)",
                            dir.string()));
  }
  if (ec) return fail(fmt::format("cannot list {}: {}", dir.string(), ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

std::expected<Config, std::vector<ConfigError>> load_config(const std::filesystem::path& file) {
  return load(file, nullptr);
}

std::expected<Config, std::vector<ConfigError>> load_config(
    const std::filesystem::path& file, const std::set<std::string>& plugin_names) {
  const PluginNamesFor names_for = [&](const HostConfig&) { return plugin_names; };
  return load(file, &names_for);
}

std::expected<Config, std::vector<ConfigError>> load_config(
    const std::filesystem::path& file, const PluginNamesFor& plugin_names_for) {
  return load(file, &plugin_names_for);
}

std::vector<ConfigError> check_plugins(const Config& config,
                                       const std::set<std::string>& plugin_names) {
  std::vector<ConfigError> errors;
  for (const JobConfig& job : config.jobs) {
    if (plugin_names.contains(job.settings->plugin)) continue;
    errors.push_back(unknown_plugin_error(job.plugin_pos, "jobs." + job.name, job.settings->plugin,
                                          plugin_names));
  }
  return errors;
}

}  // namespace jobhost::config
