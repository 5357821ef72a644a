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
#include "trainer/metric_reducer.h"

namespace zerorl {

// ---- config ---------------------------------------------------------------------

LossConfig LossConfig::from(const ConfigNode& n) {
  LossConfig c;
  const std::string agg = n.choice("aggregation", {"grpo", "dapo", "dr_grpo", "cispo"}, "grpo");
  c.aggregation = agg == "grpo"      ? Aggregation::kGrpo
                  : agg == "dapo"    ? Aggregation::kDapo
                  : agg == "dr_grpo" ? Aggregation::kDrGrpo
                                     : Aggregation::kCispo;
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
  const std::string rl = n.choice("ratio_level", {"token", "sequence", "sequence_token"}, "token");
  c.ratio_level = rl == "token"      ? RatioLevel::kToken
                  : rl == "sequence" ? RatioLevel::kSequence
                                     : RatioLevel::kSequenceToken;
  if (c.aggregation == Aggregation::kCispo) {
    ZR_CHECK(c.ratio_level != RatioLevel::kSequenceToken, n.where("ratio_level"), ": ",
             n.path("ratio_level"),
             "=sequence_token differs from sequence only in the gradient through the ratio, "
             "which aggregation=cispo stops: use sequence");
  }
  const auto eps_in = [&](const char* key, double& v, double hi, const char* range) {
    v = n.get<double>(key, v);
    ZR_CHECK(std::isfinite(v) && v >= 0 && v <= hi, n.where(key), ": ", n.path(key), " must be in ",
             range, ", got ", v);
  };
  const double inf = std::numeric_limits<double>::infinity();
  eps_in("gspo_eps_low", c.gspo_eps_low, 1.0, "[0, 1]");
  eps_in("gspo_eps_high", c.gspo_eps_high, inf, "[0, inf)");
  eps_in("cispo_eps_low", c.cispo_eps_low, 1.0, "[0, 1]");
  eps_in("cispo_eps_high", c.cispo_eps_high, inf, "[0, inf)");
  const std::string bis =
      n.choice("behaviour_is", {"none", "truncate", "mask", "sequence_mask"}, "none");
  c.behaviour_is = bis == "none"       ? BehaviourIs::kNone
                   : bis == "truncate" ? BehaviourIs::kTruncate
                   : bis == "mask"     ? BehaviourIs::kMask
                                       : BehaviourIs::kSequenceMask;
  c.behaviour_is_cap = n.get<double>("behaviour_is_cap", c.behaviour_is_cap);
  c.behaviour_is_floor = n.get<double>("behaviour_is_floor", c.behaviour_is_floor);
  ZR_CHECK(std::isfinite(c.behaviour_is_cap) && c.behaviour_is_cap > 0, n.where("behaviour_is_cap"),
           ": ", n.path("behaviour_is_cap"), " must be a finite number > 0, got ",
           c.behaviour_is_cap);
  ZR_CHECK(std::isfinite(c.behaviour_is_floor) && c.behaviour_is_floor >= 0 &&
               c.behaviour_is_floor < c.behaviour_is_cap,
           n.where("behaviour_is_floor"), ": ", n.path("behaviour_is_floor"),
           " must be in [0, behaviour_is_cap=", c.behaviour_is_cap, "), got ",
           c.behaviour_is_floor);
  c.behaviour_is_seq_low = n.get<double>("behaviour_is_seq_low", c.behaviour_is_seq_low);
  c.behaviour_is_seq_high = n.get<double>("behaviour_is_seq_high", c.behaviour_is_seq_high);
  ZR_CHECK(
      std::isfinite(c.behaviour_is_seq_low) && std::isfinite(c.behaviour_is_seq_high) &&
          c.behaviour_is_seq_low > 0 && c.behaviour_is_seq_low <= 1 && c.behaviour_is_seq_high >= 1,
      n.where("behaviour_is_seq_low"), ": ", n.path("behaviour_is_seq_low"), " and ",
      n.path("behaviour_is_seq_high"), " must make a band around 1 (0 < low <= 1 <= high), got [",
      c.behaviour_is_seq_low, ", ", c.behaviour_is_seq_high, "]");
  return c;
}

std::string to_string(LossConfig::RatioLevel r) {
  switch (r) {
    case LossConfig::RatioLevel::kToken:
      return "token";
    case LossConfig::RatioLevel::kSequence:
      return "sequence";
    case LossConfig::RatioLevel::kSequenceToken:
      return "sequence_token";
  }
  return "?";
}

std::string to_string(LossConfig::BehaviourIs b) {
  switch (b) {
    case LossConfig::BehaviourIs::kNone:
      return "none";
    case LossConfig::BehaviourIs::kTruncate:
      return "truncate";
    case LossConfig::BehaviourIs::kMask:
      return "mask";
    case LossConfig::BehaviourIs::kSequenceMask:
      return "sequence_mask";
  }
  return "?";
}

std::string to_string(LossConfig::Aggregation a) {
  switch (a) {
    case LossConfig::Aggregation::kGrpo:
      return "grpo";
    case LossConfig::Aggregation::kDapo:
      return "dapo";
    case LossConfig::Aggregation::kDrGrpo:
      return "dr_grpo";
    case LossConfig::Aggregation::kCispo:
      return "cispo";
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

// Long (~200 lines) on purpose: the loss reads top to bottom in the order of
// the variant table at the top of trainer/grpo_loss.h (ratios, clipping,
// behaviour weights, KL, aggregation, entropy), then gathers its statistics
// in one device->host copy; cut into pieces, each would take a dozen of the
// same intermediate tensors.
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
  if (cfg.behaviour_is != LossConfig::BehaviourIs::kNone) {
    ZR_CHECK(in.behaviour_logp_BT.defined(),
             "grpo_loss: behaviour_is=", to_string(cfg.behaviour_is),
             " needs behaviour_logp_BT (the log-probs of the policy that sampled the tokens)");
    check_bt(in.behaviour_logp_BT, "behaviour_logp_BT", logp);
  }
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
  const at::Tensor adv = in.advantages_B.to(opts).unsqueeze(1);  // [B, 1]

  using RL = LossConfig::RatioLevel;
  using BIS = LossConfig::BehaviourIs;
  const at::Tensor len_B1 = mf.sum(1, /*keepdim=*/true);
  const at::Tensor active_B1 = len_B1 > 0;
  const at::Tensor len1_B1 = len_B1.clamp_min(1.0);

  // ---- policy ratio ------------------------------------------------------------
  // Token ratio: the metric always, the policy ratio at ratio_level = token.
  const at::Tensor log_tok = logp_m - old_m;
  const at::Tensor ratio_tok = log_tok.exp();
  at::Tensor ratio;  // [B, T], or [B, 1] for the sequence ratio (broadcast)
  at::Tensor seq_ratio_B1;
  switch (cfg.ratio_level) {
    case RL::kToken:
      ratio = ratio_tok;
      break;
    case RL::kSequence:
      seq_ratio_B1 = (log_tok.sum(1, true) / len1_B1).exp();
      ratio = seq_ratio_B1;
      break;
    case RL::kSequenceToken: {
      const at::Tensor log_seq = (log_tok.sum(1, true) / len1_B1).detach();
      seq_ratio_B1 = log_seq.exp();
      // Value s, gradient s per own token (verl's order of terms: the
      // detached part is added last so that the value is exactly log s).
      ratio = (logp_m - logp_m.detach() + log_seq).exp();
      break;
    }
  }
  const bool cispo = cfg.aggregation == LossConfig::Aggregation::kCispo;
  const bool seq_level = cfg.ratio_level != RL::kToken;
  const double lo = cispo       ? 1.0 - cfg.cispo_eps_low
                    : seq_level ? 1.0 - cfg.gspo_eps_low
                                : 1.0 - cfg.eps_low;
  const double hi = cispo       ? 1.0 + cfg.cispo_eps_high
                    : seq_level ? 1.0 + cfg.gspo_eps_high
                                : 1.0 + cfg.eps_high;
  at::Tensor per_token;
  if (cispo) {
    per_token = -(ratio.detach().clamp(lo, hi) * adv) * logp_m;
  } else {
    per_token = -(ratio * adv).minimum(ratio.clamp(lo, hi) * adv);
  }

  // ---- behaviour importance weights ------------------------------------------------
  at::Tensor rho, w_beh, geo_B1;
  if (cfg.behaviour_is != BIS::kNone) {
    const at::Tensor beh_m = in.behaviour_logp_BT.detach().to(dt).where(m, zero);
    const at::Tensor log_rho = old_m.detach() - beh_m;
    rho = log_rho.exp();
    switch (cfg.behaviour_is) {
      case BIS::kTruncate:
        w_beh = rho.clamp(cfg.behaviour_is_floor, cfg.behaviour_is_cap);
        break;
      case BIS::kMask:
        w_beh = rho.where((rho >= cfg.behaviour_is_floor) & (rho <= cfg.behaviour_is_cap), zero);
        break;
      case BIS::kSequenceMask:
        geo_B1 = (log_rho.sum(1, true) / len1_B1).exp();
        w_beh = rho.where(
            (geo_B1 >= cfg.behaviour_is_seq_low) & (geo_B1 <= cfg.behaviour_is_seq_high), zero);
        break;
      case BIS::kNone:
        break;
    }
    per_token = per_token * w_beh;
  }

  at::Tensor kl;
  if (in.ref_logp_BT.defined()) {
    const at::Tensor ref_m = in.ref_logp_BT.to(dt).where(m, zero);
    kl = kl_per_token(logp_m, ref_m, cfg.kl_estimator);
    if (kl_in_loss) per_token = per_token + kl * cfg.beta;
  }
  per_token = per_token * mf;

  at::Tensor loss;
  switch (cfg.aggregation) {
    case LossConfig::Aggregation::kGrpo:
      loss = (per_token.sum(1, true) / len1_B1).sum() / scale.num_seqs;
      break;
    case LossConfig::Aggregation::kDapo:
    case LossConfig::Aggregation::kCispo:
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
    const at::Tensor rt = ratio_tok.detach();
    const double inf = std::numeric_limits<double>::infinity();
    const at::Tensor dz =
        at::zeros_like(loss, loss.options().dtype(at::kDouble).requires_grad(false));
    const auto as_d = [](const at::Tensor& t) { return t.to(at::kDouble); };
    const auto cnt = [&](const at::Tensor& b) { return as_d(b.sum()); };
    at::Tensor low, high;
    if (cispo) {
      low = m & (r < lo);
      high = m & (r > hi);
    } else {
      low = m & (r < lo) & (adv < 0);
      high = m & (r > hi) & (adv > 0);
    }
    // Each statistic as a device scalar beside the LossStats field it fills,
    // stacked for one device->host copy.
    LossStats& s = out.stats;
    std::vector<std::pair<at::Tensor, double*>> stats = {
        {as_d(loss.detach()), &s.loss},
        {as_d(mf.sum()), &s.num_tokens},
        {kl.defined() ? as_d((kl.detach() * mf).sum()) : dz, &s.kl_sum},
        {cnt(low), &s.clip_low_count},
        {cnt(high), &s.clip_high_count},
        {as_d((rt * mf).sum()), &s.ratio_sum},
        {as_d(rt.where(m, inf).min()), &s.ratio_min},
        {as_d(rt.where(m, -inf).max()), &s.ratio_max},
        {use_entropy ? as_d(ent_m.detach().sum()) : dz, &s.entropy_sum},
    };
    if (seq_level) {
      const at::Tensor sr = seq_ratio_B1.detach();
      at::Tensor seq_low = active_B1 & (sr < lo), seq_high = active_B1 & (sr > hi);
      if (!cispo) seq_low = seq_low & (adv < 0), seq_high = seq_high & (adv > 0);
      stats.push_back({cnt(active_B1), &s.num_active_seqs});
      stats.push_back({as_d(sr.where(active_B1, 0.0).sum()), &s.seq_ratio_sum});
      stats.push_back({as_d(sr.where(active_B1, inf).min()), &s.seq_ratio_min});
      stats.push_back({as_d(sr.where(active_B1, -inf).max()), &s.seq_ratio_max});
      stats.push_back({cnt(seq_low), &s.seq_clip_low_count});
      stats.push_back({cnt(seq_high), &s.seq_clip_high_count});
    }
    if (cfg.behaviour_is != BIS::kNone) {
      const at::Tensor out_of_range = (rho > cfg.behaviour_is_cap) | (rho < cfg.behaviour_is_floor);
      stats.push_back({as_d((rho * mf).sum()), &s.behaviour_ratio_sum});
      stats.push_back({as_d(rho.where(m, inf).min()), &s.behaviour_ratio_min});
      stats.push_back({as_d(rho.where(m, -inf).max()), &s.behaviour_ratio_max});
      stats.push_back({cnt(m & out_of_range), &s.behaviour_truncated_count});
      stats.push_back({cnt(m & (w_beh == 0)), &s.behaviour_masked_count});
      if (geo_B1.defined()) {
        const at::Tensor dropped = active_B1 & ((geo_B1 < cfg.behaviour_is_seq_low) |
                                                (geo_B1 > cfg.behaviour_is_seq_high));
        stats.push_back({cnt(active_B1), &s.num_active_seqs});
        stats.push_back({as_d(geo_B1.where(active_B1, 0.0).sum()), &s.behaviour_seq_ratio_sum});
        stats.push_back({as_d(geo_B1.where(active_B1, inf).min()), &s.behaviour_seq_ratio_min});
        stats.push_back({as_d(geo_B1.where(active_B1, -inf).max()), &s.behaviour_seq_ratio_max});
        stats.push_back({cnt(dropped), &s.behaviour_seq_masked_count});
      }
    }
    std::vector<at::Tensor> values;
    for (const auto& st : stats) values.push_back(st.first);
    const at::Tensor v = at::stack(values).cpu();
    for (size_t i = 0; i < stats.size(); ++i) *stats[i].second = v.data_ptr<double>()[i];
    s.num_seqs = static_cast<double>(logp.size(0));
    s.has_kl = kl.defined();
    s.has_entropy = use_entropy;
    s.has_seq_ratio = seq_level;
    s.behaviour_is = cfg.behaviour_is;
  }
  return out;
}

LossStats LossStats::empty(const LossConfig& cfg, bool has_kl, bool has_entropy) {
  const double inf = std::numeric_limits<double>::infinity();
  LossStats s;
  s.ratio_min = s.seq_ratio_min = s.behaviour_ratio_min = s.behaviour_seq_ratio_min = inf;
  s.ratio_max = s.seq_ratio_max = s.behaviour_ratio_max = s.behaviour_seq_ratio_max = -inf;
  s.has_kl = has_kl;
  s.has_entropy = has_entropy;
  s.has_seq_ratio = cfg.ratio_level != LossConfig::RatioLevel::kToken;
  s.behaviour_is = cfg.behaviour_is;
  return s;
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
  if (has_seq_ratio) {
    m.add_mean(prefix + "seq_ratio_mean", seq_ratio_sum, num_active_seqs);
    m.add_min(prefix + "seq_ratio_min", seq_ratio_min);
    m.add_max(prefix + "seq_ratio_max", seq_ratio_max);
    m.add_mean(prefix + "seq_clip_frac_low", seq_clip_low_count, num_active_seqs);
    m.add_mean(prefix + "seq_clip_frac_high", seq_clip_high_count, num_active_seqs);
  }
  using BIS = LossConfig::BehaviourIs;
  if (behaviour_is == BIS::kNone) return;
  m.add_mean(prefix + "behaviour_ratio_mean", behaviour_ratio_sum, num_tokens);
  m.add_min(prefix + "behaviour_ratio_min", behaviour_ratio_min);
  m.add_max(prefix + "behaviour_ratio_max", behaviour_ratio_max);
  if (behaviour_is == BIS::kTruncate)
    m.add_mean(prefix + "behaviour_truncated_frac", behaviour_truncated_count, num_tokens);
  else
    m.add_mean(prefix + "behaviour_masked_frac", behaviour_masked_count, num_tokens);
  if (behaviour_is == BIS::kSequenceMask) {
    m.add_mean(prefix + "behaviour_seq_ratio_mean", behaviour_seq_ratio_sum, num_active_seqs);
    m.add_min(prefix + "behaviour_seq_ratio_min", behaviour_seq_ratio_min);
    m.add_max(prefix + "behaviour_seq_ratio_max", behaviour_seq_ratio_max);
    m.add_mean(prefix + "behaviour_seq_masked_frac", behaviour_seq_masked_count, num_active_seqs);
  }
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
