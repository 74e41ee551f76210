// Secrets of a run: read from their source when the run starts, and kept out
// of everything the host stores or logs (docs/security.md "Environment and
// secrets"). A value never appears in an error message.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "config/config.h"

namespace jobhost::exec {

// Largest secret value read.
inline constexpr std::size_t kMaxSecretBytes = 64 * 1024;
// Values shorter than this are not redacted: replacing every "ab" in a run's
// output would mangle it and still tell the value away.
inline constexpr std::size_t kMinRedactedBytes = 4;

// Reads the value of `secret` from its source, checking it first:
//  - file: a regular file (no symlink at the last component), owned by the
//    daemon's effective user, no access for group or others, at most
//    kMaxSecretBytes;
//  - env: the variable is set in the daemon's environment;
//  - credential: $CREDENTIALS_DIRECTORY is set and the file there is a
//    regular file of at most kMaxSecretBytes (systemd made it; no owner check).
// The value is returned as its bytes, unchanged. Errors say what to fix and
// name the secret and the source, never the value.
Result<std::string> read_secret(const config::SecretConfig& secret);

// Overwrites the bytes of `value` (explicit_bzero) and empties it.
void wipe(std::string& value) noexcept;

// Replaces exact occurrences of a run's secret values by "[secret:NAME]".
// Each value of at least kMinRedactedBytes is looked for, and also the value
// without a trailing "\n" or "\r\n" (what a file written with echo holds).
// Longer values are replaced first. Keeps copies of the values, wiped on
// destruction.
class SecretRedactor {
 public:
  SecretRedactor() = default;
  // `secrets`: name -> value.
  explicit SecretRedactor(const std::map<std::string, std::string>& secrets);
  ~SecretRedactor();
  SecretRedactor(SecretRedactor&& other) noexcept = default;
  SecretRedactor& operator=(SecretRedactor&& other) noexcept;
  SecretRedactor(const SecretRedactor&) = delete;
  SecretRedactor& operator=(const SecretRedactor&) = delete;

  bool empty() const { return patterns_.empty(); }

  // Replaces every occurrence in `text`, a whole message or line.
  void redact(std::string& text) const;

  // A byte stream (a run's stdout+stderr) in pieces: returns what can be
  // passed on, redacted, and holds back the shortest tail of what came in
  // that could be the start of a value split across pieces (usually
  // nothing). finish() returns what is held back once the stream ended.
  std::string feed(std::string_view bytes);
  std::string finish();

 private:
  struct Pattern {
    std::string value;
    std::string replacement;          // "[secret:NAME]"
    std::vector<std::size_t> border;  // KMP: longest proper border of value[0..i]
  };
  void wipe_all() noexcept;
  // Length of the longest suffix of `text` that is a proper prefix of a value.
  std::size_t held_suffix(std::string_view text) const;

  std::vector<Pattern> patterns_;  // longest value first
  std::string pending_;            // held back by feed()
};

}  // namespace jobhost::exec
