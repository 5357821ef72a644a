// The pretraining corpus: its mix, its correctness (checked against sums
// computed here from the prompt text), its format, and that it never shows a
// test-split problem.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <set>

#include "core/config.h"
#include "data/corpus.h"
#include "data/countdown_task.h"

namespace zerorl::data {
namespace {

CorpusConfig addition_corpus(uint64_t seed) {
  CorpusConfig c;
  c.task.name = "addition";
  c.task.min_digits = 1;
  c.task.max_digits = 3;
  c.seed = seed;
  return c;
}

// a + b recomputed from "What is a + b?".
std::string sum_of(const std::string& prompt) {
  static const std::regex re(R"(What is (\d+) \+ (\d+)\?)");
  std::smatch m;
  EXPECT_TRUE(std::regex_match(prompt, m, re)) << prompt;
  return std::to_string(std::stoull(m[1]) + std::stoull(m[2]));
}

TEST(Corpus, MixMatchesTheConfigWithinFourSigma) {
  CorpusGenerator gen(addition_corpus(1));
  const int n = 20000;
  std::map<DocKind, int> count;
  for (auto& d : gen.documents(0, n)) ++count[d.kind];
  const auto& c = gen.config();
  double total = c.bare + c.worked + c.tagged + c.noise;
  auto near = [&](double got, double p, int trials, const char* what) {
    double sigma = std::sqrt(p * (1 - p) / trials);
    EXPECT_NEAR(got, p, 4 * sigma + 1e-9) << what;
  };
  near(count[DocKind::kBare] / double(n), c.bare / total, n, "bare");
  near(count[DocKind::kWorked] / double(n), c.worked / total, n, "worked");
  near(count[DocKind::kNoise] / double(n), c.noise / total, n, "noise");
  int tagged = count[DocKind::kTaggedBare] + count[DocKind::kTaggedWorked];
  near(tagged / double(n), c.tagged / total, n, "tagged");
  near(count[DocKind::kTaggedWorked] / double(tagged), c.tagged_worked_fraction, tagged,
       "worked share of tagged");
}

TEST(Corpus, AnswersAreCorrectAndTaggedDocumentsFollowTheTemplate) {
  CorpusGenerator gen(addition_corpus(2));
  auto tmpl = PromptTemplate::tiny();
  static const std::regex tagged(R"(^ (.*) ?</think> <answer>(\d+)</answer>$)");
  static const std::regex so(R"(So \d+\+\d+=(\d+)\.)");
  int checked = 0;
  for (auto& d : gen.documents(0, 3000)) {
    if (d.kind == DocKind::kNoise) continue;
    std::string gold = sum_of(d.prompt);
    EXPECT_EQ(d.answer, gold);
    if (d.kind == DocKind::kTaggedBare || d.kind == DocKind::kTaggedWorked) {
      std::string head = tmpl.render(d.prompt);
      ASSERT_EQ(d.text.rfind(head, 0), 0u) << d.text;
      std::string completion = d.text.substr(head.size());
      std::smatch m;
      ASSERT_TRUE(std::regex_match(completion, m, tagged)) << completion;
      EXPECT_EQ(m[2].str(), gold);
      EXPECT_EQ(uses_worked_steps(completion), d.kind == DocKind::kTaggedWorked) << completion;
      ++checked;
    }
    if (d.kind == DocKind::kWorked || d.kind == DocKind::kTaggedWorked) {
      std::smatch m;
      ASSERT_TRUE(std::regex_search(d.text, m, so)) << d.text;
      EXPECT_EQ(m[1].str(), gold) << d.text;
    }
    if (d.kind == DocKind::kBare) {
      EXPECT_NE(d.text.find(gold), std::string::npos) << d.text;
      EXPECT_FALSE(uses_worked_steps(d.text)) << d.text;
    }
    EXPECT_EQ(d.text.find("<eos>"), std::string::npos);
  }
  EXPECT_GT(checked, 500);
}

TEST(Corpus, NeverShowsATestSplitProblem) {
  auto cfg = addition_corpus(3);
  cfg.task.max_digits = 2;  // small space: 10000 problems, every one drawn often
  CorpusGenerator gen(cfg);
  std::set<std::string> test_prompts;
  for (auto& ex : gen.task().generate_split(Split::kTest, 500)) test_prompts.insert(ex.prompt);
  std::set<std::string> seen;
  for (auto& d : gen.documents(0, 20000)) {
    EXPECT_EQ(test_prompts.count(d.prompt), 0u) << d.prompt;
    seen.insert(d.prompt);
  }
  EXPECT_GT(seen.size(), 5000u) << "the corpus should cover much of the train split";
}

TEST(Corpus, DeterministicPerIndexAndSeed) {
  CorpusGenerator a(addition_corpus(4)), b(addition_corpus(4)), c(addition_corpus(5));
  int differ = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(a.document(i).text, b.document(i).text);
    differ += a.document(i).text != c.document(i).text;
  }
  EXPECT_GT(differ, 150);
  EXPECT_EQ(a.documents(10, 5)[2].text, a.document(12).text);
}

TEST(Corpus, ConfigFromRecipeWithR1ZeroTemplateOpensTheThinkTagItself) {
  auto r = Recipe::from_string(
      "corpus:\n  seed: 1\n  task: {name: countdown, num_count: 3}\n  template: {name: r1zero}\n"
      "  mix: {bare: 0, worked: 0, tagged: 1, noise: 0}\n  tagged_worked_fraction: 1.0\n",
      "c.yaml");
  CorpusGenerator gen(CorpusConfig::from(r.section("corpus")));
  EXPECT_NO_THROW(r.check_all_read());
  for (auto& d : gen.documents(0, 50)) {
    ASSERT_EQ(d.kind, DocKind::kTaggedWorked);
    EXPECT_NE(d.text.find("Assistant: <think> "), std::string::npos) << d.text;
    size_t a = d.text.rfind("<answer>") + 8, e = d.text.rfind("</answer>");
    // The expression in the answer tag passes the countdown checker on the
    // numbers and target read back from the prompt.
    static const std::regex re(R"(numbers \[([0-9, ]+)\], create an equation that equals (\d+)\.)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(d.prompt, m, re)) << d.prompt;
    std::vector<int64_t> nums;
    std::string list = m[1];
    for (size_t p = 0; p < list.size();) {
      size_t q = list.find(',', p);
      nums.push_back(std::stoll(list.substr(p, q - p)));
      p = q == std::string::npos ? list.size() : q + 1;
    }
    auto verdict = check_countdown(d.text.substr(a, e - a), nums, std::stoll(m[2]));
    EXPECT_TRUE(verdict.correct) << d.text << ": " << verdict.reason;
  }
  // Without a template section the corpus uses the tiny template.
  auto plain = Recipe::from_string("corpus:\n  seed: 1\n", "p.yaml");
  EXPECT_EQ(CorpusConfig::from(plain.section("corpus")).prompt_template.name, "tiny");
  auto bad = Recipe::from_string("corpus:\n  tagged_worked_fraction: 2\n", "b.yaml");
  EXPECT_THROW(CorpusConfig::from(bad.section("corpus")), Error);
}

}  // namespace
}  // namespace zerorl::data
