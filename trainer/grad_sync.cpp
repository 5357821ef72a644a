#include "trainer/grad_sync.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace zerorl {

// ---- GradSync -------------------------------------------------------------------

GradSync::GradSync(std::vector<at::Tensor> params, Comm& comm, int64_t bucket_bytes, ReduceOp op)
    : GradSync(params, ShardPlan::make(params, 0, comm.rank(), comm.size(), bucket_bytes), comm,
               op) {}

// The post-accumulate-grad hook of one parameter (GradSync's overlap): runs
// after autograd has added this backward's gradient into .grad().
class GradSync::Hook final : public torch::autograd::PostAccumulateGradHook {
 public:
  Hook(GradSync* sync, int64_t param) : sync_(sync), param_(param) {}
  void operator()(const torch::autograd::Variable&) override { sync_->on_grad(param_); }

 private:
  GradSync* sync_;
  int64_t param_;
};

GradSync::GradSync(std::vector<at::Tensor> params, ShardPlan plan, Comm& comm, ReduceOp op,
                   bool overlap)
    : GradSync(std::move(params), std::move(plan), std::vector<Comm*>{&comm}, op, overlap) {}

GradSync::GradSync(std::vector<at::Tensor> params, ShardPlan plan, std::vector<Comm*> group_comms,
                   ReduceOp op, bool overlap)
    : params_(std::move(params)),
      plan_(std::move(plan)),
      comms_(std::move(group_comms)),
      op_(op),
      overlap_(overlap) {
  ZR_CHECK(op == ReduceOp::kSum || op == ReduceOp::kMean,
           "GradSync: gradients reduce with kSum or kMean only");
  ZR_CHECK(comms_.size() == plan_.groups.size() && plan_.param_numel.size() == params_.size(),
           "GradSync: the plan was made for another parameter list or other sync groups");
  for (size_t g = 0; g < comms_.size(); ++g)
    ZR_CHECK(comms_[g] && plan_.groups[g].rank == comms_[g]->rank() &&
                 plan_.groups[g].size == comms_[g]->size(),
             "GradSync: the plan was made for another rank or world size (sync group ", g, ")");
  flats_.resize(plan_.buckets.size());
  slices_.resize(plan_.buckets.size());
  if (!overlap_) return;
  for (Comm* c : comms_) sync_comms_.push_back(c->split(0, c->rank()));
  bucket_of_.assign(params_.size(), -1);
  for (size_t k = 0; k < plan_.buckets.size(); ++k)
    for (int64_t i : plan_.buckets[k].param_idx) bucket_of_[i] = static_cast<int64_t>(k);
  works_.resize(plan_.buckets.size());
  hooks_.assign(params_.size(), nullptr);
  for (size_t i = 0; i < params_.size(); ++i) {
    // A tensor that does not require grad never gets one from backward: its
    // bucket is posted by the sync itself.
    if (!params_[i].requires_grad()) continue;
    auto hook = std::make_unique<Hook>(this, static_cast<int64_t>(i));
    hooks_[i] = hook.get();
    torch::autograd::impl::set_post_acc_grad_hooks(params_[i], std::move(hook));
  }
}

GradSync::~GradSync() {
  // Only our own hooks: a later GradSync over the same parameters replaced them.
  for (size_t i = 0; i < hooks_.size(); ++i) {
    if (!hooks_[i]) continue;
    auto& slot = torch::autograd::impl::post_acc_grad_hooks(params_[i]);
    if (slot.get() == hooks_[i]) slot.reset();
  }
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

void GradSync::unpack_grads(int64_t k) {
  const ShardPlan::Bucket& b = plan_.buckets[k];
  const at::Tensor& flat = flats_[k];
  for (int64_t i : b.param_idx) {
    at::Tensor& p = params_[i];
    const at::Tensor src =
        flat.narrow(0, plan_.param_offset[i] - b.begin, p.numel()).view(p.sizes());
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    p.mutable_grad().copy_(src);
  }
}

void GradSync::allreduce_grads() {
  if (overlap_) return finish_overlapped();
  for (size_t k = 0; k < plan_.buckets.size(); ++k) {
    const ShardPlan::Bucket& b = plan_.buckets[k];
    if (!flats_[k].defined())
      flats_[k] = at::empty({b.numel}, at::TensorOptions().dtype(b.dtype).device(b.device));
    at::Tensor& flat = flats_[k];
    pack_grads(static_cast<int64_t>(k), flat);
    comm_of(b).allreduce(flat, op_);
    unpack_grads(static_cast<int64_t>(k));
  }
}

void GradSync::reduce_scatter_grads() {
  if (overlap_) return finish_overlapped();
  for (size_t k = 0; k < plan_.buckets.size(); ++k) {
    const ShardPlan::Bucket& b = plan_.buckets[k];
    const int W = group_size(b);
    at::Tensor padded =
        at::zeros({b.shard * W}, at::TensorOptions().dtype(b.dtype).device(b.device));
    pack_grads(static_cast<int64_t>(k), padded);
    for (int64_t i : b.param_idx)
      if (params_[i].grad().defined()) params_[i].mutable_grad().reset();
    slices_[k] = comm_of(b).reduce_scatter(padded);
    if (op_ == ReduceOp::kMean) slices_[k].div_(W);
  }
}

// ---- overlap with backward -------------------------------------------------------

void GradSync::overlap_next_backward() {
  if (!overlap_) return;
  ZR_CHECK(!armed_, "GradSync: overlap_next_backward() twice before the gradient sync");
  armed_ = true;
  fired_.assign(params_.size(), 0);
  missing_.clear();
  for (const ShardPlan::Bucket& b : plan_.buckets)
    missing_.push_back(static_cast<int64_t>(b.param_idx.size()));
  next_post_ = next_done_ = static_cast<int64_t>(plan_.buckets.size()) - 1;
  posted_in_backward_ = 0;
  late_param_ = -1;
}

void GradSync::on_grad(int64_t i) {
  if (!armed_) return;  // an earlier micro-batch, or a backward outside a step
  const int64_t k = bucket_of_[i];
  if (fired_[i]) {
    if (k > next_post_ && late_param_ < 0) late_param_ = i;
    return;
  }
  fired_[i] = 1;
  --missing_[k];
  while (next_post_ >= 0 && missing_[next_post_] == 0) {
    post(next_post_--);
    ++posted_in_backward_;
  }
  complete_done();
}

void GradSync::post(int64_t k) {
  const ShardPlan::Bucket& b = plan_.buckets[k];
  const at::TensorOptions opts = at::TensorOptions().dtype(b.dtype).device(b.device);
  if (plan_.stage == 2) {
    at::Tensor padded = at::zeros({b.shard * group_size(b)}, opts);
    pack_grads(k, padded);
    for (int64_t i : b.param_idx)
      if (params_[i].grad().defined()) params_[i].mutable_grad().reset();
    works_[k] = sync_comms_[static_cast<size_t>(b.group)]->reduce_scatter_async(padded);
  } else {
    if (!flats_[k].defined()) flats_[k] = at::empty({b.numel}, opts);
    pack_grads(k, flats_[k]);
    works_[k] = sync_comms_[static_cast<size_t>(b.group)]->allreduce_async(flats_[k], op_);
  }
}

void GradSync::complete(int64_t k) {
  at::Tensor r = works_[k]->wait();
  works_[k].reset();
  if (plan_.stage == 2) {
    slices_[k] = r;
    if (op_ == ReduceOp::kMean) slices_[k].div_(group_size(plan_.buckets[k]));
  } else {
    unpack_grads(k);
  }
}

void GradSync::complete_done() {
  // In posting order; test() also lets MPI move the ones still in flight.
  while (next_done_ > next_post_ && works_[next_done_]->test()) complete(next_done_--);
}

void GradSync::finish_overlapped() {
  if (!armed_) overlap_next_backward();  // no backward armed on this rank: post everything
  armed_ = false;
  for (; next_post_ >= 0; --next_post_) post(next_post_);
  for (; next_done_ >= 0; --next_done_) complete(next_done_);
  if (late_param_ >= 0)
    ZR_THROW("GradSync: parameter ", late_param_,
             " received a gradient after its bucket was sent (used by two backward passes "
             "between overlap_next_backward() and the step?); set train.overlap_grad_sync: "
             "false for such a model");
}

void GradSync::allgather_params() {
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < plan_.buckets.size(); ++k) {
    const ShardPlan::Bucket& b = plan_.buckets[k];
    at::Tensor mine = at::zeros({b.shard}, at::TensorOptions().dtype(b.dtype).device(b.device));
    const int64_t lo = plan_.own_slice(static_cast<int64_t>(k)).first;
    for (const ShardPlan::Segment& s : plan_.owned)
      if (s.bucket == static_cast<int64_t>(k))
        mine.narrow(0, s.bucket_offset - lo, s.numel)
            .copy_(params_[s.param].detach().reshape({-1}).narrow(0, s.offset, s.numel));
    const at::Tensor all = comm_of(b).allgather(mine).reshape({-1});  // [W * shard]
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
