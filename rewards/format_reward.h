// R1-Zero's format reward: the completion is one <think>...</think> block
// followed by one <answer>...</answer> block.
//
//   strict:  optional whitespace, <think>, text, </think>, whitespace,
//            <answer>, text, </answer>, then only whitespace or an
//            end-of-text marker ("<|endoftext|>", "<|im_end|>", "</s>",
//            "<｜end▁of▁sentence｜>"); each tag exactly once; the blocks are
//            non-empty.
//   lenient: a <think> block and a later <answer> block each appear (once),
//            anything may sit around them.
// When the sample's prompt ends in "<think>" (spaces and tabs after it
// aside), as the `tiny` template's does (data/template.cpp), the think block
// was opened by the prompt: the completion is checked as if it began with
// "<think>" (prompt_opens_think).  The key `prompt_opens_think` of earlier
// versions is refused with that explanation.
// Value: `reward` (default 1.0) when well formed, else 0 with the reason in
// `error`.
#pragma once

#include "core/config.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct FormatRewardConfig {
  bool strict = true;
  double reward = 1.0;
  static FormatRewardConfig from(const ConfigNode& n);
};

class FormatReward : public Reward {
 public:
  explicit FormatReward(FormatRewardConfig cfg = {}) : cfg_(cfg) {}
  RewardResult score(const Sample& sample) const override;
  // The reason the text is not well formed, or "" when it is.
  static std::string check(const std::string& completion, bool strict);
  // Whether `prompt` ends in "<think>" (trailing spaces and tabs aside).
  static bool prompt_opens_think(const std::string& prompt);

 private:
  FormatRewardConfig cfg_;
};

}  // namespace zerorl::rewards
