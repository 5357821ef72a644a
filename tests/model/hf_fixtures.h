// Hugging Face reference fixtures for the model tests, generated once per
// build directory by make_hf_fixtures.py (one Python process) and reused by
// every test process until the script changes.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <unistd.h>

namespace zerorl::model::testing {

inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Recursive delete without std::filesystem::remove_all: libtorch.so exports
// its own copy of that symbol, which wins at dynamic link time and crashes
// (null call) on a non-empty directory.  Iterators are not exported, so this
// post-order walk uses libstdc++'s.
inline void remove_tree(const std::filesystem::path& p) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(p, ec))) return;
  if (fs::is_directory(fs::symlink_status(p, ec)))
    for (const auto& e : fs::directory_iterator(p, ec)) remove_tree(e.path());
  fs::remove(p, ec);
}

// Returns the fixture folder, or "" with *why set when it cannot be made.
inline std::string hf_fixture_dir(std::string* why) {
  namespace fs = std::filesystem;
  const std::string script = std::string(ZR_SOURCE_DIR) + "/tests/model/make_hf_fixtures.py";
  const std::string dir = std::string(ZR_BINARY_DIR) + "/model_hf_fixtures";
  const std::string stamp = std::to_string(std::hash<std::string>{}(read_text(script)));
  if (fs::exists(dir + "/STAMP") && read_text(dir + "/STAMP") == stamp) return dir;
  if (!fs::exists(ZR_PYTHON)) {
    *why = std::string("no Python oracle at ") + ZR_PYTHON + " (run scripts/setup.sh)";
    return "";
  }
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  remove_tree(tmp);
  std::string cmd = std::string(ZR_PYTHON) + " " + script + " " + tmp + " > " + tmp + ".log 2>&1";
  fs::create_directories(tmp);
  if (std::system(cmd.c_str()) != 0) {
    *why = "make_hf_fixtures.py failed: " + read_text(tmp + ".log");
    return "";
  }
  std::ofstream(tmp + "/STAMP") << stamp;
  fs::remove(tmp + ".log");
  std::error_code ec;
  if (!(fs::exists(dir + "/STAMP") &&
        read_text(dir + "/STAMP") == stamp)) {  // another process may have won
    remove_tree(dir);
    fs::rename(tmp, dir, ec);
  }
  remove_tree(tmp);
  return dir;
}

}  // namespace zerorl::model::testing

#define ZR_HF_FIXTURES(var)                                  \
  std::string var;                                           \
  {                                                          \
    std::string why_;                                        \
    var = ::zerorl::model::testing::hf_fixture_dir(&why_);   \
    if (var.empty()) {                                       \
      if (why_.find("no Python") == 0) GTEST_SKIP() << why_; \
      FAIL() << why_;                                        \
    }                                                        \
  }
