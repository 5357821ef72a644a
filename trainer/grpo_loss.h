// The GRPO family of policy losses on per-token log-probabilities.  The
// formulas, with their source papers and metrics, are in docs/LOSSES.md; in short
// (LossConfig):
//   * policy ratio (ratio_level), with d_t = logp_t - old_logp_t:
//       token           r_t = exp(d_t)                              (PPO / GRPO)
//       sequence        r_t = s = exp(sum_t d_t / n)  for every token of the
//                       completion, gradient through s             (GSPO)
//       sequence_token  r_t = sg(s) * exp(logp_t - sg(logp_t)): value s,
//                       d r_t / d logp_t = s, own token only       (GSPO-token)
//     n = the completion's masked tokens; an empty completion has s = 1 and
//     contributes nothing.
//   * surrogate (every aggregation but cispo), clip-higher bounds:
//       pg_t = -min(r_t * A, clamp(r_t, 1 - lo, 1 + hi) * A)
//     lo/hi = eps_low/eps_high for token ratios, gspo_eps_low/gspo_eps_high
//     for the sequence ratios.  No dual clip.
//   * CISPO (aggregation = cispo, MiniMax-M1): the ratio is clipped and its
//     gradient stopped, every token keeps its log-prob gradient:
//       pg_t = -sg(clamp(r_t, 1 - cispo_eps_low, 1 + cispo_eps_high)) * A * logp_t
//     normalised as dapo (token mean over the step).
//   * behaviour importance weights (behaviour_is) for the gap between the
//     policy that sampled the tokens (behaviour_logp, from the rollout) and
//     the learner's old policy (old_logp: recomputed by train.old_logprobs =
//     recompute, or auto with epochs or minibatches > 1; else the two are
//     equal and every weight is 1), with rho_t = exp(old_logp_t - behaviour_logp_t):
//       none           w_t = 1
//       truncate       w_t = clamp(rho_t, floor, cap)                  (TIS)
//       mask           w_t = rho_t if floor <= rho_t <= cap, else 0    (MIS / IcePop)
//       sequence_mask  w_t = rho_t if seq_low <= g <= seq_high, else 0, with
//                      g = exp(sum_t log rho_t / n) the completion's
//                      geometric-mean ratio (whole completions dropped)
//     The weights are constants (no gradient); they multiply the policy term
//     pg_t only; masked tokens stay in every normaliser (as TRL, NeMo-RL).
//   * KL to a reference model, per token, with x = ref_logp_t - logp_t:
//       k1 = -x                       (logp - ref)
//       k2 = x^2 / 2
//       k3 = exp(x) - x - 1           (Schulman's unbiased, >= 0; R1 / TRL)
//     in the loss (kl_in = loss): per_token_t = w_t * pg_t + beta * kl_t, as TRL;
//     or in the reward (kl_in = reward): kl_reward_penalty() gives
//     beta * sum_t kl_t per completion, to subtract from the reward before
//     the advantages; the loss then has no KL term.  beta = 0 means no
//     reference model at all (ref_logp_BT may stay undefined).
//   * aggregation of per_token_t over completion tokens (mask), with the
//     counts of the whole optimizer step (LossScale, see below):
//       grpo    sum_b [ sum_t per_token_bt / max(1, n_b) ] / num_seqs
//               (per-sequence token mean, then mean over sequences:
//                DeepSeekMath / R1, TRL loss_type="grpo"; with a sequence
//                ratio this is GSPO's per-sequence objective)
//       dapo    sum_bt per_token_bt / num_tokens
//               (token mean over the batch: DAPO; TRL "dapo" and, within one
//                batch, "bnpo")
//       dr_grpo sum_bt per_token_bt / (num_seqs * max_completion_length)
//               (token sum over a constant: Dr. GRPO, TRL "dr_grpo")
//       cispo   as dapo, with the CISPO policy term above (TRL "cispo")
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
//   old_logp_BT   old-policy log-probs, the ratio's denominator (no grad);
//   behaviour_logp_BT  log-probs of the policy that sampled the tokens (the
//                 rollout's); required when behaviour_is != none;
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
  enum class Aggregation { kGrpo, kDapo, kDrGrpo, kCispo };
  enum class KlEstimator { kK1, kK2, kK3 };
  enum class KlIn { kLoss, kReward };
  enum class Overlong { kNone, kSoft, kMask };
  enum class RatioLevel { kToken, kSequence, kSequenceToken };
  enum class BehaviourIs { kNone, kTruncate, kMask, kSequenceMask };

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
  RatioLevel ratio_level = RatioLevel::kToken;
  double gspo_eps_low = 3e-4;  // GSPO paper, sec. 5.1 (and TRL's GSPO recipe)
  double gspo_eps_high = 4e-4;
  double cispo_eps_low = 1.0;   // lower bound 0: none (MiniMax-M1)
  double cispo_eps_high = 4.0;  // upper bound 5 (ScaleRL / TRL's recommended eps_max)
  BehaviourIs behaviour_is = BehaviourIs::kNone;
  double behaviour_is_cap = 2.0;        // token modes' upper bound (TIS's C = 2; verl)
  double behaviour_is_floor = 0.0;      // token modes' lower bound (0: none, as TRL)
  double behaviour_is_seq_low = 0.999;  // sequence_mask band on the geometric mean
  double behaviour_is_seq_high = 1.001;

  // Keys (all optional): aggregation: grpo|dapo|dr_grpo|cispo, eps_low,
  // eps_high, beta, kl_estimator: k1|k2|k3, kl_in: loss|reward,
  // max_completion_length, entropy_coef, overlong: none|soft|mask,
  // overlong_buffer, overlong_penalty, ratio_level: token|sequence|
  // sequence_token, gspo_eps_low, gspo_eps_high, cispo_eps_low,
  // cispo_eps_high, behaviour_is: none|truncate|mask|sequence_mask,
  // behaviour_is_cap, behaviour_is_floor, behaviour_is_seq_low,
  // behaviour_is_seq_high.
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
  at::Tensor entropy_BT;         // optional
  at::Tensor behaviour_logp_BT;  // required when behaviour_is != none
};

// Detached statistics of one loss call as sums over its masked tokens, so
// that micro-batches and ranks combine exactly (see add_to).
struct LossStats {
  double loss = 0;  // this call's loss value (its share of the step's loss)
  double num_seqs = 0;
  double num_tokens = 0;
  double kl_sum = 0;  // sum of kl_t (estimator of the config); 0 without ref
  bool has_kl = false;
  // Tokens whose policy term is clipped.  Surrogate: A < 0 and r < 1 - lo
  // (low), A > 0 and r > 1 + hi (high), with the ratio of ratio_level (every
  // token of a clipped sequence counts).  cispo: tokens whose IS weight is
  // clamped at 1 - cispo_eps_low / 1 + cispo_eps_high, whatever A.
  double clip_low_count = 0;
  double clip_high_count = 0;
  // The token ratio exp(logp - old_logp), whatever ratio_level.
  double ratio_sum = 0;
  double ratio_min = 0;  // over masked tokens; +inf / -inf when there are none
  double ratio_max = 0;
  double entropy_sum = 0;
  bool has_entropy = false;

  // Sequence ratio s (ratio_level != token), over completions with tokens.
  bool has_seq_ratio = false;
  double num_active_seqs = 0;  // completions with at least one masked-in token
  double seq_ratio_sum = 0, seq_ratio_min = 0, seq_ratio_max = 0;
  double seq_clip_low_count = 0, seq_clip_high_count = 0;  // completions

  // Behaviour ratio rho = exp(old_logp - behaviour_logp) (behaviour_is != none).
  LossConfig::BehaviourIs behaviour_is = LossConfig::BehaviourIs::kNone;
  double behaviour_ratio_sum = 0, behaviour_ratio_min = 0, behaviour_ratio_max = 0;
  double behaviour_truncated_count = 0;  // tokens (truncate)
  double behaviour_masked_count = 0;     // tokens with w = 0 (mask, sequence_mask)
  double behaviour_seq_ratio_sum = 0, behaviour_seq_ratio_min = 0,
         behaviour_seq_ratio_max = 0;     // geometric means g (sequence_mask)
  double behaviour_seq_masked_count = 0;  // completions dropped (sequence_mask)

  // The statistics of a call with no rows, with the same metric names as a
  // real call under `cfg` (a rank without rows in a minibatch adds these).
  static LossStats empty(const LossConfig& cfg, bool has_kl, bool has_entropy);

  // Adds, under "<prefix>": loss (sum), kl (token mean, when has_kl),
  // clip_frac_low, clip_frac_high, ratio_mean (token means), ratio_min,
  // ratio_max, entropy (token mean, when has_entropy), num_tokens (sum);
  // with a sequence ratio: seq_ratio_mean/min/max, seq_clip_frac_low/high
  // (over completions with tokens); with behaviour_is: behaviour_ratio_mean
  // (token mean)/min/max, and behaviour_truncated_frac (truncate),
  // behaviour_masked_frac (mask, sequence_mask; share of tokens),
  // behaviour_seq_ratio_mean/min/max and behaviour_seq_masked_frac
  // (sequence_mask; over completions with tokens).
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
std::string to_string(LossConfig::RatioLevel r);
std::string to_string(LossConfig::BehaviourIs b);

}  // namespace zerorl
