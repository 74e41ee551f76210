// A config file in a fresh temporary directory, removed with the object.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

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

}  // namespace jobhost::config::test
