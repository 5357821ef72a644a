#include "trainer/expert_parallel.h"

#include "core/config.h"
#include "core/error.h"
#include "model/model.h"
#include "model/moe_ep.h"
#include "trainer/rank_agreement.h"
#include "trainer/train_recipe.h"

namespace zerorl {

std::unique_ptr<ProcessGrid> build_expert_parallel(const TrainRecipe& cfg, const Recipe& recipe,
                                                   model::CausalLM& policy, Comm& world,
                                                   bool learner) {
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
  ZR_CHECK(!learner || (cfg.train.prompts_per_step % world.size() == 0 &&
                        per_rank % cfg.train.minibatches == 0),
           recipe.section("train").where("minibatches"), ": with parallel.expert = ", E,
           " each rank's prompts (train.prompts_per_step / ", world.size(), " ranks = ", per_rank,
           ") must be a multiple of train.minibatches (", cfg.train.minibatches,
           "), so that every rank runs the same learner forwards");
  auto grid = std::make_unique<ProcessGrid>(world, E);
  model::apply_expert_parallel(policy, *grid, cfg.parallel.overlap_shared_expert);
  return grid;
}

Comm* gradient_group(const ProcessGrid* grid, const std::string& param_name) {
  if (!grid || grid->ep() == 1 || !model::is_sharded_expert(param_name)) return nullptr;
  return &grid->dp_comm();
}

std::pair<int64_t, int64_t> expert_piece(const ProcessGrid* grid, const std::string& param_name) {
  if (!grid || grid->ep() == 1 || !model::is_sharded_expert(param_name)) return {0, 1};
  return {grid->ep_rank(), grid->ep()};
}

void add_owned_weights(const NamedTensors& held, const std::string& group, const ProcessGrid* grid,
                       int world_rank, int64_t n_experts, Checkpoint& c) {
  ZR_CHECK(group == "model" || group == "reference", "add_owned_weights: group '", group, "'");
  NamedTensors& out = group == "model" ? c.weights : c.reference;
  const bool ep = grid && grid->ep() > 1;
  for (const auto& [name, t] : held) {
    if (!ep || !model::is_sharded_expert(name)) {
      if (world_rank == 0) out.emplace_back(name, t);
      continue;
    }
    if (grid->dp_rank() != 0) continue;  // another replica of these experts writes them
    const int64_t first = grid->first_expert(n_experts), rows = grid->experts_per_rank(n_experts);
    ZR_CHECK(t.dim() >= 1 && t.size(0) == rows, "checkpoint: '", name, "' holds ",
             t.dim() ? t.size(0) : 0, " experts, this rank owns ", rows);
    out.emplace_back(name, t);
    c.shards[group + "/" + name] = {first, rows, n_experts};
  }
}

RowPick expert_rows(const ProcessGrid* grid, int64_t n_experts) {
  if (!grid || grid->ep() == 1) return {};
  const int64_t first = grid->first_expert(n_experts), rows = grid->experts_per_rank(n_experts);
  return [first, rows](const std::string& name) -> std::optional<std::pair<int64_t, int64_t>> {
    if (!model::is_sharded_expert(name)) return std::nullopt;
    return std::make_pair(first, rows);
  };
}

void broadcast_replicas(const NamedTensors& weights, const ProcessGrid* grid, Comm& world) {
  NamedTensors replicated, experts;
  for (const auto& w : weights)
    (grid && grid->ep() > 1 && model::is_sharded_expert(w.first) ? experts : replicated)
        .push_back(w);
  broadcast_from_rank0(replicated, world);
  if (!experts.empty()) broadcast_from_rank0(experts, grid->dp_comm());
}

}  // namespace zerorl
