// Expert-parallel MoE layer (issue 14, item 2): the plan that turns a local
// MoeBlock (every routed expert on every rank) into one whose rank holds only
// experts [e0, e0 + E/ep) of its EP group, plus an exchange over the group.
//
//   route (same router, every rank, its own tokens)
//   -> permute the N*K (token, slot) pairs by expert, hence by owner rank
//   -> alltoallv (row counts exchanged first: no capacity factor, no drops)
//   -> the local experts' grouped GEMM (kernels::moe_experts, unit weights)
//   -> alltoallv back -> un-permute -> weighted combine on the token's rank
//   (+ the shared expert, replicated, computed locally)
// Backward runs the reverse exchanges (ExchangeFn below), so a rank's expert
// gradients sum over every token of the EP group that chose them, and its
// router, shared-expert and input gradients cover its own tokens -- exactly
// the local layer on the union of the group's tokens.
//
// Every rank of the EP group must call forward (and backward) the same number
// of times, in the same order; a rank with no tokens joins with zero rows.
// Not yet wired into Backbone or the trainer (issue 14, items 3-7 planned).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <vector>

#include "core/comm.h"
#include "core/process_grid.h"
#include "model/config.h"
#include "model/moe_block.h"

namespace zerorl::model {

// Differentiable variable all-to-all over `comm`: forward sends rows as
// Comm::alltoallv does; backward sends the gradient rows back the reverse
// way (recv counts become send counts).  The received counts come back in
// *recv_counts.
at::Tensor alltoallv_autograd(Comm& comm, const at::Tensor& rows,
                              const std::vector<int64_t>& send_counts,
                              std::vector<int64_t>* recv_counts);

class EpMoeBlock : public torch::nn::Module {
 public:
  // Same module names as MoeBlock (gate, experts, shared_experts/shared_expert,
  // shared_expert_gate), so HF names still address the parameters; `experts`
  // holds local experts only ([E/ep, ...]).  Uninitialised: see shard_moe_block.
  EpMoeBlock(const ModelConfig& cfg, const ProcessGrid& grid);
  at::Tensor forward(const at::Tensor& x_ND, MoeCall& call);
  int64_t first_expert() const { return e0_; }
  int64_t local_experts() const { return el_; }

  std::shared_ptr<Router> gate;
  std::shared_ptr<RoutedExperts> experts;  // [E/ep, ...]: experts e0 .. e0 + E/ep - 1
  std::shared_ptr<Mlp> shared;
  std::shared_ptr<Linear> shared_gate;

 private:
  MoeConfig cfg_;
  Comm* ep_comm_;
  int64_t e0_ = 0, el_ = 0;
  int ep_ = 1;
};

// The plan applied to one layer: a new EpMoeBlock whose dense parts (router,
// bias, shared expert) are copies of `local`'s and whose experts are
// `local`'s experts [e0, e0 + E/ep) for this rank of `grid`.
std::shared_ptr<EpMoeBlock> shard_moe_block(const MoeBlock& local, const ModelConfig& cfg,
                                            const ProcessGrid& grid);

}  // namespace zerorl::model
