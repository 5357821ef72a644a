// Rollout routing replay (train.routing_replay) and the rollout-learner
// mismatch the learner logs every step.
//
// An MoE policy can route a token to other experts in the learner than it
// did in the rollout (other kernels, another precision, a balancing bias
// updated in between), so the learner's log-probs drift from the behaviour
// log-probs the ratio is built on.  Replay makes the learner's old,
// reference and policy forwards send every token to the experts the rollout
// recorded (rollout::RolloutSample::routing); the gates still come from the
// current router (model::ForwardOptions::replay_routing).
//
// Legend: M MoE layers, B samples, T teacher-forced positions, K top-k.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "rollout/engine.h"

namespace zerorl {

class MetricReducer;

// The routing the rollout recorded, laid out like rollout::pad_rollout's
// tensors (row b is sample b, position t its token t): int64 [M, B, T, K] on
// the CPU.  Positions past a sample's end hold experts 0..K-1 (they are
// padding, masked everywhere).  Throws zerorl::Error when a sample has no
// record or one of the wrong size.
at::Tensor routing_tensor(const rollout::RolloutBatch& batch, int64_t num_moe_layers, int64_t top_k,
                          int64_t T);

// Rows `rows` of routing_MBTK cut to the first `span` positions, in
// ForwardOptions::replay_routing's format: per layer int64 [rows * span, K].
std::vector<at::Tensor> replay_rows(const at::Tensor& routing_MBTK,
                                    const std::vector<int64_t>& rows, int64_t span);

// Sums of the rollout-learner mismatch, reduced over ranks by report():
//   rollout/logp_mismatch_abs  mean |behaviour - learner| log-prob per completion token
//   rollout/logp_mismatch_k3   mean k3 estimate of KL(behaviour || learner),
//                              r - 1 - log r with r = exp(learner - behaviour)
//   rollout/expert_mismatch    (with recorded routing) share of (token, MoE
//                              layer) pairs whose router's own top-k set differs
//                              from the rollout's
// The learner's log-probs are those of the policy that generated the batch
// (the recomputed old log-probs, or the update's first forward before any
// optimizer step), so with routing replay and matching kernels they are ~0.
struct RoutingMismatch {
  double logp_abs = 0, logp_k3 = 0, tokens = 0;
  double expert_diff = 0, expert_pairs = 0;
  // Report rollout/expert_mismatch: set by the caller, the same on every rank
  // (train.routing_replay), whether or not this rank adds any.
  bool experts = false;

  // [b, S] tensors of the same rows; mask_BT float (1 on completion tokens).
  void add_logprobs(const at::Tensor& behaviour_BT, const at::Tensor& learner_BT,
                    const at::Tensor& mask_BT);
  // Per layer [N, K]: the router's own choice (CausalLM::last_routing()) and
  // the recorded one; valid_N bool [N] (padding excluded).
  void add_experts(const std::vector<at::Tensor>& learner, const std::vector<at::Tensor>& recorded,
                   const at::Tensor& valid_N);
  // Every rank must call it (same names everywhere); a rank with no tokens
  // adds zero counts.
  void report(MetricReducer& m) const;
};

}  // namespace zerorl
