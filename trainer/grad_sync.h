// Data-parallel plumbing of the learner: gradient all-reduce or
// reduce-scatter in flat buckets, the all-gather of sharded parameters and
// an "any rank?" vote.  All are collectives:
// every rank calls them in the same order (see core/comm.h).
//
// GradSync applies a ShardPlan (shard_plan.h) to the gradients: the
// parameters' gradients are packed, in parameter order, into the plan's
// buckets (flat buffers of at most bucket_bytes, one per (dtype, device)
// run; a parameter larger than that gets a bucket of its own).  The layout
// is fixed at construction, so every rank sends identical shapes.  A
// parameter whose .grad() is undefined on this rank (an expert that
// received no tokens) contributes zeros: ranks never disagree about a
// collective's size.
//   allreduce_grads()       (stages 0, 1) each bucket all-reduced with one
//                           Comm call and unpacked back into .grad() (zeros
//                           where it was undefined).  The buffers are kept
//                           between calls (one extra copy of the gradients).
//   reduce_scatter_grads()  (stage 2) each bucket packed into a temporary,
//                           reduce-scattered; this rank keeps its slice
//                           (grad_slice(bucket), [shard], kept between calls)
//                           and every .grad() is reset (freed).
//   allgather_params()      (stages 1, 2) each rank's slice of every bucket's
//                           parameters is all-gathered into every rank's
//                           parameters (a temporary per bucket).
//
// MetricReducer (metric_reducer.h, included here for the learner's callers)
// reduces the per-step metrics.
//
// Not thread-safe; call from the thread that owns the Comm.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/comm.h"
#include "trainer/metric_reducer.h"
#include "trainer/shard_plan.h"

namespace zerorl {

class GradSync {
 public:
  // params: the tensors whose .grad() are reduced (kept by reference:
  // at::Tensor shares storage).  op: kSum when each rank's loss is already
  // its share of the global loss (grpo_loss with a global LossScale), kMean
  // when each rank computed a local mean.
  // This constructor builds a stage-0 plan.
  GradSync(std::vector<at::Tensor> params, Comm& comm, int64_t bucket_bytes = 25 << 20,
           ReduceOp op = ReduceOp::kSum);
  // plan: made from the same params for this comm's rank and size.
  GradSync(std::vector<at::Tensor> params, ShardPlan plan, Comm& comm,
           ReduceOp op = ReduceOp::kSum);

  // All-reduce every gradient in place (see above).
  void allreduce_grads();
  // Stage 2 (see above).
  void reduce_scatter_grads();
  // This rank's summed gradient slice of bucket k after reduce_scatter_grads().
  const at::Tensor& grad_slice(int64_t k) const { return slices_.at(k); }
  // Stages 1, 2 (see above).
  void allgather_params();

  const ShardPlan& plan() const { return plan_; }
  int64_t num_buckets() const { return static_cast<int64_t>(plan_.buckets.size()); }
  int64_t bucket_numel(int64_t i) const { return plan_.buckets.at(i).numel; }
  // Bytes this object keeps between calls (the all-reduce buffers or the
  // gradient slices), for the memory accounting.
  int64_t kept_bytes() const;
  Comm& comm() const { return comm_; }

 private:
  // The bucket's gradients, packed (zeros where undefined) into dst [>= numel].
  void pack_grads(int64_t k, at::Tensor& dst) const;

  std::vector<at::Tensor> params_;
  ShardPlan plan_;
  std::vector<at::Tensor> flats_;   // stages 0, 1: one [numel] buffer per bucket (lazily)
  std::vector<at::Tensor> slices_;  // stage 2: one [shard] slice per bucket
  Comm& comm_;
  ReduceOp op_;
};

// True on every rank when local_flag is true on any rank.
bool any_rank(Comm& comm, bool local_flag);

}  // namespace zerorl
