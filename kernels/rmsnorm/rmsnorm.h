// RMSNorm over the last dimension, as HF's DeepseekV3RMSNorm / Qwen2MoeRMSNorm:
//   y = weight * (x / sqrt(mean(x^2, -1) + eps)).to(x.dtype)
// The normalisation is computed in fp32 (fp64 for fp64 x) and rounded to x's
// dtype before the multiply by weight, so the result's dtype is the promotion
// of x's and weight's (bf16 x with bf16 weight -> bf16, as HF).
//
// Contract: x [..., D] and weight [D], float dtypes, same device, eps >= 0;
// anything else throws zerorl::Error.  Differentiable w.r.t. x and weight (the
// backward treats the intermediate rounding as identity).  CPU tensors run the
// LibTorch-ops reference (rmsnorm_ref.cpp); CUDA tensors a fused forward and
// backward kernel (rmsnorm.cu + rmsnorm_cuda.cpp) on the current stream.
// Deterministic on both devices.  The two paths are declared in
// rmsnorm_impl.h (internal).
#pragma once

#include <ATen/core/Tensor.h>

namespace zerorl::kernels {

at::Tensor rmsnorm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace zerorl::kernels
