// GRPO-family loss.  The variants and conventions are stated in grpo_loss.h;
// this file is the tensor implementation that tests/trainer/grpo_loss_test.cpp
// pins against a per-token double-precision loop and against TRL.
#include "trainer/grpo_loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <limits>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "trainer/grad_sync.h"

namespace zerorl {

// ---- config ---------------------------------------------------------------------

LossConfig LossConfig::from(const ConfigNode& n) {
  LossConfig c;
  const std::string agg = n.choice("aggregation", {"grpo", "dapo", "dr_grpo"}, "grpo");
  c.aggregation = agg == "grpo"   ? Aggregation::kGrpo
                  : agg == "dapo" ? Aggregation::kDapo
                                  : Aggregation::kDrGrpo;
  c.eps_low = n.get<double>("eps_low", c.eps_low);
  ZR_CHECK(std::isfinite(c.eps_low) && c.eps_low >= 0 && c.eps_low < 1, n.where("eps_low"), ": ",
           n.path("eps_low"), " must be in [0, 1), got ", c.eps_low);
  c.eps_high = n.get<double>("eps_high", c.eps_high);
  ZR_CHECK(std::isfinite(c.eps_high) && c.eps_high >= 0, n.where("eps_high"), ": ",
           n.path("eps_high"), " must be a finite number >= 0, got ", c.eps_high);
  c.beta = n.get<double>("beta", c.beta);
  ZR_CHECK(std::isfinite(c.beta) && c.beta >= 0, n.where("beta"), ": ", n.path("beta"),
           " must be a finite number >= 0, got ", c.beta);
  const std::string est = n.choice("kl_estimator", {"k1", "k2", "k3"}, "k3");
  c.kl_estimator = est == "k1"   ? KlEstimator::kK1
                   : est == "k2" ? KlEstimator::kK2
                                 : KlEstimator::kK3;
  c.kl_in = n.choice("kl_in", {"loss", "reward"}, "loss") == "loss" ? KlIn::kLoss : KlIn::kReward;
  c.max_completion_length = n.get<long>("max_completion_length", 0L);
  ZR_CHECK(c.max_completion_length >= 0, n.where("max_completion_length"), ": ",
           n.path("max_completion_length"), " must be >= 0, got ", c.max_completion_length);
  if (c.aggregation == Aggregation::kDrGrpo) {
    ZR_CHECK(c.max_completion_length > 0, n.where("aggregation"), ": ", n.path("aggregation"),
             "=dr_grpo divides by the maximum completion length: set ",
             n.path("max_completion_length"), " > 0");
  }
  c.entropy_coef = n.get<double>("entropy_coef", c.entropy_coef);
  ZR_CHECK(std::isfinite(c.entropy_coef), n.where("entropy_coef"), ": ", n.path("entropy_coef"),
           " must be finite, got ", c.entropy_coef);
  const std::string ol = n.choice("overlong", {"none", "soft", "mask"}, "none");
  c.overlong = ol == "none" ? Overlong::kNone : ol == "soft" ? Overlong::kSoft : Overlong::kMask;
  c.overlong_buffer = n.get<long>("overlong_buffer", 0L);
  c.overlong_penalty = n.get<double>("overlong_penalty", c.overlong_penalty);
  ZR_CHECK(std::isfinite(c.overlong_penalty) && c.overlong_penalty >= 0,
           n.where("overlong_penalty"), ": ", n.path("overlong_penalty"),
           " must be a finite number >= 0, got ", c.overlong_penalty);
  if (c.overlong == Overlong::kSoft) {
    ZR_CHECK(c.max_completion_length > 0, n.where("overlong"), ": ", n.path("overlong"),
             "=soft needs ", n.path("max_completion_length"), " > 0");
    ZR_CHECK(c.overlong_buffer > 0 && c.overlong_buffer <= c.max_completion_length,
             n.where("overlong_buffer"), ": ", n.path("overlong_buffer"),
             " must be in [1, max_completion_length=", c.max_completion_length, "], got ",
             c.overlong_buffer);
  }
  return c;
}

std::string to_string(LossConfig::Aggregation a) {
  switch (a) {
    case LossConfig::Aggregation::kGrpo:
      return "grpo";
    case LossConfig::Aggregation::kDapo:
      return "dapo";
    case LossConfig::Aggregation::kDrGrpo:
      return "dr_grpo";
  }
  return "?";
}

// ---- scale ----------------------------------------------------------------------

LossScale LossScale::of(const at::Tensor& mask_BT) {
  ZR_CHECK(mask_BT.defined() && mask_BT.dim() == 2, "LossScale: mask_BT must be [B, T], got ",
           mask_BT.defined() ? mask_BT.sizes() : at::IntArrayRef{});
  LossScale s;
  s.num_seqs = static_cast<double>(mask_BT.size(0));
  s.num_tokens = (mask_BT != 0).sum().item<double>();
  return s;
}

LossScale LossScale::allreduced(Comm& comm) const {
  LossScale s;
  s.num_seqs = comm.allreduce_scalar(num_seqs, ReduceOp::kSum);
  s.num_tokens = comm.allreduce_scalar(num_tokens, ReduceOp::kSum);
  return s;
}

// ---- pieces ---------------------------------------------------------------------

at::Tensor kl_per_token(const at::Tensor& logp_BT, const at::Tensor& ref_logp_BT,
                        LossConfig::KlEstimator est) {
  const at::Tensor x = ref_logp_BT - logp_BT;
  switch (est) {
    case LossConfig::KlEstimator::kK1:
      return -x;
    case LossConfig::KlEstimator::kK2:
      return x.square() * 0.5;
    case LossConfig::KlEstimator::kK3:
      return x.exp() - x - 1.0;
  }
  ZR_THROW("kl_per_token: unknown estimator");
}

namespace {

void check_bt(const at::Tensor& t, const char* name, const at::Tensor& like) {
  ZR_CHECK(t.defined(), "grpo_loss: ", name, " is required");
  ZR_CHECK(t.sizes() == like.sizes(), "grpo_loss: ", name, " has shape ", t.sizes(), ", expected ",
           like.sizes(), " (as logp_BT)");
  ZR_CHECK(t.device() == like.device(), "grpo_loss: ", name, " is on ", t.device(), ", logp_BT on ",
           like.device());
}

at::Tensor bool_mask(const at::Tensor& mask_BT) {
  return mask_BT.scalar_type() == at::kBool ? mask_BT : mask_BT != 0;
}

}  // namespace

LossOutput grpo_loss(const LossInputs& in, const LossConfig& cfg, const LossScale& scale_in) {
  const at::Tensor& logp = in.logp_BT;
  ZR_CHECK(logp.defined() && logp.dim() == 2 && at::isFloatingType(logp.scalar_type()),
           "grpo_loss: logp_BT must be a floating [B, T] tensor");
  check_bt(in.old_logp_BT, "old_logp_BT", logp);
  check_bt(in.mask_BT, "mask_BT", logp);
  ZR_CHECK(in.advantages_B.defined() && in.advantages_B.dim() == 1 &&
               in.advantages_B.size(0) == logp.size(0),
           "grpo_loss: advantages_B must be [B] with B=", logp.size(0), ", got ",
           in.advantages_B.defined() ? in.advantages_B.sizes() : at::IntArrayRef{});
  const bool kl_in_loss = cfg.beta > 0 && cfg.kl_in == LossConfig::KlIn::kLoss;
  if (kl_in_loss) {
    ZR_CHECK(in.ref_logp_BT.defined(),
             "grpo_loss: beta > 0 with kl_in=loss needs ref_logp_BT (reference log-probs)");
  }
  if (in.ref_logp_BT.defined()) check_bt(in.ref_logp_BT, "ref_logp_BT", logp);
  const bool use_entropy = in.entropy_BT.defined();
  if (use_entropy) check_bt(in.entropy_BT, "entropy_BT", logp);
  if (cfg.aggregation == LossConfig::Aggregation::kDrGrpo) {
    ZR_CHECK(cfg.max_completion_length > 0,
             "grpo_loss: dr_grpo aggregation needs max_completion_length > 0");
  }

  const LossScale scale = scale_in.empty() ? LossScale::of(in.mask_BT) : scale_in;
  ZR_CHECK(scale.num_seqs > 0, "grpo_loss: LossScale.num_seqs must be > 0");

  // Masked-out positions are replaced by zeros before any arithmetic, so that
  // padding holding NaN/inf neither reaches the loss nor the gradient.
  // 16-bit log-probs are upcast: exp(logp - old) in bf16 is off by ~0.4%.
  const at::ScalarType dt =
      at::isReducedFloatingType(logp.scalar_type()) ? at::kFloat : logp.scalar_type();
  const at::TensorOptions opts = logp.options().dtype(dt).requires_grad(false);
  const at::Tensor m = bool_mask(in.mask_BT);
  const at::Tensor zero = at::scalar_tensor(0.0, opts);
  const at::Tensor logp_m = logp.to(dt).where(m, zero);
  const at::Tensor old_m = in.old_logp_BT.to(dt).where(m, zero);
  const at::Tensor mf = m.to(dt);
  const at::Tensor adv = in.advantages_B.to(opts).unsqueeze(1);

  const at::Tensor ratio = (logp_m - old_m).exp();
  const at::Tensor clipped = ratio.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high);
  at::Tensor per_token = -(ratio * adv).minimum(clipped * adv);

  at::Tensor kl;
  if (in.ref_logp_BT.defined()) {
    const at::Tensor ref_m = in.ref_logp_BT.to(dt).where(m, zero);
    kl = kl_per_token(logp_m, ref_m, cfg.kl_estimator);
    if (kl_in_loss) per_token = per_token + kl * cfg.beta;
  }
  per_token = per_token * mf;

  at::Tensor loss;
  switch (cfg.aggregation) {
    case LossConfig::Aggregation::kGrpo: {
      const at::Tensor len_B = mf.sum(1).clamp_min(1.0);
      loss = (per_token.sum(1) / len_B).sum() / scale.num_seqs;
      break;
    }
    case LossConfig::Aggregation::kDapo:
      loss = per_token.sum() / std::max(scale.num_tokens, 1.0);
      break;
    case LossConfig::Aggregation::kDrGrpo:
      loss = per_token.sum() / (scale.num_seqs * static_cast<double>(cfg.max_completion_length));
      break;
  }
  at::Tensor ent_m;
  if (use_entropy) {
    ent_m = in.entropy_BT.to(dt).where(m, zero);
    if (cfg.entropy_coef != 0) {
      loss = loss - ent_m.sum() * (cfg.entropy_coef / std::max(scale.num_tokens, 1.0));
    }
  }

  // ---- statistics: one device->host copy --------------------------------------
  LossOutput out;
  out.loss = loss;
  {
    const at::Tensor r = ratio.detach();
    const double inf = std::numeric_limits<double>::infinity();
    const at::Tensor dz =
        at::zeros_like(loss, loss.options().dtype(at::kDouble).requires_grad(false));
    const auto as_d = [](const at::Tensor& t) { return t.to(at::kDouble); };
    const at::Tensor low = m & (r < 1.0 - cfg.eps_low) & (adv < 0);
    const at::Tensor high = m & (r > 1.0 + cfg.eps_high) & (adv > 0);
    std::vector<at::Tensor> parts = {
        as_d(loss.detach()),
        as_d(mf.sum()),
        kl.defined() ? as_d((kl.detach() * mf).sum()) : dz,
        as_d(low.sum()),
        as_d(high.sum()),
        as_d((r * mf).sum()),
        as_d(r.where(m, inf).min()),
        as_d(r.where(m, -inf).max()),
        use_entropy ? as_d(ent_m.detach().sum()) : dz,
    };
    const at::Tensor v = at::stack(parts).cpu();
    const double* p = v.data_ptr<double>();
    LossStats& s = out.stats;
    s.loss = p[0];
    s.num_seqs = static_cast<double>(logp.size(0));
    s.num_tokens = p[1];
    s.kl_sum = p[2];
    s.has_kl = kl.defined();
    s.clip_low_count = p[3];
    s.clip_high_count = p[4];
    s.ratio_sum = p[5];
    s.ratio_min = p[6];
    s.ratio_max = p[7];
    s.entropy_sum = p[8];
    s.has_entropy = use_entropy;
  }
  return out;
}

void LossStats::add_to(MetricReducer& m, const std::string& prefix) const {
  m.add_sum(prefix + "loss", loss);
  m.add_sum(prefix + "num_tokens", num_tokens);
  if (has_kl) m.add_mean(prefix + "kl", kl_sum, num_tokens);
  m.add_mean(prefix + "clip_frac_low", clip_low_count, num_tokens);
  m.add_mean(prefix + "clip_frac_high", clip_high_count, num_tokens);
  m.add_mean(prefix + "ratio_mean", ratio_sum, num_tokens);
  m.add_min(prefix + "ratio_min", ratio_min);
  m.add_max(prefix + "ratio_max", ratio_max);
  if (has_entropy) m.add_mean(prefix + "entropy", entropy_sum, num_tokens);
}

// ---- reward-side helpers ------------------------------------------------------------

std::vector<double> kl_reward_penalty(const at::Tensor& old_logp_BT, const at::Tensor& ref_logp_BT,
                                      const at::Tensor& mask_BT, const LossConfig& cfg) {
  ZR_CHECK(old_logp_BT.defined() && old_logp_BT.dim() == 2,
           "kl_reward_penalty: old_logp_BT must be [B, T]");
  check_bt(ref_logp_BT, "ref_logp_BT", old_logp_BT);
  check_bt(mask_BT, "mask_BT", old_logp_BT);
  const at::Tensor m = bool_mask(mask_BT);
  const at::Tensor zero = at::scalar_tensor(0.0, old_logp_BT.options().dtype(at::kDouble));
  const at::Tensor old_m = old_logp_BT.detach().to(at::kDouble).where(m, zero);
  const at::Tensor ref_m = ref_logp_BT.detach().to(at::kDouble).where(m, zero);
  const at::Tensor pen_B = (kl_per_token(old_m, ref_m, cfg.kl_estimator) * cfg.beta).sum(1).cpu();
  const double* p = pen_B.data_ptr<double>();
  return std::vector<double>(p, p + pen_B.numel());
}

double overlong_soft_penalty(int64_t completion_len, int64_t max_len, int64_t buffer,
                             double penalty) {
  ZR_CHECK(buffer > 0 && buffer <= max_len, "overlong_soft_penalty: buffer ", buffer,
           " must be in [1, max_len=", max_len, "]");
  ZR_CHECK(completion_len >= 0, "overlong_soft_penalty: negative length ", completion_len);
  const int64_t start = max_len - buffer;
  if (completion_len <= start) return 0.0;
  if (completion_len > max_len) return -penalty;
  return penalty * static_cast<double>(start - completion_len) / static_cast<double>(buffer);
}

void apply_overlong_shaping(std::vector<double>& rewards, const std::vector<int64_t>& lengths,
                            const LossConfig& cfg) {
  if (cfg.overlong != LossConfig::Overlong::kSoft) return;
  ZR_CHECK(rewards.size() == lengths.size(), "apply_overlong_shaping: ", rewards.size(),
           " rewards but ", lengths.size(), " lengths");
  for (size_t i = 0; i < rewards.size(); ++i) {
    rewards[i] += overlong_soft_penalty(lengths[i], cfg.max_completion_length, cfg.overlong_buffer,
                                        cfg.overlong_penalty);
  }
}

at::Tensor mask_truncated(const at::Tensor& mask_BT, const at::Tensor& truncated_B) {
  ZR_CHECK(mask_BT.defined() && mask_BT.dim() == 2, "mask_truncated: mask_BT must be [B, T]");
  ZR_CHECK(
      truncated_B.defined() && truncated_B.dim() == 1 && truncated_B.size(0) == mask_BT.size(0),
      "mask_truncated: truncated_B must be [B] with B=", mask_BT.size(0));
  const at::Tensor keep_B1 = bool_mask(truncated_B).logical_not().unsqueeze(1);
  if (mask_BT.scalar_type() == at::kBool) return mask_BT & keep_B1;
  return mask_BT * keep_B1.to(mask_BT.scalar_type());
}

}  // namespace zerorl
