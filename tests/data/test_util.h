// Shared helpers for the data tests: scratch folders and the Python oracle.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace zerorl::data::testing {

// Runs a shell command; returns its exit status.
inline int run_shell(const std::string& cmd) { return std::system(cmd.c_str()); }

// Deletes a folder tree.  Not std::filesystem::remove_all: the binary links
// libtorch.so, which exports its own copy of that symbol, and that copy
// crashes (SIGSEGV, null call) here.
inline void remove_tree(const std::filesystem::path& dir) {
  run_shell("rm -rf '" + dir.string() + "'");
}

// A fresh folder under the build tree, unique per name and process (ctest -j
// runs test cases of one suite in parallel processes).
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(ZR_BINARY_DIR) / "test_scratch" / "data" /
             (name + "." + std::to_string(::getpid()));
  remove_tree(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void spit(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

inline std::string oracle_script() {
  return std::string(ZR_SOURCE_DIR) + "/tests/data/bpe_oracle.py";
}

// Whether the venv python can import `tokenizers` (the oracle); asked once.
inline bool have_tokenizers() {
  static const bool ok =
      run_shell(std::string(ZR_PYTHON) + " -c 'import tokenizers' >/dev/null 2>&1") == 0;
  return ok;
}

}  // namespace zerorl::data::testing
