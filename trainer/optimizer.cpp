#include "trainer/optimizer.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "trainer/grad_sync.h"

namespace zerorl {

// ---- config and schedule --------------------------------------------------------

OptimizerConfig OptimizerConfig::from(const ConfigNode& n, int64_t default_total_steps) {
  OptimizerConfig c;
  auto positive = [&](const char* key, double v) {
    ZR_CHECK(std::isfinite(v) && v > 0, n.where(key), ": ", n.path(key),
             " must be a finite number > 0, got ", v);
  };
  auto in01 = [&](const char* key, double v) {
    ZR_CHECK(std::isfinite(v) && v >= 0 && v < 1, n.where(key), ": ", n.path(key),
             " must be in [0, 1), got ", v);
  };
  // The rates reach the fp32 masters as fp32 scalars: a value beyond fp32's
  // range would fail mid-run naming no key (lr=1e38 did).
  constexpr double kF32Max = std::numeric_limits<float>::max();
  c.lr = n.get<double>("lr", c.lr);
  positive("lr", c.lr);
  c.beta1 = n.get<double>("beta1", c.beta1);
  in01("beta1", c.beta1);
  // AdamW's largest step size is lr / (1 - beta1), at its first step.
  ZR_CHECK(c.lr / (1 - c.beta1) <= kF32Max, n.where("lr"), ": ", n.path("lr"), " = ", c.lr,
           " is beyond the fp32 range of the master weights (lr / (1 - beta1) must stay <= ",
           kF32Max, ")");
  c.beta2 = n.get<double>("beta2", c.beta2);
  in01("beta2", c.beta2);
  c.eps = n.get<double>("eps", c.eps);
  positive("eps", c.eps);
  ZR_CHECK(c.eps <= kF32Max, n.where("eps"), ": ", n.path("eps"), " = ", c.eps,
           " is beyond the fp32 range of the master weights (<= ", kF32Max, ")");
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
  c.total_steps = n.get<long>(
      "total_steps", c.schedule == Schedule::kCosine ? static_cast<long>(default_total_steps) : 0L);
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
  c.max_update_ratio = n.get<double>("max_update_ratio", c.max_update_ratio);
  ZR_CHECK(std::isfinite(c.max_update_ratio) && c.max_update_ratio >= 0,
           n.where("max_update_ratio"), ": ", n.path("max_update_ratio"),
           " must be >= 0 (0: only non-finite updates are skipped), got ", c.max_update_ratio);
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

void adamw_update(at::Tensor p, const at::Tensor& grad_in, at::Tensor& exp_avg,
                  at::Tensor& exp_avg_sq, int64_t t, double lr, const AdamHyper& h, bool decay) {
  at::NoGradGuard no_grad;
  const at::Tensor grad = grad_in.to(p.scalar_type());
  if (decay && h.weight_decay != 0) p.mul_(1 - lr * h.weight_decay);
  const double bias_correction1 = 1 - std::pow(h.beta1, static_cast<double>(t));
  const double bias_correction2 = 1 - std::pow(h.beta2, static_cast<double>(t));
  exp_avg.mul_(h.beta1).add_(grad, 1 - h.beta1);
  exp_avg_sq.mul_(h.beta2).addcmul_(grad, grad, 1 - h.beta2);
  const at::Tensor denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(h.eps);
  const double step_size = lr / bias_correction1;
  p.addcdiv_(exp_avg, denom, -step_size);
}

void adamw_preview(const at::Tensor& p, const at::Tensor& grad_in, const at::Tensor& exp_avg,
                   const at::Tensor& exp_avg_sq, int64_t t, double lr, const AdamHyper& h,
                   bool decay, double param_max, UpdatePreview& acc) {
  at::NoGradGuard no_grad;
  if (p.numel() == 0) return;
  // adamw_update's arithmetic on copies (the decision needs the size of the
  // update, not its bits).
  const at::Tensor grad = grad_in.to(p.scalar_type());
  const double bias_correction1 = 1 - std::pow(h.beta1, static_cast<double>(t));
  const double bias_correction2 = 1 - std::pow(h.beta2, static_cast<double>(t));
  const at::Tensor m = exp_avg.mul(h.beta1).add_(grad, 1 - h.beta1);
  const at::Tensor v = exp_avg_sq.mul(h.beta2).addcmul_(grad, grad, 1 - h.beta2);
  const at::Tensor denom = (v.sqrt() / std::sqrt(bias_correction2)).add_(h.eps);
  at::Tensor next = decay && h.weight_decay != 0 ? p.mul(1 - lr * h.weight_decay) : p.clone();
  next.addcdiv_(m, denom, -lr / bias_correction1);
  acc.delta_norms.push_back(at::norm(at::sub(next, p), 2, at::kDouble));  // no fp32 overflow
  acc.param_norms.push_back(at::norm(p, 2, at::kDouble));
  acc.next_absmax.push_back(next.abs().max().to(at::kDouble) / param_max);
}

void AdamW::step(double lr) {
  const AdamHyper h{beta1_, beta2_, eps_, weight_decay_};
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& grad = params_[i].param.grad();
    if (!grad.defined()) continue;
    adamw_update(params_[i].param, grad, exp_avg_[i], exp_avg_sq_[i], ++steps_[i], lr, h,
                 params_[i].decay);
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

at::ScalarType master_dtype(at::ScalarType s) {
  return s == at::kDouble ? at::kDouble : at::kFloat;
}

// FNV-1a over names and numels, 52 bits (exact in a double and an int64).
int64_t layout_hash(const std::vector<NamedParam>& ps) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (char c : s + '\0') {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ull;
    }
  };
  for (const NamedParam& p : ps) mix(p.name + ":" + std::to_string(p.param.numel() * p.parts));
  return static_cast<int64_t>(h & ((1ull << 52) - 1));
}

at::Tensor scalar_long(int64_t v) { return at::full({}, v, at::kLong); }

// The largest finite value of a parameter dtype: a master beyond it would
// round to inf in the parameter.
double dtype_max(at::ScalarType s) {
  switch (s) {
    case at::kHalf:
      return 65504.0;
    case at::kBFloat16:
      return 3.3895313892515355e38;
    case at::kFloat:
      return std::numeric_limits<float>::max();
    default:
      return std::numeric_limits<double>::max();
  }
}

}  // namespace

Optimizer::Optimizer(std::vector<NamedParam> params, const OptimizerConfig& cfg, Comm& comm)
    : cfg_(cfg), params_(std::move(params)), tensors_(tensors_of(params_)), comm_(comm) {
  std::set<std::string> names;
  for (const NamedParam& p : params_) {
    ZR_CHECK(p.param.defined() && at::isFloatingType(p.param.scalar_type()),
             "Optimizer: parameter '", p.name, "' is undefined or not floating");
    ZR_CHECK(names.insert(p.name).second, "Optimizer: parameter name '", p.name, "' appears twice");
    ZR_CHECK(p.param.is_contiguous(), "Optimizer: parameter '", p.name, "' is not contiguous");
    ZR_CHECK(
        p.parts >= 1 && p.part >= 0 && p.part < p.parts && (p.parts == 1 || p.param.dim() >= 1),
        "Optimizer: parameter '", p.name, "' is piece ", p.part, " of ", p.parts);
    whole_offset_.push_back(whole_numel_ + p.part * p.param.numel());
    whole_numel_ += p.param.numel() * p.parts;
  }
  const int64_t bucket_bytes = static_cast<int64_t>(cfg.bucket_mb * 1024 * 1024);
  // Sync groups in order of first appearance; group 0 is `comm`.
  std::vector<Comm*> comms{&comm};
  std::vector<int> group_of;
  for (const NamedParam& p : params_) {
    Comm* c = p.sync ? p.sync : &comm;
    auto it = std::find(comms.begin(), comms.end(), c);
    if (it == comms.end()) it = comms.insert(comms.end(), c);
    group_of.push_back(static_cast<int>(it - comms.begin()));
  }
  grouped_ = comms.size() > 1;
  std::vector<ShardPlan::Group> groups;
  for (Comm* c : comms) groups.push_back({c->rank(), c->size()});
  sync_ = std::make_unique<GradSync>(
      tensors_, ShardPlan::make(tensors_, cfg.zero, groups, group_of, bucket_bytes), comms,
      cfg.grad_reduce, cfg.overlap_grad_sync);
  at::NoGradGuard no_grad;
  for (const ShardPlan::Segment& s : plan().owned) {
    const at::Tensor& p = tensors_[s.param];
    at::Tensor view = p.detach().view({-1}).narrow(0, s.offset, s.numel);
    const at::ScalarType md = master_dtype(p.scalar_type());
    const bool copy = p.scalar_type() != md;
    master_.push_back(copy ? view.to(md, /*non_blocking=*/false, /*copy=*/true) : view);
    own_master_.push_back(copy);
    exp_avg_.push_back(at::zeros({s.numel}, view.options().dtype(md)));
    exp_avg_sq_.push_back(at::zeros({s.numel}, view.options().dtype(md)));
    counted_.push_back(cfg.zero > 0 ||
                       plan().groups[static_cast<size_t>(plan().buckets[s.bucket].group)].rank ==
                           0);
  }
}

Optimizer::~Optimizer() = default;

const ShardPlan& Optimizer::plan() const { return sync_->plan(); }

void Optimizer::zero_grad() {
  for (at::Tensor& p : tensors_) {
    if (p.grad().defined()) p.mutable_grad().reset();
  }
}

void Optimizer::overlap_next_backward() { sync_->overlap_next_backward(); }

at::Tensor Optimizer::segment_grad(size_t i) const {
  const ShardPlan::Segment& s = plan().owned[i];
  if (plan().stage == 2) {
    const int64_t lo = plan().own_slice(s.bucket).first;
    return sync_->grad_slice(s.bucket).narrow(0, s.bucket_offset - lo, s.numel);
  }
  return tensors_[s.param].grad().view({-1}).narrow(0, s.offset, s.numel);
}

void Optimizer::publish_params() {
  at::NoGradGuard no_grad;
  const auto& owned = plan().owned;
  for (size_t i = 0; i < owned.size(); ++i) {
    if (!own_master_[i]) continue;
    tensors_[owned[i].param]
        .detach()
        .view({-1})
        .narrow(0, owned[i].offset, owned[i].numel)
        .copy_(master_[i]);
  }
  if (plan().stage >= 1) sync_->allgather_params();
}

void Optimizer::masters_from_params() {
  at::NoGradGuard no_grad;
  const auto& owned = plan().owned;
  for (size_t i = 0; i < owned.size(); ++i)
    if (own_master_[i])
      master_[i].copy_(
          tensors_[owned[i].param].detach().view({-1}).narrow(0, owned[i].offset, owned[i].numel));
}

StepReport Optimizer::step(bool local_loss_finite) {
  StepReport r;
  const auto t0 = std::chrono::steady_clock::now();
  const int stage = plan().stage;
  if (stage == 2) {
    sync_->reduce_scatter_grads();
  } else {
    sync_->allreduce_grads();
  }
  const auto t1 = std::chrono::steady_clock::now();
  r.sync_seconds = std::chrono::duration<double>(t1 - t0).count();
  const auto& owned = plan().owned;
  std::vector<at::Tensor> grads;
  for (size_t i = 0; i < owned.size(); ++i) grads.push_back(segment_grad(i));
  if (stage == 0 && !grouped_) {
    r.grad_norm = global_grad_norm(tensors_);
  } else {
    // Each rank's slices are disjoint and cover everything: the sum of the
    // squared slice norms over ranks is the squared global norm (with sync
    // groups at stage 0, each element counted by one rank: counted_).
    double local_sq = 0;
    for (size_t i = 0; i < grads.size(); ++i)
      if (counted_[i]) local_sq += std::pow(grads[i].norm().to(at::kDouble).item<double>(), 2);
    r.grad_norm = std::sqrt(comm_.allreduce_scalar(local_sq, ReduceOp::kSum));
  }
  // clip_grads_to_norm's rule; stage 0 scales the gradients in place below.
  const double coef = cfg_.max_grad_norm > 0 && std::isfinite(r.grad_norm)
                          ? std::min(1.0, cfg_.max_grad_norm / (r.grad_norm + 1e-6))
                          : 1.0;
  const double lr = lr_at(cfg_, num_updates_);
  const AdamHyper h{cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay};
  // The blow-up guard: what the update would do, before it is done.  The
  // norm is global (the same on every rank), so every rank previews or none.
  UpdatePreview pv;
  if (std::isfinite(r.grad_norm))
    for (size_t i = 0; i < owned.size(); ++i)
      adamw_preview(master_[i], coef < 1.0 ? grads[i].mul(coef) : grads[i], exp_avg_[i],
                    exp_avg_sq_[i], adam_step_ + 1, lr, h, params_[owned[i].param].decay,
                    dtype_max(tensors_[owned[i].param].scalar_type()), pv);
  double delta_sq = 0, param_sq = 0;
  bool overflow = false;  // a new master non-finite or beyond the parameter dtype
  if (!pv.delta_norms.empty()) {
    at::Tensor d = at::stack(pv.delta_norms).cpu();
    at::Tensor w = at::stack(pv.param_norms).cpu();
    if (grouped_) {  // one segment per owned segment, in order: keep the counted ones
      std::vector<int64_t> keep;
      for (size_t i = 0; i < counted_.size(); ++i)
        if (counted_[i]) keep.push_back(static_cast<int64_t>(i));
      const at::Tensor idx = at::tensor(keep, at::kLong);
      d = d.index_select(0, idx);
      w = w.index_select(0, idx);
    }
    const double absmax = at::stack(pv.next_absmax).max().item<double>();  // / dtype max
    delta_sq = d.square().sum().item<double>();
    param_sq = w.square().sum().item<double>();
    overflow = !(absmax <= 1.0);  // NaN too
  }
  // One vote settles everything known only locally (a non-finite loss, an
  // overflow in this rank's shard) and sums the shards' squared norms
  // (stages 1, 2; at stage 0 every rank holds everything, so its own sums
  // are the global ones): every rank takes the same decision.
  at::Tensor vote = at::tensor({!local_loss_finite || !std::isfinite(r.grad_norm) ? 1.0 : 0.0,
                                overflow ? 1.0 : 0.0, delta_sq, param_sq},
                               at::kDouble);
  comm_.allreduce(vote, ReduceOp::kSum);
  const bool nonfinite = vote[0].item<double>() > 0.5;
  if (stage > 0 || grouped_) {
    delta_sq = vote[2].item<double>();
    param_sq = vote[3].item<double>();
  }
  r.update_ratio = param_sq > 0 ? std::sqrt(delta_sq / param_sq) : 0.0;
  const bool blowup =
      !nonfinite && (vote[1].item<double>() > 0.5 || !std::isfinite(delta_sq) ||
                     (cfg_.max_update_ratio > 0 && param_sq > 0 &&
                      delta_sq > cfg_.max_update_ratio * cfg_.max_update_ratio * param_sq));
  const bool skip = nonfinite || blowup;
  if (skip) {
    ++num_skipped_;
  } else {
    if (stage == 0) clip_grads_to_norm(tensors_, r.grad_norm, cfg_.max_grad_norm);
    r.lr = lr;
    ++adam_step_;
    for (size_t i = 0; i < owned.size(); ++i) {
      at::Tensor g = grads[i];
      if (stage > 0 && coef < 1.0) g = g.mul(coef);
      adamw_update(master_[i], g, exp_avg_[i], exp_avg_sq_[i], adam_step_, r.lr, h,
                   params_[owned[i].param].decay);
    }
    publish_params();
    ++num_updates_;
  }
  zero_grad();
  r.applied = !skip;
  r.num_updates = num_updates_;
  r.num_skipped = num_skipped_;
  r.blowup = blowup;
  r.apply_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return r;
}

int64_t Optimizer::master_bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < master_.size(); ++i)
    if (own_master_[i]) n += static_cast<int64_t>(master_[i].nbytes());
  return n;
}

int64_t Optimizer::moment_bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < exp_avg_.size(); ++i)
    n += static_cast<int64_t>(exp_avg_[i].nbytes() + exp_avg_sq_[i].nbytes());
  return n;
}

std::vector<std::pair<int64_t, int64_t>> Optimizer::to_whole(int64_t b, int64_t e) const {
  std::vector<std::pair<int64_t, int64_t>> out;
  const ShardPlan& pl = plan();
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t lo = std::max(b, pl.param_offset[i]);
    const int64_t hi = std::min(e, pl.param_offset[i] + pl.param_numel[i]);
    if (lo >= hi) continue;
    const int64_t wlo = whole_offset_[i] + (lo - pl.param_offset[i]);
    const int64_t whi = wlo + (hi - lo);
    if (!out.empty() && out.back().second == wlo)
      out.back().second = whi;
    else
      out.emplace_back(wlo, whi);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Optimizer::state() const {
  const auto ranges = plan().slice_ranges(plan().rank);  // grouped: each group's own slice
  int64_t n = 0;
  for (const auto& [b, e] : ranges) n += e - b;
  const at::ScalarType md = master_.empty() ? at::kFloat : master_[0].scalar_type();
  const auto opts = at::TensorOptions().dtype(md);
  at::Tensor master = at::empty({n}, opts), m = at::empty({n}, opts), v = at::empty({n}, opts);
  // The ranges in whole coordinates (see the top), in the same element order.
  std::vector<std::pair<int64_t, int64_t>> whole;
  for (const auto& [b, e] : ranges)
    for (const auto& w : to_whole(b, e)) whole.push_back(w);
  at::Tensor r = at::empty({static_cast<int64_t>(whole.size()), 2}, at::kLong);
  for (size_t i = 0; i < whole.size(); ++i) {
    r[i][0] = whole[i].first;
    r[i][1] = whole[i].second;
  }
  std::vector<FlatSpan> dst_master, dst_m, dst_v;
  int64_t off = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const auto [b, e] = ranges[i];
    dst_master.push_back({b, master.narrow(0, off, e - b)});
    dst_m.push_back({b, m.narrow(0, off, e - b)});
    dst_v.push_back({b, v.narrow(0, off, e - b)});
    off += e - b;
  }
  std::vector<FlatSpan> src_master, src_m, src_v;
  const auto& owned = plan().owned;
  for (size_t i = 0; i < owned.size(); ++i) {
    ZR_CHECK(master_[i].scalar_type() == md, "Optimizer::state: masters of mixed dtypes");
    src_master.push_back({owned[i].global, master_[i].cpu()});
    src_m.push_back({owned[i].global, exp_avg_[i].cpu()});
    src_v.push_back({owned[i].global, exp_avg_sq_[i].cpu()});
  }
  // Stage 0 owns everything; stages 1, 2 own exactly these ranges.
  ZR_CHECK(copy_overlaps(src_master, dst_master) == n && copy_overlaps(src_m, dst_m) == n &&
               copy_overlaps(src_v, dst_v) == n,
           "Optimizer::state: this rank does not hold its checkpoint slice");
  return {{"ranges", r},
          {"master", master},
          {"exp_avg", m},
          {"exp_avg_sq", v},
          {"layout", scalar_long(layout_hash(params_))},
          {"adam_step", scalar_long(adam_step_)},
          {"num_updates", scalar_long(num_updates_)},
          {"num_skipped", scalar_long(num_skipped_)}};
}

void Optimizer::load_state(
    const std::vector<std::vector<std::pair<std::string, at::Tensor>>>& slices) {
  ZR_CHECK(!slices.empty(), "optimizer state: no slices given");
  const int64_t want_layout = layout_hash(params_);
  std::vector<FlatSpan> src_master, src_m, src_v;
  int64_t adam_step = -1, updates = -1, skipped = -1;
  for (size_t k = 0; k < slices.size(); ++k) {
    const auto& st = slices[k];
    ZR_CHECK(find_state(st, "layout").item<int64_t>() == want_layout, "optimizer state (slice ", k,
             "): written for other parameters (names or sizes differ from this model's)");
    const int64_t a = find_state(st, "adam_step").item<int64_t>();
    const int64_t u = find_state(st, "num_updates").item<int64_t>();
    const int64_t s = find_state(st, "num_skipped").item<int64_t>();
    ZR_CHECK(a >= 0 && u >= 0 && s >= 0, "optimizer state (slice ", k, "): negative counters");
    ZR_CHECK(adam_step < 0 || (a == adam_step && u == updates && s == skipped),
             "optimizer state: slices disagree on the step counters (from different steps?)");
    adam_step = a;
    updates = u;
    skipped = s;
    const at::Tensor r = find_state(st, "ranges");
    ZR_CHECK(r.dim() == 2 && r.size(1) == 2 && r.scalar_type() == at::kLong,
             "optimizer state (slice ", k, "): 'ranges' must be int64 [n, 2]");
    int64_t off = 0;
    for (int64_t i = 0; i < r.size(0); ++i) {
      const int64_t b = r[i][0].item<int64_t>(), e = r[i][1].item<int64_t>();
      ZR_CHECK(b >= 0 && e > b && e <= whole_numel_, "optimizer state (slice ", k, "): range [", b,
               ", ", e, ") outside the ", whole_numel_, " parameters");
      for (const char* name : {"master", "exp_avg", "exp_avg_sq"})
        ZR_CHECK(find_state(st, name).numel() >= off + (e - b), "optimizer state (slice ", k,
                 "): '", name, "' is shorter than its ranges");
      src_master.push_back({b, find_state(st, "master").narrow(0, off, e - b)});
      src_m.push_back({b, find_state(st, "exp_avg").narrow(0, off, e - b)});
      src_v.push_back({b, find_state(st, "exp_avg_sq").narrow(0, off, e - b)});
      off += e - b;
    }
  }
  at::NoGradGuard no_grad;
  const auto& owned = plan().owned;
  std::vector<FlatSpan> dst_master, dst_m, dst_v;
  for (size_t i = 0; i < owned.size(); ++i) {
    // Whole coordinates: a segment lies inside one parameter.
    const int64_t at = whole_offset_[owned[i].param] + owned[i].offset;
    dst_master.push_back({at, master_[i]});
    dst_m.push_back({at, exp_avg_[i]});
    dst_v.push_back({at, exp_avg_sq_[i]});
  }
  const int64_t want = plan().owned_numel();
  const int64_t got_master = copy_overlaps(src_master, dst_master);
  const int64_t got_m = copy_overlaps(src_m, dst_m), got_v = copy_overlaps(src_v, dst_v);
  ZR_CHECK(got_master == want && got_m == want && got_v == want,
           "optimizer state: the slices cover ", got_master, " of the ", want,
           " elements this rank owns (a rank file missing?)");
  adam_step_ = adam_step;
  num_updates_ = updates;
  num_skipped_ = skipped;
  publish_params();
}

}  // namespace zerorl
