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
#include "core/error.h"

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

// ---- the reflective corpus (issue 19, item 2) -------------------------------------

CorpusConfig reflect_corpus(uint64_t seed) {
  CorpusConfig c;
  c.task.name = "sum";
  c.task.min_digits = c.task.max_digits = 2;
  c.task.min_terms = 2;
  c.task.max_terms = 5;
  c.seed = seed;
  c.bare = 0.05;
  c.worked = 0.5;
  c.tagged = 0.2;
  c.noise = 0.05;
  c.steps = 0.2;
  c.tagged_worked_fraction = 0.5;
  c.reflect_fraction = 0.2;
  c.reflect_confirm_fraction = 0.4;
  c.worked_check_fraction = 0.06;
  c.step_check_fraction = 0.3;
  return c;
}

// The numbers of "What is a + b + c?", read here.
std::vector<uint64_t> terms_of(const std::string& prompt) {
  static const std::regex number(R"(\d+)");
  std::vector<uint64_t> t;
  for (auto it = std::sregex_iterator(prompt.begin(), prompt.end(), number);
       it != std::sregex_iterator(); ++it)
    t.push_back(std::stoull(it->str()));
  return t;
}

// The terms after the i-th as "a+b", when the chain names them ("" otherwise).
std::string left_of(const std::vector<uint64_t>& t, size_t i, bool remaining) {
  std::string left;
  for (size_t j = i + 1; remaining && j < t.size(); ++j)
    left += (left.empty() ? "" : "+") + std::to_string(t[j]);
  return left;
}

// One step, built here: "x+y=v." or "x+y=v, left a+b.".
std::string step_of(uint64_t x, uint64_t y, uint64_t v, const std::string& left) {
  return std::to_string(x) + "+" + std::to_string(y) + "=" + std::to_string(v) +
         (left.empty() ? "" : ", left " + left) + ".";
}

// The right chain of running sums, built here: "a+b=s. s+c=u. So a+b+c=u."
// (remaining: "a+b=s, left c. s+c=u. So a+b+c=u.").
std::string chain_of(const std::vector<uint64_t>& t, bool remaining = false) {
  std::string out, all = std::to_string(t[0]);
  uint64_t acc = t[0];
  for (size_t i = 1; i < t.size(); ++i) {
    out += step_of(acc, t[i], acc + t[i], left_of(t, i, remaining)) + " ";
    acc += t[i];
    all += "+" + std::to_string(t[i]);
  }
  return out + "So " + all + "=" + std::to_string(acc) + ".";
}

// "x+y=v" statements that are not the tail of a longer expression ("6+1+1=8").
struct Statement {
  size_t pos, len;
  uint64_t x, y, v;
};
std::vector<Statement> pair_statements(const std::string& text) {
  static const std::regex re(R"((\d+)\+(\d+)=(\d+))");
  std::vector<Statement> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    const auto& m = *it;
    size_t pos = static_cast<size_t>(m.position(0));
    if (pos > 0 && text[pos - 1] == '+') continue;
    out.push_back({pos, static_cast<size_t>(m.length(0)), std::stoull(m[1]), std::stoull(m[2]),
                   std::stoull(m[3])});
  }
  return out;
}

// Column steps "d+e(+1)=v, write w" are right and their written digits (and
// a final "write 1") spell `sum` (right to left).
void expect_right_columns(const std::string& check, uint64_t sum) {
  static const std::regex col(R"((\d)\+(\d)(\+1)?=(\d+), write (\d))");
  std::string written;
  int columns = 0;
  for (auto it = std::sregex_iterator(check.begin(), check.end(), col);
       it != std::sregex_iterator(); ++it, ++columns) {
    const auto& m = *it;
    int v = std::stoi(m[1]) + std::stoi(m[2]) + (m[3].matched ? 1 : 0);
    EXPECT_EQ(std::stoi(m[4]), v) << check;
    EXPECT_EQ(std::stoi(m[5]), v % 10) << check;
    written.insert(written.begin(), m[5].str()[0]);
  }
  EXPECT_GT(columns, 0) << check;
  static const std::regex last_carry(R"(carry 1\. write 1\. (So )?\d)");
  if (std::regex_search(check, last_carry)) written.insert(written.begin(), '1');
  EXPECT_EQ(std::stoull(written), sum) << check;
}

// Checks sit only in tagged worked documents (inside <think>, catching a
// planted slip or, for reflect_confirm_fraction of them, confirming a right
// value), in untagged worked documents (half of them catching a slip) and in
// step documents (rechecking their pair, half of them catching a planted
// slip), at the configured shares; and the shipped recipe's corpus keeps
// documents with a check to at most 5% of all documents (issue 19, item 2).
TEST(ReflectiveCorpus, PlantedSlipShareIsTheConfiguredFewPercent) {
  CorpusGenerator gen(reflect_corpus(1));
  const int n = 20000;
  int tagged_worked = 0, reflects = 0, tagged_slips = 0, steps = 0, step_checks = 0, step_slips = 0,
      worked = 0, worked_checks = 0, worked_slips = 0;
  // Within 4 sigma of a binomial share p of n draws.
  auto expect_share = [](int k, int n, double p, const char* what) {
    EXPECT_NEAR(k / double(n), p, 4 * std::sqrt(p * (1 - p) / n))
        << what << ": " << k << " of " << n;
  };
  for (auto& d : gen.documents(0, n)) {
    EXPECT_TRUE(d.reflects || !d.slip) << d.text;
    if (d.kind == DocKind::kStep) {
      ++steps;
      step_checks += d.reflects;
      step_slips += d.slip;
    } else if (d.kind == DocKind::kWorked) {
      ++worked;
      worked_checks += d.reflects;
      worked_slips += d.slip;
    } else if (d.kind == DocKind::kTaggedWorked) {
      ++tagged_worked;
      reflects += d.reflects;
      tagged_slips += d.slip;
    } else {
      EXPECT_FALSE(d.reflects) << doc_kind_name(d.kind) << ": " << d.text;
    }
  }
  expect_share(reflects, tagged_worked, 0.2, "tagged worked checks");
  expect_share(tagged_slips, reflects, 0.6, "tagged checks catching a slip");
  expect_share(worked_checks, worked, 0.06, "worked checks");
  expect_share(worked_slips, worked_checks, 0.5, "worked checks catching a slip");
  EXPECT_NEAR(steps / double(n), 0.2, 4 * std::sqrt(0.2 * 0.8 / n));
  EXPECT_NEAR(step_checks / double(steps), 0.3, 4 * std::sqrt(0.3 * 0.7 / steps))
      << step_checks << " of " << steps;
  EXPECT_NEAR(step_slips / double(step_checks), 0.5, 4 * std::sqrt(0.25 / step_checks))
      << step_slips << " of " << step_checks;
  {
    auto shipped = Recipe::from_file(std::string(ZR_SOURCE_DIR) + "/recipes/base-reflect.yaml");
    CorpusGenerator base(CorpusConfig::from(shipped.section("corpus")));
    int r = 0, tagged = 0, worked = 0;
    for (auto& d : base.documents(0, n)) {
      r += d.reflects;
      tagged += d.reflects && d.kind == DocKind::kTaggedWorked;
      worked += d.reflects && d.kind == DocKind::kWorked;
    }
    EXPECT_GT(tagged, 0);
    EXPECT_GT(worked, 0);
    EXPECT_LE(r / double(n), 0.05) << r << " reflective of " << n << " documents";
  }
  // Off by default: no corpus reflects unless asked, and the other tasks refuse it.
  for (auto& d : CorpusGenerator(addition_corpus(1)).documents(0, 2000)) EXPECT_FALSE(d.reflects);
  auto bad = addition_corpus(1);
  bad.reflect_fraction = 0.05;
  EXPECT_THROW(CorpusGenerator{bad}, Error);
  bad = addition_corpus(1);
  bad.step_check_fraction = 0.05;
  EXPECT_THROW(CorpusGenerator{bad}, Error);
  bad = addition_corpus(1);
  bad.worked_check_fraction = 0.05;
  EXPECT_THROW(CorpusGenerator{bad}, Error);
  auto too_many = reflect_corpus(1);
  too_many.step_check_fraction = 1.5;
  EXPECT_THROW(CorpusGenerator{too_many}, Error);
  too_many = reflect_corpus(1);
  too_many.worked_check_fraction = -0.1;
  EXPECT_THROW(CorpusGenerator{too_many}, Error);
  too_many = reflect_corpus(1);
  too_many.reflect_confirm_fraction = 2;
  EXPECT_THROW(CorpusGenerator{too_many}, Error);
}

// Every reflective worked document, parsed back here: a check catching a
// slip follows the one wrong pair of the running sums (wrong by a power of
// ten), a confirming check a right pair with no wrong one; either way the
// check opens at once ("Wait, let me recheck x+y:", the pair as just
// written), adds the pair in right columns and restates it with the right
// value; with the check cut out and any slip put right, the text holds the
// right chain, which goes on from the right value to the gold: inside
// <think> for tagged documents, to the document's end for untagged ones.
// Other worked documents hold the right chain with no wrong step.  Step documents that check copy
// their pair, add it in right columns, and follow a slip (off by a power of ten) exactly when
// marked, a right value otherwise.
// With `chain: remaining` (the terms left named at each step) the same holds
// of the chain in that form, and the check's restatement names the terms
// left again.
class ReflectiveChain : public ::testing::TestWithParam<const char*> {};

TEST_P(ReflectiveChain, EveryPlantedSlipIsCaughtAndCorrected) {
  CorpusConfig cfg = reflect_corpus(2);
  cfg.task.chain = GetParam();
  const bool remaining = cfg.task.chain == "remaining";
  CorpusGenerator gen(cfg);
  static const std::regex opening(R"(^ Wait, let me recheck (\d+)\+(\d+): )");
  int reflective = 0, plain = 0, steps = 0, step_slips = 0, step_confirms = 0;
  std::map<std::pair<DocKind, bool>, int> checks;  // (kind, catches a slip) -> documents
  std::set<int> slip_steps, confirm_steps;
  for (auto& d : gen.documents(0, 20000)) {
    if (d.kind == DocKind::kStep) {
      // One pair posed on its own, added in right columns.
      // Ends "So x+y=s." (the columns) or "x+y=s." (a check, restating a chain step).
      static const std::regex so(R"((?:^|[ :])(\d+)\+(\d+)=(\d+)\.$)");
      std::smatch m;
      ASSERT_TRUE(std::regex_search(d.text, m, so)) << d.text;
      const uint64_t x = std::stoull(m[1]), y = std::stoull(m[2]), s = x + y;
      EXPECT_EQ(std::stoull(m[3]), s) << d.text;
      EXPECT_EQ(d.answer, std::to_string(s));
      // "What is x + y?", or "x + y:" where every pair of the chain is a test problem.
      const std::string pair = std::to_string(x) + " + " + std::to_string(y);
      EXPECT_TRUE(d.prompt == "What is " + pair + "?" || d.prompt == pair + ":") << d.prompt;
      ++steps;
      if (!d.reflects) {
        EXPECT_EQ(d.text.find("Wait"), std::string::npos) << d.text;
        expect_right_columns(d.text, s);
        continue;
      }
      // A step check: the pair stated in one go ("x+y=v."), then a check
      // that copies that pair as written and adds it in right columns; v is
      // a slip off by a power of ten exactly when the document says so.
      static const std::regex checked(
          R"((\d+)\+(\d+)=(\d+)\. Wait, let me recheck (\d+)\+(\d+): )");
      std::smatch c;
      ASSERT_TRUE(std::regex_search(d.text, c, checked)) << d.text;
      EXPECT_EQ(std::stoull(c[1]), x) << d.text;
      EXPECT_EQ(std::stoull(c[2]), y) << d.text;
      EXPECT_EQ(c[4].str(), c[1].str()) << "the check copies the pair just written: " << d.text;
      EXPECT_EQ(c[5].str(), c[2].str()) << "the check copies the pair just written: " << d.text;
      const uint64_t v = std::stoull(c[3]);
      if (d.slip) {
        const uint64_t off = v > s ? v - s : s - v;
        uint64_t p = 1;
        while (p < off) p *= 10;
        EXPECT_TRUE(off > 0 && p == off) << "the slip is off by a power of ten: " << d.text;
        ++step_slips;
      } else {
        EXPECT_EQ(v, s) << "a confirming check follows a right value: " << d.text;
        ++step_confirms;
      }
      expect_right_columns(d.text.substr(static_cast<size_t>(c.position(0) + c.length(0))), s);
      continue;
    }
    if (d.kind != DocKind::kWorked && d.kind != DocKind::kTaggedWorked) continue;
    const std::vector<uint64_t> t = terms_of(d.prompt);
    ASSERT_GE(t.size(), 2u) << d.prompt;
    const std::string chain = chain_of(t, remaining);
    EXPECT_EQ(d.answer, chain.substr(chain.rfind('=') + 1, chain.size() - chain.rfind('=') - 2));
    const auto statements = pair_statements(d.text);
    std::vector<size_t> wrong;
    for (size_t i = 0; i < statements.size(); ++i)
      if (statements[i].v != statements[i].x + statements[i].y) wrong.push_back(i);
    if (!d.reflects) {
      EXPECT_TRUE(wrong.empty()) << d.text;
      EXPECT_NE(d.text.find(chain), std::string::npos) << d.text << "\nwants " << chain;
      ++plain;
      continue;
    }
    ++reflective;
    ++checks[{d.kind, d.slip}];
    // The checked statement: the one wrong pair, or the one right before the check.
    size_t k = 0;
    if (d.slip) {
      ASSERT_EQ(wrong.size(), 1u) << d.text;
      k = wrong[0];
      const uint64_t right = statements[k].x + statements[k].y, v = statements[k].v;
      const uint64_t off = v > right ? v - right : right - v;
      uint64_t p = 1;
      while (p < off) p *= 10;
      EXPECT_EQ(p, off) << "the slip is off by a power of ten: " << d.text;
      slip_steps.insert(static_cast<int>(k));
    } else {
      EXPECT_TRUE(wrong.empty()) << "a confirming check follows a right chain: " << d.text;
      const size_t at = d.text.find(" Wait, let me recheck ");
      ASSERT_NE(at, std::string::npos) << d.text;
      while (k < statements.size() && d.text.find('.', statements[k].pos) + 1 != at) ++k;
      ASSERT_LT(k, statements.size()) << "the check follows a pair at once: " << d.text;
      confirm_steps.insert(static_cast<int>(k));
    }
    // A check falls on the chain's last pair only when it is the only one.
    EXPECT_TRUE(t.size() == 2 || k + 2 < t.size()) << "a check mid-chain: " << d.text;
    const Statement& slip = statements[k];
    const uint64_t right = slip.x + slip.y;
    // The checked step, as the chain writes it ("x+y=v." or "x+y=v, left a+b.").
    const std::string left = left_of(t, k + 1, remaining);
    ASSERT_EQ(d.text.substr(slip.pos, d.text.find('.', slip.pos) + 1 - slip.pos),
              step_of(slip.x, slip.y, slip.v, left))
        << d.text;
    // The check opens right after the checked step, naming that step's pair.
    const size_t after = d.text.find('.', slip.pos) + 1;  // past the step
    const std::string rest = d.text.substr(after);
    std::smatch named;
    ASSERT_TRUE(std::regex_search(rest, named, opening)) << d.text;
    EXPECT_EQ(std::stoull(named[1]), slip.x) << d.text;
    EXPECT_EQ(std::stoull(named[2]), slip.y) << d.text;
    // ...and ends restating the pair right.
    // (as a chain step, "x+y=s." or "x+y=s, left a+b.", without the columns' "So")
    const std::string restated = ". " + step_of(slip.x, slip.y, right, left) + " ";
    const size_t r = d.text.find(restated, after);
    ASSERT_NE(r, std::string::npos) << d.text;
    expect_right_columns(d.text.substr(after, r + restated.size() - after), right);
    // Cut the check out and put the slip right: the right chain remains.
    const std::string fixed = d.text.substr(0, slip.pos) + step_of(slip.x, slip.y, right, left) +
                              " " + d.text.substr(r + restated.size());
    EXPECT_NE(fixed.find(chain), std::string::npos) << d.text << "\nwants " << chain;
    if (d.kind == DocKind::kWorked) {
      // The chain goes on after the check and ends the document.
      ASSERT_GE(fixed.size(), chain.size());
      EXPECT_EQ(fixed.substr(fixed.size() - chain.size()), chain) << d.text;
      continue;
    }
    // Inside <think>, which closes and gives the gold answer.
    EXPECT_EQ(d.kind, DocKind::kTaggedWorked) << d.text;
    const std::string ending = " </think> <answer>" + d.answer + "</answer>";
    EXPECT_EQ(d.text.substr(d.text.size() - std::min(d.text.size(), ending.size())), ending)
        << d.text;
    EXPECT_LT(d.text.find("<think>"), slip.pos) << d.text;
  }
  EXPECT_GT(reflective, 250);
  EXPECT_GT(plain, 5000);
  EXPECT_GT(steps, 3000);
  EXPECT_GT(step_slips, 300);
  EXPECT_GT(step_confirms, 300);
  EXPECT_GT(slip_steps.size(), 2u) << "slips should fall on different steps of the chain";
  EXPECT_GT(confirm_steps.size(), 2u) << "checks should fall on different steps of the chain";
  for (DocKind kind : {DocKind::kWorked, DocKind::kTaggedWorked})
    for (bool slip : {false, true})
      EXPECT_GT((checks[{kind, slip}]), 100)
          << doc_kind_name(kind) << (slip ? " slips" : " confirms");
}

INSTANTIATE_TEST_SUITE_P(Chains, ReflectiveChain, ::testing::Values("running", "remaining"));

}  // namespace
}  // namespace zerorl::data
