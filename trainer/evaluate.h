// Evaluation of a policy on held-out problems: pass@1 as the R1 paper
// measures it (n samples per problem at temperature 0.6, top-p 0.95, mean
// correctness), pass@k (the unbiased estimator of Chen et al. 2021,
// 1 - C(n-c, k) / C(n, k) for c correct of n; "any correct" when n = k),
// maj@k (majority vote over the first k samples' answers, answers that the
// math grader finds equivalent voting together: `0.5` and `1/2` are one
// answer), greedy accuracy, format rate, mean response length and the share
// of completions in worked steps.
//
// The figures are computed by score_problem() and eval_metrics() from
// scored outcomes (ProblemOutcome), which the tests build by hand; evaluate()
// only generates, grades and all-reduces.
//
// Recipe section `eval:` (all optional):
//   every: 10              evaluate before training and every N steps (0: never)
//   num_problems: 64       first N problems of the test split (0: all)
//   k: 8                   the k of pass@k and maj@k
//   n: 0                   samples per problem (0: k; otherwise >= k)
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

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/template.h"
#include "rewards/reward.h"
#include "rollout/engine.h"
#include "trainer/reflection.h"

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
  long n = 0;  // 0: k
  bool greedy = true;
  std::string correct_reward = "accuracy";
  std::string format_reward = "format";
  // How the n samples are drawn: the rollout's sampling (stop strings, stop
  // ids, max_new_tokens unless eval.max_new_tokens > 0) with eval's
  // temperature, top_p and seed, top-k off and step 0.  The greedy pass
  // takes it at temperature 0.
  rollout::SamplingParams sampling;

  // The `eval:` section over the run's rollout.sampling (the defaults above
  // and in the file comment are written into the recipe).
  static EvalConfig from(const ConfigNode& n, const rollout::SamplingParams& rollout_sampling);
};

struct EvalResult {
  // pass_at_1, pass_at_<k>, maj_at_<k>, greedy_accuracy (eval.greedy),
  // format_rate (with a format reward), mean_response_tokens, worked_rate,
  // num_problems; over the n sampled completions (trainer/reflection.h):
  // reflection_rate, reflection_markers_mean, reflection_revision_rate,
  // reflection_accuracy_with, reflection_accuracy_without (NaN when no
  // completion is reflective / non-reflective).
  std::map<std::string, double> metrics;
  // The greedy completion of the first few problems (for eval logs).
  std::vector<std::pair<std::string, std::string>> examples;
  // Rank 0 only (empty elsewhere): one JSON object per problem, in test-split
  // order, for eval_samples.jsonl (RunDir::append_eval_samples adds "step").
  // The problem's greedy completion when eval.greedy, else its first sample:
  //   problem      index in the test split
  //   decoding     "greedy" | "sampled"
  //   prompt, completion, gold, finish_reason, tokens
  //   correct      that completion, by eval.correct_reward (>= 0.5)
  //   reward, components   the reward pipeline's total and breakdown
  //   answers, reasons     per reward: the answer it extracted and why it
  //                        gave its value (empty ones left out)
  //   num_correct, num_samples   of the problem's n sampled completions
  std::vector<std::string> samples;
};

// What the evaluation needs from a run, by reference (not owned).
struct EvalContext {
  model::CausalLM* policy = nullptr;
  const data::Tokenizer* tokenizer = nullptr;
  const data::PromptTemplate* prompt_template = nullptr;
  const rewards::RewardPipeline* rewards = nullptr;
  rollout::Engine* engine = nullptr;
  bool prepend_bos = false;
};

// ---- the figures, from scored outcomes -----------------------------------------------

// One problem's graded samples (all vectors [n], in sampling order).
struct ProblemOutcome {
  std::vector<bool> correct;           // graded correct (correct_reward >= 0.5)
  std::vector<bool> formatted;         // format_reward >= 0.5 (empty: no format reward)
  std::vector<std::string> answers;    // extracted final answer, "" when none
  std::vector<long> lengths;           // completion tokens
  std::vector<bool> worked;            // written in worked steps
  std::vector<Reflection> reflection;  // trainer/reflection.h (empty: not measured)
  int greedy_correct = -1;             // the greedy completion: 1 / 0, -1 when not decoded
};

// Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k),
// computed as a product (no overflow).  Throws unless 0 <= c <= n, 1 <= k <= n.
double pass_at_k(long n, long c, long k);

// Whether two extracted answers are the same answer (for maj@k voting).
using AnswerEquivalence = std::function<bool(const std::string&, const std::string&)>;
// The math grader's verdict (rewards::math::compare_answers, default
// options), after an exact-string shortcut.
bool math_answers_equivalent(const std::string& a, const std::string& b);

// maj@k of one problem: the first k answers are clustered (an answer joins
// the first cluster whose first answer is equivalent to it; "" never votes);
// the largest cluster wins, a tie going to the cluster that appeared first;
// the vote is correct when the winner's first sample was graded correct.
// False when no sample has an answer.
bool majority_correct(const ProblemOutcome& p, long k, const AnswerEquivalence& eq);

// Per-problem sums, summed over problems (and ranks) before eval_metrics().
struct EvalSums {
  double pass_at_1 = 0;       // each problem's c / n
  double pass_at_k = 0;       // each problem's unbiased pass@k
  double maj_at_k = 0;        // problems whose majority answer is right
  double greedy_correct = 0;  // problems whose greedy completion is right
  double formatted = 0;       // completions the format reward accepts
  double tokens = 0;          // completion tokens
  double worked = 0;          // completions with worked steps
  double completions = 0;
  double problems = 0;
  // Reflection (trainer/reflection.h), over the completions it was measured on.
  double reflection_measured = 0;  // completions with a Reflection (0: not measured)
  double reflective = 0;           // of those, with at least one marker
  double markers = 0;              // markers in all of them
  double revised = 0;              // completions with a revision
  double correct_reflective = 0;   // correct and reflective
  double correct_plain = 0;        // correct and not reflective

  // Every field, in one fixed order: what evaluate() all-reduces over ranks.
  static constexpr int kSize = 15;
  std::array<double*, kSize> fields() {
    return {&pass_at_1,  &pass_at_k, &maj_at_k,    &greedy_correct,     &formatted,
            &tokens,     &worked,    &completions, &problems,           &reflection_measured,
            &reflective, &markers,   &revised,     &correct_reflective, &correct_plain};
  }
  EvalSums& operator+=(EvalSums o) {
    const auto mine = fields(), theirs = o.fields();
    for (int i = 0; i < kSize; ++i) *mine[i] += *theirs[i];
    return *this;
  }
};
void score_problem(const ProblemOutcome& p, long k, const AnswerEquivalence& eq, EvalSums& sums);
// The metrics of EvalResult::metrics from sums over all problems.
std::map<std::string, double> eval_metrics(const EvalSums& sums, long k, bool greedy,
                                           bool has_format);

EvalResult evaluate(const EvalContext& ctx, const std::vector<data::Example>& problems,
                    const EvalConfig& cfg, Comm& comm);

// What the rewards score for one completion of `example`: the rendered
// prompt, the completion as generated (the text samples.jsonl and
// eval_samples.jsonl log; a prompt that ends in <think> stays in the
// prompt, rewards/format_reward.h), the gold answer, the task and its
// metadata.  Training and evaluation both score through it.
rewards::Sample reward_sample(const data::Example& example, const std::string& rendered_prompt,
                              const std::string& completion);

}  // namespace zerorl
