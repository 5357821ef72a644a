// ProcessGrid: the world as DP x EP, and the sub-communicators of each axis.
//
// World rank w sits at (dp_rank, ep_rank) = (w / ep, w % ep): an EP group is
// ep consecutive world ranks (one data-parallel replica of the MoE layers,
// the experts spread over them), a DP group the dp ranks that hold the same
// expert shard (w % ep equal).  Consecutive EP ranks keep the all-to-all
// inside a node, as torchtitan's device mesh and Megatron's EP do.
//
//   world 4, ep 2:   ep groups {0,1} {2,3}    dp groups {0,2} {1,3}
//
// The grid owns both sub-communicators; building it is a collective over
// `world` (two Comm::split calls).  Routed expert e of n lives on EP rank
// e / (n / ep); dense parameters are replicated on every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/comm.h"

namespace zerorl {

class ConfigNode;

// Recipe section `parallel`, its only reader:
//   parallel:
//     expert: E          ranks per EP group (issue 14), default 1 (every
//                        routed expert on every rank: plain data parallelism)
//     overlap_shared_expert: B  the EP layer runs the shared expert while the
//                        token rows are in flight (default true; the same
//                        bits either way)
//     rollout_ranks: R   ranks that only generate (issue 16, with
//                        rollout.mode disaggregated: trainer/disaggregated.h),
//                        default 0
// E >= 1 and R >= 0 are checked here; the rest where it is known (E divides
// the world size and the policy's n_routed_experts: the trainer's build; R
// agrees with rollout.mode: DisaggregatedConfig), with where_* naming the
// key's line.
struct ParallelConfig {
  int expert = 1;
  bool overlap_shared_expert = true;
  int rollout_ranks = 0;
  std::string where_expert;         // "file:line:col" of parallel.expert (or its section)
  std::string where_rollout_ranks;  // the same for parallel.rollout_ranks
  static ParallelConfig from(const ConfigNode& n);
};

class ProcessGrid {
 public:
  // `expert`, the EP size (the recipe's parallel.expert), must divide
  // world.size().
  ProcessGrid(Comm& world, int expert);

  int ep() const { return ep_; }
  int dp() const { return dp_; }
  int ep_rank() const { return ep_rank_; }
  int dp_rank() const { return dp_rank_; }
  Comm& world() const { return *world_; }
  Comm& ep_comm() const { return *ep_comm_; }  // the ranks of this EP group
  Comm& dp_comm() const { return *dp_comm_; }  // the replicas of this rank's expert shard

  // Experts per EP rank and this rank's first one; n_experts must divide by ep.
  int64_t experts_per_rank(int64_t n_experts) const;
  int64_t first_expert(int64_t n_experts) const { return ep_rank_ * experts_per_rank(n_experts); }

 private:
  Comm* world_;
  int ep_ = 1, dp_ = 1, ep_rank_ = 0, dp_rank_ = 0;
  std::unique_ptr<Comm> ep_comm_, dp_comm_;
};

}  // namespace zerorl
