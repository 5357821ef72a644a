#include "trainer/grad_sync.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace zerorl {

// ---- GradSync -------------------------------------------------------------------

GradSync::GradSync(std::vector<at::Tensor> params, Comm& comm, int64_t bucket_bytes, ReduceOp op)
    : GradSync(params, ShardPlan::make(params, 0, comm.rank(), comm.size(), bucket_bytes), comm,
               op) {}

GradSync::GradSync(std::vector<at::Tensor> params, ShardPlan plan, Comm& comm, ReduceOp op)
    : params_(std::move(params)), plan_(std::move(plan)), comm_(comm), op_(op) {
  ZR_CHECK(op == ReduceOp::kSum || op == ReduceOp::kMean,
           "GradSync: gradients reduce with kSum or kMean only");
  ZR_CHECK(plan_.rank == comm.rank() && plan_.world == comm.size() &&
               plan_.param_numel.size() == params_.size(),
           "GradSync: the plan was made for another rank, world size or parameter list");
  flats_.resize(plan_.buckets.size());
  slices_.resize(plan_.buckets.size());
}

void GradSync::pack_grads(int64_t k, at::Tensor& dst) const {
  const ShardPlan::Bucket& b = plan_.buckets[k];
  for (int64_t i : b.param_idx) {
    const at::Tensor& p = params_[i];
    at::Tensor d = dst.narrow(0, plan_.param_offset[i] - b.begin, p.numel());
    const at::Tensor& g = p.grad();
    if (g.defined()) {
      d.copy_(g.reshape({-1}));
    } else {
      d.zero_();
    }
  }
}

void GradSync::allreduce_grads() {
  for (size_t k = 0; k < plan_.buckets.size(); ++k) {
    const ShardPlan::Bucket& b = plan_.buckets[k];
    if (!flats_[k].defined())
      flats_[k] = at::empty({b.numel}, at::TensorOptions().dtype(b.dtype).device(b.device));
    at::Tensor& flat = flats_[k];
    pack_grads(static_cast<int64_t>(k), flat);
    comm_.allreduce(flat, op_);
    for (int64_t i : b.param_idx) {
      at::Tensor& p = params_[i];
      const at::Tensor src =
          flat.narrow(0, plan_.param_offset[i] - b.begin, p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      p.mutable_grad().copy_(src);
    }
  }
}

void GradSync::reduce_scatter_grads() {
  const int W = plan_.world;
  for (size_t k = 0; k < plan_.buckets.size(); ++k) {
    const ShardPlan::Bucket& b = plan_.buckets[k];
    at::Tensor padded =
        at::zeros({b.shard * W}, at::TensorOptions().dtype(b.dtype).device(b.device));
    pack_grads(static_cast<int64_t>(k), padded);
    for (int64_t i : b.param_idx)
      if (params_[i].grad().defined()) params_[i].mutable_grad().reset();
    slices_[k] = comm_.reduce_scatter(padded);
    if (op_ == ReduceOp::kMean) slices_[k].div_(W);
  }
}

void GradSync::allgather_params() {
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < plan_.buckets.size(); ++k) {
    const ShardPlan::Bucket& b = plan_.buckets[k];
    at::Tensor mine = at::zeros({b.shard}, at::TensorOptions().dtype(b.dtype).device(b.device));
    const int64_t lo = std::min(b.numel, plan_.rank * b.shard);
    for (const ShardPlan::Segment& s : plan_.owned)
      if (s.bucket == static_cast<int64_t>(k))
        mine.narrow(0, s.bucket_offset - lo, s.numel)
            .copy_(params_[s.param].detach().reshape({-1}).narrow(0, s.offset, s.numel));
    const at::Tensor all = comm_.allgather(mine).reshape({-1});  // [W * shard]
    for (int64_t i : b.param_idx) {
      at::Tensor p = params_[i].detach();
      ZR_CHECK(p.is_contiguous(), "GradSync: parameter ", i, " is not contiguous");
      p.view({-1}).copy_(all.narrow(0, plan_.param_offset[i] - b.begin, p.numel()));
    }
  }
}

int64_t GradSync::kept_bytes() const {
  int64_t n = 0;
  for (const auto* v : {&flats_, &slices_})
    for (const at::Tensor& t : *v)
      if (t.defined()) n += static_cast<int64_t>(t.nbytes());
  return n;
}

bool any_rank(Comm& comm, bool local_flag) {
  return comm.allreduce_scalar(local_flag ? 1.0 : 0.0, ReduceOp::kMax) > 0.5;
}

}  // namespace zerorl
