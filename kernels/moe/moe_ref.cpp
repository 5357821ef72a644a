// CPU reference for the MoE router and routed experts, in LibTorch ops.
// Autograd flows through the ops themselves: no custom backward here.
#include <limits>
#include <vector>

#include <ATen/ATen.h>

#include "kernels/batch_invariant.h"
#include "kernels/moe/moe_impl.h"

namespace zerorl::kernels::detail {

ExpertPermutation moe_permute_ref(const at::Tensor& topk_idx_TK, int64_t num_experts) {
  ExpertPermutation p;
  const at::Tensor flat_P = topk_idx_TK.reshape({-1});
  // A stable sort keeps slots of one expert in flat order t*K+k.
  p.src_slot_P = std::get<1>(at::sort(flat_P, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  at::Tensor row_P = at::empty_like(p.src_slot_P);
  row_P.index_put_({p.src_slot_P}, at::arange(flat_P.numel(), p.src_slot_P.options()));
  p.row_of_slot_TK = row_P.view(topk_idx_TK.sizes());
  p.tokens_per_expert_E = at::bincount(flat_P, /*weights=*/{}, num_experts).to(at::kLong);
  p.offsets_E = at::cumsum(p.tokens_per_expert_E, 0);
  return p;
}

RouterOutput moe_route_ref(const at::Tensor& router_logits_TE, const at::Tensor& bias_E,
                           const RouterOptions& opt) {
  const int64_t T = router_logits_TE.size(0), E = router_logits_TE.size(1);
  const at::Tensor logits_TE = router_logits_TE.to(at::kFloat);
  RouterOutput r;
  r.scores_TE = opt.sigmoid ? invariant_sigmoid(logits_TE) : at::softmax(logits_TE, 1);
  at::Tensor choice_TE = r.scores_TE.detach();
  if (bias_E.defined()) choice_TE = choice_TE + bias_E.to(at::kFloat).unsqueeze(0);
  if (opt.n_group > 1) {
    // HF DeepseekV3TopkRouter.get_topk_indices, op for op (DeepseekV2TopkRouter's
    // group_limited_greedy with group_by_max; its 0.0 fill equals -inf here
    // since softmax scores are positive).
    const int64_t G = opt.n_group;
    const at::Tensor group_scores_TG =
        opt.group_by_max ? std::get<0>(choice_TE.view({T, G, E / G}).max(-1))
                         : std::get<0>(choice_TE.view({T, G, E / G}).topk(2, -1)).sum(-1);
    const at::Tensor group_idx =
        std::get<1>(at::topk(group_scores_TG, opt.topk_group, -1, true, false));
    const at::Tensor group_mask_TG = at::zeros_like(group_scores_TG).scatter_(1, group_idx, 1);
    const at::Tensor score_mask_TE =
        group_mask_TG.unsqueeze(-1).expand({T, G, E / G}).reshape({T, E});
    choice_TE =
        choice_TE.masked_fill(score_mask_TE.logical_not(), -std::numeric_limits<float>::infinity());
  }
  r.topk_idx_TK =
      std::get<1>(at::topk(choice_TE, opt.top_k, -1, /*largest=*/true, /*sorted=*/true));
  at::Tensor w_TK = r.scores_TE.gather(1, r.topk_idx_TK);
  if (opt.norm_topk_prob) w_TK = w_TK / (w_TK.sum(-1, true) + 1e-20);
  r.topk_weight_TK = w_TK * opt.routed_scaling_factor;
  return r;
}

MoeResult moe_experts_ref(const at::Tensor& x_TD, const at::Tensor& topk_idx_TK,
                          const at::Tensor& topk_weight_TK, const at::Tensor& w_gate_EFD,
                          const at::Tensor& w_up_EFD, const at::Tensor& w_down_EDF) {
  const int64_t T = x_TD.size(0), D = x_TD.size(1), K = topk_idx_TK.size(1), E = w_gate_EFD.size(0);
  const at::ScalarType acc = x_TD.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const ExpertPermutation perm = moe_permute_ref(topk_idx_TK, E);
  const at::Tensor token_P = at::floor_divide(perm.src_slot_P, K);
  const at::Tensor x_PD = x_TD.index_select(0, token_P);

  const at::Tensor counts_E = perm.tokens_per_expert_E.cpu();
  const int64_t* count = counts_E.data_ptr<int64_t>();
  std::vector<at::Tensor> out_parts;
  int64_t row = 0;
  for (int64_t e = 0; e < E; ++e) {
    if (count[e] == 0) continue;
    // Rows padded to kMinGemmRows (kernels/batch_invariant.h): a token's expert
    // output does not depend on how many others chose that expert.
    out_parts.push_back(with_min_rows(x_PD.narrow(0, row, count[e]), [&](const at::Tensor& xe) {
      const at::Tensor gate = at::mm(xe, w_gate_EFD[e].t());
      const at::Tensor up = at::mm(xe, w_up_EFD[e].t());
      return at::mm(invariant_silu(gate) * up, w_down_EDF[e].t());
    }));
    row += count[e];
  }
  MoeResult r;
  r.tokens_per_expert_E = perm.tokens_per_expert_E;
  at::Tensor y_TD = at::zeros({T, D}, x_TD.options().dtype(acc));
  if (!out_parts.empty()) {
    const at::Tensor out_PD = at::cat(out_parts, 0).to(acc);
    const at::Tensor w_P = topk_weight_TK.reshape({-1}).index_select(0, perm.src_slot_P).to(acc);
    y_TD = y_TD.index_add(0, token_P, out_PD * w_P.unsqueeze(1));
  }
  r.y_TD = y_TD.to(x_TD.scalar_type());
  return r;
}

}  // namespace zerorl::kernels::detail
