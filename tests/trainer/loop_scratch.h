// The scratch folder, tiny policy and recipe shared by the GoogleTest files of
// the GRPO loop (grpo_trainer_test, dynamic_sampling_test, loop_options_test):
// one folder per file and process under the temp directory, removed when
// every test of the program passed (kept for a look after a failure).
// Declare the folder once per file with ZR_LOOP_SCRATCH(tag).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tiny_run.h"
#include "trainer/run_dir.h"

namespace zerorl::test {

// <temp>/zerorl_<tag>_<pid>, created on first use.
inline std::filesystem::path scratch_dir(const std::string& tag) {
  const std::filesystem::path d =
      std::filesystem::temp_directory_path() / ("zerorl_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

class RemoveScratchWhenPassed : public ::testing::Environment {
 public:
  explicit RemoveScratchWhenPassed(std::string tag) : tag_(std::move(tag)) {}
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->Passed()) remove_tree(scratch_dir(tag_).string());
  }

 private:
  std::string tag_;
};

}  // namespace zerorl::test

// In a file's anonymous namespace: scratch(), its removal, tiny_policy()
// (tiny_run.h's policy, written once into the folder) and
// recipe_text(name, extra) (tiny_run.h's recipe with its runs under the folder).
#define ZR_LOOP_SCRATCH(tag)                                                                       \
  std::filesystem::path scratch() { return ::zerorl::test::scratch_dir(tag); }                     \
  [[maybe_unused]] ::testing::Environment* const kRemoveScratch =                                  \
      ::testing::AddGlobalTestEnvironment(new ::zerorl::test::RemoveScratchWhenPassed(tag));       \
  std::string tiny_policy() {                                                                      \
    static std::string path;                                                                       \
    if (path.empty()) {                                                                            \
      path = (scratch() / "policy.h5").string();                                                   \
      ::zerorl::test::write_tiny_policy(path);                                                     \
    }                                                                                              \
    return path;                                                                                   \
  }                                                                                                \
  std::string recipe_text(const std::string& name, const std::string& extra = "") {                \
    return ::zerorl::test::tiny_recipe(name, (scratch() / "runs").string(), tiny_policy(), extra); \
  }
