// Format reward (strict / lenient) and the Countdown reward.
#include <gtest/gtest.h>

#include "rewards/countdown_reward.h"
#include "rewards/format_reward.h"

namespace zr = zerorl::rewards;

namespace {
double fmt(const std::string& text, bool strict) {
  zr::FormatRewardConfig c;
  c.strict = strict;
  zr::Sample s;
  s.completion = text;
  return zr::FormatReward(c).score(s).value;
}
zr::RewardResult countdown(const std::string& completion, const std::string& meta) {
  zr::Sample s;
  s.completion = completion;
  s.metadata_json = meta;
  return zr::CountdownReward().score(s);
}
}  // namespace

TEST(FormatReward, StrictWantsExactlyThinkThenAnswer) {
  EXPECT_EQ(fmt("<think>a</think><answer>1</answer>", true), 1.0);
  EXPECT_EQ(fmt("  <think>a</think>\n<answer>1</answer>\n<|endoftext|>", true), 1.0);
  EXPECT_EQ(fmt("<think>a</think><answer>1</answer> extra", true), 0.0);
  EXPECT_EQ(fmt("hi <think>a</think><answer>1</answer>", true), 0.0);
  EXPECT_EQ(fmt("<think>a</think>so<answer>1</answer>", true), 0.0);
  EXPECT_EQ(fmt("<answer>1</answer><think>a</think>", true), 0.0);
  EXPECT_EQ(fmt("<think>a</think><answer>1</answer><answer>2</answer>", true), 0.0);
  EXPECT_EQ(fmt("<think> </think><answer>1</answer>", true), 0.0);
  EXPECT_EQ(fmt("<think>a</think><answer>1", true), 0.0);
}

TEST(FormatReward, LenientAllowsTextAroundTheBlocks) {
  EXPECT_EQ(fmt("hi <think>a</think> so <answer>1</answer> bye", false), 1.0);
  EXPECT_EQ(fmt("<answer>1</answer><think>a</think>", false), 0.0);
  EXPECT_EQ(fmt("<think>a</think> no answer", false), 0.0);
}

// A prompt that ends in <think> (the tiny template's) opened the think
// block: the completion is checked as if it began with it, in both modes.
TEST(FormatReward, APromptEndingInThinkOpensTheBlock) {
  for (bool strict : {true, false}) {
    zr::FormatRewardConfig c;
    c.strict = strict;
    zr::Sample s;
    s.prompt = "User: What is 1 + 4?\nAssistant: <think> ";
    s.completion = "reasoning</think><answer>5</answer>";
    auto r = zr::FormatReward(c).score(s);
    EXPECT_EQ(r.value, 1.0) << r.error;
    s.completion = "<think>reasoning</think><answer>5</answer>";  // opened twice
    EXPECT_EQ(zr::FormatReward(c).score(s).value, 0.0);
    s.prompt = "User: What is 1 + 4?\nAssistant:";
    EXPECT_EQ(zr::FormatReward(c).score(s).value, 1.0);
    s.completion = "reasoning</think><answer>5</answer>";
    EXPECT_EQ(zr::FormatReward(c).score(s).value, 0.0);
  }
}

TEST(CountdownReward, EachNumberOnceAndTheTarget) {
  const std::string meta = R"({"numbers": [3, 5, 7], "target": 22})";
  auto r = countdown("<think>..</think><answer>3*5+7</answer>", meta);
  EXPECT_EQ(r.value, 1.0) << r.error;
  EXPECT_EQ(
      countdown("<answer>(7 - 5) * 3 = 6</answer>", R"({"nums": [3, 5, 7], "target": 6})").value,
      1.0);
  EXPECT_EQ(countdown("<answer>7*3+5-3</answer>", meta).value, 0.1);  // 3 used twice
  EXPECT_EQ(countdown("<answer>3*7</answer>", meta).value, 0.1);      // 5 unused
  EXPECT_EQ(countdown("<answer>3+5+7</answer>", meta).value, 0.1);    // 15 != 22
  EXPECT_EQ(countdown("<answer>7/(5-5)+3</answer>", meta).value, 0.0);
  EXPECT_EQ(countdown("<answer>import os</answer>", meta).value, 0.0);
  EXPECT_EQ(countdown("3*5+7", meta).value, 0.0);
  // Exact arithmetic: 7/3*3 is 7, with no float rounding.
  EXPECT_EQ(countdown("<answer>7/3*3</answer>", R"({"numbers": [7, 3, 3], "target": 7})").value,
            1.0);
  auto bad = countdown("<answer>1</answer>", "not json");
  EXPECT_EQ(bad.value, 0.0);
  EXPECT_FALSE(bad.error.empty());
  EXPECT_EQ(countdown("<answer>" + std::string(5000, '(') + "</answer>", meta).value, 0.0);
}
