// The model-independent half of the learner: AdamW, the learning-rate
// schedule, global-norm clipping, and Optimizer::step(), which ties them to
// the gradient sync (grad_sync.h), the ZeRO sharding plan (shard_plan.h) and
// the non-finite skip rule.
//
// AdamW is written here rather than wrapping torch::optim::AdamW so that its
// state is plain tensors a checkpoint writes and reads back bit-exactly
// without torch's serialisation archive.  The arithmetic (adamw_update)
// follows LibTorch's C++ AdamW op for op (decoupled decay p *= 1 - lr*wd;
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)), and
// tests/trainer/optimizer_test.cpp checks it against torch::optim::AdamW.
//
// Precision (policy.dtype).  The Optimizer owns master weights: for fp32
// (and fp64) parameters the parameter itself is the master (no copy); for
// bf16 / fp16 parameters it keeps an fp32 copy of each element it updates.
// AdamW moments have the master's dtype.  Each step updates the masters
// from the gradient (converted to the master dtype after the sync and
// clipping) and then writes the parameters as the masters rounded to the
// parameter dtype, so bf16 parameters are always the rounded fp32 masters.
//
// Sharding (train.zero, OptimizerConfig::zero): the Optimizer updates the
// elements its ShardPlan says this rank owns (all of them at stage 0) and
// holds masters and moments for those only; see shard_plan.h for what each
// stage keeps where, byte by byte.
//
// Optimizer::step() is a collective (every rank calls it once per optimizer
// step, in the same order as every other collective):
//   1. sync the gradients in buckets: all-reduce (stages 0, 1) or
//      reduce-scatter (stage 2); kSum by default, see grpo_loss.h on LossScale;
//      with overlap_grad_sync, buckets posted during the backward that
//      followed overlap_next_backward() are only waited for here;
//   2. the global gradient norm: stage 0 over the full gradients (identical
//      on every rank after step 1), stages 1 and 2 as the square root of the
//      all-reduced sum of each rank's squared slice norms: the same global
//      norm, never a rank's local one;
//   3. the blow-up guard previews the AdamW update on copies
//      (adamw_preview): the norm of the update and of the owned masters
//      before it, and the largest new master against the parameter dtype's
//      range;
//   4. one vote (an all-reduce of four numbers) gathers what is known only
//      locally and the shards' squared norms; the step is skipped on every
//      rank (weights and AdamW state unchanged, gradients cleared,
//      num_skipped incremented) if the loss was non-finite on ANY rank, the
//      gradient norm is non-finite, or the update would blow the weights up:
//      a new master non-finite or beyond the parameter dtype's range on any
//      rank, or ||update|| > max_update_ratio * ||weights|| (global norms
//      over the trainable parameters; StepReport::blowup);
//   5. otherwise clip to max_grad_norm (torch's rule: scale by
//      max / (norm + 1e-6) when that is < 1), AdamW with lr_at(num_updates)
//      on the owned elements, parameters = rounded masters, all-gather of the
//      new parameters (stages 1, 2), clear gradients, num_updates incremented.
// The schedule counts applied updates, so a skipped step does not advance it.
// After step 1 every parameter has a gradient (zeros where no rank produced
// one, e.g. an expert that received no tokens anywhere), so every parameter
// takes an AdamW step (momentum and decay still move it): give the Optimizer
// trainable parameters only.
//
// Sync groups (NamedParam::sync; expert parallelism): each group's buckets
// are reduced, sliced (stages 1, 2) and all-gathered over its own Comm.  The
// global norms of steps 2-4 then count each element once over the world:
// at stage 0 a group's elements are counted by its rank 0 only, and the
// sums are all-reduced over the Optimizer's comm.  Without groups nothing of
// this runs (the one-group path is unchanged, bit for bit).
//
// Checkpoints: state() is this rank's slice of the state under the stage-1
// partition of its world size (ShardPlan::slice_ranges), whatever the stage:
// flat masters and moments over listed global ranges.  load_state() takes
// the slices of every rank of a checkpoint written at any world size and
// stage, copies what this rank owns now, and republishes the parameters.
// The global ranges index the whole parameters (NamedParam::part/parts): a
// rank holding piece k of n of a parameter (its experts, under expert
// parallelism) addresses its elements where they lie in the whole, so a
// checkpoint written at one EP size (or none) loads at any other.
//
// The constructor is a collective when overlap_grad_sync is on (GradSync
// splits a communicator).  Not thread-safe.  Errors (bad config, state of the wrong layout on load)
// throw zerorl::Error naming the key or tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/comm.h"
#include "trainer/shard_plan.h"

namespace zerorl {

class ConfigNode;
class GradSync;

struct OptimizerConfig {
  enum class Schedule { kConstant, kCosine };

  double lr = 1e-6;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to parameters with NamedParam::decay
  int64_t warmup_steps = 0;   // linear from lr/warmup_steps up to lr
  Schedule schedule = Schedule::kConstant;
  int64_t total_steps = 0;     // cosine: the update at which lr reaches min
  double min_lr_ratio = 0.0;   // cosine floor, as a fraction of lr
  double max_grad_norm = 1.0;  // 0 disables clipping (the norm is still reported)
  // Skip an update larger than this times the weights (global L2 norms); 0
  // skips only non-finite ones.  A healthy step is a few percent at most.
  double max_update_ratio = 1.0;
  double bucket_mb = 25.0;  // gradient all-reduce bucket size
  ReduceOp grad_reduce = ReduceOp::kSum;
  // ZeRO stage 0 | 1 | 2 (shard_plan.h).  Not an optimizer-section key: the
  // GRPO recipe sets it from train.zero.
  int zero = 0;
  // Post gradient buckets during the last backward before a step
  // (grad_sync.h; same bits as without).  Not an optimizer-section key: the
  // GRPO recipe sets it from train.overlap_grad_sync.
  bool overlap_grad_sync = true;

  // Keys (all optional): lr, beta1, beta2, eps, weight_decay, warmup_steps,
  // schedule: constant|cosine, total_steps (> warmup_steps for cosine),
  // min_lr_ratio, max_grad_norm, max_update_ratio, bucket_mb,
  // grad_reduce: sum|mean.  lr / (1 - beta1) and eps must lie within fp32's
  // range (the masters' dtype), else the key is named.
  // total_steps counts optimizer updates; with cosine it defaults to
  // `default_total_steps` (the caller's count of the run's updates; 0: none,
  // the key is then required), and the default is written into the recipe.
  static OptimizerConfig from(const ConfigNode& n, int64_t default_total_steps = 0);
};

// Learning rate of update number `update` (0-based count of applied updates):
// warm-up (update+1)/warmup_steps * lr for update < warmup_steps, then lr
// (constant) or a cosine from lr down to min_lr_ratio * lr at total_steps
// (held there afterwards).
double lr_at(const OptimizerConfig& cfg, int64_t update);

struct NamedParam {
  std::string name;
  at::Tensor param;  // a leaf with requires_grad; updated in place
  bool decay = true;
  // The group its gradient is summed over: null = the Optimizer's comm (the
  // world).  Expert parallelism (model/moe_ep.h) gives a sharded expert
  // stack its DP group, the ranks that hold the same experts; each element
  // then lives on every rank of that group and on no other (shard_plan.h,
  // "Sync groups").
  Comm* sync = nullptr;
  // `param` is piece `part` of `parts` equal pieces, cut along dim 0, of the
  // whole parameter `name` (expert parallelism: this rank's experts of an
  // expert stack).  Checkpoints (Optimizer::state, load_state) address the
  // whole, so any split reads what any other wrote.  1 piece: the whole.
  int64_t part = 0, parts = 1;
};

// sqrt(sum_p ||grad_p||^2) in double; undefined gradients count as zero.
double global_grad_norm(const std::vector<at::Tensor>& params);
// Scales every defined gradient by torch's clip rule; returns the factor applied (<= 1).
double clip_grads_to_norm(const std::vector<at::Tensor>& params, double total_norm,
                          double max_norm);

struct AdamHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};
// One AdamW update of `master` in place from `grad` (same shape; converted
// to the master's dtype), at step t >= 1 (bias correction), with decoupled
// weight decay when `decay`.
void adamw_update(at::Tensor master, const at::Tensor& grad, at::Tensor& exp_avg,
                  at::Tensor& exp_avg_sq, int64_t t, double lr, const AdamHyper& h, bool decay);

// Norms of what adamw_update would do to `master`, without doing it (the
// blow-up guard of Optimizer::step): per segment, the update's and the
// weights' L2 norms and the largest new |value| divided by `param_max` (the
// parameter dtype's largest finite value), as 0-dim tensors on the master's
// device, so that one host copy reads them all.
struct UpdatePreview {
  std::vector<at::Tensor> delta_norms, param_norms, next_absmax;
};
void adamw_preview(const at::Tensor& master, const at::Tensor& grad, const at::Tensor& exp_avg,
                   const at::Tensor& exp_avg_sq, int64_t t, double lr, const AdamHyper& h,
                   bool decay, double param_max, UpdatePreview& acc);

class AdamW {
 public:
  AdamW(std::vector<NamedParam> params, double beta1, double beta2, double eps,
        double weight_decay);

  // One update from the current gradients; parameters with an undefined
  // gradient are left alone (their step counter does not advance), as torch.
  void step(double lr);

  // Named state, for checkpoints: exp_avg/<name>, exp_avg_sq/<name> (param
  // dtype and shape) and step/<name> (int64 scalar).  The tensors alias the
  // live state: copy them if they must outlive the next step.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  // Copies saved state in; throws naming a missing, extra or mis-shaped tensor.
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& st);

  const std::vector<NamedParam>& params() const { return params_; }

 private:
  std::vector<NamedParam> params_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<int64_t> steps_;
  double beta1_, beta2_, eps_, weight_decay_;
};

struct StepReport {
  bool applied = false;     // false: skipped (non-finite loss or gradient, or a blow-up)
  bool blowup = false;      // skipped because the update would blow the weights up
  double update_ratio = 0;  // ||update|| / ||weights|| (previewed; 0 when not previewed)
  double grad_norm = 0;     // before clipping (NaN/inf when skipped for it)
  double lr = 0;            // the rate used (0 when skipped)
  int64_t num_updates = 0;  // applied updates so far (after this step)
  int64_t num_skipped = 0;  // skipped steps so far (after this step)
  // Wall-clock split of step(), for the learner's per-phase timing: the
  // gradient all-reduce (including waiting for slower ranks), then norm,
  // skip vote, clipping and AdamW.  On CUDA the launches are asynchronous,
  // so the split is only indicative there.
  double sync_seconds = 0;
  double apply_seconds = 0;
};

class Optimizer {
 public:
  // comm must outlive the Optimizer.  Parameter names must be unique;
  // parameters must be contiguous.
  Optimizer(std::vector<NamedParam> params, const OptimizerConfig& cfg, Comm& comm);
  ~Optimizer();

  // Drops every gradient (sets .grad() undefined).
  void zero_grad();
  // Call just before the backward of the last micro-batch of an optimizer
  // step: with overlap_grad_sync, gradient buckets are sent during it as
  // they complete (GradSync::overlap_next_backward); otherwise nothing.
  // Local; step() is then the collective that finishes the sync.
  void overlap_next_backward();
  // The collective described at the top of this file.
  StepReport step(bool local_loss_finite = true);

  int64_t num_updates() const { return num_updates_; }
  int64_t num_skipped() const { return num_skipped_; }
  const OptimizerConfig& config() const { return cfg_; }
  const GradSync& grad_sync() const { return *sync_; }
  const ShardPlan& plan() const;

  // This rank's checkpoint slice (see the top of this file): "ranges" int64
  // [n, 2] global [begin, end), "master", "exp_avg", "exp_avg_sq" (flat, the
  // ranges concatenated), "layout" (hash of names and shapes), "adam_step",
  // "num_updates", "num_skipped" (int64 scalars).  Copies.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  // slices: the state() of every rank of one checkpoint (any world size and
  // stage).  Throws naming what is missing or does not match (another
  // model, an element no slice covers).  Then writes the parameters from
  // the masters (and all-gathers them): collective.
  void load_state(const std::vector<std::vector<std::pair<std::string, at::Tensor>>>& slices);
  // Copies the current parameters into the masters (after the caller loaded
  // weights into the parameters directly).  Local.
  void masters_from_params();

  // The master weight of every owned segment (fp32 copies for 16-bit
  // parameters, views of the parameters otherwise), in plan().owned order.
  const std::vector<at::Tensor>& masters() const { return master_; }
  // Bytes of masters this Optimizer allocated (0 when the parameters are
  // their own masters) and of AdamW moments.
  int64_t master_bytes() const;
  int64_t moment_bytes() const;

 private:
  // Parameters = rounded masters on the owned segments, then all-gather.
  void publish_params();
  // Segment i's gradient after the sync (a view of .grad() or of the slice).
  at::Tensor segment_grad(size_t i) const;

  OptimizerConfig cfg_;
  std::vector<NamedParam> params_;
  std::vector<at::Tensor> tensors_;
  // Checkpoint coordinates (see the top): where parameter i's first element
  // lies among the whole parameters' elements, and their number.
  std::vector<int64_t> whole_offset_;
  int64_t whole_numel_ = 0;
  // A plan()-flat range [b, e) as ranges of whole coordinates (merged where
  // they touch: without pieces, the range itself).
  std::vector<std::pair<int64_t, int64_t>> to_whole(int64_t b, int64_t e) const;
  std::unique_ptr<GradSync> sync_;
  // Per owned segment (plan().owned order).
  std::vector<at::Tensor> master_, exp_avg_, exp_avg_sq_;
  std::vector<bool> own_master_;  // true: master_ is a copy, not the parameter
  // Sync groups: whether owned segment i enters the global sums (see the top).
  std::vector<bool> counted_;
  bool grouped_ = false;
  int64_t adam_step_ = 0;
  Comm& comm_;
  int64_t num_updates_ = 0;
  int64_t num_skipped_ = 0;
};

}  // namespace zerorl
