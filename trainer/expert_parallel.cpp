#include "trainer/expert_parallel.h"

#include "core/config.h"
#include "core/error.h"
#include "model/model.h"
#include "model/moe_ep.h"
#include "trainer/train_recipe.h"

namespace zerorl {

std::unique_ptr<ProcessGrid> build_expert_parallel(const TrainRecipe& cfg, const Recipe& recipe,
                                                   model::CausalLM& policy, Comm& world) {
  const int E = cfg.parallel.expert;
  if (E == 1) return nullptr;
  const std::string& at = cfg.parallel.where_expert;
  const model::ModelConfig& mc = policy.config();
  ZR_CHECK(!policy.moe_layers().empty(), at, ": parallel.expert = ", E,
           " needs an MoE policy; policy.init ", cfg.policy.init, " has no MoE layer");
  ZR_CHECK(mc.moe.num_experts % E == 0, at, ": parallel.expert = ", E,
           " must divide the policy's n_routed_experts (", mc.moe.num_experts, ")");
  ZR_CHECK(world.size() % E == 0, at, ": parallel.expert = ", E, " must divide the world size ",
           world.size());
  ZR_CHECK(mc.moe.seq_aux_loss_alpha == 0, at, ": parallel.expert = ", E,
           " with the sequence-wise balance loss (seq_aux_loss_alpha = ", mc.moe.seq_aux_loss_alpha,
           " in policy.init ", cfg.policy.init, ") is not supported yet (issue 14)");
  ZR_CHECK(!cfg.advantage.dynamic_sampling, recipe.section("advantage").where("dynamic_sampling"),
           ": advantage.dynamic_sampling with parallel.expert = ", E,
           " is not supported yet (issue 14): ranks keeping different numbers of groups would run "
           "different numbers of learner forwards, and every forward is an exchange over the EP "
           "group");
  const long per_rank = cfg.train.prompts_per_step / world.size();
  ZR_CHECK(cfg.train.prompts_per_step % world.size() == 0 && per_rank % cfg.train.minibatches == 0,
           recipe.section("train").where("minibatches"), ": with parallel.expert = ", E,
           " each rank's prompts (train.prompts_per_step / ", world.size(), " ranks = ", per_rank,
           ") must be a multiple of train.minibatches (", cfg.train.minibatches,
           "), so that every rank runs the same learner forwards");
  auto grid = std::make_unique<ProcessGrid>(world, E);
  model::apply_expert_parallel(policy, *grid);
  return grid;
}

Comm* gradient_group(const ProcessGrid* grid, const std::string& param_name) {
  if (!grid || grid->ep() == 1 || !model::is_sharded_expert(param_name)) return nullptr;
  return &grid->dp_comm();
}

}  // namespace zerorl
