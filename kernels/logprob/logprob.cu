// Row kernels of the chunked chosen-token log-prob: an online (single pass)
// log-sum-exp with the entropy's sum(p z) carried along, and the fused
// gradient of the logits.  The GEMMs around them are cuBLAS (logprob_cuda.cpp).
#include <cmath>

#include "kernels/cuda_common.cuh"
#include "kernels/logprob/logprob_launch.h"

namespace zerorl::kernels::cuda {

namespace {

constexpr int kThreads = 512;

// Running state of sum_v exp(z_v - m) (s) and sum_v exp(z_v - m) z_v (t).
struct Lse {
  float m, s, t;
};

__device__ __forceinline__ Lse lse_push(Lse a, float z) {
  if (z > a.m) {
    const float c = a.s == 0.f ? 0.f : __expf(a.m - z);
    return {z, a.s * c + 1.f, a.t * c + z};
  }
  const float e = __expf(z - a.m);
  return {a.m, a.s + e, a.t + e * z};
}

__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
  if (b.s == 0.f) return a;
  if (a.s == 0.f) return b;
  const float m = fmaxf(a.m, b.m);
  const float ca = __expf(a.m - m), cb = __expf(b.m - m);
  return {m, a.s * ca + b.s * cb, a.t * ca + b.t * cb};
}

__device__ __forceinline__ Lse lse_warp(Lse a) {
  for (int off = 16; off > 0; off >>= 1) {
    Lse b{__shfl_xor_sync(0xffffffffu, a.m, off), __shfl_xor_sync(0xffffffffu, a.s, off),
          __shfl_xor_sync(0xffffffffu, a.t, off)};
    a = lse_merge(a, b);
  }
  return a;
}

__global__ void rows_forward_kernel(const float* __restrict__ logits,
                                    const int64_t* __restrict__ target, int64_t V,
                                    float* __restrict__ logp, float* __restrict__ lse_out,
                                    float* __restrict__ entropy) {
  __shared__ Lse scratch[32];
  const int64_t row = blockIdx.x;
  const float* z = logits + row * V;
  Lse a{-INFINITY, 0.f, 0.f};
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) a = lse_push(a, z[v]);
  a = lse_warp(a);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  if (warp == 0) {
    a = lane < nwarps ? scratch[lane] : Lse{-INFINITY, 0.f, 0.f};
    a = lse_warp(a);
    if (lane == 0) {
      const float lse = a.m + logf(a.s);
      const int64_t tgt = target[row];
      logp[row] = (tgt >= 0 && tgt < V) ? z[tgt] - lse : NAN;
      lse_out[row] = lse;
      if (entropy != nullptr) entropy[row] = lse - a.t / a.s;
    }
  }
}

template <typename T>
__global__ void rows_backward_kernel(const float* __restrict__ logits,
                                     const int64_t* __restrict__ target,
                                     const float* __restrict__ lse,
                                     const float* __restrict__ entropy,
                                     const float* __restrict__ g_logp,
                                     const float* __restrict__ g_ent, float inv_temperature,
                                     int64_t V, T* __restrict__ grad) {
  const int64_t row = blockIdx.x;
  const float* z = logits + row * V;
  T* g = grad + row * V;
  const float l = lse[row], g1 = g_logp[row];
  const float g2 = g_ent != nullptr ? g_ent[row] : 0.f;
  const float H = entropy != nullptr ? entropy[row] : 0.f;
  const int64_t tgt = target[row];
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float logp = z[v] - l;
    const float p = __expf(logp);
    float d = -p * (g1 + g2 * (logp + H));
    if (v == tgt) d += g1;
    g[v] = from_f32<T>(d * inv_temperature);
  }
}

}  // namespace

void logprob_rows_forward(const float* logits_cV, const int64_t* target, int64_t rows, int64_t V,
                          float* logp, float* lse, float* entropy, cudaStream_t stream) {
  if (rows == 0) return;
  rows_forward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits_cV, target, V,
                                                                            logp, lse, entropy);
}

void logprob_rows_backward(const float* logits_cV, const int64_t* target, const float* lse,
                           const float* entropy, const float* g_logp, const float* g_ent,
                           float inv_temperature, int64_t rows, int64_t V, DtypeCode dt,
                           void* grad_cV, cudaStream_t stream) {
  if (rows == 0) return;
  ZR_DISPATCH_DTYPE(dt, T,
                    rows_backward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
                        logits_cV, target, lse, entropy, g_logp, g_ent, inv_temperature, V,
                        static_cast<T*>(grad_cV)));
}

}  // namespace zerorl::kernels::cuda
