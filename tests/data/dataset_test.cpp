// JSONL loading, sharding across ranks in whole groups, and exact cursor resume.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/prompt_source.h"
#include "test_util.h"

namespace zerorl::data {
namespace {

namespace t = testing;

std::vector<Example> numbered(size_t n) {
  std::vector<Example> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i].id = std::to_string(i);
    v[i].prompt = "p" + std::to_string(i);
    v[i].answer = std::to_string(i);
  }
  return v;
}

DatasetConfig walk(uint64_t seed, uint64_t epochs = 0) {
  DatasetConfig c;
  c.seed = seed;
  c.epochs = epochs;
  return c;
}

// The global stream: each step's batches concatenated in rank order.
std::vector<std::string> stream(size_t n, size_t per_step, int world, int steps, uint64_t seed) {
  std::vector<PromptSource> ranks;
  for (int r = 0; r < world; ++r) ranks.emplace_back(numbered(n), walk(seed), per_step, r, world);
  std::vector<std::string> out;
  for (int s = 0; s < steps; ++s)
    for (auto& src : ranks) {
      auto b = src.next_batch();
      EXPECT_EQ(b.size(), per_step / world);
      for (auto& ex : b) out.push_back(ex.id);
    }
  return out;
}

TEST(PromptSource, EveryPromptExactlyOncePerEpochAcrossRanks) {
  const size_t n = 103, per_step = 8;
  const int world = 4, steps = 40;  // 320 positions: 3 whole epochs and a bit
  auto s = stream(n, per_step, world, steps, 11);
  ASSERT_EQ(s.size(), per_step * steps);
  std::vector<std::vector<std::string>> epochs;
  for (size_t e = 0; (e + 1) * n <= s.size(); ++e) {
    std::vector<std::string> ep(s.begin() + e * n, s.begin() + (e + 1) * n);
    std::set<std::string> uniq(ep.begin(), ep.end());
    EXPECT_EQ(uniq.size(), n) << "epoch " << e << " repeats or misses a prompt";
    epochs.push_back(ep);
  }
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_NE(epochs[0], epochs[1]) << "each epoch should be reshuffled";
  // The order is a property of the seed, not of how many ranks share it.
  EXPECT_EQ(s, stream(n, per_step, 1, steps, 11));
  EXPECT_EQ(s, stream(n, per_step, 2, steps, 11));
  EXPECT_NE(s, stream(n, per_step, world, steps, 12));
}

TEST(PromptSource, RanksGetDisjointWholeSlices) {
  PromptSource r0(numbered(50), walk(1), 6, 0, 3), r1(numbered(50), walk(1), 6, 1, 3);
  auto a = r0.next_batch(), b = r1.next_batch();
  ASSERT_EQ(a.size(), 2u);
  for (auto& x : a)
    for (auto& y : b) EXPECT_NE(x.id, y.id);
  EXPECT_THROW(PromptSource(numbered(50), walk(1), 7, 0, 3), Error);  // 7 prompts over 3 ranks
}

TEST(PromptSource, RestoringACursorContinuesWithTheSameNextPrompts) {
  for (int world : {1, 2}) {
    for (int r = 0; r < world; ++r) {
      PromptSource a(numbered(37), walk(5), 4, r, world);
      for (int s = 0; s < 13; ++s) a.next_batch();  // past an epoch boundary
      std::string saved = a.cursor().to_string();
      auto ints = a.cursor().to_ints();
      PromptSource b(numbered(37), walk(5), 4, r, world);
      b.restore(DataCursor::from_string(saved));
      PromptSource c(numbered(37), walk(5), 4, r, world);
      c.restore(DataCursor::from_ints(ints));
      for (int s = 0; s < 20; ++s) {
        auto want = a.next_batch();
        auto got_b = b.next_batch(), got_c = c.next_batch();
        ASSERT_EQ(want.size(), got_b.size());
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(want[i].id, got_b[i].id) << "step " << s;
          EXPECT_EQ(want[i].id, got_c[i].id) << "step " << s;
        }
      }
      EXPECT_EQ(a.cursor(), b.cursor());
    }
  }
}

TEST(PromptSource, CursorRefusesAnotherDatasetOrSeedAndBadText) {
  PromptSource a(numbered(37), walk(5), 4);
  a.next_batch();
  PromptSource other_size(numbered(38), walk(5), 4);
  EXPECT_THROW(other_size.restore(a.cursor()), Error);
  PromptSource other_seed(numbered(37), walk(6), 4);
  EXPECT_THROW(other_seed.restore(a.cursor()), Error);
  EXPECT_THROW(DataCursor::from_string("epoch=1 offset=x size=3 seed=0"), Error);
  EXPECT_THROW(DataCursor::from_string("epoch=1 offset=2 size=3"), Error);
  EXPECT_EQ(DataCursor::from_string("epoch=1 offset=2 size=3 seed=4").to_ints(),
            (std::array<uint64_t, 4>{1, 2, 3, 4}));
}

TEST(PromptSource, EpochLimitDropsOnlyTheIncompleteLastStep) {
  PromptSource a(numbered(10), walk(3, /*epochs=*/2), 3);
  int steps = 0;
  while (!a.exhausted()) {
    a.next_batch();
    ++steps;
  }
  EXPECT_EQ(steps, 6);  // 20 positions, 6 whole steps of 3
  EXPECT_THROW(a.next_batch(), Error);
}

TEST(PromptSource, NoShuffleKeepsFileOrder) {
  DatasetConfig c;
  c.shuffle = false;
  PromptSource a(numbered(5), c, 5);
  auto b = a.next_batch();
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(b[i].id, std::to_string(i));
}

TEST(Jsonl, FieldNamesAutoOrConfiguredAndNonStringAnswers) {
  auto dir = t::scratch_dir("jsonl_fields");
  t::spit(dir / "a.jsonl",
          "{\"question\": \"What is 2+2?\", \"ground_truth\": 4}\n"
          "\n"
          "{\"prompt\": \"Solve x.\", \"answer\": \"\\\\frac{1}{2}\", \"task\": \"math\"}\n"
          "{\"problem\": \"p\", \"solution\": \"s\", \"meta\": {\"k\": 1}, \"id\": \"custom\"}\n");
  auto load = load_jsonl((dir / "a.jsonl").string());
  ASSERT_EQ(load.examples.size(), 3u);
  EXPECT_EQ(load.examples[0].prompt, "What is 2+2?");
  EXPECT_EQ(load.examples[0].answer, "4");
  EXPECT_EQ(load.examples[0].id, (dir / "a.jsonl").string() + ":1");
  EXPECT_EQ(load.examples[1].answer, "\\frac{1}{2}");
  EXPECT_EQ(load.examples[1].task, "math");
  EXPECT_EQ(load.examples[2].id, "custom");
  EXPECT_EQ(load.examples[2].meta["k"], 1);

  t::spit(dir / "b.jsonl", "{\"q\": \"x\", \"gold\": \"y\", \"prompt\": \"ignored\"}\n");
  auto custom = load_jsonl((dir / "b.jsonl").string(), "q", "gold");
  ASSERT_EQ(custom.examples.size(), 1u);
  EXPECT_EQ(custom.examples[0].prompt, "x");
  EXPECT_EQ(custom.examples[0].answer, "y");
}

// A row's extra fields reach the rewards as metadata (a TinyZero countdown
// row keeps "target" and "nums" at the top level); "meta" entries win a clash.
TEST(Jsonl, ExtraFieldsBecomeMetadata) {
  auto dir = t::scratch_dir("jsonl_meta");
  t::spit(dir / "c.jsonl",
          "{\"prompt\": \"Make 24\", \"answer\": \"24\", \"target\": 24, \"nums\": [3, 8],"
          " \"task\": \"countdown\", \"id\": \"c1\"}\n"
          "{\"question\": \"q\", \"answer\": 1, \"level\": \"L5\", \"meta\": {\"level\": \"L1\","
          " \"k\": 2}}\n");
  auto load = load_jsonl((dir / "c.jsonl").string());
  ASSERT_EQ(load.examples.size(), 2u);
  EXPECT_EQ(load.examples[0].meta, nlohmann::json::parse("{\"target\": 24, \"nums\": [3, 8]}"));
  EXPECT_EQ(load.examples[0].task, "countdown");
  EXPECT_EQ(load.examples[0].id, "c1");
  EXPECT_EQ(load.examples[1].meta, nlohmann::json::parse("{\"level\": \"L1\", \"k\": 2}"));
}

TEST(Jsonl, MalformedLineIsAnErrorNamingFileAndLineOrSkippedAndCounted) {
  auto dir = t::scratch_dir("jsonl_bad");
  auto path = (dir / "bad.jsonl").string();
  t::spit(path,
          "{\"prompt\": \"ok\", \"answer\": \"1\"}\n"
          "{\"prompt\": \"truncated\", \"ans\n"
          "[1, 2]\n"
          "{\"prompt\": \"no answer\"}\n"
          "{\"prompt\": 5, \"answer\": \"1\"}\n"
          "{\"prompt\": \"ok2\", \"answer\": \"2\"}\n");
  try {
    load_jsonl(path);
    FAIL() << "malformed line accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2:"), std::string::npos) << e.what();
  }
  auto load = load_jsonl(path, "auto", "auto", /*skip_malformed=*/true);
  EXPECT_EQ(load.examples.size(), 2u);
  EXPECT_EQ(load.skipped, 4u);
  ASSERT_EQ(load.skip_reasons.size(), 4u);
  EXPECT_NE(load.skip_reasons[1].find(":3: not a JSON object"), std::string::npos);
  EXPECT_NE(load.skip_reasons[2].find(":4: no answer field"), std::string::npos);
  EXPECT_NE(load.skip_reasons[3].find(":5: prompt field 'prompt' is not a string"),
            std::string::npos);
}

TEST(DatasetConfig, FromRecipeChecksTheFileBeforeAnyCompute) {
  auto r =
      Recipe::from_string("data:\n  source: jsonl\n  path: /nonexistent/train.jsonl\n", "r.yaml");
  try {
    DatasetConfig::from(r.section("data"));
    FAIL() << "missing file accepted";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("r.yaml:3"), std::string::npos) << m;
    EXPECT_NE(m.find("data.path"), std::string::npos) << m;
  }
  auto task = Recipe::from_string(
      "data:\n  source: task\n  train_size: 40\n  test_size: 10\n  task:\n    name: addition\n"
      "    max_digits: 2\n",
      "t.yaml");
  auto cfg = DatasetConfig::from(task.section("data"));
  EXPECT_NO_THROW(task.check_all_read());
  auto train = load_examples(cfg, Split::kTrain);
  auto test = load_examples(cfg, Split::kTest);
  EXPECT_EQ(train.size(), 40u);
  EXPECT_EQ(test.size(), 10u);
}

TEST(Jsonl, WriteThenReadRoundTrips) {
  auto dir = t::scratch_dir("jsonl_rt");
  TaskConfig tc;
  tc.name = "countdown";
  tc.num_count = 3;
  auto ex = make_task(tc)->generate_split(Split::kTest, 20);
  write_jsonl((dir / "c.jsonl").string(), ex);
  auto back = load_jsonl((dir / "c.jsonl").string());
  ASSERT_EQ(back.examples.size(), ex.size());
  for (size_t i = 0; i < ex.size(); ++i) {
    EXPECT_EQ(back.examples[i].id, ex[i].id);
    EXPECT_EQ(back.examples[i].prompt, ex[i].prompt);
    EXPECT_EQ(back.examples[i].meta, ex[i].meta);
    EXPECT_EQ(back.examples[i].task, "countdown");
  }
}

}  // namespace
}  // namespace zerorl::data
