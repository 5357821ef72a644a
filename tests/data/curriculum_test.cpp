// The adaptive curriculum (data/curriculum.h, issue 19 item 1): its rule
// (a window of steps at the threshold moves to the next present level, the
// top level stays), exact save/restore, the recipe section's checks, and
// PromptSource's filtered stream (admitted examples only, in stream order,
// the same global batch at any world size, exact cursor resume).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "data/curriculum.h"
#include "data/dataset.h"
#include "data/prompt_source.h"
#include "data/task.h"

namespace zerorl::data {
namespace {

// n examples whose levels cycle through `levels`.
std::vector<Example> leveled(size_t n, const std::vector<long>& levels) {
  std::vector<Example> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i].id = std::to_string(i);
    v[i].prompt = "p" + std::to_string(i);
    v[i].answer = std::to_string(i);
    v[i].meta = {{"level", levels[i % levels.size()]}};
  }
  return v;
}

CurriculumConfig rule(double threshold, long window, long start = -1) {
  CurriculumConfig c;
  c.on = true;
  c.threshold = threshold;
  c.window = window;
  c.start = start;
  return c;
}

TEST(Curriculum, AWindowAtTheThresholdMovesToTheNextPresentLevel) {
  Curriculum c(rule(0.5, 3), leveled(30, {5, 2, 3}));
  EXPECT_EQ(c.levels(), (std::vector<long>{2, 3, 5}));
  EXPECT_EQ(c.level(), 2);
  EXPECT_FALSE(c.observe(4, 4));  // a full batch right, but the window is not full
  EXPECT_FALSE(c.observe(0, 4));
  EXPECT_TRUE(c.observe(2, 4));  // 6 of 12 = 0.5: at the threshold
  EXPECT_EQ(c.level(), 3);
  // The history cleared: three new steps are needed at level 3.
  EXPECT_FALSE(c.observe(4, 4));
  EXPECT_FALSE(c.observe(1, 4));
  EXPECT_FALSE(c.observe(0, 4));  // 5 of 12 < 0.5
  EXPECT_FALSE(c.observe(1, 4));  // the oldest left the window: 2 of 12
  EXPECT_FALSE(c.observe(4, 4));  // 5 of 12
  EXPECT_TRUE(c.observe(4, 4));   // 9 of 12
  EXPECT_EQ(c.level(), 5) << "level 4 is not among the examples: skipped";
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(c.observe(4, 4)) << "the top level stays";
  EXPECT_EQ(c.level(), 5);
  EXPECT_TRUE(c.admits(leveled(3, {5})[0]));
  EXPECT_FALSE(c.admits(leveled(3, {3})[0]));
}

TEST(Curriculum, StartsWhereTheRecipeSaysAndRefusesAbsentLevels) {
  EXPECT_EQ(Curriculum(rule(0.5, 1, 3), leveled(9, {2, 3, 4})).level(), 3);
  try {
    Curriculum(rule(0.5, 1, 7), leveled(9, {2, 3, 4}));
    FAIL() << "start 7 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.curriculum.start"), std::string::npos) << e.what();
  }
  std::vector<Example> plain(3);
  plain[0].prompt = "What is 1 + 2?";
  EXPECT_THROW(Curriculum(rule(0.5, 1), plain), Error);
}

TEST(Curriculum, SaveAndRestoreContinueWithTheSameDecisions) {
  const auto train = leveled(40, {2, 3, 4, 5});
  Curriculum a(rule(0.6, 4), train);
  const std::vector<std::pair<int, int>> outcomes = {{3, 4}, {4, 4}, {2, 4}, {4, 4}, {1, 4},
                                                     {4, 4}, {3, 4}, {2, 4}, {4, 4}, {4, 4},
                                                     {0, 4}, {4, 4}, {4, 4}, {3, 4}};
  for (size_t i = 0; i < 6; ++i) a.observe(outcomes[i].first, outcomes[i].second);
  std::map<std::string, int64_t> ints;
  a.save(ints);
  Curriculum b(rule(0.6, 4), train);
  b.restore(ints);
  EXPECT_EQ(a.level(), b.level());
  for (size_t i = 6; i < outcomes.size(); ++i) {
    EXPECT_EQ(a.observe(outcomes[i].first, outcomes[i].second),
              b.observe(outcomes[i].first, outcomes[i].second))
        << "outcome " << i;
    EXPECT_EQ(a.level(), b.level()) << "outcome " << i;
  }
  EXPECT_GT(a.level(), 2);
  // A checkpoint without curriculum state leaves the start as it is.
  Curriculum c(rule(0.6, 4), train);
  c.restore({});
  EXPECT_EQ(c.level(), 2);
  ints["curriculum_level"] = 9;
  EXPECT_THROW(c.restore(ints), Error);
}

TEST(Curriculum, TheRecipeSectionIsCheckedNamingItsKey) {
  auto off = Recipe::from_string("data:\n  source: task\n", "r.yaml");
  EXPECT_FALSE(CurriculumConfig::from(off.section("data")).on);
  auto on = Recipe::from_string(
      "data:\n  source: task\n  curriculum: {start: 3, threshold: 0.8, window: 2}\n", "r.yaml");
  const CurriculumConfig c = CurriculumConfig::from(on.section("data"));
  EXPECT_TRUE(c.on);
  EXPECT_EQ(c.start, 3);
  EXPECT_EQ(c.threshold, 0.8);
  EXPECT_EQ(c.window, 2);
  for (const char* bad : {"threshold: 0", "threshold: 1.5", "window: 0"}) {
    auto r = Recipe::from_string(
        std::string("data:\n  source: task\n  curriculum:\n    ") + bad + "\n", "b.yaml");
    try {
      CurriculumConfig::from(r.section("data"));
      FAIL() << bad << " accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("b.yaml:4"), std::string::npos) << m;
      EXPECT_NE(m.find("data.curriculum."), std::string::npos) << m;
    }
  }
}

TEST(Curriculum, SumProblemsCarryTheirLevel) {
  TaskConfig tc;
  tc.name = "sum";
  tc.min_digits = tc.max_digits = 2;
  tc.min_terms = 2;
  tc.max_terms = 6;
  const auto train = make_task(tc)->generate_split(Split::kTrain, 500);
  Curriculum c(rule(0.5, 1), train);
  EXPECT_EQ(c.levels(), (std::vector<long>{2, 3, 4, 5, 6}));
  for (const Example& ex : train) {
    const long plus = static_cast<long>(std::count(ex.prompt.begin(), ex.prompt.end(), '+'));
    EXPECT_EQ(example_level(ex), plus + 1) << ex.prompt;
  }
}

DatasetConfig walk(uint64_t seed) {
  DatasetConfig c;
  c.seed = seed;
  return c;
}

bool odd_level(const Example& ex) { return example_level(ex) % 2 == 1; }
bool any_level(const Example&) { return true; }

TEST(PromptSourceFiltered, AdmittedExamplesInStreamOrderAtAnyWorldSize) {
  const auto ex = leveled(61, {2, 3, 4, 5, 6});  // levels 3 and 5: 2 of every 5
  const size_t per_step = 6;
  const int steps = 15;  // 90 admitted of ~225 positions: over three epochs
  // The unfiltered stream with the others removed.
  std::vector<std::string> want;
  {
    PromptSource all(ex, walk(4), 1);
    while (want.size() < per_step * steps) {
      const Example e = all.next_batch()[0];
      if (odd_level(e)) want.push_back(e.id);
    }
  }
  for (int world : {1, 2, 3}) {
    std::vector<PromptSource> ranks;
    for (int r = 0; r < world; ++r) ranks.emplace_back(ex, walk(4), per_step, r, world);
    std::vector<std::string> got;
    for (int s = 0; s < steps; ++s)
      for (auto& src : ranks) {
        const auto b = src.next_batch(odd_level);
        EXPECT_EQ(b.size(), per_step / world);
        for (const auto& e : b) got.push_back(e.id);
      }
    EXPECT_EQ(got, want) << "world " << world;
    for (auto& src : ranks) EXPECT_EQ(src.cursor(), ranks[0].cursor());
  }
  PromptSource none(ex, walk(4), 2);
  EXPECT_THROW(none.next_batch([](const Example&) { return false; }), Error);
}

TEST(PromptSourceFiltered, RestoringACursorContinuesWithTheSameNextPrompts) {
  const auto ex = leveled(37, {2, 3, 4});
  PromptSource a(ex, walk(5), 4, 1, 2);
  for (int s = 0; s < 9; ++s) a.next_batch(odd_level);  // past an epoch boundary
  PromptSource b(ex, walk(5), 4, 1, 2);
  b.restore(a.cursor());
  for (int s = 0; s < 12; ++s) {
    const auto x = a.next_batch(s % 3 ? odd_level : any_level);
    const auto y = b.next_batch(s % 3 ? odd_level : any_level);
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i].id, y[i].id) << "step " << s;
  }
}

}  // namespace
}  // namespace zerorl::data
