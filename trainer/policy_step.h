// One optimizer step of a policy, as GRPO's update (trainer/grpo_trainer.cpp)
// and pretraining (trainer/pretrain.cpp) both take it:
//   1. Optimizer::step(): gradient sync, global-norm clipping, AdamW, and
//      the skip of a step whose loss or gradient is not finite on some rank
//      or whose update would blow the weights up (optimizer.max_update_ratio;
//      trainer/optimizer.h);
//   2. the MoE balancing biases (DeepSeek-V3's auxiliary-loss-free load
//      balancing, model/moe_block.h) move from the expert load recorded
//      since the last step, summed over ranks so every replica moves alike,
//      and only when step 1 applied the update; the load counters restart.
// Collective: every rank calls it once per optimizer step, in the same order
// as every other collective.
#pragma once

#include <optional>

#include "trainer/optimizer.h"

namespace zerorl {

class Comm;
namespace model {
class CausalLM;
}

struct PolicyStepReport {
  StepReport optimizer;
  // Over the MoE layers, the largest max/mean ratio of the summed expert
  // load (each layer's mean at least 1 token); empty for a model without
  // MoE layers.
  std::optional<double> load_imbalance_max;
};

PolicyStepReport policy_step(Optimizer& opt, model::CausalLM& model, Comm& comm,
                             bool local_loss_finite);

}  // namespace zerorl
