// Internal to kernels/moe: the implementations behind moe_route() and
// moe_experts(), and the token permutation they share.  Callers use
// kernels/moe/moe.h; tests call these to pin one path.  All assume validated
// inputs (moe.cpp validates).
#pragma once

#include "kernels/moe/moe.h"

namespace zerorl::kernels::detail {

// The (token, slot) pairs of topk_idx_TK sorted by expert, stably (ties in
// flat order t*K+k).  Pure data movement: both implementations must agree
// bit for bit.
struct ExpertPermutation {
  at::Tensor src_slot_P;      // int64 [P]: flat slot t*K+k placed at sorted row p
  at::Tensor row_of_slot_TK;  // int64 [T, K]: the sorted row of slot (t, k); inverse of src_slot_P
  at::Tensor tokens_per_expert_E;  // int64 [E]
  at::Tensor offsets_E;  // int64 [E]: inclusive prefix sum of tokens_per_expert_E (row ends)
};

ExpertPermutation moe_permute_ref(const at::Tensor& topk_idx_TK, int64_t num_experts);
RouterOutput moe_route_ref(const at::Tensor& router_logits_TE, const at::Tensor& bias_E,
                           const RouterOptions& opt);
MoeResult moe_experts_ref(const at::Tensor& x_TD, const at::Tensor& topk_idx_TK,
                          const at::Tensor& topk_weight_TK, const at::Tensor& w_gate_EFD,
                          const at::Tensor& w_up_EFD, const at::Tensor& w_down_EDF);

#ifdef ZERORL_WITH_CUDA
ExpertPermutation moe_permute_cuda(const at::Tensor& topk_idx_TK, int64_t num_experts);
RouterOutput moe_route_cuda(const at::Tensor& router_logits_TE, const at::Tensor& bias_E,
                            const RouterOptions& opt);
// grouped_gemm: true uses at::_grouped_mm (CUTLASS on sm90; float32/bfloat16/
// float16 with 16-byte aligned rows), false one cuBLAS GEMM per non-empty
// expert (needs the counts on the host: one device sync).  moe_experts() picks
// the grouped path whenever it applies.
MoeResult moe_experts_cuda(const at::Tensor& x_TD, const at::Tensor& topk_idx_TK,
                           const at::Tensor& topk_weight_TK, const at::Tensor& w_gate_EFD,
                           const at::Tensor& w_up_EFD, const at::Tensor& w_down_EDF,
                           bool grouped_gemm);
bool moe_grouped_gemm_applies(const at::Tensor& x_TD, const at::Tensor& w_gate_EFD);
#endif

}  // namespace zerorl::kernels::detail
