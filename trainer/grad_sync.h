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
// Overlap with backward (train.overlap_grad_sync, on by default, as in
// PyTorch DDP).  With `overlap`, a post-accumulate-grad hook on every
// parameter counts the gradients that arrive during the backward that
// follows overlap_next_backward() (the last micro-batch's: earlier ones only
// accumulate).  Buckets are posted in descending index order (the reverse of
// the parameter order, so roughly the order backward produces them, as DDP
// does), each as soon as it and every bucket after it are complete: packed
// as above and handed to allreduce_async / reduce_scatter_async (stage 2
// then frees the bucket's .grad() at once).  Later hooks test the posted
// collectives so that MPI moves them and complete those that are done.
// allreduce_grads() / reduce_scatter_grads() then post what is left (a
// parameter without a gradient in that backward, e.g. an expert with no
// tokens, holds its bucket and those below it back; a rank with no
// backward posts everything there), in the same descending order, and wait
// in that order.  Every rank thus posts the same buckets in the same order,
// each packed from the final gradients, and the result is bit for bit that
// of the blocking path.  The collectives go over a communicator of their own
// (split from comm at construction, a collective), so collectives that
// backward itself makes on comm (expert parallelism's all-to-all) cannot
// interleave with them differently on different ranks.  A gradient that
// reaches a parameter whose bucket was already posted (a parameter used by
// two backward passes between overlap_next_backward() and the sync) is an
// error naming the key.  Without `overlap` the order is ascending and every
// collective blocks, as before.
//
// MetricReducer (metric_reducer.h, included here for the learner's callers)
// reduces the per-step metrics.
//
// Not thread-safe; call from the thread that owns the Comm.  The hooks run
// on the thread that runs backward (the caller's on CPU; autograd's device
// thread on CUDA, while the caller waits in backward).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
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
  // overlap: see above (then construction is a collective on comm).
  GradSync(std::vector<at::Tensor> params, ShardPlan plan, Comm& comm, ReduceOp op = ReduceOp::kSum,
           bool overlap = false);
  // A plan with sync groups (shard_plan.h): group_comms[g] carries the
  // buckets of group g (group_comms[0] is the world); each must match the
  // plan's group (rank, size).  The Comms must outlive this object.  With
  // overlap, each group's Comm is split once (in group order).
  GradSync(std::vector<at::Tensor> params, ShardPlan plan, std::vector<Comm*> group_comms,
           ReduceOp op = ReduceOp::kSum, bool overlap = false);
  ~GradSync();  // removes the hooks
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // With overlap: the next backward is the last before the sync (see above).
  // Without: does nothing.
  void overlap_next_backward();
  bool overlap() const { return overlap_; }
  // Buckets posted from hooks, during backward, in the last sync.
  int64_t buckets_posted_in_backward() const { return posted_in_backward_; }

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
  Comm& comm() const { return *comms_[0]; }

 private:
  class Hook;
  // The bucket's gradients, packed (zeros where undefined) into dst [>= numel].
  void pack_grads(int64_t k, at::Tensor& dst) const;
  Comm& comm_of(const ShardPlan::Bucket& b) const { return *comms_[static_cast<size_t>(b.group)]; }
  int group_size(const ShardPlan::Bucket& b) const {
    return plan_.groups[static_cast<size_t>(b.group)].size;
  }
  // Stages 0, 1: the summed bucket k back into .grad().
  void unpack_grads(int64_t k);
  // Overlap: a gradient of parameter i has been accumulated (the hook).
  void on_grad(int64_t i);
  // Overlap: post bucket k (non-blocking); complete posted ones that are done.
  void post(int64_t k);
  void complete(int64_t k);
  void complete_done();
  // Overlap: post what is left, wait for everything, disarm.
  void finish_overlapped();

  std::vector<at::Tensor> params_;
  ShardPlan plan_;
  std::vector<at::Tensor> flats_;   // stages 0, 1: one [numel] buffer per bucket (lazily)
  std::vector<at::Tensor> slices_;  // stage 2: one [shard] slice per bucket
  std::vector<Comm*> comms_;        // per sync group
  ReduceOp op_;

  // ---- overlap ----
  bool overlap_ = false;
  std::vector<std::unique_ptr<Comm>> sync_comms_;  // per group, a split: the non-blocking ones
  std::vector<Hook*> hooks_;                       // owned by the parameters' autograd metadata
  std::vector<int64_t> bucket_of_;                 // parameter -> bucket
  bool armed_ = false;
  std::vector<char> fired_;                       // per parameter, in the armed backward
  std::vector<int64_t> missing_;                  // per bucket: parameters yet to fire
  int64_t next_post_ = -1;                        // next bucket to post (descending)
  int64_t next_done_ = -1;                        // next posted bucket to complete
  std::vector<std::unique_ptr<CommWork>> works_;  // per bucket, while in flight
  int64_t posted_in_backward_ = 0;
  int64_t late_param_ = -1;  // a parameter whose gradient came after its bucket was posted
};

// True on every rank when local_flag is true on any rank.
bool any_rank(Comm& comm, bool local_flag);

}  // namespace zerorl
