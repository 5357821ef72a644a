// The recipe's comm: section (core/comm_config.h): defaults, and bad values
// refused naming the key and its line.
#include "core/comm_config.h"

#include <gtest/gtest.h>

using namespace zerorl;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    Recipe r = Recipe::from_string(yaml, "r.yaml");
    CommConfig::from(r.root());
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(CommConfig, DefaultsAreAutoAndTenMinutesAndResolveIntoTheRecipe) {
  Recipe r = Recipe::from_string("run: {name: x}\n", "r.yaml");
  const CommConfig c = CommConfig::from(r.root());
  EXPECT_EQ(c.backend, "auto");
  EXPECT_DOUBLE_EQ(c.timeout_s, 600);
  EXPECT_NE(r.dump().find("timeout_s: 600"), std::string::npos) << r.dump();
}

TEST(CommConfig, ReadsTheSectionAndOverrides) {
  Recipe r = Recipe::from_string("comm: {backend: mpi}\n", "r.yaml");
  r.apply_overrides({"comm.timeout_s=5"});
  const CommConfig c = CommConfig::from(r.root());
  EXPECT_EQ(c.backend, "mpi");
  EXPECT_DOUBLE_EQ(c.timeout_s, 5);
}

TEST(CommConfig, BadValuesNameTheKeyAndLine) {
  EXPECT_NE(error_of("run: {name: x}\ncomm:\n  timeout_s: -1\n")
                .find("r.yaml:3:3: comm.timeout_s must be a number of seconds >= 0"),
            std::string::npos);
  EXPECT_NE(error_of("comm: {timeout_s: .inf}\n").find("comm.timeout_s must be"),
            std::string::npos);
  EXPECT_NE(error_of("comm: {timeout_s: soon}\n").find("'comm.timeout_s' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of("comm: {backend: gloo}\n").find("'comm.backend' must be one of"),
            std::string::npos);
  // The bare form of before the section says what to write instead.
  EXPECT_NE(error_of("comm: mpi\n").find("r.yaml:1:1: 'comm' must be a section"), std::string::npos)
      << error_of("comm: mpi\n");
  EXPECT_NE(error_of("comm: mpi\n").find("write comm: {backend: mpi}"), std::string::npos);
}
