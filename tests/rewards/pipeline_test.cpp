// RewardPipeline: weighted sums, per-sample isolation, threads, recipe.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "core/config.h"
#include "rewards/pipeline.h"

namespace zr = zerorl::rewards;

namespace {

// Scores completion length; throws on a completion that says "boom".
class LengthReward : public zr::Reward {
 public:
  zr::RewardResult score(const zr::Sample& s) const override {
    if (s.completion == "boom") throw std::runtime_error("exploded");
    zr::RewardResult r;
    r.value = (double)s.completion.size();
    r.components["chars"] = r.value;
    return r;
  }
};

std::vector<zr::Sample> samples(int n) {
  std::vector<zr::Sample> v;
  for (int i = 0; i < n; ++i) {
    zr::Sample s;
    s.gold = std::to_string(i % 7);
    s.completion = "<think>t</think> <answer>\\boxed{" + std::to_string(i % 5) + "}</answer>";
    if (i % 10 == 9) {  // symbolic answers: the GiNaC path, shared between threads
      s.gold = "2\\sqrt{" + std::to_string(i % 3 + 2) + "}";
      s.completion = "<answer>\\sqrt{" + std::to_string(4 * (i % 3 + 2) + (i % 20 == 9 ? 0 : 1)) +
                     "}</answer>";
    }
    v.push_back(s);
  }
  return v;
}

}  // namespace

TEST(RewardPipeline, WeightedSumKeepsEachComponent) {
  zr::RewardPipeline p(1);
  p.add("len", 0.5, std::make_unique<LengthReward>());
  p.add("acc", 2.0, zr::make_reward("math", zerorl::Recipe::from_string("{}").root()));
  zr::Sample s;
  s.gold = "4";
  s.completion = "<answer>4</answer>";
  auto r = p.score_one(s);
  const double len = (double)s.completion.size();
  EXPECT_DOUBLE_EQ(r.total, 0.5 * len + 2.0 * 1.0);
  EXPECT_DOUBLE_EQ(r.components.at("len"), len);
  EXPECT_DOUBLE_EQ(r.components.at("len.chars"), len);
  EXPECT_DOUBLE_EQ(r.components.at("acc"), 1.0);
  EXPECT_EQ(r.errors, (std::vector<std::string>{"", ""}));
}

TEST(RewardPipeline, AThrowingRewardCostsOnlyThatSample) {
  zr::RewardPipeline p(4);
  p.add("len", 1.0, std::make_unique<LengthReward>());
  std::vector<zr::Sample> v(3);
  v[0].completion = "abc";
  v[1].completion = "boom";
  v[2].completion = "de";
  auto r = p.score(v);
  EXPECT_DOUBLE_EQ(r[0].total, 3);
  EXPECT_DOUBLE_EQ(r[1].total, 0);
  EXPECT_NE(r[1].errors[0].find("exploded"), std::string::npos);
  EXPECT_DOUBLE_EQ(r[2].total, 2);
  EXPECT_EQ(p.error_counts()[0], 1);
}

TEST(RewardPipeline, ResultsDoNotDependOnThreadCount) {
  auto recipe = zerorl::Recipe::from_string(
      "rewards:\n  accuracy: {type: math, weight: 1.0}\n  format: {weight: 0.25, mode: lenient}\n");
  auto one = zr::build_reward_pipeline(recipe.section("rewards"), 1);
  auto four = zr::build_reward_pipeline(recipe.section("rewards"), 4);
  auto v = samples(300);
  auto a = one.score(v), b = four.score(v);
  ASSERT_EQ(a.size(), b.size());
  int correct = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].total, b[i].total) << i;
    EXPECT_EQ(a[i].values, b[i].values) << i;
    correct += a[i].values[0] > 0;
  }
  // Numeric samples (i % 10 != 9): gold i%7 vs answer i%5 agree when i%35 < 5.
  // Symbolic ones (i % 10 == 9): right when i % 20 == 9.
  int expected = 0;
  for (int i = 0; i < 300; ++i) expected += (i % 10 == 9) ? (i % 20 == 9) : (i % 35 < 5);
  EXPECT_EQ(correct, expected);
  EXPECT_EQ(one.names(), (std::vector<std::string>{"accuracy", "format"}));
}

TEST(RewardPipeline, RecipeErrorsNameTheKey) {
  auto bad = zerorl::Recipe::from_string("rewards:\n  acc: {type: maths}\n", "r.yaml");
  try {
    zr::build_reward_pipeline(bad.section("rewards"));
    FAIL() << "unknown type accepted";
  } catch (const zerorl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("maths"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("r.yaml"), std::string::npos) << e.what();
  }
  auto typo = zerorl::Recipe::from_string("rewards:\n  acc: {type: math, precison: 3}\n", "r.yaml");
  zr::build_reward_pipeline(typo.section("rewards"));
  EXPECT_THROW(typo.check_all_read(), zerorl::Error);
  auto empty = zerorl::Recipe::from_string("rewards: {}\n");
  EXPECT_THROW(zr::build_reward_pipeline(empty.section("rewards")), zerorl::Error);
}

TEST(RewardRegistry, CustomTypesCanBeRegistered) {
  zr::register_reward("length_test", [](const zerorl::ConfigNode&) {
    return std::unique_ptr<zr::Reward>(new LengthReward);
  });
  auto r = zr::make_reward("length_test", zerorl::Recipe::from_string("{}").root());
  zr::Sample s;
  s.completion = "abcd";
  EXPECT_DOUBLE_EQ(r->score(s).value, 4);
  auto names = zr::registered_rewards();
  for (const char* n : {"math", "format", "countdown", "plugin", "command", "length_test"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

TEST(RewardPipeline, BatchesFromSeveralThreadsShareThePool) {
  auto recipe = zerorl::Recipe::from_string("rewards:\n  accuracy: {type: math}\n");
  auto serial = zr::build_reward_pipeline(recipe.section("rewards"), 1);
  auto pooled = zr::build_reward_pipeline(recipe.section("rewards"), 3);
  auto v = samples(120);
  auto want = serial.score(v);
  std::vector<std::vector<zr::ScoredSample>> got(4);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep) got[t] = pooled.score(v);  // the pool is reused
    });
  for (auto& c : callers) c.join();
  for (auto& g : got) {
    ASSERT_EQ(g.size(), want.size());
    for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i].total, want[i].total) << i;
  }
}

// What samples.jsonl shows: each reward's extracted answer and reason, also
// for a plain wrong answer (not an error) and a right one.
TEST(RewardPipeline, AnswersAndReasonsAreKeptForWrongAnswersToo) {
  auto recipe = zerorl::Recipe::from_string(
      "rewards:\n  accuracy: {type: math}\n  format: {type: format, weight: 0.2}\n");
  auto p = zr::build_reward_pipeline(recipe.section("rewards"), 1);
  zr::Sample wrong, right, none;
  wrong.gold = right.gold = none.gold = "19";
  wrong.completion = "<think>2+7</think> <answer>18</answer>";
  right.completion = "<think>2+7</think> <answer>19</answer>";
  none.completion = "I do not know";
  auto s = p.score({wrong, right, none});
  ASSERT_EQ(s[0].answers.size(), 2u);
  ASSERT_EQ(s[0].reasons.size(), 2u);
  EXPECT_EQ(s[0].values[0], 0.0);
  EXPECT_EQ(s[0].errors[0], "");  // a wrong answer is a verdict, not an error
  EXPECT_EQ(s[0].answers[0], "18");
  EXPECT_NE(s[0].reasons[0], "");
  EXPECT_EQ(s[0].reasons[1], "well formed");
  EXPECT_EQ(s[1].answers[0], "19");
  EXPECT_NE(s[1].reasons[0], "");
  EXPECT_EQ(s[2].answers[0], "");
  EXPECT_EQ(s[2].reasons[0], "no answer found");
  EXPECT_NE(s[2].reasons[1], "");  // the format reward says what is missing
  EXPECT_EQ(s[2].reasons[1], s[2].errors[1]);
}
