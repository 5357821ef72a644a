#include "core/process_grid.h"

#include "core/checks.h"
#include "core/config.h"

namespace zerorl {

ParallelConfig ParallelConfig::from(const ConfigNode& n) {
  ParallelConfig c;
  // rollout_ranks first: the order --list-keys (docs/RECIPES.md) lists them.
  c.rollout_ranks = n.get<int>("rollout_ranks", c.rollout_ranks);
  c.where_rollout_ranks = n.where("rollout_ranks");
  ZR_CHECK(c.rollout_ranks >= 0, c.where_rollout_ranks,
           ": parallel.rollout_ranks must be >= 0, got ", c.rollout_ranks);
  c.expert = n.get<int>("expert", c.expert);
  c.where_expert = n.where("expert");
  c.overlap_shared_expert = n.get<bool>("overlap_shared_expert", c.overlap_shared_expert);
  ZR_CHECK(c.expert >= 1, c.where_expert, ": parallel.expert must be >= 1 (ranks per expert-",
           "parallel group), got ", c.expert);
  return c;
}

ProcessGrid::ProcessGrid(Comm& world, int expert) : world_(&world), ep_(expert) {
  const int n = world.size();
  ZR_CHECK(expert >= 1 && n % expert == 0, "parallel.expert = ", expert,
           " must be >= 1 and divide the world size ", n);
  dp_ = n / ep_;
  ep_rank_ = world.rank() % ep_;
  dp_rank_ = world.rank() / ep_;
  ep_comm_ = world.split(dp_rank_, ep_rank_);
  dp_comm_ = world.split(ep_rank_, dp_rank_);
  ZR_CHECK(ep_comm_->size() == ep_ && ep_comm_->rank() == ep_rank_, "ProcessGrid: EP group of ",
           ep_comm_->size(), " ranks (rank ", ep_comm_->rank(), "), expected ", ep_, " (rank ",
           ep_rank_, ")");
  ZR_CHECK(dp_comm_->size() == dp_ && dp_comm_->rank() == dp_rank_, "ProcessGrid: DP group of ",
           dp_comm_->size(), " ranks, expected ", dp_);
}

int64_t ProcessGrid::experts_per_rank(int64_t n_experts) const {
  ZR_CHECK(n_experts >= ep_ && n_experts % ep_ == 0, n_experts,
           " routed experts do not divide over parallel.expert = ", ep_, " ranks");
  return n_experts / ep_;
}

}  // namespace zerorl
