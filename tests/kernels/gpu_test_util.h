// Shared by the GPU tests beside each kernel's CPU test (logprob_gpu_test.cpp,
// moe_gpu_test.cpp, rmsnorm_gpu_test.cpp; executable zr_kernels_gpu_tests,
// label `gpu`): every CUDA kernel against its CPU reference on random inputs,
// through the functions the model calls (dispatch by device) and through the
// internal entry points where one op has two CUDA paths.  Each test skips,
// naming the missing device, when there is no CUDA device.
//
// Tolerances (all against the reference evaluated in fp64 on the very same
// input values, so input rounding is not counted):
//   fp32: cuBLAS fp32 GEMMs and __expf (2 ulp): 1e-4 relative to the output's scale;
//   bf16: dL/dz and the outputs are rounded to bf16 (8-bit mantissa), so
//         2-3% of the output's scale; expert choices and permutations exactly.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <algorithm>

#define ZR_REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device"

namespace zerorl::test {

inline const at::Device kGpu(at::kCUDA, 0);

// max |a - b| / max(max |b|, floor), a on any device, b on CPU.
inline double rel_err(const at::Tensor& a, const at::Tensor& b, double floor = 1e-30) {
  const at::Tensor ad = a.detach().cpu().to(at::kDouble), bd = b.detach().cpu().to(at::kDouble);
  EXPECT_EQ(ad.sizes(), bd.sizes());
  EXPECT_FALSE(at::isnan(ad).any().item<bool>()) << "NaN in the CUDA result";
  const double scale = std::max(bd.abs().max().item<double>(), floor);
  return (ad - bd).abs().max().item<double>() / scale;
}

inline double tol_for(at::ScalarType dt) { return dt == at::kFloat ? 1e-4 : 3e-2; }

}  // namespace zerorl::test
