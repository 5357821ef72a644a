// RolloutBatch -> right-padded tensors laid out for teacher forcing, so the
// trainer's log-probs line up with the behaviour log-probs by construction.
//
// Legend: B samples (prompt-major, as in RolloutBatch), T = longest
// (prompt + completion) - 1.
//
// For sample b with sequence s = prompt ++ completion (n = |s| tokens):
//   tokens_BT[b, t]  = s[t]       t < n - 1      (pad_id after)
//   targets_BT[b, t] = s[t + 1]   t < n - 1      (pad_id after)
//   valid_BT[b, t]   = t < n - 1                 (ForwardOptions::valid_BT)
//   completion_mask_BT[b, t] = prompt_len - 1 <= t < n - 1
//                               (position t predicts completion token t - prompt_len + 1)
//   behaviour_logp_BT[b, t]  = RolloutSample::logp[t - prompt_len + 1] on the
//                               completion mask, 0 elsewhere
// so model.logprobs(tokens_BT, targets_BT, {.temperature = T}, {.valid_BT})
// .logp_BT equals behaviour_logp_BT on completion_mask_BT (tested to 1e-5).
//
// All tensors are on the CPU (move them where the trainer needs them); ints
// are int64, masks bool, log-probs float32.  pad_id must be a valid token id
// (any id works: padded positions are masked).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "rollout/engine.h"

namespace zerorl::rollout {

struct PaddedRollout {
  at::Tensor tokens_BT;
  at::Tensor targets_BT;
  at::Tensor valid_BT;
  at::Tensor completion_mask_BT;
  at::Tensor behaviour_logp_BT;
};

// Throws zerorl::Error for an empty batch or a negative pad_id.
PaddedRollout pad_rollout(const RolloutBatch& batch, int64_t pad_id = 0);

}  // namespace zerorl::rollout
