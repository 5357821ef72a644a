// Internal: raw-pointer launchers of the logprob CUDA kernels (logprob.cu),
// called by logprob_cuda.cpp.  logits_cV is fp32 [rows, V] row-major holding
// the tempered logits of one chunk (written by a cuBLAS GEMM).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/dtype_code.h"

namespace zerorl::kernels::cuda {

// Per row: online log-sum-exp over V.  Writes logp[r] = z[target[r]] - lse,
// lse[r], and entropy[r] = lse - sum(p z) when entropy != nullptr.  A target
// outside [0, V) gives logp = NaN.
void logprob_rows_forward(const float* logits_cV, const int64_t* target, int64_t rows, int64_t V,
                          float* logp, float* lse, float* entropy, cudaStream_t stream);

// Per row: dz = (g_logp (onehot(target) - p) - g_ent p (log p + H)) * inv_temperature,
// p = exp(z - lse), written as dtype `dt` into grad_cV [rows, V].  g_ent and
// entropy may be nullptr (no entropy term).
void logprob_rows_backward(const float* logits_cV, const int64_t* target, const float* lse,
                           const float* entropy, const float* g_logp, const float* g_ent,
                           float inv_temperature, int64_t rows, int64_t V, DtypeCode dt,
                           void* grad_cV, cudaStream_t stream);

}  // namespace zerorl::kernels::cuda
