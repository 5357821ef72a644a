// Mixture-of-Experts hot paths: the router (scores + top-k) and the routed
// expert MLPs (permute by expert, grouped GEMM, weighted un-permute/combine).
//
// Legend: T tokens, E routed experts, K experts per token (top_k), D model
// width, F expert hidden width, P = T*K permuted rows.
//
// Dispatch by device: CPU tensors run the LibTorch-ops reference (moe_ref.cpp),
// CUDA tensors the CUDA path (moe.cu + moe_cuda.cpp) on the current stream.
// A CUDA tensor in a build without CUDA throws.  Bad shapes, dtypes or options
// throw zerorl::Error naming the tensor or option.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace zerorl::kernels {

struct RouterOptions {
  int64_t top_k = 2;
  bool sigmoid = false;        // false: softmax over experts; true: per-expert sigmoid
  bool norm_topk_prob = true;  // renormalise the K weights to sum to 1 (sum + 1e-20, as HF)
  double routed_scaling_factor = 1.0;
  int64_t n_group = 1;        // group-limited routing (DeepSeek-V3): E splits into n_group groups
  int64_t topk_group = 1;     // ... and only the best topk_group groups may be chosen
  bool group_by_max = false;  // a group scores its best expert (DeepSeek-V2), not its top-2 sum
};

struct RouterOutput {
  at::Tensor
      topk_idx_TK;  // int64 [T, K], per row in descending order of the (biased) selection score
  at::Tensor topk_weight_TK;  // float32 [T, K], differentiable w.r.t. router_logits_TE
  at::Tensor scores_TE;       // float32 [T, E] post-activation scores, unbiased (differentiable)
};

// router_logits_TE [T, E] (any float dtype; scored in fp32).  bias_E [E] (may be
// undefined) is ADDED to the scores for SELECTION ONLY (DeepSeek-V3's
// e_score_correction_bias); with n_group > 1 a group's score is the sum of its
// top-2 biased scores, the best topk_group groups are kept and the other
// experts' selection scores are set to -inf (exactly as transformers 5.x's
// DeepseekV3TopkRouter; 4.x wrote 0.0 there, which differs only when biased
// scores are negative).  Weights are gathered from the unbiased scores,
// renormalised over the top-k when norm_topk_prob, then multiplied by
// routed_scaling_factor.  The experts chosen are those of HF transformers'
// DeepseekV3 / DeepseekV2 / Qwen2Moe / Qwen3Moe / Olmoe routers; exact ties
// are broken by torch.topk on CPU and towards the lower expert index on CUDA.
// With group_by_max a group's score is its best expert's (DeepseekV2's
// group_limited_greedy); the CUDA path runs the reference for that.
// Requires 1 <= top_k <= E, n_group | E, 1 <= topk_group <= n_group, and with
// n_group > 1: E / n_group >= 2 and top_k <= topk_group * E / n_group.
RouterOutput moe_route(const at::Tensor& router_logits_TE, const at::Tensor& bias_E,
                       const RouterOptions& opt);

struct MoeResult {
  at::Tensor y_TD;                 // [T, D], x_TD's dtype
  at::Tensor tokens_per_expert_E;  // int64 [E]: how many (token, slot) pairs each expert received
};

// Routed-expert MLPs with SiLU gating, weighted and combined:
//   y_TD[t] = sum_k topk_weight_TK[t,k] *
//             w_down_EDF[e] @ (silu(w_gate_EFD[e] @ x_TD[t]) * (w_up_EFD[e] @ x_TD[t])),
//   e = topk_idx_TK[t,k].
// Implemented as: permute the T*K (token, slot) pairs by expert (stable: within
// an expert, in order of t*K+k), one GEMM per expert (a grouped GEMM on CUDA),
// and a weighted un-permute/combine accumulated in fp32 (fp64 for fp64 inputs).
// The expert weights share x_TD's dtype; topk_weight_TK is any float dtype.
// Differentiable w.r.t. x_TD, the three weight tensors and topk_weight_TK.
// topk_idx_TK must hold ids in [0, E): checked on CPU; on CUDA it is not
// checked (it would cost a device sync) and out-of-range slots are dropped.
MoeResult moe_experts(const at::Tensor& x_TD, const at::Tensor& topk_idx_TK,
                      const at::Tensor& topk_weight_TK, const at::Tensor& w_gate_EFD,
                      const at::Tensor& w_up_EFD, const at::Tensor& w_down_EDF);

// Whether moe_experts on x_TD with these expert weights runs without a
// host sync (CUDA's grouped-GEMM path: bf16 on sm90+, 16-byte aligned rows;
// its per-expert loop reads the counts back), so a CUDA graph may capture
// it.  False on the CPU (the reference reads the counts on the host).
bool moe_experts_sync_free(const at::Tensor& x_TD, const at::Tensor& w_gate_EFD);

}  // namespace zerorl::kernels
