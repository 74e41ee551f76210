#include "daemon_bench.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ledger/sqlite_store.h"

namespace jobhost::bench {

namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr auto kDirMode = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                          fs::perms::others_read | fs::perms::others_exec;

}  // namespace

TempDir::TempDir(std::string_view prefix) {
  std::string pattern = (fs::temp_directory_path() / fmt::format("{}-XXXXXX", prefix)).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(fmt::format("mkdtemp {}: {}", pattern, std::strerror(errno)));
  }
  path_ = pattern;
  fs::permissions(path_, kDirMode);
}

TempDir::~TempDir() {
  if (std::getenv("BENCH_KEEP") != nullptr) {
    fmt::print("kept {}\n", path_.string());
    return;
  }
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void install_plugin(const fs::path& plugin, const fs::path& plugin_dir) {
  fs::create_directories(plugin_dir);
  fs::permissions(plugin_dir, kDirMode);
  const fs::path to = plugin_dir / plugin.filename();
  fs::copy_file(plugin, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read);
}

Daemon::Daemon(const fs::path& jobhost_bin, const fs::path& config, fs::path log)
    : log_(std::move(log)) {
  const std::string bin = jobhost_bin.string(), conf = config.string();
  // Emptied here, not only in the child: wait_ready() must never see the
  // "ready" of an earlier daemon that wrote the same log.
  std::error_code absent;  // a log not written yet: nothing to empty
  fs::resize_file(log_, 0, absent);
  pid_ = ::fork();
  if (pid_ < 0) {
    throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid_ == 0) {
    const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) _exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::execl(bin.c_str(), bin.c_str(), "run", "--config", conf.c_str(), nullptr);
    _exit(127);
  }
}

Daemon::~Daemon() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::optional<WallClock::time_point> Daemon::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = 0;  // the log is only read from where the last look ended
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(log_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(scanned));
    std::string tail((std::istreambuf_iterator<char>(in)), {});
    if (tail.find(" ready: ") != std::string::npos) return WallClock::now();
    // Keep the last line's start: "ready" may be half written.
    const auto last_newline = tail.rfind('\n');
    if (last_newline != std::string::npos) scanned += last_newline + 1;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::nullopt;
}

int Daemon::stop(std::chrono::milliseconds timeout) {
  if (reaped_) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      reaped_ = true;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  reaped_ = true;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Daemon::log_text() const {
  return read_all(log_);
}

std::vector<ledger::RunRecord> read_runs(const fs::path& state_dir) {
  auto store = ledger::open_sqlite_store(state_dir / "jobhost.db", config::Durability::normal,
                                         ledger::Access::read_only);
  if (!store) {
    throw std::runtime_error(store.error().message);
  }
  auto runs = (*store)->history(std::nullopt, 100'000'000);
  if (!runs) {
    throw std::runtime_error(runs.error().message);
  }
  return std::move(*runs);
}

int64_t finished_runs_between(const fs::path& db, int64_t from_ms, int64_t to_ms) {
  try {
    SQLite::Database ledger(db.string(), SQLite::OPEN_READONLY);
    ledger.setBusyTimeout(100);
    SQLite::Statement count(ledger,
                            "SELECT count(*) FROM runs WHERE scheduled_for >= ? AND "
                            "scheduled_for < ? AND finished_at IS NOT NULL");
    count.bind(1, from_ms);
    count.bind(2, to_ms);
    return count.executeStep() ? count.getColumn(0).getInt64() : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

std::string run_capture(const std::vector<std::string>& argv) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (spawned != 0) {
    throw std::runtime_error(fmt::format("{}: {}", argv[0], std::strerror(spawned)));
  }
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(fmt::format("{} failed (status {})", fmt::join(argv, " "), status));
  }
  return text;
}

void sleep_until(WallClock::time_point at) {
  const auto since_epoch = at.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  while (::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

int64_t unix_ms(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int64_t unix_us_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

double median(std::vector<double> values) {
  return percentile(std::move(values), 0.5);
}

std::string load_average() {
  std::string text = read_all("/proc/loadavg");
  std::istringstream in(text);
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return fmt::format("{} {} {}", one, five, fifteen);
}

std::string isolation_line(const std::string& log) {
  const auto at = log.find(" isolation: ");
  if (at == std::string::npos) return "";
  const auto end = log.find('\n', at);
  return log.substr(at + 12, end == std::string::npos ? std::string::npos : end - at - 12);
}

long status_kib(pid_t pid, std::string_view field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(field)) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

namespace {

int pg_script(const std::string& args) {
  const int status = std::system(
      (std::string(JOBHOST_SOURCE_DIR) + "/scripts/pg-test-server.sh " + args + " >/dev/null 2>&1")
          .c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs one statement on `url`; the first column of the first row, or
// nullopt on an error.
std::optional<std::string> pg_value(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::optional<std::string> out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK) out = "";
    if (status == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

}  // namespace

PgServer::PgServer() : dir_("bench-pg") {
  pg_script("start " + dir_.path().string());
  std::ifstream in(dir_.path() / "url");
  std::getline(in, admin_url_);
  if (admin_url_.empty()) {
    throw std::runtime_error(
        "no PostgreSQL server: install postgresql (scripts/pg-test-server.sh found none)");
  }
}

PgServer::~PgServer() {
  pg_script("stop " + dir_.path().string());
}

std::string PgServer::fresh_database() {
  const std::string name = "bench_" + std::to_string(++made_);
  if (!pg_value(admin_url_, "CREATE DATABASE " + name)) {
    throw std::runtime_error("cannot create database " + name);
  }
  return admin_url_.substr(0, admin_url_.rfind('/') + 1) + name;
}

int64_t pg_finished_runs_between(const std::string& url, int64_t from_ms, int64_t to_ms) {
  auto count = pg_value(
      url, "SELECT count(*) FROM runs WHERE scheduled_for >= " + std::to_string(from_ms) +
               " AND scheduled_for < " + std::to_string(to_ms) + " AND finished_at IS NOT NULL");
  return count && !count->empty() ? std::stoll(*count) : -1;
}

}  // namespace jobhost::bench
