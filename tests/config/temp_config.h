// A config file in a fresh temporary directory, removed with the object.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace jobhost::config::test {

class TempConfig {
 public:
  explicit TempConfig(std::string_view text, std::string_view name = "jobhost.toml") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "jobhost-config-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    file_ = dir_ / name;
    std::ofstream(file_) << text;
  }
  ~TempConfig() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempConfig(const TempConfig&) = delete;
  TempConfig& operator=(const TempConfig&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path file_;
};

}  // namespace jobhost::config::test
