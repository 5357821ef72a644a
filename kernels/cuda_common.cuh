// Device-side helpers shared by the kernels/*.cu files: typed loads/stores in
// fp32 and warp/block reductions.  No torch headers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/dtype_code.h"

namespace zerorl::kernels::cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block; every thread gets the result.  `scratch` holds >= 32 floats.
// Fixed reduction tree, so the result is deterministic.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < nwarps ? scratch[lane] : 0.f;
  t = warp_sum(t);
  return t;
}

// Dispatch a templated launch over the element type named by a DtypeCode.
#define ZR_DISPATCH_DTYPE(code, T, ...)             \
  switch (code) {                                   \
    case ::zerorl::kernels::DtypeCode::kFloat32: {  \
      using T = float;                              \
      __VA_ARGS__;                                  \
      break;                                        \
    }                                               \
    case ::zerorl::kernels::DtypeCode::kBFloat16: { \
      using T = __nv_bfloat16;                      \
      __VA_ARGS__;                                  \
      break;                                        \
    }                                               \
    case ::zerorl::kernels::DtypeCode::kFloat16: {  \
      using T = __half;                             \
      __VA_ARGS__;                                  \
      break;                                        \
    }                                               \
  }

}  // namespace zerorl::kernels::cuda
