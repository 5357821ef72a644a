// DeepSeekMoE / Qwen2Moe sparse block (internal to model/): router (with the
// aux-loss-free balancing bias buffer), stacked routed experts run by
// kernels::moe_experts, shared expert(s) (Qwen2Moe: behind a sigmoid gate),
// and the optional sequence-wise balance loss.
//
// Legend: N tokens (flattened B*T), D width, E routed experts, K top-k,
// F expert width.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>

#include "kernels/moe/moe.h"
#include "model/config.h"
#include "model/layers.h"

namespace zerorl::model {

// HF names: mlp.gate.weight [E,D], mlp.gate.e_score_correction_bias [E].
class Router : public torch::nn::Module {
 public:
  Router(int64_t dim, int64_t num_experts, bool score_bias);
  at::Tensor weight;  // [E,D] (router logits are computed in fp32)
  at::Tensor bias;    // buffer e_score_correction_bias [E] fp32, or undefined
};

// HF (zerorl-stacked) names: mlp.experts.gate_proj [E,F,D], up_proj [E,F,D], down_proj [E,D,F].
class RoutedExperts : public torch::nn::Module {
 public:
  RoutedExperts(int64_t num_experts, int64_t dim, int64_t hidden);
  at::Tensor gate_proj, up_proj, down_proj;
};

// The router's options for a layer of config `c` (shared by MoeBlock and
// EpMoeBlock, so both route alike).
kernels::RouterOptions router_options(const MoeConfig& c);

struct MoeCall {
  at::Tensor valid_N;         // bool [N] or undefined (all valid)
  int64_t batch = 1;          // N = batch * T, rows in sequence order (for the balance loss)
  bool want_counts = false;   // fill counts_E (valid tokens only)
  bool want_routing = false;  // fill topk_idx_NK
  bool want_aux = false;      // fill aux_loss (when seq_aux_loss_alpha > 0)
  // Routing replay (train.routing_replay): int64 [N, K] experts to send each
  // token to instead of the router's top-k; undefined = route normally.  The
  // gates are recomputed from the current router's scores for these experts
  // (so the router still gets gradients), renormalised and scaled as usual.
  at::Tensor replay_idx_NK;
  // Outputs.  topk_idx_NK is the router's own choice, also under replay (so
  // the learner can measure how far its routing drifted from the rollout's);
  // counts_E and aux_loss count the experts the tokens were actually sent to.
  at::Tensor counts_E, topk_idx_NK, aux_loss;
};

// The router of `gate` on tokens x_ND (logits in fp32, fp64 for fp64 models),
// with call.replay_idx_NK applied when defined; fills call.topk_idx_NK with
// the router's own choice when call.want_routing.  Shared by MoeBlock and
// EpMoeBlock, so both route, and replay, alike.
kernels::RouterOutput route_tokens(const Router& gate, const MoeConfig& c, const at::Tensor& x_ND,
                                   MoeCall& call);

// What every MoE layer of a DecoderLayer is: the local MoeBlock below, or
// the expert-parallel EpMoeBlock (model/moe_ep.h) a parallel plan swaps in.
// Both own the same submodules under the same names (gate, experts, shared
// expert(s)), so weights address them alike; `experts` may hold a slice.
class MoeLayer : public torch::nn::Module {
 public:
  explicit MoeLayer(const MoeConfig& c) : cfg_(c) {}
  virtual at::Tensor forward(const at::Tensor& x_ND, MoeCall& call) = 0;
  // bias_E += gamma * sign(mean(load_E) - load_E); load_E over all E experts.
  void update_bias(const at::Tensor& load_E, double gamma);
  const MoeConfig& config() const { return cfg_; }
  std::shared_ptr<Router> gate;
  std::shared_ptr<RoutedExperts> experts;
  std::shared_ptr<Mlp> shared;  // "shared_experts" (DeepSeek) / "shared_expert" (Qwen) or null
  std::shared_ptr<Linear> shared_gate;  // Qwen2Moe "shared_expert_gate" [1,D] or null

 protected:
  MoeConfig cfg_;
};

class MoeBlock : public MoeLayer {
 public:
  explicit MoeBlock(const ModelConfig& cfg);
  at::Tensor forward(const at::Tensor& x_ND, MoeCall& call) override;
};

}  // namespace zerorl::model
