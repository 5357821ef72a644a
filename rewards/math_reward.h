// Accuracy reward for math answers (R1-Zero's accuracy reward): 1 when the
// completion's final answer is equivalent to the gold answer, else 0.
//
// Options (recipe, all optional):
//   precision: 6            decimal places for rounded comparison of decimals
//   timeout_ms: 1000        per completion; a timeout scores 0 with a reason
//   answer_tag: true        look inside <answer>...</answer> first
//   boxed / phrases / latex / last_number: true    extraction steps
//   allow_set_relation_comp: false
// Components: {"correct": 0|1}.  `error` carries the reason when no answer
// was found or a bound was hit; a plain wrong answer has no error.
#pragma once

#include "core/config.h"
#include "rewards/math/grader.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct MathRewardConfig {
  math::GradeOptions grade;
  static MathRewardConfig from(const ConfigNode& n);
};

class MathReward : public Reward {
 public:
  explicit MathReward(MathRewardConfig cfg = {}) : cfg_(std::move(cfg)) {}
  RewardResult score(const Sample& sample) const override;

 private:
  MathRewardConfig cfg_;
};

}  // namespace zerorl::rewards
