// Chosen-token log-probabilities (and optionally the entropy) of a linear
// output layer, without materialising the [N x V] logits.
//
// Legend: N tokens, D model width, V vocabulary.
//
// chosen_logprob(hidden_ND, weight_VD, target_N, opt) returns, for every row n,
//   logp_N[n]    = log softmax(hidden_ND[n] @ weight_VD^T / temperature)[target_N[n]]
//   entropy_N[n] = -sum_v p_v log p_v of that same tempered distribution
//                  (defined only when opt.with_entropy).
//
// Contract:
//   * Inputs: hidden_ND [N, D] and weight_VD [V, D] of one floating dtype
//     (float32, bfloat16, float16 or float64) on one device; target_N int64 [N]
//     on the same device with 0 <= target < V.  Anything else throws
//     zerorl::Error naming the tensor.  On CPU an out-of-range target throws;
//     on CUDA it is not checked (that would cost a device sync) and that row's
//     log-prob is NaN.
//   * Arithmetic is fp32 (fp64 for fp64 inputs); results are float32 (float64
//     for fp64 inputs) whatever the input dtype.
//   * Memory: the work is done chunk_tokens rows at a time, so the extra memory
//     beyond the inputs and outputs is O(chunk_tokens x V) (plus one fp32 copy
//     of weight_VD on CPU when it is not already fp32/fp64), never O(N x V).
//   * Autograd: differentiable w.r.t. hidden_ND and weight_VD through logp_N and
//     entropy_N (an entropy bonus is fine).  Backward recomputes each chunk's
//     logits rather than storing them; it saves only the inputs and one [N]
//     log-sum-exp.  Gradients come back in the inputs' dtypes.
//   * Dispatch by device: CPU tensors run the LibTorch-ops reference
//     (logprob_ref.cpp), CUDA tensors the CUDA kernel (logprob.cu +
//     logprob_cuda.cpp; cuBLAS for the matmuls, an online log-sum-exp kernel
//     for the reductions) on the current stream.  A CUDA tensor in a build
//     without CUDA throws.
//   * Deterministic: same inputs, same device -> same bits.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace zerorl::kernels {

struct LogprobOptions {
  int64_t chunk_tokens =
      1024;                   // rows per chunk; peak extra memory ~ a few x chunk_tokens x V floats
  bool with_entropy = false;  // also return entropy_N
  double temperature = 1.0;   // logits are divided by this (> 0)
};

struct LogprobResult {
  at::Tensor logp_N;     // [N] float32 (float64 for fp64 inputs)
  at::Tensor entropy_N;  // [N], undefined unless with_entropy
};

LogprobResult chosen_logprob(const at::Tensor& hidden_ND, const at::Tensor& weight_VD,
                             const at::Tensor& target_N, const LogprobOptions& opt = {});

}  // namespace zerorl::kernels
