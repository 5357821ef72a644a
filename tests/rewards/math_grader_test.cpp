// The math grader: extraction, normalisation, equivalence and its bounds.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "rewards/math/grader.h"

namespace zr = zerorl::rewards::math;

namespace {

zr::Verdict g(const std::string& gold, const std::string& completion, zr::GradeOptions o = {}) {
  return zr::grade(gold, completion, o);
}

bool same(const std::string& a, const std::string& b, int precision = 6) {
  zr::GradeOptions o;
  o.compare.precision = precision;
  return zr::compare_answers(a, b, o).correct;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(MathExtract, AnswerTagComesFirstThenLastBoxed) {
  auto v = g("7", "<think>maybe \\boxed{3}</think><answer>The answer is \\boxed{7}.</answer>");
  EXPECT_TRUE(v.correct) << v.reason;
  EXPECT_EQ(v.extracted, "7");
  // Outside the answer block a box does not count.
  EXPECT_FALSE(g("3", "<think>\\boxed{3}</think><answer>7</answer>").correct);
  // Last box wins; nested braces are balanced.
  v = g("\\frac{1}{2}", "first \\boxed{3}, then \\boxed{\\frac{1}{2}}");
  EXPECT_TRUE(v.correct) << v.reason;
  EXPECT_EQ(v.extracted, "\\frac{1}{2}");
}

// One brace matcher for the extractor and the parser, with LaTeX's escapes:
// "\\" is a line break, so the brace after it closes the box, while "\}" is
// a literal brace inside it.
TEST(MathExtract, BoxedBracesFollowLatexEscapes) {
  zr::ExtractOptions only_boxed;
  only_boxed.answer_tag = only_boxed.phrases = only_boxed.latex = only_boxed.last_number = false;
  auto c = zr::extract_candidates("so \\boxed{x = 1 \\\\} and more", only_boxed);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].text, "x = 1 \\\\");
  EXPECT_EQ(c[0].method, "boxed");
  c = zr::extract_candidates("\\boxed{\\{1, 2\\}} done", only_boxed);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].text, "\\{1, 2\\}");
}

TEST(MathExtract, PhrasesLatexAndNumbers) {
  EXPECT_TRUE(g("12", "so we get 5 and 7. The final answer is 12.").correct);
  EXPECT_TRUE(g("2/3", "Therefore the probability is $\\frac{2}{3}$.").correct);
  EXPECT_TRUE(g("34", "Final Answer: The largest $n$ is 34.").correct);
  EXPECT_FALSE(g("2", "AZYUK2A").correct);
  auto v = g("5", "no numbers here at all");
  EXPECT_FALSE(v.correct);
  EXPECT_EQ(v.reason, "no answer found");
}

TEST(MathNormalize, SurfaceFormsThatMeanTheSame) {
  EXPECT_TRUE(same("\\frac{1}{2}", "\\dfrac12"));
  EXPECT_TRUE(same("\\frac{1}{2}", "\\tfrac{1}{2}"));
  EXPECT_TRUE(same("\\sqrt{3}", "\\sqrt3"));
  EXPECT_TRUE(same("(1, 2)", "\\left( 1, 2 \\right)"));
  EXPECT_TRUE(same("10", "10\\text{ cm}"));
  EXPECT_TRUE(same("15", "15\\mbox{ cm}^2"));
  EXPECT_TRUE(same("90", "90^\\circ"));
  EXPECT_TRUE(same("28", "28\\%"));
  EXPECT_TRUE(same("1234567", "1,234,567"));
  EXPECT_TRUE(same("14916", "14{,}916"));
  EXPECT_TRUE(same("5", "5."));
  EXPECT_TRUE(same("10", "\\$10"));
  EXPECT_FALSE(same("10", "100"));
}

// As Math-Verify (0.9.0, checked in the venv): a percentage equals both its
// number and its fraction, either side the gold; a unit word after a number
// is dropped; single letters and meaning-changing words are not units.
TEST(MathNormalize, PercentagesAndUnitWordsAsMathVerify) {
  EXPECT_TRUE(same("25\\%", "0.25"));
  EXPECT_TRUE(same("0.25", "25\\%"));
  EXPECT_TRUE(same("50\\%", "\\frac{1}{2}"));
  EXPECT_TRUE(same("12.5\\%", "\\frac18"));
  EXPECT_TRUE(same("0.25", "25 percent"));
  EXPECT_TRUE(same("25\\%", "25"));
  EXPECT_FALSE(same("0.25", "26\\%"));
  EXPECT_FALSE(same("0.5", "50"));  // no percent sign: 50 is fifty
  EXPECT_FALSE(same("25\\%", "0.5"));
  EXPECT_TRUE(g("0.25", "The answer is \\boxed{25\\%}.").correct);
  EXPECT_TRUE(same("10", "10 meters"));
  EXPECT_TRUE(same("10 meters", "10"));
  EXPECT_TRUE(same("10", "10 square meters"));
  EXPECT_TRUE(same("12", "12 inches"));
  EXPECT_TRUE(same("7", "7 hours."));
  EXPECT_TRUE(same("4", "4 students"));
  EXPECT_TRUE(same("10", "10cm"));
  EXPECT_TRUE(g("10", "The answer is 10 meters").correct);
  EXPECT_FALSE(same("11", "10 meters"));
  EXPECT_FALSE(same("3", "3 x"));       // a variable, not a unit
  EXPECT_FALSE(same("10", "10 m"));     // single letters stay variables
  EXPECT_FALSE(same("10", "10 more"));  // changes the meaning
  EXPECT_FALSE(same("2", "2 \\pi"));
}

TEST(MathEquivalence, ExactRationalsAndRoundedDecimals) {
  EXPECT_TRUE(same("0.5", "\\frac{1}{2}"));
  EXPECT_TRUE(same("1000", "1000.0"));
  EXPECT_TRUE(same("2^{10}", "1024"));
  EXPECT_FALSE(same("\\frac{1}{3}", "\\frac{1}{4}"));
  EXPECT_FALSE(same("\\frac{1}{3}", "0.33"));  // rounded to 6 places: 0.333333 vs 0.33
  EXPECT_TRUE(same("\\frac{1}{3}", "0.333", 3));
  EXPECT_FALSE(same("\\frac{1}{3}", "0.333", 4));
  // Exact fractions are never rounded: 1/3 vs 333333/1000000 is wrong.
  EXPECT_FALSE(same("\\frac{1}{3}", "\\frac{333333}{1000000}"));
  EXPECT_TRUE(same("123456789012345678901234567890", "123456789012345678901234567890"));
  EXPECT_FALSE(same("123456789012345678901234567890", "123456789012345678901234567891"));
}

TEST(MathEquivalence, SymbolicRadicalsPiAndVariables) {
  EXPECT_TRUE(same("3\\sqrt{13}", "\\sqrt{117}"));
  EXPECT_TRUE(same("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"));
  EXPECT_TRUE(same("\\frac{9}{4}\\pi", "\\frac94\\pi"));
  EXPECT_FALSE(same("\\pi", "3.14"));
  EXPECT_TRUE(same("(x-2)(x+2)", "x^2-4"));
  EXPECT_TRUE(same("\\tan^2(y)+1", "\\sec^2(y)"));
  EXPECT_FALSE(same("x+1", "x+2"));
  EXPECT_FALSE(same("x", "y"));
  EXPECT_TRUE(same("\\sqrt{17}", "4.12310562", 6));
}

TEST(MathEquivalence, SetsTuplesIntervals) {
  EXPECT_TRUE(same("\\{1, 2, 3\\}", "\\{3, 1, 2\\}"));
  EXPECT_TRUE(same("1, 2, 3", "3, 2, 1"));
  EXPECT_FALSE(same("(1, 2)", "(2, 1)"));
  EXPECT_TRUE(same("(1, 2)", "(1, 2)"));
  EXPECT_TRUE(same("[0, 1)", "[0,1)"));
  EXPECT_FALSE(same("[0, 1)", "(0, 1)"));
  EXPECT_FALSE(same("[0, 1)", "[0, 1]"));
  EXPECT_TRUE(same("(-\\infty, 3] \\cup [5, \\infty)", "[5, \\infty) \\cup (-\\infty, 3]"));
  EXPECT_TRUE(same("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"));
  EXPECT_FALSE(same("\\pm 2", "2"));
}

TEST(MathEquivalence, EquationsAssignmentsInequalities) {
  EXPECT_TRUE(same("3", "x = 3"));
  EXPECT_TRUE(same("x = 3", "3"));
  EXPECT_FALSE(same("a + 3z = 0", "0"));  // an equation is not its right side
  EXPECT_TRUE(same("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}"));
  EXPECT_TRUE(same("x \\geq 5", "5 \\leq x"));
  EXPECT_TRUE(same("x < 1", "-x > -1"));
  EXPECT_FALSE(same("x < 1", "x > -1"));
  EXPECT_FALSE(same("x < 1", "x \\le 1"));
  EXPECT_TRUE(same("1 < x < 2", "(1, 2)"));  // gold relation vs predicted interval
  EXPECT_FALSE(same("(1, 2)", "1 < x < 2"));
}

TEST(MathBounds, HostileInputsGiveAVerdictQuickly) {
  zr::GradeOptions o;
  o.timeout_ms = 500;
  const std::vector<std::string> hostile = {
      "\\boxed{10^{10^{10^{10}}}}",
      "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}",
      "\\boxed{99999999999!}",
      "\\boxed{" + std::string(500, '{') + "1" + std::string(500, '}') + "}",
      "\\boxed{" + std::string(500, '(') + "1" + std::string(500, ')') + "}",
      "\\boxed{" + std::string(100000, '1') + "}",
      std::string(100000, '$'),
      "\\boxed{" + std::string(50000, 'x') + "}",
      "\\boxed{(x+1)^{1000} - (x+1)^{999}}",
      // Found by the fuzzer: a symbolic exponent with a 90th power in it made
      // GiNaC compute a rational power exactly (14 s).
      "$F_n = \\sum_{k=0}^{n-1" + std::string(90, 'o') + "} F_k F_{n-k-1}$",
      "\\boxed{\\sqrt[1000000]{2}}",
      std::string(100000, '\\'),
      "\\boxed{" +
          [] {
            std::string s;
            for (int i = 0; i < 3000; ++i) s += "\\frac{1}{";
            return s;
          }() +
          "}",
  };
  for (const auto& h : hostile) {
    auto t0 = std::chrono::steady_clock::now();
    auto v = zr::grade("10^{10^{10^{10}}}", h, o);
    double ms = ms_since(t0);
    EXPECT_LT(ms, 1500.0) << "answer starting " << h.substr(0, 40) << " took " << ms << " ms";
    EXPECT_FALSE(v.reason.empty());
  }
  // The same tower on both sides is recognised without evaluating it.
  EXPECT_TRUE(zr::grade("10^{10^{10^{10}}}", "\\boxed{10^{10^{10^{10}}}}", o).correct);
}

namespace {

// Each (gold, answer) of `hostile` gets a verdict within a second, not
// "correct", with its reason.
void expect_quick_and_wrong(const std::vector<std::pair<std::string, std::string>>& hostile,
                            const zr::GradeOptions& o) {
  for (const auto& [gold, answer] : hostile) {
    auto t0 = std::chrono::steady_clock::now();
    auto v = zr::grade(gold, answer, o);
    double ms = ms_since(t0);
    EXPECT_LT(ms, 1000.0) << answer << " against " << gold << " took " << ms << " ms";
    EXPECT_FALSE(v.correct) << answer << ": " << v.reason;
    EXPECT_FALSE(v.reason.empty());
  }
}

}  // namespace

// Found by the fuzzer in CI: towers whose every written exponent is small,
// evaluated at a test point (x ~ 1.6) in GiNaC's floats, whose exponent range
// is unbounded: x^(x^(x^50)) asked cln for a 1.5-billion-bit integer (4 GB,
// 2.5 s) and the fuzzer's input for 6.7 GB.  Each must be refused quickly.
TEST(MathBounds, TowersAtATestPointAreNotEvaluatedInBigFloats) {
  zr::GradeOptions o;
  o.timeout_ms = 500;
  const std::vector<std::pair<std::string, std::string>> hostile = {
      {"x", "\\boxed{x^{x^{x^{50}}}}"},
      {"x", "\\boxed{e^{e^{e^{22 x}}}}"},
      {"x", "\\boxed{\\exp(\\exp(\\exp(\\exp(\\exp(x)))))}"},
      {"x^{x^{x^{50}}}", "\\boxed{x}"},
      {"2", "\\boxed{e^{e^{e^{22}}}}"},
      {"2", "\\boxed{\\exp(\\exp(\\exp(\\exp(\\exp(3)))))}"},
  };
  expect_quick_and_wrong(hostile, o);
  // Ordinary towers still compare by value at the test points.
  EXPECT_TRUE(zr::grade("x^{x^{2}}", "\\boxed{x^{(x^2)}}", o).correct);
  EXPECT_TRUE(zr::grade("e^{e^{x}}", "\\boxed{\\exp(\\exp(x))}", o).correct);
  EXPECT_TRUE(zr::grade("e^{e^{3}}", "\\boxed{\\exp(e^{3})}", o).correct);
}

// Found by the fuzzer in CI (a 10 s timeout inside GMP): expand() and
// normal() cannot be interrupted, and a small tree can ask either for
// minutes, by its number of terms (a product of powers of sums) or by the
// size of its coefficients (a power of a sum with a 54k-bit constant).  Such
// differences skip the symbolic check and are compared at the test points.
TEST(MathBounds, ExpansionsTooBigToExpandAreComparedAtTestPoints) {
  zr::GradeOptions o;
  o.timeout_ms = 500;
  const std::vector<std::pair<std::string, std::string>> hostile = {
      {"(x+1)^{64}(y+1)^{64}(z+1)^{64}", "\\boxed{(x+2)^{64}(y+1)^{64}(z+1)^{64}}"},
      {"(x+1)^{40}(y+1)^{40}(z+1)^{40}", "\\boxed{(x+1)^{40}(y+1)^{40}(z+2)^{40}}"},
      {"(x+(9^{999})^{17})^{64}", "\\boxed{(x+(9^{998})^{17})^{64}}"},
  };
  expect_quick_and_wrong(hostile, o);
  // Equal ones still are equal: symbolically when the expansion is small,
  // at the test points when it is not.
  EXPECT_EQ(
      zr::grade("(x+1)^{64}(y+1)^{64}(z+1)^{64}", "\\boxed{(z+1)^{64}(y+1)^{64}(x+1)^{64}}", o)
          .correct,
      true);
  auto big = zr::grade("(x+1)^{40}(y+1)^{40}(z+1)^{40}", "\\boxed{((x+1)(y+1)(z+1))^{40}}", o);
  EXPECT_TRUE(big.correct) << big.reason;
  // Relations in more than three variables skip normal() (its multivariate
  // GCDs are unbounded) and are still recognised at the test points.
  auto rel = zr::grade("a + b + c + d = 1", "\\boxed{2a + 2b + 2c + 2d = 2}", o);
  EXPECT_TRUE(rel.correct) << rel.reason;
  EXPECT_FALSE(zr::grade("a + b + c + d = 1", "\\boxed{2a + 2b + 2c + d = 2}", o).correct);
  // A power whose exponent expands to huge coefficients (a fuzzer find:
  // expand() ran out of memory after 36 s) is graded quickly, against
  // itself too, as the fuzzer grades it.
  const std::string tower = "(x+1)^{64^{64}(y+1)^{64}(z+1)^{64}}";
  const auto t0 = std::chrono::steady_clock::now();
  (void)zr::grade(tower, "\\boxed{" + tower + "}", o);
  (void)zr::grade(tower, tower, o);
  (void)zr::compare_answers(tower, tower, o);
  EXPECT_LT(ms_since(t0), 2000.0);
  auto small = zr::grade("(x+1)^{3}(y-1)", "\\boxed{(x^3+3x^2+3x+1)(y-1)}", o);
  EXPECT_TRUE(small.correct) << small.reason;
  EXPECT_NE(small.reason.find("symbolic"), std::string::npos) << small.reason;
}

TEST(MathBounds, RandomBytesNeverCrashOrHang) {
  std::mt19937_64 rng(1234);
  const std::string alphabet = "0123456789+-*/^_{}()[]\\$,.=<>|!abcxyz \n<answer></answer>";
  zr::GradeOptions o;
  o.timeout_ms = 200;
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    int n = (int)(rng() % 200);
    for (int k = 0; k < n; ++k)
      s += (rng() % 4 == 0) ? (char)(rng() % 256) : alphabet[rng() % alphabet.size()];
    auto t0 = std::chrono::steady_clock::now();
    auto v = zr::grade("\\frac{1}{2}", s, o);
    (void)v;
    ASSERT_LT(ms_since(t0), 1000.0) << "input #" << i;
  }
}
