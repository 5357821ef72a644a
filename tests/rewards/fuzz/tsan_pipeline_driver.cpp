// ThreadSanitizer check of the reward pipeline's pool and the math grader
// (numeric and GiNaC answers mixed, 4 threads, 5 batches).  Built and run by
// `scripts/fuzz_rewards.sh --tsan`; prints the score sum, and TSan reports any
// race (exit code 66).
#include <cstdio>
#include "core/config.h"
#include "rewards/pipeline.h"
namespace zr = zerorl::rewards;
int main() {
  auto recipe = zerorl::Recipe::from_string(
      "rewards:\n  accuracy: {type: math}\n  format: {mode: lenient, weight: 0.1}\n");
  auto pipe = zr::build_reward_pipeline(recipe.section("rewards"), 4);
  std::vector<zr::Sample> v;
  const char* golds[] = {"2\\sqrt{2}", "\\frac{1}{2}", "x^2-1", "\\{1,2\\}",
                         "[0,1)",      "\\pi/2",       "42"};
  const char* preds[] = {"\\sqrt{8}",       "0.5", "(x-1)(x+1)", "\\{2,1\\}", "[0,1)",
                         "\\frac{\\pi}{2}", "41"};
  for (int i = 0; i < 400; ++i)
    v.push_back({"p", std::string("<think>t</think><answer>") + preds[i % 7] + "</answer>",
                 golds[i % 7], "math", ""});
  double sum = 0;
  for (int r = 0; r < 5; ++r)
    for (auto& s : pipe.score(v)) sum += s.total;
  std::printf("sum %.2f\n", sum);
}
