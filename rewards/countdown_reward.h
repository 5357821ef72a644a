// Countdown reward (TinyZero's task): the answer is an arithmetic expression
// that uses each given number exactly once and evaluates to the target.
//
// The numbers and target come from Sample::metadata_json:
//   {"numbers": [3, 5, 7], "target": 22}   (or "nums" for numbers)
// The expression is read from <answer>...</answer> (the last block); an
// "= 22" tail is ignored.  Allowed: integers, + - * /, parentheses, spaces.
// Evaluated exactly over rationals (no floating-point ties); division by zero
// or any other token is a malformed answer.
//
// Value: `correct_reward` (1.0) when right; `format_reward` (default 0.1)
// when an expression was found in an answer block but is wrong; else 0.
// Components: {"correct", "format"}.  Length of the expression is bounded
// (`max_chars`, 256) so hostile input costs nothing.
#pragma once

#include "core/config.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct CountdownRewardConfig {
  double correct_reward = 1.0;
  double format_reward = 0.1;
  size_t max_chars = 256;
  static CountdownRewardConfig from(const ConfigNode& n);
};

class CountdownReward : public Reward {
 public:
  explicit CountdownReward(CountdownRewardConfig cfg = {}) : cfg_(cfg) {}
  RewardResult score(const Sample& sample) const override;

 private:
  CountdownRewardConfig cfg_;
};

}  // namespace zerorl::rewards
