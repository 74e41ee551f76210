// A config file in a fresh temporary directory, removed with the object.
#pragma once

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "config/config.h"
#include "support/temp_dir.h"

namespace jobhost::config::test {

class TempConfig {
 public:
  explicit TempConfig(std::string_view text, std::string_view name = "jobhost.toml")
      : file_(dir_.path() / name) {
    std::ofstream(file_) << text;
  }

  const std::filesystem::path& dir() const { return dir_.path(); }
  const std::filesystem::path& file() const { return file_; }

 private:
  jobhost::testing::TempDir dir_;
  std::filesystem::path file_;
};

// The errors of loading `toml`, one "line:col: message" per line; "" when it loads.
inline std::string errors_of(const std::string& toml) {
  TempConfig file(toml);
  auto config = load_config(file.file());
  if (config) return "";
  std::string out;
  for (const auto& e : config.error()) {
    out += fmt::format("{}:{}: {}\n", e.where.line, e.where.column, e.message);
  }
  return out;
}

// The one job of `toml`; fails the test (with every error) when it does not load.
inline JobConfig job_of(const std::string& toml) {
  TempConfig file(toml);
  auto config = load_config(file.file());
  if (!config) {
    std::string all;
    for (const auto& e : config.error()) all += e.to_string() + "\n";
    FAIL(all);
  }
  REQUIRE(config->jobs.size() == 1);
  return config->jobs[0];
}

}  // namespace jobhost::config::test
