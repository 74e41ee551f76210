#include "exec/secrets.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace jobhost::exec {
namespace {

std::string describe(const config::SecretConfig& s) {
  switch (s.source) {
    case config::SecretConfig::Source::file:
      return fmt::format("file \"{}\"", s.location);
    case config::SecretConfig::Source::env:
      return fmt::format("environment variable {}", s.location);
    case config::SecretConfig::Source::credential:
      return fmt::format("credential \"{}\"", s.location);
  }
  return s.location;
}

// Reads the open regular file `fd` (at most kMaxSecretBytes) into `out`.
Result<void> read_fd(int fd, const struct stat& st, const std::string& what, std::string& out) {
  if (st.st_size > static_cast<off_t>(kMaxSecretBytes)) {
    return fail(fmt::format("{} is {} bytes, over the {} KiB a secret may have", what, st.st_size,
                            kMaxSecretBytes / 1024));
  }
  out.assign(kMaxSecretBytes + 1, '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      wipe(out);
      return fail(fmt::format("cannot read {}: {}", what, std::strerror(err)));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > kMaxSecretBytes) {
    wipe(out);
    return fail(
        fmt::format("{} is over the {} KiB a secret may have", what, kMaxSecretBytes / 1024));
  }
  // An exact-size copy; the 64 KiB buffer is wiped.
  std::string exact(out.data(), got);
  wipe(out);
  out = std::move(exact);
  return {};
}

Result<std::string> read_file_secret(const std::string& path, const std::string& what,
                                     bool check_owner) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) return fail(fmt::format("{} is a symbolic link; point it at the file", what));
    return fail(fmt::format("cannot open {}: {}", what, std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(fmt::format("cannot stat {}: {}", what, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(fmt::format("{} is not a regular file", what));
  }
  if (check_owner) {
    if (st.st_uid != ::geteuid()) {
      ::close(fd);
      return fail(
          fmt::format("{} is owned by uid {}, not by the host's user (uid {}); run `chown {} {}`",
                      what, st.st_uid, ::geteuid(), ::geteuid(), path));
    }
    if ((st.st_mode & 077) != 0) {
      ::close(fd);
      return fail(fmt::format("{} is open to group or others (mode {:04o}); run `chmod 600 {}`",
                              what, st.st_mode & 07777, path));
    }
  }
  std::string value;
  auto read = read_fd(fd, st, what, value);
  ::close(fd);
  if (!read) return std::unexpected(read.error());
  return value;
}

}  // namespace

void wipe(std::string& value) noexcept {
  if (!value.empty()) explicit_bzero(value.data(), value.size());
  value.clear();
}

Result<std::string> read_secret(const config::SecretConfig& secret) {
  const std::string what = fmt::format("secret \"{}\" ({})", secret.name, describe(secret));
  using Source = config::SecretConfig::Source;
  switch (secret.source) {
    case Source::file:
      return read_file_secret(secret.location, what, true);
    case Source::env: {
      const char* value = std::getenv(secret.location.c_str());
      if (value == nullptr) {
        return fail(fmt::format("{}: the variable is not set in the daemon's environment", what));
      }
      const std::size_t size = std::strlen(value);
      if (size > kMaxSecretBytes) {
        return fail(
            fmt::format("{} is over the {} KiB a secret may have", what, kMaxSecretBytes / 1024));
      }
      return std::string(value, size);
    }
    case Source::credential: {
      const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
      if (dir == nullptr || *dir == '\0') {
        return fail(fmt::format(
            "{}: $CREDENTIALS_DIRECTORY is not set (start the daemon from a systemd unit with "
            "LoadCredential={}:... or LoadCredentialEncrypted=)",
            what, secret.location));
      }
      // systemd makes the directory and its files, readable by the service's
      // user only; their owner is not ours to check.
      return read_file_secret(fmt::format("{}/{}", dir, secret.location), what, false);
    }
  }
  return fail(what + ": unknown source");
}

SecretRedactor::SecretRedactor(const std::map<std::string, std::string>& secrets) {
  auto add = [&](const std::string& name, std::string_view value) {
    if (value.size() < kMinRedactedBytes) return;
    for (const Pattern& p : patterns_) {
      if (p.value == value) return;
    }
    Pattern p;
    p.value.assign(value);
    p.replacement = fmt::format("[secret:{}]", name);
    p.border.assign(value.size(), 0);
    for (std::size_t i = 1, k = 0; i < value.size(); ++i) {
      while (k > 0 && value[i] != value[k]) k = p.border[k - 1];
      if (value[i] == value[k]) ++k;
      p.border[i] = k;
    }
    patterns_.push_back(std::move(p));
  };
  for (const auto& [name, value] : secrets) {
    std::string_view v = value;
    add(name, v);
    if (v.ends_with('\n')) {
      v.remove_suffix(1);
      if (v.ends_with('\r')) v.remove_suffix(1);
      add(name, v);
    }
  }
  std::stable_sort(patterns_.begin(), patterns_.end(), [](const Pattern& a, const Pattern& b) {
    return a.value.size() > b.value.size();
  });
}

SecretRedactor::~SecretRedactor() {
  wipe_all();
}

SecretRedactor& SecretRedactor::operator=(SecretRedactor&& other) noexcept {
  if (this != &other) {
    wipe_all();
    patterns_ = std::move(other.patterns_);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

void SecretRedactor::wipe_all() noexcept {
  for (Pattern& p : patterns_) wipe(p.value);
  wipe(pending_);
}

void SecretRedactor::redact(std::string& text) const {
  for (const Pattern& p : patterns_) {
    for (std::size_t at = text.find(p.value); at != std::string::npos;
         at = text.find(p.value, at + p.replacement.size())) {
      text.replace(at, p.value.size(), p.replacement);
    }
  }
}

std::size_t SecretRedactor::held_suffix(std::string_view text) const {
  std::size_t held = 0;
  for (const Pattern& p : patterns_) {
    // Only the last size-1 bytes can start a proper prefix that runs to the end.
    const std::size_t window = std::min(text.size(), p.value.size() - 1);
    std::size_t k = 0;  // KMP state: matched prefix length
    for (std::size_t i = text.size() - window; i < text.size(); ++i) {
      while (k > 0 && text[i] != p.value[k]) k = p.border[k - 1];
      if (text[i] == p.value[k]) ++k;
      if (k == p.value.size()) k = p.border[k - 1];  // a whole value: not a proper prefix
    }
    held = std::max(held, k);
  }
  return held;
}

std::string SecretRedactor::feed(std::string_view bytes) {
  if (patterns_.empty()) return std::string(bytes);
  pending_.append(bytes);
  redact(pending_);
  const std::size_t held = held_suffix(pending_);
  std::string out = pending_.substr(0, pending_.size() - held);
  // Keep the held bytes at the front; wipe what moved out.
  std::string rest = pending_.substr(pending_.size() - held);
  wipe(pending_);
  pending_ = std::move(rest);
  return out;
}

std::string SecretRedactor::finish() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace jobhost::exec
