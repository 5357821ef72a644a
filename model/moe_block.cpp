#include "model/moe_block.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/batch_invariant.h"
#include "kernels/moe/moe.h"

namespace zerorl::model {

Router::Router(int64_t dim, int64_t num_experts, bool score_bias) {
  weight = register_parameter("weight", at::empty({num_experts, dim}));
  if (score_bias)
    bias = register_buffer("e_score_correction_bias", at::zeros({num_experts}, at::kFloat));
}

RoutedExperts::RoutedExperts(int64_t E, int64_t D, int64_t F) {
  gate_proj = register_parameter("gate_proj", at::empty({E, F, D}));
  up_proj = register_parameter("up_proj", at::empty({E, F, D}));
  down_proj = register_parameter("down_proj", at::empty({E, D, F}));
}

kernels::RouterOptions router_options(const MoeConfig& c) {
  kernels::RouterOptions ro;
  ro.top_k = c.top_k;
  ro.sigmoid = c.sigmoid_scoring;
  ro.norm_topk_prob = c.norm_topk_prob;
  ro.routed_scaling_factor = c.routed_scaling_factor;
  ro.n_group = c.n_group;
  ro.topk_group = c.topk_group;
  ro.group_by_max = c.group_by_max;
  return ro;
}

MoeBlock::MoeBlock(const ModelConfig& cfg) : MoeLayer(cfg.moe) {
  int64_t D = cfg.hidden_size;
  gate = register_module("gate", std::make_shared<Router>(D, cfg_.num_experts, cfg_.score_bias));
  experts = register_module(
      "experts", std::make_shared<RoutedExperts>(cfg_.num_experts, D, cfg_.expert_intermediate));
  if (cfg_.shared_intermediate > 0) {
    const char* name = cfg_.shared_expert_gate ? "shared_expert" : "shared_experts";
    shared = register_module(name, std::make_shared<Mlp>(D, cfg_.shared_intermediate));
    if (cfg_.shared_expert_gate)
      shared_gate = register_module("shared_expert_gate", std::make_shared<Linear>(D, 1, false));
  }
}

kernels::RouterOutput route_tokens(const Router& gate, const MoeConfig& c, const at::Tensor& x,
                                   MoeCall& call) {
  // Router logits in fp32 as HF does (fp64 for fp64 models, for gradient checks).
  at::ScalarType acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor logits_NE = kernels::row_invariant_linear(x.to(acc), gate.weight.to(acc));
  const kernels::RouterOptions ro = router_options(c);
  kernels::RouterOutput r = kernels::moe_route(logits_NE, gate.bias, ro);
  if (call.want_routing) call.topk_idx_NK = r.topk_idx_TK.detach();
  if (!call.replay_idx_NK.defined()) return r;
  const at::Tensor& idx = call.replay_idx_NK;
  ZR_CHECK(idx.dim() == 2 && idx.size(0) == x.size(0) && idx.size(1) == c.top_k,
           "routing replay: expected experts [N=", x.size(0), ", K=", c.top_k, "], got ",
           idx.sizes());
  ZR_CHECK(idx.scalar_type() == at::kLong, "routing replay: expert ids must be int64, got ",
           idx.scalar_type());
  // The replayed experts' weights, as moe_route weighs its own choice: the
  // unbiased scores gathered, renormalised over the k, scaled.
  r.topk_idx_TK = idx.to(logits_NE.device());
  at::Tensor w_NK = r.scores_TE.gather(1, r.topk_idx_TK);
  if (ro.norm_topk_prob) w_NK = w_NK / (w_NK.sum(-1, true) + 1e-20);
  r.topk_weight_TK = w_NK * ro.routed_scaling_factor;
  return r;
}

at::Tensor MoeBlock::forward(const at::Tensor& x, MoeCall& call) {
  int64_t N = x.size(0), E = cfg_.num_experts, K = cfg_.top_k;
  kernels::RouterOutput r = route_tokens(*gate, cfg_, x, call);

  const at::Tensor& w = experts->gate_proj;
  auto cast = [&](const at::Tensor& t) {
    return t.scalar_type() == x.scalar_type() ? t : t.to(x.scalar_type());
  };
  kernels::MoeResult m = kernels::moe_experts(x, r.topk_idx_TK, r.topk_weight_TK, cast(w),
                                              cast(experts->up_proj), cast(experts->down_proj));
  at::Tensor y = m.y_TD;
  if (shared) {
    at::Tensor s = shared->forward(x);
    if (shared_gate) s = kernels::invariant_sigmoid(shared_gate->forward(x)) * s;
    y = y + s;
  }

  if (call.want_counts) {
    if (call.valid_N.defined()) {
      at::Tensor idx = r.topk_idx_TK.detach().index({call.valid_N}).reshape({-1});
      call.counts_E = at::bincount(idx, {}, E).to(at::kLong);
    } else {
      call.counts_E = m.tokens_per_expert_E.detach().to(at::kLong);
    }
  }
  if (call.want_aux && cfg_.seq_aux_loss_alpha > 0) {
    // DeepSeek-V3 complementary sequence-wise balance loss:
    //   alpha * sum_i f_i P_i,  f_i = E/(K T) * #{t: i in topk(t)},  P_i = mean_t s'_{t,i}
    // with s' the scores normalised over experts; averaged over sequences.
    int64_t B = call.batch, T = N / B;
    ZR_CHECK(B * T == N, "MoeBlock: ", N, " tokens do not split into ", B, " sequences");
    at::Tensor v = call.valid_N.defined() ? call.valid_N.to(at::kFloat).view({B, T, 1})
                                          : at::ones({B, T, 1}, x.options().dtype(at::kFloat));
    at::Tensor s = r.scores_TE;
    if (cfg_.sigmoid_scoring) s = s / (s.sum(-1, true) + 1e-20);
    at::Tensor sel = at::zeros({N, E}, s.options()).scatter_(1, r.topk_idx_TK, 1.0).view({B, T, E});
    at::Tensor count = v.sum(1).clamp_min(1.0);                              // [B,1]
    at::Tensor f = (sel * v).sum(1) * (static_cast<double>(E) / K) / count;  // [B,E]
    at::Tensor P = (s.view({B, T, E}) * v).sum(1) / count;                   // [B,E]
    call.aux_loss = (f * P).sum(-1).mean() * cfg_.seq_aux_loss_alpha;
  }
  return y;
}

void MoeLayer::update_bias(const at::Tensor& load_E, double gamma) {
  if (!gate->bias.defined() || gamma == 0) return;
  at::NoGradGuard ng;
  at::Tensor load = load_E.to(at::kDouble);
  at::Tensor delta = at::sign(load.mean() - load) * gamma;
  gate->bias.add_(delta.to(gate->bias.scalar_type()).to(gate->bias.device()));
}

}  // namespace zerorl::model
