// The GRPO family of policy losses on per-token log-probabilities.
//
// Variants implemented (LossConfig):
//   * surrogate: PPO clipped surrogate with separate bounds (DAPO clip-higher)
//       r_t = exp(logp_t - old_logp_t)
//       pg_t = -min(r_t * A, clamp(r_t, 1 - eps_low, 1 + eps_high) * A)
//     No dual clip, no sequence-level (GSPO) ratio.
//   * KL to a reference model, per token, with x = ref_logp_t - logp_t:
//       k1 = -x                       (logp - ref)
//       k2 = x^2 / 2
//       k3 = exp(x) - x - 1           (Schulman's unbiased, >= 0; R1 / TRL)
//     in the loss (kl_in = loss): per_token_t = pg_t + beta * kl_t, as TRL;
//     or in the reward (kl_in = reward): kl_reward_penalty() gives
//     beta * sum_t kl_t per completion, to subtract from the reward before
//     the advantages; the loss then has no KL term.  beta = 0 means no
//     reference model at all (ref_logp_BT may stay undefined).
//   * aggregation of per_token_t over completion tokens (mask), with the
//     counts of the whole optimizer step (LossScale, see below):
//       grpo    sum_b [ sum_t per_token_bt / max(1, n_b) ] / num_seqs
//               (per-sequence token mean, then mean over sequences:
//                DeepSeekMath / R1, TRL loss_type="grpo")
//       dapo    sum_bt per_token_bt / num_tokens
//               (token mean over the batch: DAPO; TRL "dapo" and, within one
//                batch, "bnpo")
//       dr_grpo sum_bt per_token_bt / (num_seqs * max_completion_length)
//               (token sum over a constant: Dr. GRPO, TRL "dr_grpo")
//   * entropy bonus (entropy_coef > 0, entropy_BT given): subtracts
//     entropy_coef * sum_bt H_bt / num_tokens, whatever the aggregation
//     (TRL's convention: the bonus is a token mean, independent of the
//     policy term's normaliser).
//   * overlong shaping, applied outside the loss: overlong = soft adds DAPO's
//     soft length penalty to the reward (overlong_soft_penalty,
//     apply_overlong_shaping); overlong = mask drops truncated completions
//     from the loss (mask_truncated).
//
// LossScale and data parallelism: every normaliser is a count over the
// whole optimizer step (all ranks, all accumulated micro-batches).  Each
// micro-batch's loss is then its share of the global loss, gradients are
// SUMMED across ranks and micro-batches (GradSync with ReduceOp::kSum), and
// the update does not depend on how the batch was split: world-size and
// micro-batch invariant.  A default (zero) LossScale means "this call is the
// whole step": the counts of mask_BT are used.
//
// Tensors (B completions, T padded completion length):
//   logp_BT       new-policy log-probs of the sampled tokens, floating,
//                 differentiable;
//   old_logp_BT   behaviour/old-policy log-probs (no grad needed);
//   ref_logp_BT   reference-model log-probs; required when beta > 0 and
//                 kl_in = loss, used for the KL metric whenever given;
//   advantages_B  one advantage per completion;
//   mask_BT       1 on completion tokens that count (bool or 0/1 floating);
//   entropy_BT    optional per-token policy entropy (may be differentiable).
// Values at masked-out positions are ignored, even NaN or inf, and receive
// zero gradient.  All tensors on one device; computed in logp_BT's dtype,
// except bf16/fp16, which are computed (and the loss returned) in fp32.
//
// Errors: a shape/dtype mismatch or a missing required tensor throws
// zerorl::Error naming the tensor.  Thread-compatible (no shared state).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace zerorl {

class Comm;
class ConfigNode;
class MetricReducer;

struct LossConfig {
  enum class Aggregation { kGrpo, kDapo, kDrGrpo };
  enum class KlEstimator { kK1, kK2, kK3 };
  enum class KlIn { kLoss, kReward };
  enum class Overlong { kNone, kSoft, kMask };

  Aggregation aggregation = Aggregation::kGrpo;
  double eps_low = 0.2;   // DAPO: 0.2
  double eps_high = 0.2;  // DAPO: 0.28
  double beta = 0.0;      // KL coefficient (R1-Zero style runs: 0.001; DAPO: 0)
  KlEstimator kl_estimator = KlEstimator::kK3;
  KlIn kl_in = KlIn::kLoss;
  int64_t max_completion_length = 0;  // required by dr_grpo and overlong = soft
  double entropy_coef = 0.0;
  Overlong overlong = Overlong::kNone;
  int64_t overlong_buffer = 0;    // DAPO's L_cache, tokens before the cap
  double overlong_penalty = 1.0;  // penalty at the cap (DAPO: 1)

  // Keys (all optional): aggregation: grpo|dapo|dr_grpo, eps_low, eps_high,
  // beta, kl_estimator: k1|k2|k3, kl_in: loss|reward, max_completion_length,
  // entropy_coef, overlong: none|soft|mask, overlong_buffer, overlong_penalty.
  static LossConfig from(const ConfigNode& n);

  // Whether the step must compute reference log-probs at all.
  bool needs_reference() const { return beta > 0; }
};

// Counts over one optimizer step (all ranks, all micro-batches).
struct LossScale {
  double num_seqs = 0;    // completions (rows), masked or not, as TRL
  double num_tokens = 0;  // completion tokens with mask = 1

  static LossScale of(const at::Tensor& mask_BT);
  LossScale& operator+=(const LossScale& o) {
    num_seqs += o.num_seqs;
    num_tokens += o.num_tokens;
    return *this;
  }
  // Sum over ranks (collective: every rank calls it, in the same order).
  LossScale allreduced(Comm& comm) const;
  bool empty() const { return num_seqs == 0 && num_tokens == 0; }
};

struct LossInputs {
  at::Tensor logp_BT;
  at::Tensor old_logp_BT;
  at::Tensor ref_logp_BT;  // optional
  at::Tensor advantages_B;
  at::Tensor mask_BT;
  at::Tensor entropy_BT;  // optional
};

// Detached statistics of one loss call as sums over its masked tokens, so
// that micro-batches and ranks combine exactly (see add_to).
struct LossStats {
  double loss = 0;  // this call's loss value (its share of the step's loss)
  double num_seqs = 0;
  double num_tokens = 0;
  double kl_sum = 0;  // sum of kl_t (estimator of the config); 0 without ref
  bool has_kl = false;
  double clip_low_count = 0;   // tokens with A < 0 and r < 1 - eps_low
  double clip_high_count = 0;  // tokens with A > 0 and r > 1 + eps_high
  double ratio_sum = 0;
  double ratio_min = 0;  // over masked tokens; +inf / -inf when there are none
  double ratio_max = 0;
  double entropy_sum = 0;
  bool has_entropy = false;

  // Adds, under "<prefix>": loss (sum), kl (token mean, when has_kl),
  // clip_frac_low, clip_frac_high, ratio_mean (token means), ratio_min,
  // ratio_max, entropy (token mean, when has_entropy), num_tokens (sum).
  void add_to(MetricReducer& m, const std::string& prefix = "loss/") const;
};

struct LossOutput {
  at::Tensor loss;  // scalar, differentiable w.r.t. logp_BT (and entropy_BT)
  LossStats stats;
};

// The loss of one micro-batch; scale as described above (empty: local).
LossOutput grpo_loss(const LossInputs& in, const LossConfig& cfg, const LossScale& scale = {});

// Per-token KL estimate of the policy from the reference (see the top of
// this file); elementwise, differentiable w.r.t. logp_BT.
at::Tensor kl_per_token(const at::Tensor& logp_BT, const at::Tensor& ref_logp_BT,
                        LossConfig::KlEstimator est);

// KL in the reward: beta * sum_t kl_t(old_logp, ref_logp) over each
// completion's masked tokens, [B] doubles, to subtract from the rewards
// before compute_advantages().  old_logp is the behaviour policy that
// sampled the tokens, so the estimator is evaluated on its own samples.
std::vector<double> kl_reward_penalty(const at::Tensor& old_logp_BT, const at::Tensor& ref_logp_BT,
                                      const at::Tensor& mask_BT, const LossConfig& cfg);

// DAPO's soft overlong punishment (eq. 13), scaled by `penalty`:
//   0                                    if L <= max_len - buffer
//   penalty * ((max_len - buffer) - L) / buffer   if max_len - buffer < L <= max_len
//   -penalty                             if L > max_len
double overlong_soft_penalty(int64_t completion_len, int64_t max_len, int64_t buffer,
                             double penalty);

// overlong = soft: adds overlong_soft_penalty to each reward (in place);
// any other mode: does nothing.  lengths are completion lengths in tokens.
void apply_overlong_shaping(std::vector<double>& rewards, const std::vector<int64_t>& lengths,
                            const LossConfig& cfg);

// overlong = mask: the mask with every row whose completion was truncated
// (hit the length cap without finishing) set to 0.  truncated_B is bool [B].
at::Tensor mask_truncated(const at::Tensor& mask_BT, const at::Tensor& truncated_B);

std::string to_string(LossConfig::Aggregation a);

}  // namespace zerorl
