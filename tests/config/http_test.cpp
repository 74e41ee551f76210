// [http]: listen, allow_remote, token_file, per_job_metrics, and the rules
// that keep the server on loopback unless remote access is asked for and
// guarded by a token file only its owner can read.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "config/config.h"
#include "config/temp_config.h"

namespace fs = std::filesystem;
using jobhost::config::ConfigError;
using jobhost::config::load_config;
using jobhost::config::test::TempConfig;

namespace {

std::string listing(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

// What sits at <config dir>/token before loading.
struct TokenFile {
  enum Kind { none, file, directory } kind = none;
  std::string text = "s3cret\n";
  mode_t mode = 0600;
};

void make_token(const fs::path& path, const TokenFile& token) {
  if (token.kind == TokenFile::directory) fs::create_directory(path);
  if (token.kind != TokenFile::file) return;
  std::ofstream(path) << token.text;
  ::chmod(path.c_str(), token.mode);
}

}  // namespace

TEST_CASE("[http]: what loads, and what is refused at its line:col", "[config][http]") {
  struct Case {
    std::string toml;
    TokenFile token;
    const char* where;  // "line:col" of the error; nullptr: loads
    const char* says;   // a substring of the message
  };
  const TokenFile good{TokenFile::file};
  const Case cases[] = {
      // Loopback, or off: nothing else needed.
      {"[http]\nlisten = \"127.0.0.1:9187\"\n", {}, nullptr, ""},
      {"[http]\nlisten = \"127.8.9.10:0\"\n", {}, nullptr, ""},
      {"[http]\nlisten = \"[::1]:9187\"\n", {}, nullptr, ""},
      {"[http]\nlisten = \"localhost:9187\"\n", {}, nullptr, ""},
      {"[http]\nlisten = \"\"\n", {}, nullptr, ""},
      {"[http]\nlisten = \"\"\nallow_remote = true\n", {}, nullptr, ""},
      {"[http]\nper_job_metrics = false\n", {}, nullptr, ""},
      {"[http]\ntoken_file = \"token\"\n", good, nullptr, ""},
      // Remote: allow_remote and a token file, both.
      {"[http]\nlisten = \"0.0.0.0:9187\"\nallow_remote = true\ntoken_file = \"token\"\n", good,
       nullptr, ""},
      {"[http]\nlisten = \"[::]:9187\"\nallow_remote = true\ntoken_file = \"token\"\n", good,
       nullptr, ""},
      {"[http]\nlisten = \"0.0.0.0:9187\"\n",
       {},
       "2:10",
       "listen in [http]: \"0.0.0.0:9187\" is not a loopback address"},
      {"[http]\nlisten = \"192.168.1.4:80\"\ntoken_file = \"token\"\n", good, "2:10",
       "set allow_remote = true and token_file"},
      {"[http]\nlisten = \"[::ffff:10.0.0.1]:80\"\n", {}, "2:10", "is not a loopback address"},
      {"[http]\nallow_remote = true\nlisten = \"0.0.0.0:9187\"\n",
       {},
       "2:16",
       "allow_remote in [http]: listening on \"0.0.0.0:9187\" (not loopback) also needs "
       "token_file"},
      // The token file.
      {"[http]\ntoken_file = \"token\"\n", {}, "2:14", "No such file or directory"},
      {"[http]\ntoken_file = \"token\"\n", {TokenFile::directory}, "2:14", "is not a regular file"},
      {"[http]\ntoken_file = \"token\"\n", {TokenFile::file, "", 0600}, "2:14", "is empty"},
      {"[http]\ntoken_file = \"token\"\n", {TokenFile::file, " \n\n", 0600}, "2:14", "is empty"},
      {"[http]\ntoken_file = \"token\"\n",
       {TokenFile::file, "t\n", 0644},
       "2:14",
       "is open to group or others (mode 0644); run `chmod 600 "},
      {"[http]\ntoken_file = \"token\"\n", {TokenFile::file, "t\n", 0640}, "2:14", "chmod 600"},
      {"[http]\ntoken_file = \"token\"\n", {TokenFile::file, "t\n", 0604}, "2:14", "chmod 600"},
      {"[http]\ntoken_file = \"token\"\n",
       {TokenFile::file, std::string(5000, 't'), 0600},
       "2:14",
       "larger than 4 KiB"},
      {"[http]\ntoken_file = \"\"\n", {}, "2:14", "must not be empty"},
      {"[http]\ntoken_file = \"~/token\"\n", {}, "2:14", "\"~\" is not expanded"},
      // Types and addresses.
      {"[http]\nallow_remote = \"yes\"\n", {}, "2:16", "expected true or false, got string"},
      {"[http]\nper_job_metrics = 1\n", {}, "2:19", "expected true or false, got integer"},
      {"[http]\nlisten = \"example.org:80\"\n",
       {},
       "2:10",
       "\"example.org\" is not an IP address (host names are not resolved)"},
      {"[http]\nlisten = \"300.1.1.1:80\"\n", {}, "2:10", "is not an IP address"},
      {"[http]\ntoken = \"x\"\n",
       {},
       "2:1",
       "unknown key \"token\" in [http] (known keys: \"listen\""},
  };
  for (const auto& c : cases) {
    INFO(c.toml << "token kind " << c.token.kind);
    TempConfig file(c.toml);
    make_token(file.dir() / "token", c.token);
    auto config = load_config(file.file());
    if (c.where == nullptr) {
      INFO((config ? "" : listing(config.error())));
      CHECK(config.has_value());
      continue;
    }
    REQUIRE_FALSE(config.has_value());
    const std::string all = listing(config.error());
    INFO(all);
    REQUIRE(config.error().size() == 1);
    CHECK(all.find(std::string(":") + c.where + ": ") != std::string::npos);
    CHECK(all.find(c.says) != std::string::npos);
  }
}

TEST_CASE("[http] values land in HttpConfig; token_file is relative to the config file",
          "[config][http]") {
  TempConfig file(
      "[http]\nlisten = \"0.0.0.0:8080\"\nallow_remote = true\ntoken_file = \"secrets/../token\"\n"
      "per_job_metrics = true\n");
  make_token(file.dir() / "token", {TokenFile::file});
  fs::create_directory(file.dir() / "secrets");
  auto config = load_config(file.file());
  REQUIRE(config.has_value());
  CHECK(config->http.listen == "0.0.0.0:8080");
  CHECK(config->http.allow_remote);
  CHECK(config->http.token_file == file.dir() / "token");
  CHECK(config->http.per_job_metrics == std::optional<bool>(true));

  TempConfig plain("");
  auto defaults = load_config(plain.file());
  REQUIRE(defaults.has_value());
  CHECK(defaults->http.listen == "127.0.0.1:9187");
  CHECK_FALSE(defaults->http.allow_remote);
  CHECK(defaults->http.token_file.empty());
  CHECK_FALSE(defaults->http.per_job_metrics.has_value());
}
