// The model-independent half of the learner: AdamW, the learning-rate
// schedule, global-norm clipping, and Optimizer::step(), which ties them to
// the gradient all-reduce (grad_sync.h) and the non-finite skip rule.
//
// AdamW is written here rather than wrapping torch::optim::AdamW so that its
// state is a flat list of named tensors (exp_avg/<param>, exp_avg_sq/<param>,
// step/<param>) that a checkpoint writes and reads back bit-exactly without
// torch's serialisation archive.  The arithmetic follows LibTorch's C++
// AdamW op for op (decoupled decay p *= 1 - lr*wd; m = b1*m + (1-b1)*g;
// v = b2*v + (1-b2)*g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)),
// and tests/trainer/optimizer_test.cpp checks it against torch::optim::AdamW.
// State tensors have the dtype and device of their parameter: keep fp32
// (master) parameters if updates must not round away.
//
// Optimizer::step() is a collective (every rank calls it once per optimizer
// step, in the same order as every other collective):
//   1. all-reduce the gradients in buckets (GradSync; kSum by default, see
//      grpo_loss.h on LossScale);
//   2. the global gradient norm (identical on every rank after step 1);
//   3. if the loss was non-finite on ANY rank or the norm is non-finite, the
//      step is skipped on every rank: weights and AdamW state unchanged,
//      gradients cleared, num_skipped incremented;
//   4. otherwise clip to max_grad_norm (torch's rule: scale by
//      max / (norm + 1e-6) when that is < 1), AdamW with lr_at(num_updates),
//      clear gradients, num_updates incremented.
// The schedule counts applied updates, so a skipped step does not advance it.
// After step 1 every parameter has a gradient (zeros where no rank produced
// one, e.g. an expert that received no tokens anywhere), so every parameter
// takes an AdamW step (momentum and decay still move it): give the Optimizer
// trainable parameters only.
//
// Not thread-safe.  Errors (bad config, state of the wrong shape on load)
// throw zerorl::Error naming the key or tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/comm.h"

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
  double bucket_mb = 25.0;     // gradient all-reduce bucket size
  ReduceOp grad_reduce = ReduceOp::kSum;

  // Keys (all optional): lr, beta1, beta2, eps, weight_decay, warmup_steps,
  // schedule: constant|cosine, total_steps (required > warmup_steps for
  // cosine), min_lr_ratio, max_grad_norm, bucket_mb, grad_reduce: sum|mean.
  static OptimizerConfig from(const ConfigNode& n);
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
};

// sqrt(sum_p ||grad_p||^2) in double; undefined gradients count as zero.
double global_grad_norm(const std::vector<at::Tensor>& params);
// Scales every defined gradient by torch's clip rule; returns the factor applied (<= 1).
double clip_grads_to_norm(const std::vector<at::Tensor>& params, double total_norm,
                          double max_norm);

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
  bool applied = false;     // false: skipped for a non-finite loss or gradient
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
  // comm must outlive the Optimizer.  Parameter names must be unique.
  Optimizer(std::vector<NamedParam> params, const OptimizerConfig& cfg, Comm& comm);
  ~Optimizer();

  // Drops every gradient (sets .grad() undefined).
  void zero_grad();
  // The collective described at the top of this file.
  StepReport step(bool local_loss_finite = true);

  int64_t num_updates() const { return num_updates_; }
  int64_t num_skipped() const { return num_skipped_; }
  const OptimizerConfig& config() const { return cfg_; }
  const GradSync& grad_sync() const { return *sync_; }

  // AdamW's state plus "optimizer/num_updates" and "optimizer/num_skipped".
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& st);

 private:
  OptimizerConfig cfg_;
  std::vector<at::Tensor> tensors_;
  AdamW adam_;
  std::unique_ptr<GradSync> sync_;
  Comm& comm_;
  int64_t num_updates_ = 0;
  int64_t num_skipped_ = 0;
};

}  // namespace zerorl
