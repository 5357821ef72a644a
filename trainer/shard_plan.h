// ShardPlan: how the learner's optimizer state and gradient sync are laid
// out over the data-parallel group (train.zero: 0 | 1 | 2), as torchtitan
// applies a sharding plan to a model instead of threading `if (zero)`
// through the loop.  The plan is pure arithmetic over parameter shapes; the
// Optimizer (optimizer.h) and GradSync (grad_sync.h) apply it.
//
// Flat layout.  The trainable parameters, in order, form one flat index
// space of total_numel elements (parameter p covers [param_offset[p],
// param_offset[p] + numel)).  It is cut into buckets: consecutive runs of
// parameters of one dtype and device of at most bucket_bytes (a larger
// parameter gets a bucket of its own).  Each bucket of n elements is split
// into `world` equal slices of s = ceil(n / world) elements (the last ones
// short or empty); rank r owns bucket-local [r*s, min((r+1)*s, n)).  A slice
// may cut a parameter anywhere: the owned pieces are Segments.  Collectives
// move whole buckets with equal per-rank counts (the slice padded to s).
//
// Stages (what each rank updates and how gradients meet):
//   0  every rank owns every element: all-reduce the gradient buckets, every
//      rank runs AdamW on all of it (plain data parallelism);
//   1  all-reduce the gradient buckets; each rank runs AdamW on its slices
//      only (masters and moments exist for those only), then each bucket's
//      new parameters are all-gathered;
//   2  reduce-scatter the gradient buckets (each rank receives the summed
//      gradient of its slices only and the full .grad() tensors are freed
//      bucket by bucket), AdamW on the slices, all-gather as in 1.
// The slices a rank owns under stages 1 and 2 are also how a checkpoint
// splits the optimizer state at every stage (checkpoint_ranges), so a
// checkpoint does not depend on the stage and can be read at any world size.
//
// Byte accounting per rank (N trainable parameters, W ranks, c bytes per
// parameter in the compute dtype: 4 for fp32, 2 for bf16; M = 4 bytes of an
// fp32 master, 0 when the parameters are fp32 and so are their own masters;
// bucket temporaries of at most optimizer.bucket_mb not counted):
//   stage  params  grads (autograd)  grad sync buffer  masters  AdamW moments
//   0      N*c     N*c               N*c (kept)        N*M      8N
//   1      N*c     N*c               N*c (kept)        N*M/W    8N/W
//   2      N*c     N*c (*)           N*c/W (shard)     N*M/W    8N/W
// (*) stage 2 frees the full gradients bucket by bucket: during the last
// backward with train.overlap_grad_sync (grad_sync.h), as each bucket is
// posted, else at step().  They still peak near N*c during backward (a
// posted bucket's packed copy lives until it completes, and earlier
// micro-batches accumulate full gradients).  /W is
// ceil per bucket: up to W-1 padding elements per bucket.  The reference
// model (when loss.beta > 0) adds N*c on every rank.
//
// Sync groups (expert parallelism, model/moe_ep.h).  A plan may hold
// parameters whose gradients meet over different communicators: group 0
// the Optimizer's (the world: dense, replicated parameters), group g > 0 a
// sub-communicator (the DP group that replicates one expert shard).  Buckets
// never mix groups; bucket b is sliced over groups[b.group].size ranks and
// this rank owns slice groups[b.group].rank.  make() gives one group.
//
// Not thread-safe; immutable after make().
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace zerorl {

struct ShardPlan {
  struct Bucket {
    std::vector<int64_t> param_idx;  // consecutive parameters
    int64_t begin = 0;               // global flat offset of its first element
    int64_t numel = 0;
    int64_t shard = 0;  // elements per rank slice: ceil(numel / groups[group].size)
    int group = 0;      // its sync group (see above)
    at::ScalarType dtype = at::ScalarType::Float;
    at::Device device = at::kCPU;
  };
  // A piece of one parameter that this rank updates.
  struct Segment {
    int64_t param = 0;          // index into the parameter list
    int64_t offset = 0;         // first element within the flattened parameter
    int64_t numel = 0;          // > 0
    int64_t bucket = 0;         // the bucket holding it
    int64_t bucket_offset = 0;  // its first element within the bucket
    int64_t global = 0;         // its first element in the flat index space
  };

  struct Group {
    int rank = 0, size = 1;  // this rank's place in the group, and its size
  };

  int stage = 0, rank = 0, world = 1;  // rank and world: group 0's
  std::vector<Group> groups;
  int64_t total_numel = 0;
  std::vector<int64_t> param_offset, param_numel;
  std::vector<Bucket> buckets;
  std::vector<Segment> owned;  // ascending in `global`; stage 0: every parameter whole

  // Throws zerorl::Error on a bad stage (the message names train.zero), an
  // undefined or non-floating parameter, or rank outside [0, world).
  static ShardPlan make(const std::vector<at::Tensor>& params, int stage, int rank, int world,
                        int64_t bucket_bytes);
  // Grouped: parameter i syncs over groups[group_of[i]] (group 0 first).
  static ShardPlan make(const std::vector<at::Tensor>& params, int stage,
                        const std::vector<Group>& groups, const std::vector<int>& group_of,
                        int64_t bucket_bytes);

  // Bucket k's bucket-local [lo, hi) that this rank owns under stages 1, 2.
  std::pair<int64_t, int64_t> own_slice(int64_t k) const;

  // The global [begin, end) ranges rank r owns under stages 1 and 2 (its
  // slices), ascending; empty slices omitted.  A grouped plan answers for
  // its own rank only.
  std::vector<std::pair<int64_t, int64_t>> slice_ranges(int r) const;
  int64_t owned_numel() const;
  // Bytes GradSync keeps between steps: the all-reduce buffers (stages 0,
  // 1: every bucket) or this rank's gradient slices (stage 2).
  int64_t sync_bytes() const;
};

// Copies between a set of segments (global ranges backed by flat tensors)
// and flat pieces of other global ranges: every element of `dst` covered by
// a piece of `src` is copied (with dtype conversion); returns how many.
struct FlatSpan {
  int64_t global = 0;  // first element in the flat index space
  at::Tensor data;     // 1-D, its numel elements
};
int64_t copy_overlaps(const std::vector<FlatSpan>& src, const std::vector<FlatSpan>& dst);

}  // namespace zerorl
