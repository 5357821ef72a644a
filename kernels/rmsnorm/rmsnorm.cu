// Fused RMSNorm forward and backward; one block per row, fp32 arithmetic.
// Forward matches HF's rounding: y = T(float(w) * float(T(x * rstd))).
#include "kernels/cuda_common.cuh"
#include "kernels/rmsnorm/rmsnorm_launch.h"

namespace zerorl::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void rmsnorm_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                   T* __restrict__ y, float* __restrict__ rstd, int64_t D,
                                   float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * D;
  T* yr = y + row * D;
  float ss = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float v = to_f32(xr[d]);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float r = rsqrtf(ss / static_cast<float>(D) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float n = to_f32(from_f32<T>(to_f32(xr[d]) * r));
    yr[d] = from_f32<T>(to_f32(w[d]) * n);
  }
}

// dx = r (g w - xhat mean(g w xhat)), xhat = x r.
template <typename T>
__global__ void rmsnorm_bwd_dx_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                      const T* __restrict__ w, const float* __restrict__ rstd,
                                      T* __restrict__ gx, int64_t D) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float r = rstd[row];
  const T* xr = x + row * D;
  const T* gr = gy + row * D;
  float dot = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    dot += to_f32(gr[d]) * to_f32(w[d]) * to_f32(xr[d]) * r;
  dot = block_sum(dot, scratch) / static_cast<float>(D);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float xhat = to_f32(xr[d]) * r;
    gx[row * D + d] = from_f32<T>(r * (to_f32(gr[d]) * to_f32(w[d]) - xhat * dot));
  }
}

// gw_partial[p, d] = sum over rows p, p + P, p + 2P, ... of g * xhat.
template <typename T>
__global__ void rmsnorm_bwd_dw_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                      const float* __restrict__ rstd,
                                      float* __restrict__ gw_partial, int64_t rows, int64_t D) {
  const int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= D) return;
  const int p = blockIdx.y, P = gridDim.y;
  float acc = 0.f;
  for (int64_t row = p; row < rows; row += P)
    acc += to_f32(gy[row * D + d]) * to_f32(x[row * D + d]) * rstd[row];
  gw_partial[static_cast<int64_t>(p) * D + d] = acc;
}

}  // namespace

void rmsnorm_forward(DtypeCode dt, const void* x, const void* w, void* y, float* rstd, int64_t rows,
                     int64_t D, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  ZR_DISPATCH_DTYPE(
      dt, T,
      rmsnorm_fwd_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y), rstd, D, eps));
}

void rmsnorm_backward(DtypeCode dt, const void* gy, const void* x, const void* w, const float* rstd,
                      void* gx, float* gw_partial, int num_partials, int64_t rows, int64_t D,
                      cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 dw_grid(static_cast<unsigned>((D + kThreads - 1) / kThreads),
                     static_cast<unsigned>(num_partials));
  ZR_DISPATCH_DTYPE(
      dt, T,
      rmsnorm_bwd_dx_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
          static_cast<const T*>(gy), static_cast<const T*>(x), static_cast<const T*>(w), rstd,
          static_cast<T*>(gx), D);
      rmsnorm_bwd_dw_kernel<T><<<dw_grid, kThreads, 0, stream>>>(
          static_cast<const T*>(gy), static_cast<const T*>(x), rstd, gw_partial, rows, D));
}

}  // namespace zerorl::kernels::cuda
