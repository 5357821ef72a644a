#include "trainer/optimizer.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>

#include <chrono>
#include <cmath>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "trainer/grad_sync.h"

namespace zerorl {

// ---- config and schedule --------------------------------------------------------

OptimizerConfig OptimizerConfig::from(const ConfigNode& n) {
  OptimizerConfig c;
  auto positive = [&](const char* key, double v) {
    ZR_CHECK(std::isfinite(v) && v > 0, n.where(key), ": ", n.path(key),
             " must be a finite number > 0, got ", v);
  };
  auto in01 = [&](const char* key, double v) {
    ZR_CHECK(std::isfinite(v) && v >= 0 && v < 1, n.where(key), ": ", n.path(key),
             " must be in [0, 1), got ", v);
  };
  c.lr = n.get<double>("lr", c.lr);
  positive("lr", c.lr);
  c.beta1 = n.get<double>("beta1", c.beta1);
  in01("beta1", c.beta1);
  c.beta2 = n.get<double>("beta2", c.beta2);
  in01("beta2", c.beta2);
  c.eps = n.get<double>("eps", c.eps);
  positive("eps", c.eps);
  c.weight_decay = n.get<double>("weight_decay", c.weight_decay);
  ZR_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0 && c.weight_decay * c.lr < 1,
           n.where("weight_decay"), ": ", n.path("weight_decay"),
           " must be >= 0 with lr * weight_decay < 1, got ", c.weight_decay);
  c.warmup_steps = n.get<long>("warmup_steps", 0L);
  ZR_CHECK(c.warmup_steps >= 0, n.where("warmup_steps"), ": ", n.path("warmup_steps"),
           " must be >= 0, got ", c.warmup_steps);
  c.schedule = n.choice("schedule", {"constant", "cosine"}, "constant") == "constant"
                   ? Schedule::kConstant
                   : Schedule::kCosine;
  c.total_steps = n.get<long>("total_steps", 0L);
  if (c.schedule == Schedule::kCosine) {
    ZR_CHECK(c.total_steps > c.warmup_steps, n.where("total_steps"), ": ", n.path("total_steps"),
             " must be > warmup_steps=", c.warmup_steps, " for the cosine schedule, got ",
             c.total_steps);
  }
  c.min_lr_ratio = n.get<double>("min_lr_ratio", c.min_lr_ratio);
  ZR_CHECK(std::isfinite(c.min_lr_ratio) && c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1,
           n.where("min_lr_ratio"), ": ", n.path("min_lr_ratio"), " must be in [0, 1], got ",
           c.min_lr_ratio);
  c.max_grad_norm = n.get<double>("max_grad_norm", c.max_grad_norm);
  ZR_CHECK(std::isfinite(c.max_grad_norm) && c.max_grad_norm >= 0, n.where("max_grad_norm"), ": ",
           n.path("max_grad_norm"), " must be >= 0 (0 disables clipping), got ", c.max_grad_norm);
  c.bucket_mb = n.get<double>("bucket_mb", c.bucket_mb);
  positive("bucket_mb", c.bucket_mb);
  c.grad_reduce =
      n.choice("grad_reduce", {"sum", "mean"}, "sum") == "sum" ? ReduceOp::kSum : ReduceOp::kMean;
  return c;
}

double lr_at(const OptimizerConfig& cfg, int64_t update) {
  ZR_CHECK(update >= 0, "lr_at: negative update index ", update);
  if (update < cfg.warmup_steps) {
    return cfg.lr * static_cast<double>(update + 1) / static_cast<double>(cfg.warmup_steps);
  }
  if (cfg.schedule == OptimizerConfig::Schedule::kConstant) return cfg.lr;
  const double span = static_cast<double>(std::max<int64_t>(1, cfg.total_steps - cfg.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(update - cfg.warmup_steps) / span);
  const double lo = cfg.min_lr_ratio * cfg.lr;
  return lo + (cfg.lr - lo) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

// ---- clipping ---------------------------------------------------------------------

double global_grad_norm(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> norms;
  for (const at::Tensor& p : params) {
    const at::Tensor& g = p.grad();
    if (g.defined()) norms.push_back(g.detach().norm().to(at::kDouble));
  }
  if (norms.empty()) return 0.0;
  // One device->host copy, unless the parameters live on several devices.
  bool mixed = false;
  for (const at::Tensor& n : norms) mixed = mixed || n.device() != norms[0].device();
  if (mixed)
    for (at::Tensor& n : norms) n = n.cpu();
  return at::stack(norms).square().sum().sqrt().item<double>();
}

double clip_grads_to_norm(const std::vector<at::Tensor>& params, double total_norm,
                          double max_norm) {
  if (max_norm <= 0 || !std::isfinite(total_norm)) return 1.0;
  const double coef = max_norm / (total_norm + 1e-6);
  if (coef >= 1.0) return 1.0;
  at::NoGradGuard no_grad;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) p.mutable_grad().mul_(coef);
  }
  return coef;
}

// ---- AdamW ------------------------------------------------------------------------

AdamW::AdamW(std::vector<NamedParam> params, double beta1, double beta2, double eps,
             double weight_decay)
    : params_(std::move(params)),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay) {
  std::set<std::string> names;
  for (const NamedParam& p : params_) {
    ZR_CHECK(p.param.defined() && at::isFloatingType(p.param.scalar_type()), "AdamW: parameter '",
             p.name, "' is undefined or not floating");
    ZR_CHECK(names.insert(p.name).second, "AdamW: parameter name '", p.name, "' appears twice");
    exp_avg_.push_back(at::zeros_like(p.param, at::MemoryFormat::Contiguous).detach());
    exp_avg_sq_.push_back(at::zeros_like(p.param, at::MemoryFormat::Contiguous).detach());
    steps_.push_back(0);
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor p = params_[i].param;
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    if (params_[i].decay && weight_decay_ != 0) p.mul_(1 - lr * weight_decay_);
    const int64_t t = ++steps_[i];
    const double bias_correction1 = 1 - std::pow(beta1_, static_cast<double>(t));
    const double bias_correction2 = 1 - std::pow(beta2_, static_cast<double>(t));
    exp_avg_[i].mul_(beta1_).add_(grad, 1 - beta1_);
    exp_avg_sq_[i].mul_(beta2_).addcmul_(grad, grad, 1 - beta2_);
    const at::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bias_correction2)).add_(eps_);
    const double step_size = lr / bias_correction1;
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> st;
  for (size_t i = 0; i < params_.size(); ++i) {
    st.emplace_back("exp_avg/" + params_[i].name, exp_avg_[i]);
    st.emplace_back("exp_avg_sq/" + params_[i].name, exp_avg_sq_[i]);
    st.emplace_back("step/" + params_[i].name, at::full({}, steps_[i], at::kLong));
  }
  return st;
}

namespace {

const at::Tensor& find_state(const std::vector<std::pair<std::string, at::Tensor>>& st,
                             const std::string& name) {
  for (const auto& [k, v] : st)
    if (k == name) return v;
  ZR_THROW("optimizer state: tensor '", name, "' is missing");
}

}  // namespace

void AdamW::load_state(const std::vector<std::pair<std::string, at::Tensor>>& st) {
  ZR_CHECK(st.size() == 3 * params_.size(), "AdamW::load_state: expected ", 3 * params_.size(),
           " tensors for ", params_.size(), " parameters, got ", st.size());
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& n = params_[i].name;
    for (auto* dst : {&exp_avg_[i], &exp_avg_sq_[i]}) {
      const std::string key = (dst == &exp_avg_[i] ? "exp_avg/" : "exp_avg_sq/") + n;
      const at::Tensor& src = find_state(st, key);
      ZR_CHECK(src.sizes() == dst->sizes() && src.scalar_type() == dst->scalar_type(),
               "optimizer state: '", key, "' has shape ", src.sizes(), " ",
               at::toString(src.scalar_type()), ", expected ", dst->sizes(), " ",
               at::toString(dst->scalar_type()));
      dst->copy_(src);
    }
    const at::Tensor& s = find_state(st, "step/" + n);
    ZR_CHECK(s.numel() == 1 && !at::isFloatingType(s.scalar_type()), "optimizer state: 'step/", n,
             "' must be one integer");
    steps_[i] = s.item<int64_t>();
    ZR_CHECK(steps_[i] >= 0, "optimizer state: 'step/", n, "' is negative: ", steps_[i]);
  }
}

// ---- Optimizer --------------------------------------------------------------------

namespace {
std::vector<at::Tensor> tensors_of(const std::vector<NamedParam>& ps) {
  std::vector<at::Tensor> t;
  for (const NamedParam& p : ps) t.push_back(p.param);
  return t;
}
}  // namespace

Optimizer::Optimizer(std::vector<NamedParam> params, const OptimizerConfig& cfg, Comm& comm)
    : cfg_(cfg),
      tensors_(tensors_of(params)),
      adam_(std::move(params), cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay),
      comm_(comm) {
  sync_ = std::make_unique<GradSync>(
      tensors_, comm, static_cast<int64_t>(cfg.bucket_mb * 1024 * 1024), cfg.grad_reduce);
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() {
  for (at::Tensor& p : tensors_) {
    if (p.grad().defined()) p.mutable_grad().reset();
  }
}

StepReport Optimizer::step(bool local_loss_finite) {
  StepReport r;
  const auto t0 = std::chrono::steady_clock::now();
  sync_->allreduce_grads();
  const auto t1 = std::chrono::steady_clock::now();
  r.sync_seconds = std::chrono::duration<double>(t1 - t0).count();
  r.grad_norm = global_grad_norm(tensors_);
  // After the all-reduce the norm is the same everywhere, but a non-finite
  // loss is only known locally: one vote settles both.
  const bool skip = any_rank(comm_, !local_loss_finite || !std::isfinite(r.grad_norm));
  if (skip) {
    ++num_skipped_;
  } else {
    clip_grads_to_norm(tensors_, r.grad_norm, cfg_.max_grad_norm);
    r.lr = lr_at(cfg_, num_updates_);
    adam_.step(r.lr);
    ++num_updates_;
  }
  zero_grad();
  r.applied = !skip;
  r.num_updates = num_updates_;
  r.num_skipped = num_skipped_;
  r.apply_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return r;
}

std::vector<std::pair<std::string, at::Tensor>> Optimizer::state() const {
  auto st = adam_.state();
  st.emplace_back("optimizer/num_updates", at::full({}, num_updates_, at::kLong));
  st.emplace_back("optimizer/num_skipped", at::full({}, num_skipped_, at::kLong));
  return st;
}

void Optimizer::load_state(const std::vector<std::pair<std::string, at::Tensor>>& st) {
  std::vector<std::pair<std::string, at::Tensor>> adam_part;
  for (const auto& kv : st)
    if (kv.first.rfind("optimizer/", 0) != 0) adam_part.push_back(kv);
  adam_.load_state(adam_part);
  num_updates_ = find_state(st, "optimizer/num_updates").item<int64_t>();
  num_skipped_ = find_state(st, "optimizer/num_skipped").item<int64_t>();
}

}  // namespace zerorl
