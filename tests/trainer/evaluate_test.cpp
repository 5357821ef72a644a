// The evaluation figures (trainer/evaluate.h) on hand-built outcomes whose
// answers are worked out here: pass@1, the unbiased pass@k estimator (against
// exact integer binomials), maj@k with graded-equivalent answers voting
// together, greedy accuracy, format rate, lengths and worked rate.
#include "trainer/evaluate.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace zerorl {
namespace {

// C(n, k) in exact integers (n <= 60 stays far below 2^63 for the k used).
uint64_t binom(long n, long k) {
  if (k < 0 || k > n) return 0;
  uint64_t r = 1;
  for (long i = 1; i <= k; ++i) r = r * static_cast<uint64_t>(n - k + i) / static_cast<uint64_t>(i);
  return r;
}

// A problem with the given answers; a sample is correct when its answer is
// in `right` (as a grader would say), formatted when it has an answer.
ProblemOutcome outcome(const std::vector<std::string>& answers,
                       const std::vector<std::string>& right, int greedy = -1) {
  ProblemOutcome p;
  for (const auto& a : answers) {
    bool ok = false;
    for (const auto& r : right) ok |= a == r;
    p.correct.push_back(ok);
    p.formatted.push_back(!a.empty());
    p.answers.push_back(a);
    p.lengths.push_back(static_cast<long>(10 + a.size()));
    p.worked.push_back(a.size() > 1);
  }
  p.greedy_correct = greedy;
  return p;
}

TEST(EvalFigures, PassAtKIsTheUnbiasedEstimator) {
  // Worked by hand: n = 10, c = 3, k = 5: 1 - C(7,5)/C(10,5) = 1 - 21/252.
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-15);
  // k = 1 is the fraction correct; n = k is "any correct".
  EXPECT_NEAR(pass_at_k(8, 3, 1), 3.0 / 8.0, 1e-15);
  EXPECT_EQ(pass_at_k(8, 1, 8), 1.0);
  EXPECT_EQ(pass_at_k(8, 0, 8), 0.0);
  EXPECT_EQ(pass_at_k(16, 12, 8), 1.0);  // fewer than k wrong: every k-subset holds a right one
  for (long n : {1L, 4L, 16L, 40L})
    for (long c = 0; c <= n; ++c)
      for (long k = 1; k <= n; ++k) {
        const double want =
            1.0 - static_cast<double>(binom(n - c, k)) / static_cast<double>(binom(n, k));
        EXPECT_NEAR(pass_at_k(n, c, k), want, 1e-12) << "n=" << n << " c=" << c << " k=" << k;
      }
  EXPECT_THROW(pass_at_k(4, 5, 2), Error);
  EXPECT_THROW(pass_at_k(4, 2, 5), Error);
}

TEST(EvalFigures, MajorityVotesOnGradedEquivalentAnswers) {
  const long k = 5;
  // `0.5`, `1/2` and `\frac{1}{2}` are one answer with three votes against
  // `2` with two; voting on raw strings, `2` would win 2 to 1.
  auto p = outcome({"2", "0.5", "1/2", "2", "\\frac{1}{2}"}, {"0.5", "1/2", "\\frac{1}{2}"});
  EXPECT_TRUE(majority_correct(p, k, math_answers_equivalent));
  const auto exact = [](const std::string& a, const std::string& b) { return a == b; };
  EXPECT_FALSE(majority_correct(p, k, exact));  // raw strings: `2` wins with 2 votes

  // Only the first k samples vote: the sixth and seventh would swing it.
  auto q = outcome({"3", "3", "7", "7", "3", "7", "7"}, {"7"});
  EXPECT_FALSE(majority_correct(q, 5, math_answers_equivalent));
  EXPECT_TRUE(majority_correct(q, 7, math_answers_equivalent));

  // Completions without an answer never vote; a tie goes to the answer seen first.
  auto r = outcome({"", "", "", "4", "9"}, {"9"});
  EXPECT_FALSE(majority_correct(r, k, math_answers_equivalent));
  auto s = outcome({"9", "4", "4", "9", ""}, {"9"});
  EXPECT_TRUE(majority_correct(s, k, math_answers_equivalent));
  EXPECT_FALSE(majority_correct(outcome({"", "", ""}, {"1"}), 3, math_answers_equivalent));
}

TEST(EvalFigures, MetricsOfAHandBuiltEvaluation) {
  // Three problems, n = 4 samples, k = 2.
  //   A: right answer 12, samples 12, 12.0, 5, ""      c = 2, maj: {12, 12.0} wins
  //   B: right answer 1/2, samples 3, 0.5, 3, 2/4      c = 2, maj: 3 and 0.5 tie, 3 first
  //   C: right answer 7, samples 8, 9, 8, 8            c = 0
  const long k = 2;
  std::vector<ProblemOutcome> ps = {outcome({"12", "12.0", "5", ""}, {"12", "12.0"}, 1),
                                    outcome({"3", "0.5", "3", "2/4"}, {"0.5", "2/4"}, 0),
                                    outcome({"8", "9", "8", "8"}, {"7"}, 1)};
  EvalSums sums;
  for (const auto& p : ps) score_problem(p, k, math_answers_equivalent, sums);
  const auto m = eval_metrics(sums, k, /*greedy=*/true, /*has_format=*/true);
  // pass@1: mean over problems of c/n = (2/4 + 2/4 + 0) / 3.
  EXPECT_NEAR(m.at("pass_at_1"), (0.5 + 0.5 + 0.0) / 3, 1e-15);
  // pass@2 with n = 4: 1 - C(2,2)/C(4,2) = 5/6 for A and B, 0 for C.
  EXPECT_NEAR(m.at("pass_at_2"), (5.0 / 6 + 5.0 / 6 + 0) / 3, 1e-15);
  // maj@2: A's first two samples `12`, `12.0` are one answer and right; B
  // ties 1-1 and the first (`3`) is wrong; C is wrong.
  EXPECT_NEAR(m.at("maj_at_2"), 1.0 / 3, 1e-15);
  EXPECT_NEAR(m.at("greedy_accuracy"), 2.0 / 3, 1e-15);
  // Format: 11 of 12 completions have an answer.
  EXPECT_NEAR(m.at("format_rate"), 11.0 / 12, 1e-15);
  // Lengths 10 + answer length: A 12+14+11+10, B 11+13+11+13, C 11*4.
  EXPECT_NEAR(m.at("mean_response_tokens"), (47.0 + 48.0 + 44.0) / 12, 1e-12);
  // Worked (answer longer than one character): A 12, 12.0; B 0.5, 2/4.
  EXPECT_NEAR(m.at("worked_rate"), 4.0 / 12, 1e-15);
  EXPECT_EQ(m.at("num_problems"), 3.0);
  EXPECT_EQ(m.count("pass_at_8"), 0u);

  // No greedy pass, no format reward: those keys are absent.
  const auto m2 = eval_metrics(sums, k, false, false);
  EXPECT_EQ(m2.count("greedy_accuracy"), 0u);
  EXPECT_EQ(m2.count("format_rate"), 0u);
}

TEST(EvalFigures, SumsSplitOverRanksAddUp) {
  // evaluate() all-reduces per-rank sums: two halves must give the whole.
  const long k = 2;
  std::vector<ProblemOutcome> ps = {outcome({"1", "2"}, {"1"}, 1), outcome({"3", "3"}, {"3"}, 0),
                                    outcome({"", "5"}, {"4"}, 0)};
  EvalSums all, a, b;
  for (const auto& p : ps) score_problem(p, k, math_answers_equivalent, all);
  score_problem(ps[0], k, math_answers_equivalent, a);
  score_problem(ps[2], k, math_answers_equivalent, a);
  score_problem(ps[1], k, math_answers_equivalent, b);
  a += b;
  EXPECT_EQ(eval_metrics(a, k, true, true), eval_metrics(all, k, true, true));
}

TEST(EvalFigures, RejectsOutcomesThatDoNotFit) {
  EvalSums s;
  EXPECT_THROW(score_problem(outcome({"1"}, {"1"}), 2, math_answers_equivalent, s), Error);
  ProblemOutcome bad = outcome({"1", "2"}, {"1"});
  bad.lengths.pop_back();
  EXPECT_THROW(score_problem(bad, 2, math_answers_equivalent, s), Error);
}

}  // namespace
}  // namespace zerorl
