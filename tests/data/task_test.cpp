// Synthetic task generators: disjoint splits, gold answers accepted by the
// task's own checker, worked solutions that reach the gold, seeded determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "data/arithmetic_task.h"
#include "data/countdown_task.h"
#include "data/sum_task.h"
#include "data/task.h"

namespace zerorl::data {
namespace {

// The problem's identity, computed here independently of the task's key().
std::string problem_key(const Example& ex) {
  if (ex.task == "countdown") {
    auto n = ex.meta["numbers"].get<std::vector<int64_t>>();
    std::sort(n.begin(), n.end());
    std::string k;
    for (auto v : n) k += std::to_string(v) + " ";
    return k + "-> " + std::to_string(ex.meta["target"].get<int64_t>());
  }
  return ex.prompt;
}

TaskConfig config(const std::string& name, uint64_t seed) {
  TaskConfig c;
  c.name = name;
  c.seed = seed;
  if (name == "multiplication") {
    c.min_digits = 1;
    c.max_digits = 2;
  }
  if (name == "sum") {
    c.min_digits = 1;
    c.max_digits = 2;
    c.min_terms = 2;
    c.max_terms = 4;
  }
  if (name == "countdown") {
    c.num_count = 3;
    c.max_number = 30;
    c.max_target = 100;
  }
  return c;
}

class EachTask : public ::testing::TestWithParam<std::string> {};

TEST_P(EachTask, TestSplitNeverOverlapsTrainEvenAcrossSeeds) {
  auto train = make_task(config(GetParam(), 1))->generate_split(Split::kTrain, 2000);
  auto test = make_task(config(GetParam(), 2))->generate_split(Split::kTest, 150);
  std::set<std::string> train_keys;
  for (auto& ex : train) train_keys.insert(problem_key(ex));
  EXPECT_EQ(train_keys.size(), train.size()) << "train split has duplicates";
  for (auto& ex : test) EXPECT_EQ(train_keys.count(problem_key(ex)), 0u) << ex.prompt;
}

TEST_P(EachTask, GoldAnswersAndWorkedSolutionsPassTheTasksChecker) {
  auto task = make_task(config(GetParam(), 3));
  for (Split split : {Split::kTrain, Split::kTest}) {
    for (auto& ex : task->generate_split(split, 300)) {
      EXPECT_EQ(task->split_of(ex), split);
      auto verdict = task->check(ex.answer, ex);
      EXPECT_TRUE(verdict.correct) << ex.prompt << " gold " << ex.answer << ": " << verdict.reason;
      // The worked solution ends "So <expr>=<value>." and its value is the gold's.
      std::string w = task->worked_solution(ex);
      ASSERT_GE(w.size(), 2u);
      std::string last = w.substr(w.rfind('=') + 1);
      last.pop_back();  // the final '.'
      std::string value =
          ex.task == "countdown" ? std::to_string(ex.meta["target"].get<int64_t>()) : ex.answer;
      EXPECT_EQ(last, value) << w;
      EXPECT_GE(count_worked_steps(w), 1) << w;
      EXPECT_FALSE(task->check("12345678", ex).correct) << ex.prompt;
    }
  }
}

TEST_P(EachTask, SameSeedSameProblemsOtherSeedOthers) {
  auto a = make_task(config(GetParam(), 5))->generate_split(Split::kTrain, 50);
  auto b = make_task(config(GetParam(), 5))->generate_split(Split::kTrain, 50);
  auto c = make_task(config(GetParam(), 6))->generate_split(Split::kTrain, 50);
  int same_ab = 0, same_ac = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    same_ab += a[i].prompt == b[i].prompt && a[i].id == b[i].id;
    same_ac += a[i].prompt == c[i].prompt;
  }
  EXPECT_EQ(same_ab, 50);
  EXPECT_LT(same_ac, 10);
}

INSTANTIATE_TEST_SUITE_P(Tasks, EachTask,
                         ::testing::Values("addition", "multiplication", "sum", "countdown"));

TEST(Arithmetic, DifficultyKnobSetsOperandDigits) {
  TaskConfig c = config("addition", 1);
  c.min_digits = c.max_digits = 5;
  for (auto& ex : make_task(c)->generate_split(Split::kTrain, 100)) {
    EXPECT_EQ(std::to_string(ex.meta["a"].get<uint64_t>()).size(), 5u);
    EXPECT_EQ(std::to_string(ex.meta["b"].get<uint64_t>()).size(), 5u);
  }
}

TEST(Arithmetic, WorkedAdditionShowsEveryColumnAndFinalCarry) {
  TaskConfig c = config("addition", 1);
  ArithmeticTask task(c);
  Example ex;
  ex.meta = {{"a", 987}, {"b", 45}, {"op", "+"}};
  ex.answer = "1032";
  EXPECT_EQ(task.worked_solution(ex),
            "7+5=12, write 2 carry 1. 8+4+1=13, write 3 carry 1. 9+0+1=10, write 0 carry 1. "
            "write 1. So 987+45=1032.");
}

// Hand-checked: 47+85=132, 132+36=168; 9+0=9, 9+7=16, 16+305=321... (see below).
TEST(Sum, WorkedSolutionIsTheChainOfRunningSums) {
  SumTask task(config("sum", 1));
  Example ex;
  ex.task = "sum";
  ex.meta = {{"terms", {47, 85, 36}}, {"level", 3}};
  ex.answer = "168";
  EXPECT_EQ(task.worked_solution(ex), "47+85=132. 132+36=168. So 47+85+36=168.");
  ex.meta = {{"terms", {9, 0, 7, 305, 99}}, {"level", 5}};
  ex.answer = "420";
  EXPECT_EQ(task.worked_solution(ex),
            "9+0=9. 9+7=16. 16+305=321. 321+99=420. So 9+0+7+305+99=420.");
  EXPECT_TRUE(task.check("420", ex).correct);
  EXPECT_TRUE(task.check(" 420. ", ex).correct);
  EXPECT_FALSE(task.check("421", ex).correct);
  EXPECT_FALSE(task.check("9+0+7+305+99", ex).correct);
  ex.meta = {{"terms", {58, 64}}, {"level", 2}};
  EXPECT_EQ(task.worked_solution(ex), "58+64=122. So 58+64=122.");
}

// The "remaining" chain names the terms still to add at every step but the
// last, in the worked solution and around a check, whose restatement names
// them again so that the next term is in the line just written.
TEST(Sum, RemainingChainNamesTheTermsLeftAtEveryStepAndAfterACheck) {
  TaskConfig c = config("sum", 1);
  c.chain = "remaining";
  SumTask task(c);
  Example ex;
  ex.task = "sum";
  ex.meta = {{"terms", {47, 85, 36, 25}}, {"level", 4}};
  ex.answer = "193";
  EXPECT_EQ(task.worked_solution(ex),
            "47+85=132, left 36+25. 132+36=168, left 25. 168+25=193. So 47+85+36+25=193.");
  bool saw_first = false, saw_second = false;
  for (uint64_t variant = 0; variant < 40; ++variant) {
    const std::string r = task.reflective_solution(ex, variant, /*slip=*/false);
    // A check falls on the first or second pair, never the last; confirming.
    if (r.find("Wait, let me recheck 47+85: 7+5=12, write 2 carry 1. 4+8+1=13, write 3 carry 1. "
               "write 1. 47+85=132, left 36+25. 132+36=168, left 25.") != std::string::npos)
      saw_first = true;
    if (r.find("132+36=168, left 25. Wait, let me recheck 132+36: ") != std::string::npos) {
      EXPECT_NE(r.find("132+36=168, left 25. 168+25=193. So"), std::string::npos) << r;
      saw_second = true;
    }
    EXPECT_EQ(r.find("168+25=193. Wait"), std::string::npos) << r;
    const std::string s = task.reflective_solution(ex, variant, /*slip=*/true);
    // The slipped value is stated with the terms left, and restated right with them.
    const size_t w = s.find(" Wait, let me recheck ");
    ASSERT_NE(w, std::string::npos) << s;
    const std::string slipped = s.substr(0, w);
    const auto ends_with = [&](const std::string& tail) {
      return slipped.size() >= tail.size() &&
             slipped.compare(slipped.size() - tail.size(), tail.size(), tail) == 0;
    };
    EXPECT_TRUE(ends_with(", left 36+25.") || ends_with(", left 25.")) << s;
    EXPECT_NE(s.find("168+25=193. So 47+85+36+25=193."), std::string::npos) << s;
  }
  EXPECT_TRUE(saw_first && saw_second);
  // The running chain (the default) is unchanged.
  SumTask running(config("sum", 1));
  EXPECT_EQ(running.worked_solution(ex), "47+85=132. 132+36=168. 168+25=193. So 47+85+36+25=193.");
}

// The level (number of terms) is uniform over min_terms..max_terms, the
// prompt names every term, the gold is their sum (recomputed here from the
// prompt text), and a worked solution has one step per pair plus the "So".
TEST(Sum, LevelsAreAFixedUniformMixAndAnswersSumThePrompt) {
  TaskConfig c = config("sum", 7);
  c.min_terms = 2;
  c.max_terms = 5;
  c.min_digits = c.max_digits = 2;
  auto task = make_task(c);
  const int n = 4000;
  std::map<int, int> level_count;
  static const std::regex number(R"(\d+)");
  for (auto& ex : task->generate_split(Split::kTrain, n)) {
    const int level = ex.meta["level"].get<int>();
    ++level_count[level];
    std::string p = ex.prompt;
    ASSERT_EQ(p.rfind("What is ", 0), 0u) << p;
    uint64_t total = 0;
    int count = 0;
    for (auto it = std::sregex_iterator(p.begin(), p.end(), number); it != std::sregex_iterator();
         ++it, ++count) {
      EXPECT_EQ(it->str().size(), 2u) << p;
      total += std::stoull(it->str());
    }
    EXPECT_EQ(count, level) << p;
    EXPECT_EQ(ex.answer, std::to_string(total)) << p;
    EXPECT_EQ(count_worked_steps(task->worked_solution(ex)), level) << p;
  }
  ASSERT_EQ(level_count.size(), 4u);
  const double sigma = std::sqrt(0.25 * 0.75 / n);
  for (auto [level, k] : level_count) {
    EXPECT_GE(level, 2);
    EXPECT_LE(level, 5);
    EXPECT_NEAR(k / double(n), 0.25, 4 * sigma) << "level " << level;
  }
}

TEST(Arithmetic, IntegerCheckerAcceptsHarmlessFormattingOnly) {
  EXPECT_TRUE(check_integer_answer(" 1,234. ", "1234").correct);
  EXPECT_TRUE(check_integer_answer("= 0042", "42").correct);
  EXPECT_TRUE(check_integer_answer("-7", "-7").correct);
  EXPECT_FALSE(check_integer_answer("1,23", "123").correct);
  EXPECT_FALSE(check_integer_answer("43", "42").correct);
  EXPECT_EQ(check_integer_answer("forty-two", "42").reason, "not an integer");
  EXPECT_FALSE(check_integer_answer("", "42").correct);
  EXPECT_FALSE(check_integer_answer("4 2", "42").correct);
}

TEST(Countdown, CheckerEnforcesNumbersOnceAndExactValue) {
  std::vector<int64_t> nums = {25, 5, 3};
  EXPECT_TRUE(check_countdown("(25+5)*3", nums, 90).correct);
  EXPECT_TRUE(check_countdown(" 3 × (5 + 25) = 90", nums, 90).correct);
  EXPECT_FALSE(check_countdown("(25+5)*3", nums, 91).correct);
  EXPECT_FALSE(check_countdown("25*3+5+5", nums, 85).correct);            // 5 twice
  EXPECT_FALSE(check_countdown("25*3", nums, 75).correct);                // 5 unused
  EXPECT_FALSE(check_countdown("(25+5)*4", nums, 120).correct);           // 4 not given
  EXPECT_FALSE(check_countdown("25/(5-5)*3", {25, 5, 5, 3}, 0).correct);  // division by zero
  EXPECT_FALSE(check_countdown("(25+5*3", nums, 40).correct);
  EXPECT_TRUE(check_countdown("(25/5+3)", nums, 8).correct);
  EXPECT_TRUE(check_countdown("3/5*25", nums, 15).correct);  // non-integer step, integer result
  EXPECT_FALSE(check_countdown("5/3*25", nums, 41).correct);
}

TEST(TaskConfig, BuiltFromARecipeSectionAndValidated) {
  auto r = Recipe::from_string("task:\n  name: countdown\n  num_count: 5\n  seed: 9\n", "t.yaml");
  auto c = TaskConfig::from(r.section("task"));
  EXPECT_EQ(c.name, "countdown");
  EXPECT_EQ(c.num_count, 5);
  EXPECT_EQ(c.seed, 9u);
  auto bad = Recipe::from_string("task:\n  name: addition\n  max_digits: 0\n", "b.yaml");
  try {
    TaskConfig::from(bad.section("task"));
    FAIL() << "max_digits 0 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.yaml"), std::string::npos) << e.what();
  }
  auto sum = Recipe::from_string("task:\n  name: sum\n  min_terms: 3\n  max_terms: 6\n", "s.yaml");
  auto s = TaskConfig::from(sum.section("task"));
  EXPECT_EQ(s.min_terms, 3);
  EXPECT_EQ(s.max_terms, 6);
  EXPECT_EQ(s.chain, "running");
  auto rem = Recipe::from_string("task:\n  name: sum\n  chain: remaining\n", "r.yaml");
  EXPECT_EQ(TaskConfig::from(rem.section("task")).chain, "remaining");
  auto badchain = Recipe::from_string("task:\n  name: sum\n  chain: left\n", "d.yaml");
  EXPECT_THROW(TaskConfig::from(badchain.section("task")), Error);
  auto one = Recipe::from_string("task:\n  name: sum\n  min_terms: 1\n", "o.yaml");
  EXPECT_THROW(TaskConfig::from(one.section("task")), Error);
  auto typo = Recipe::from_string("task:\n  name: additon\n", "c.yaml");
  EXPECT_THROW(TaskConfig::from(typo.section("task")), Error);
}

}  // namespace
}  // namespace zerorl::data
