// Expert parallelism in the GRPO trainer (issue 14): the recipe's
// `parallel: {expert: E}` checked against the world size, the policy and
// the rest of the recipe; the DP x EP ProcessGrid (core/process_grid.h)
// built; the plan (model/moe_ep.h) applied to the policy and the reference.
//
// What the trainer does differently under EP, and where it lives:
//   * gradients: each sharded expert stack's NamedParam::sync is the DP
//     group (gradient_group below): its gradients are summed over the ranks
//     that hold the same experts only; everything else over the world
//     (optimizer.h, "Sync groups"), at any train.zero;
//   * the router's balancing bias: the expert load is counted over every
//     token of the rank (all E experts) and all-reduced over the world
//     (policy_step.h), so every rank applies the global load;
//   * rollout: the engine runs its forwards in lockstep over the EP group
//     (rollout/engine.h, "Expert parallelism");
//   * checkpoints: the weights are written whole (full_named_weights), the
//     optimizer state as each rank holds it; resuming under EP (or from an
//     EP checkpoint) is refused: planned (issue 14).
//
// What is refused with E > 1, each naming its key: E not dividing the world
// size or n_routed_experts, a policy without MoE layers, the sequence-wise
// balance loss (moe seq_aux_loss_alpha > 0), advantage.dynamic_sampling (ranks
// would run different numbers of learner forwards) and a minibatch split
// that gives ranks different numbers of rows (prompts per rank must be a
// multiple of train.minibatches): every rank of an EP group must run the
// same forwards and backwards, in the same order.
#pragma once

#include <memory>
#include <string>

#include "core/comm.h"
#include "core/process_grid.h"

namespace zerorl {

class Recipe;
struct TrainRecipe;
namespace model {
class CausalLM;
}

// Null when parallel.expert is 1 (nothing changes).  Otherwise builds the
// grid (a collective over `world`) and applies the plan to `policy`; the
// grid must outlive the policy.  Throws naming the key on what is refused.
std::unique_ptr<ProcessGrid> build_expert_parallel(const TrainRecipe& cfg, const Recipe& recipe,
                                                   model::CausalLM& policy, Comm& world);

// The Comm a parameter's gradient is summed over: the grid's DP group for a
// sharded expert stack, null (the world) for everything else or no grid.
Comm* gradient_group(const ProcessGrid* grid, const std::string& param_name);

}  // namespace zerorl
