// Data-parallel plumbing of the learner: gradient all-reduce in flat buckets,
// an "any rank?" vote, and metric reduction across ranks.  All three are
// collectives: every rank calls them in the same order (see core/comm.h).
//
// GradSync: the parameters' gradients are packed, in parameter order, into
// flat buffers of at most bucket_bytes (a parameter larger than that gets a
// bucket of its own), one buffer per (dtype, device) run, each all-reduced
// with one Comm call and unpacked back into .grad().  The layout is fixed at
// construction, so every rank sends identical shapes.  A parameter whose
// .grad() is undefined on this rank (an expert that received no tokens)
// contributes zeros and gets a zero gradient afterwards: ranks never
// disagree about the collective's size.  The buffers are kept between calls
// (memory: one extra copy of the gradients).
//
// MetricReducer: per-step metrics as sums with counts, sums, maxima and
// minima, reduced with two all-reduces in total.  Every rank must add the
// same names (checked: a mismatch throws zerorl::Error on every rank).
//
// Not thread-safe; call from the thread that owns the Comm.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/comm.h"

namespace zerorl {

class GradSync {
 public:
  // params: the tensors whose .grad() are reduced (kept by reference:
  // at::Tensor shares storage).  op: kSum when each rank's loss is already
  // its share of the global loss (grpo_loss with a global LossScale), kMean
  // when each rank computed a local mean.
  GradSync(std::vector<at::Tensor> params, Comm& comm, int64_t bucket_bytes = 25 << 20,
           ReduceOp op = ReduceOp::kSum);

  // All-reduce every gradient in place (see above).
  void allreduce_grads();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t bucket_numel(int64_t i) const { return buckets_.at(i).flat.numel(); }
  Comm& comm() const { return comm_; }

 private:
  struct Bucket {
    std::vector<int64_t> param_idx;  // into params_
    at::Tensor flat;                 // [sum of numels], dtype/device of its params
  };
  std::vector<at::Tensor> params_;
  std::vector<Bucket> buckets_;
  Comm& comm_;
  ReduceOp op_;
};

// True on every rank when local_flag is true on any rank.
bool any_rank(Comm& comm, bool local_flag);

class MetricReducer {
 public:
  // Accumulates: repeated adds of one name combine (sum, count, max, min).
  void add_mean(const std::string& name, double sum, double count);
  void add_sum(const std::string& name, double v);
  void add_max(const std::string& name, double v);
  void add_min(const std::string& name, double v);

  // Collective.  Means are sum/count over all ranks (NaN when the count is 0).
  std::map<std::string, double> reduce(Comm& comm) const;
  // The same without communication (one rank's view).
  std::map<std::string, double> local() const;

 private:
  std::map<std::string, std::pair<double, double>> means_;
  std::map<std::string, double> sums_, maxs_, mins_;
};

}  // namespace zerorl
