// Shared-library reward plug-ins: the example plug-in built by CMake.
#include <gtest/gtest.h>

#include "core/config.h"
#include "rewards/pipeline.h"
#include "rewards/plugin_reward.h"

namespace zr = zerorl::rewards;

namespace {
const std::string kPlugin = std::string(ZR_BINARY_DIR) + "/plugins/libzr_example_reward_plugin.so";
}

TEST(PluginReward, LoadsTheExamplePluginAndScores) {
  zr::PluginRewardConfig c;
  c.path = kPlugin;
  c.options_json = R"({"max_chars": 4})";
  zr::PluginReward p(c);
  EXPECT_EQ(p.plugin_name(), "answer_length");
  zr::Sample s;
  s.completion = "<think>x</think><answer> 42 </answer>";
  EXPECT_DOUBLE_EQ(p.score(s).value, 1.0);
  s.completion = "<answer>12345678</answer>";
  EXPECT_DOUBLE_EQ(p.score(s).value, 0.5);
  s.completion = "no block";
  auto r = p.score(s);
  EXPECT_EQ(r.value, 0.0);
  EXPECT_NE(r.error.find("no <answer> block"), std::string::npos) << r.error;
  EXPECT_EQ(p.failures(), 1);
}

TEST(PluginReward, FromARecipeWithOptions) {
  auto recipe = zerorl::Recipe::from_string("rewards:\n  short: {type: plugin, path: " + kPlugin +
                                            ", options: {max_chars: 2}}\n");
  auto pipe = zr::build_reward_pipeline(recipe.section("rewards"), 2);
  zr::Sample s;
  s.completion = "<answer>1234</answer>";
  EXPECT_DOUBLE_EQ(pipe.score_one(s).total, 0.5);
  recipe.check_all_read();
}

TEST(PluginReward, LoadErrorsNameThePath) {
  zr::PluginRewardConfig c;
  c.path = "/nonexistent/libnothing.so";
  EXPECT_THROW({ zr::PluginReward p(c); }, zerorl::Error);
  c.path = "libm.so.6";  // a real library without the entry point
  try {
    zr::PluginReward p(c);
    FAIL();
  } catch (const zerorl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("zr_reward_plugin_entry"), std::string::npos) << e.what();
  }
  c.path = kPlugin;
  c.options_json = R"({"max_chars": -3})";
  try {
    zr::PluginReward p(c);
    FAIL();
  } catch (const zerorl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_chars must be a positive integer"), std::string::npos)
        << e.what();
  }
}
