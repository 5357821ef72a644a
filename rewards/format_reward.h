// R1-Zero's format reward: the completion is one <think>...</think> block
// followed by one <answer>...</answer> block.
//
//   strict:  optional whitespace, <think>, text, </think>, whitespace,
//            <answer>, text, </answer>, then only whitespace or an
//            end-of-text marker ("<|endoftext|>", "<|im_end|>", "</s>",
//            "<｜end▁of▁sentence｜>"); each tag exactly once; the blocks are
//            non-empty.
//   lenient: a <think> block and a later <answer> block each appear (once),
//            anything may sit around them.  The R1-Zero template ends the
//            prompt with "<think>", so `prompt_opens_think: true` treats the
//            completion as if it began with "<think>".
// Value: `reward` (default 1.0) when well formed, else 0 with the reason in
// `error`.
#pragma once

#include "core/config.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct FormatRewardConfig {
  bool strict = true;
  bool prompt_opens_think = false;
  double reward = 1.0;
  static FormatRewardConfig from(const ConfigNode& n);
};

class FormatReward : public Reward {
 public:
  explicit FormatReward(FormatRewardConfig cfg = {}) : cfg_(cfg) {}
  RewardResult score(const Sample& sample) const override;
  // The reason the text is not well formed, or "" when it is.
  static std::string check(const std::string& completion, bool strict);

 private:
  FormatRewardConfig cfg_;
};

}  // namespace zerorl::rewards
