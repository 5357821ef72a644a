// Internal: raw-pointer launchers of the MoE CUDA kernels (moe.cu), called by
// moe_cuda.cpp.  All tensors contiguous, row-major.  Legend as in moe.h;
// P = T*K permuted rows.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/dtype_code.h"

namespace zerorl::kernels::cuda {

// Expert selection from fp32 scores [T, E] (+ bias [E] or nullptr), HF
// DeepseekV3 semantics (group top-2 sums, topk_group groups kept, the rest set
// to -inf, then top_k); ties go to the lower index.  n_group <= 32.
void moe_route_select(const float* scores_TE, const float* bias_E, int64_t T, int64_t E,
                      int64_t top_k, int64_t n_group, int64_t topk_group, int64_t* topk_idx_TK,
                      cudaStream_t stream);

// tokens_per_expert[e] = #{slots with idx == e} (int64, zeroed by the callee).
void moe_count(const int64_t* idx_P, int64_t P, int64_t E, int64_t* tokens_per_expert,
               cudaStream_t stream);

// Stable placement: offsets_E are the inclusive prefix sums of the counts.
// src_slot_P[row] = slot, row_of_slot_P[slot] = row.  Slots with an id outside
// [0, E) are not placed (row_of_slot = -1).
void moe_place(const int64_t* idx_P, int64_t P, int64_t E, const int64_t* offsets_E,
               int64_t* src_slot_P, int64_t* row_of_slot_P, cudaStream_t stream);

// x_PD[row] = x_TD[src_slot[row] / K].
void moe_gather_rows(DtypeCode dt, const void* x_TD, const int64_t* src_slot_P, int64_t P,
                     int64_t K, int64_t D, void* x_PD, cudaStream_t stream);
// gx_TD[t] = sum_k g_PD[row_of_slot[t, k]] (fp32 sum, k in order).
void moe_gather_rows_backward(DtypeCode dt, const void* g_PD, const int64_t* row_of_slot_TK,
                              int64_t T, int64_t K, int64_t D, void* gx_TD, cudaStream_t stream);
// y_TD[t] = sum_k w_TK[t, k] * out_PD[row_of_slot[t, k]] (fp32 sum, k in order).
void moe_combine(DtypeCode dt, const void* out_PD, const float* w_TK, const int64_t* row_of_slot_TK,
                 int64_t T, int64_t K, int64_t D, void* y_TD, cudaStream_t stream);
// g_out_PD[row_of_slot[t,k]] = w[t,k] g_y[t];  g_w[t,k] = <out_PD[row_of_slot[t,k]], g_y[t]>.
// Rows of g_out_PD that no slot maps to are left as they are (caller zeroes).
void moe_combine_backward(DtypeCode dt, const void* out_PD, const float* w_TK,
                          const int64_t* row_of_slot_TK, const void* g_y_TD, int64_t T, int64_t K,
                          int64_t D, void* g_out_PD, float* g_w_TK, cudaStream_t stream);

}  // namespace zerorl::kernels::cuda
