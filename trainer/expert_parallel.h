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
//   * checkpoints (trainer/checkpoint.h, "Row shards"): world rank 0 writes
//     the replicated weights, and each owner of an expert shard (DP rank 0
//     of its replicas) its experts of every stack as row shards; nothing is
//     gathered.  The optimizer state is written in whole-parameter
//     coordinates (NamedParam::part/parts, expert_piece below), so a
//     resume at any EP size, DP size and train.zero (or without EP)
//     reads each rank's experts and optimizer slice from the files that
//     hold them (expert_rows) and reshards;
//
// What is refused with E > 1, each naming its key: E not dividing the world
// size or n_routed_experts, a policy without MoE layers, the sequence-wise
// balance loss (moe seq_aux_loss_alpha > 0), advantage.dynamic_sampling (ranks
// would run different numbers of learner forwards) and a minibatch split
// that gives ranks different numbers of rows (prompts per rank must be a
// multiple of train.minibatches): every rank of an EP group must run the
// same forwards and backwards, in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "core/comm.h"
#include "core/process_grid.h"
#include "trainer/checkpoint.h"

namespace zerorl {

class Recipe;
struct TrainRecipe;
namespace model {
class CausalLM;
}

// Null when parallel.expert is 1 (nothing changes).  Otherwise builds the
// grid (a collective over `world`: the world, or a disaggregated run's role)
// and applies the plan to `policy`; the grid must outlive the policy.
// Throws naming the key on what is refused; `learner` false (a rollout rank)
// skips the checks of the learner's forwards.
std::unique_ptr<ProcessGrid> build_expert_parallel(const TrainRecipe& cfg, const Recipe& recipe,
                                                   model::CausalLM& policy, Comm& world,
                                                   bool learner = true);

// The Comm a parameter's gradient is summed over: the grid's DP group for a
// sharded expert stack, null (the world) for everything else or no grid.
Comm* gradient_group(const ProcessGrid* grid, const std::string& param_name);

// NamedParam::{part, parts} of a parameter: {ep_rank, ep} for a sharded
// expert stack (this rank's experts are that piece of the whole stack),
// {0, 1} for everything else or no grid.
std::pair<int64_t, int64_t> expert_piece(const ProcessGrid* grid, const std::string& param_name);

// What this rank writes of `held` (the policy's or reference's
// named_weights) into group `group` ("model", "reference") of its checkpoint
// file `c`: without a grid, everything on world rank 0 and nothing
// elsewhere; under EP, the replicated tensors on world rank 0, and the
// sharded expert stacks, as row shards of the whole [n_experts, ...] stack,
// on DP rank 0 of each expert shard's replicas (world ranks 0 .. ep - 1).
void add_owned_weights(const NamedTensors& held, const std::string& group, const ProcessGrid* grid,
                       int world_rank, int64_t n_experts, Checkpoint& c);

// load_checkpoint_group's pick for a rank of `grid`: its experts
// [first_expert, first_expert + experts_per_rank) of every sharded expert
// stack; every other tensor whole.  Without a grid: everything whole.
RowPick expert_rows(const ProcessGrid* grid, int64_t n_experts);

// After a resume, DDP style: the replicated tensors of `weights` broadcast
// from world rank 0, each sharded expert stack from DP rank 0 of its
// replicas (the ranks holding the same experts).  Collective over the world
// and the DP groups.
void broadcast_replicas(const NamedTensors& weights, const ProcessGrid* grid, Comm& world);

}  // namespace zerorl
