// Expert-parallel MoE layer (issue 14, item 2): the plan that turns a local
// MoeBlock (every routed expert on every rank) into one whose rank holds only
// experts [e0, e0 + E/ep) of its EP group, plus an exchange over the group.
//
//   route (same router, every rank, its own tokens)
//   -> permute the N*K (token, slot) pairs by expert, hence by owner rank
//   -> alltoallv (row counts exchanged first: no capacity factor, no drops)
//      of the expert ids, then of the token rows, posted (alltoallv_async)
//      so that the shared expert (replicated, on this rank's own tokens)
//      runs while the rows are in flight, then waited on
//   -> the local experts' grouped GEMM (kernels::moe_experts, unit weights)
//   -> alltoallv back -> un-permute -> weighted combine on the token's rank
//   (+ the shared expert's output)
// Backward runs the reverse exchanges (ExchangeFn below), blocking, in the
// autograd engine's order: the shared expert's backward is not overlapped
// (a node's backward must return its gradient, so an exchange posted there
// could only be waited on in the same node).  So a rank's expert
// gradients sum over every token of the EP group that chose them, and its
// router, shared-expert and input gradients cover its own tokens -- exactly
// the local layer on the union of the group's tokens.
//
// Every rank of the EP group must call forward (and backward) the same number
// of times, in the same order; a rank with no tokens joins with zero rows.
// apply_expert_parallel (below) swaps it into a CausalLM's MoE layers.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/comm.h"
#include "core/process_grid.h"
#include "model/config.h"
#include "model/model.h"
#include "model/moe_block.h"

namespace zerorl::model {

// Differentiable variable all-to-all over `comm`: forward sends rows as
// Comm::alltoallv does; backward sends the gradient rows back the reverse
// way (recv counts become send counts).  The received counts come back in
// *recv_counts.
at::Tensor alltoallv_autograd(Comm& comm, const at::Tensor& rows,
                              const std::vector<int64_t>& send_counts,
                              std::vector<int64_t>* recv_counts);

class EpMoeBlock : public MoeLayer {
 public:
  // Same module names as MoeBlock (gate, experts, shared_experts/shared_expert,
  // shared_expert_gate), so HF names still address the parameters; `experts`
  // holds local experts only ([E/ep, ...]).  Uninitialised: see shard_moe_block.
  EpMoeBlock(const ModelConfig& cfg, const ProcessGrid& grid);
  // x_ND may have zero rows (a rank with no tokens joining the exchanges).
  at::Tensor forward(const at::Tensor& x_ND, MoeCall& call) override;
  int64_t first_expert() const { return e0_; }
  int64_t local_experts() const { return el_; }
  // Whether forward runs the shared expert while the token rows are in
  // flight (default) or after the exchange; the same bits either way
  // (parallel.overlap_shared_expert).
  void set_overlap_shared_expert(bool on) { overlap_shared_ = on; }
  bool overlap_shared_expert() const { return overlap_shared_; }

 private:
  Comm* ep_comm_;
  int64_t e0_ = 0, el_ = 0;
  int ep_ = 1;
  bool overlap_shared_ = true;
};

// The plan applied to one layer: a new EpMoeBlock whose dense parts (router,
// bias, shared expert) are copies of `local`'s and whose experts are
// `local`'s experts [e0, e0 + E/ep) for this rank of `grid`.
std::shared_ptr<EpMoeBlock> shard_moe_block(const MoeLayer& local, const ModelConfig& cfg,
                                            const ProcessGrid& grid);

// Wall-clock seconds this process has spent in EpMoeBlock's exchanges
// (every alltoallv, forward and backward, waiting for peers included) since
// it started: the trainer logs the difference per step (time/ep_exchange).
double ep_exchange_seconds();

// The expert-parallel plan applied to a whole model (torchtitan's
// parallelize step): every MoE layer of `model` is replaced by its
// shard_moe_block for this rank of `grid`, so the rank keeps only its
// experts' parameters (the full stacks are freed), and the model records
// the grid (CausalLM::expert_grid: its forwards become collectives over the
// EP group).  Local (no communication); every rank of the grid must apply
// it to identical weights.  grid.ep() == 1 leaves the layers as they are
// but still records the grid.  Throws if n_routed_experts do not divide
// over grid.ep() or the plan was applied before.  `overlap_shared_expert`:
// EpMoeBlock::set_overlap_shared_expert of every layer.
void apply_expert_parallel(CausalLM& model, const ProcessGrid& grid,
                           bool overlap_shared_expert = true);

// True for the parameters the plan shards (routed-expert stacks:
// "....mlp.experts.{gate,up,down}_proj"): their gradients meet over the DP
// group only; every other parameter is replicated on every rank.
bool is_sharded_expert(const std::string& name);

}  // namespace zerorl::model
