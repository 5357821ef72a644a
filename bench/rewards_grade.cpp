// Gradings per second per core of the math accuracy reward.
//
//   build/bench_rewards_grade [--seconds S]
//
// One thread grades typical R1-Zero completions (a few hundred characters of
// reasoning, then <answer>...\boxed{...}</answer>) against their gold answers,
// in three mixes: numeric (integers, decimals, fractions: the exact GMP path),
// symbolic (radicals, pi, polynomials: the GiNaC path), and structured (sets,
// tuples, intervals, equations).  Then the whole RewardPipeline (math +
// format) on all hardware threads.  Prints gradings/s and microseconds each.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "rewards/math/grader.h"
#include "rewards/pipeline.h"

namespace zr = zerorl::rewards;
using Clock = std::chrono::steady_clock;

namespace {

std::string completion(const std::string& answer) {
  std::string think = "<think>Let me work through this. ";
  for (int i = 0; i < 6; ++i)
    think += "We have $x_" + std::to_string(i) + " = " + std::to_string(3 * i + 1) +
             "$, so adding gives the next term. ";
  return think + "</think>\n<answer>The final answer is $\\boxed{" + answer + "}$.</answer>";
}

struct Case {
  std::string gold, answer;
};

double bench(const std::vector<Case>& cases, double seconds, int* correct) {
  std::vector<std::string> comps;
  for (auto& c : cases) comps.push_back(completion(c.answer));
  zr::math::GradeOptions o;
  long long n = 0;
  *correct = 0;
  for (size_t i = 0; i < cases.size(); ++i)
    *correct += zr::math::grade(cases[i].gold, comps[i], o).correct;
  auto t0 = Clock::now();
  double el = 0;
  while (el < seconds) {
    for (size_t i = 0; i < cases.size(); ++i) zr::math::grade(cases[i].gold, comps[i], o);
    n += (long long)cases.size();
    el = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return n / el;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);

  std::vector<Case> numeric = {
      {"42", "42"},       {"42", "41"},      {"0.5", "\\frac{1}{2}"}, {"1000", "1,000"},
      {"-17", "-17"},     {"3.75", "3.750"}, {"\\frac{7}{3}", "7/3"}, {"12", "\\dfrac{24}{2}"},
      {"2^{10}", "1024"}, {"28\\%", "28"}};
  std::vector<Case> symbolic = {{"3\\sqrt{13}", "\\sqrt{117}"},
                                {"\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"},
                                {"\\frac{9\\pi}{4}", "\\frac94\\pi"},
                                {"x^2-4", "(x-2)(x+2)"},
                                {"\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}"},
                                {"1+\\sqrt{5}", "\\sqrt{5}+1"},
                                {"2\\sqrt{3}", "\\sqrt{13}"},
                                {"\\pi r^2", "r^2\\pi"}};
  std::vector<Case> structured = {{"\\{1,2,3\\}", "\\{3,1,2\\}"},
                                  {"(1,2)", "(1, 2)"},
                                  {"[0,1)", "[0, 1)"},
                                  {"x=3", "3"},
                                  {"x \\geq 5", "5 \\leq x"},
                                  {"1\\pm\\sqrt{2}", "1+\\sqrt2, 1-\\sqrt2"}};
  int c1, c2, c3;
  double r_num = bench(numeric, seconds, &c1);
  double r_sym = bench(symbolic, seconds, &c2);
  double r_str = bench(structured, seconds, &c3);
  std::printf(
      "single thread, %.1f s each mix (one grade = extraction + parse + compare of a ~%zu-byte "
      "completion)\n",
      seconds, completion("42").size());
  std::printf("  numeric     %9.0f gradings/s  %7.2f us each  (%d/%zu correct)\n", r_num,
              1e6 / r_num, c1, numeric.size());
  std::printf("  symbolic    %9.0f gradings/s  %7.2f us each  (%d/%zu correct)\n", r_sym,
              1e6 / r_sym, c2, symbolic.size());
  std::printf("  structured  %9.0f gradings/s  %7.2f us each  (%d/%zu correct)\n", r_str,
              1e6 / r_str, c3, structured.size());

  // The pipeline (math + strict format) on every hardware thread, numeric mix.
  int threads = (int)std::max(1u, std::thread::hardware_concurrency());
  auto recipe =
      zerorl::Recipe::from_string("rewards:\n  accuracy: {type: math}\n  format: {weight: 0.2}\n");
  auto pipe = zr::build_reward_pipeline(recipe.section("rewards"), threads);
  std::vector<zr::Sample> batch;
  for (int i = 0; i < 4096; ++i) {
    const auto& c = numeric[i % numeric.size()];
    batch.push_back({"prompt", completion(c.answer), c.gold, "math", ""});
  }
  pipe.score(batch);
  auto t0 = Clock::now();
  int rounds = 0;
  double el = 0;
  while (el < seconds) {
    pipe.score(batch);
    ++rounds;
    el = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::printf("pipeline (math + format), %d threads, batches of %zu: %.0f samples/s\n", threads,
              batch.size(), rounds * batch.size() / el);
  return 0;
}
