// Evaluation of a policy on held-out problems: pass@1 as the R1 paper
// measures it (k samples per problem at temperature 0.6, top-p 0.95, mean
// correctness), pass@k (unbiased estimator with n = k: any correct), maj@k
// (the most common extracted answer is correct), greedy accuracy, format
// rate, mean response length and the share of completions in worked steps.
//
// Recipe section `eval:` (all optional):
//   every: 10              evaluate before training and every N steps (0: never)
//   num_problems: 64       first N problems of the test split (0: all)
//   k: 8                   samples per problem
//   temperature: 0.6
//   top_p: 0.95
//   max_new_tokens: 0      0: the rollout's max_new_tokens
//   greedy: true           also decode greedily once per problem
//   correct_reward: accuracy   reward (pipeline name) whose value >= 0.5 counts as correct
//   format_reward: format      reward whose value >= 0.5 counts as well formatted ("" : none)
//   seed: 12345            sampling stream (fixed across evaluations, so curves compare)
//
// Distributed: rank r evaluates problems r, r + W, ...; the sums are
// all-reduced, so every rank returns the same numbers.  Collective.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/template.h"
#include "rollout/engine.h"

namespace zerorl {

class Comm;
class ConfigNode;
namespace rewards {
class RewardPipeline;
}
namespace model {
class CausalLM;
}
namespace data {
class Tokenizer;
}

struct EvalConfig {
  long every = 10;
  long num_problems = 64;
  long k = 8;
  double temperature = 0.6;
  double top_p = 0.95;
  long max_new_tokens = 0;
  bool greedy = true;
  std::string correct_reward = "accuracy";
  std::string format_reward = "format";
  uint64_t seed = 12345;
  static EvalConfig from(const ConfigNode& n);
};

struct EvalResult {
  // pass_at_1, pass_at_k, maj_at_k, greedy_accuracy, format_rate,
  // mean_response_tokens, worked_rate, num_problems (and k).
  std::map<std::string, double> metrics;
  // The greedy completion of the first few problems (for eval logs).
  std::vector<std::pair<std::string, std::string>> examples;
};

// What the evaluation needs from a run, by reference (not owned).
struct EvalContext {
  model::CausalLM* policy = nullptr;
  const data::Tokenizer* tokenizer = nullptr;
  const data::PromptTemplate* prompt_template = nullptr;
  const rewards::RewardPipeline* rewards = nullptr;
  rollout::Engine* engine = nullptr;
  rollout::SamplingParams sampling;  // the rollout's: stop strings, max_new_tokens
  bool prepend_bos = false;
};

EvalResult evaluate(const EvalContext& ctx, const std::vector<data::Example>& problems,
                    const EvalConfig& cfg, Comm& comm);

// The text the rewards see for a completion: templates that open the think
// block in the prompt ("... Assistant: <think>") get "<think>" put back in
// front, so format checks see the whole structure.
std::string scored_response(const std::string& rendered_prompt, const std::string& completion);

}  // namespace zerorl
