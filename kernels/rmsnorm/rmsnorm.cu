// Fused RMSNorm forward and backward, fp32 arithmetic.
// Forward matches HF's rounding: y = T(float(w) * float(T(x * rstd))).
//
// Loads and stores move 16-byte packs of VEC elements when the rows allow
// it (D a multiple of VEC, 16-byte aligned pointers), else single elements.
// Backward is one kernel: each block takes rows blockIdx.x, +gridDim.x, ...,
// writes their dx and accumulates its share of dw per column in shared
// memory, then writes it as one row of gw_partial (summed by the caller in a
// fixed order, so dw is deterministic).  x and dy are read from memory once.
// Rows too wide for the shared accumulator (D > kMaxFusedD) take a separate
// dw kernel that reads them again.
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda_common.cuh"
#include "kernels/rmsnorm/rmsnorm_launch.h"

namespace zerorl::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxFusedD = 48 * 1024 / sizeof(float);  // the default dynamic shared memory

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T, int VEC>
__global__ void rmsnorm_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                   T* __restrict__ y, float* __restrict__ rstd, int64_t D,
                                   float eps) {
  using P = Pack<T, VEC>;
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, n = D / VEC;
  const P* xr = reinterpret_cast<const P*>(x + row * D);
  const P* wr = reinterpret_cast<const P*>(w);
  P* yr = reinterpret_cast<P*>(y + row * D);
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const P p = xr[i];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float v = to_f32(p.v[j]);
      ss += v * v;
    }
  }
  ss = block_sum(ss, scratch);
  const float r = rsqrtf(ss / static_cast<float>(D) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const P p = xr[i], q = wr[i];
    P o;
#pragma unroll
    for (int j = 0; j < VEC; ++j)
      o.v[j] = from_f32<T>(to_f32(q.v[j]) * to_f32(from_f32<T>(to_f32(p.v[j]) * r)));
    yr[i] = o;
  }
}

// dx = r (g w - xhat mean(g w xhat)), xhat = x r; dw += g xhat.  Column c of
// the accumulator belongs to the thread that owns its pack, so it needs no
// synchronisation.  fused = false skips dw (the separate kernel does it).
template <typename T, int VEC>
__global__ void rmsnorm_bwd_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                   const T* __restrict__ w, const float* __restrict__ rstd,
                                   T* __restrict__ gx, float* __restrict__ gw_partial, int64_t rows,
                                   int64_t D, bool fused) {
  using P = Pack<T, VEC>;
  extern __shared__ float acc[];  // [D] when fused
  __shared__ float scratch[32];
  const int64_t n = D / VEC;
  const P* wr = reinterpret_cast<const P*>(w);
  if (fused)
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
#pragma unroll
      for (int j = 0; j < VEC; ++j) acc[i * VEC + j] = 0.f;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float r = rstd[row];
    const P* gr = reinterpret_cast<const P*>(gy + row * D);
    const P* xr = reinterpret_cast<const P*>(x + row * D);
    float dot = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const P g = gr[i], xv = xr[i], wv = wr[i];
#pragma unroll
      for (int j = 0; j < VEC; ++j) dot += to_f32(g.v[j]) * to_f32(wv.v[j]) * (to_f32(xv.v[j]) * r);
    }
    dot = block_sum(dot, scratch) / static_cast<float>(D);
    P* out = reinterpret_cast<P*>(gx + row * D);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {  // the row is in L1/L2 now
      const P g = gr[i], xv = xr[i], wv = wr[i];
      P o;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const float gf = to_f32(g.v[j]), xhat = to_f32(xv.v[j]) * r;
        o.v[j] = from_f32<T>(r * (gf * to_f32(wv.v[j]) - xhat * dot));
        if (fused) acc[i * VEC + j] += gf * xhat;
      }
      out[i] = o;
    }
  }
  if (fused)
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
#pragma unroll
      for (int j = 0; j < VEC; ++j)
        gw_partial[static_cast<int64_t>(blockIdx.x) * D + i * VEC + j] = acc[i * VEC + j];
}

// gw_partial[p, d] = sum over rows p, p + P, p + 2P, ... of g * xhat (wide rows only).
template <typename T>
__global__ void rmsnorm_bwd_dw_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                      const float* __restrict__ rstd,
                                      float* __restrict__ gw_partial, int64_t rows, int64_t D) {
  const int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= D) return;
  const int p = blockIdx.y, P = gridDim.y;
  float acc = 0.f;
  for (int64_t row = p; row < rows; row += P)
    acc += to_f32(gy[row * D + d]) * (to_f32(x[row * D + d]) * rstd[row]);
  gw_partial[static_cast<int64_t>(p) * D + d] = acc;
}

// Elements per 16-byte pack when every row of every pointer can use it, else 1.
template <typename T>
bool packs_apply(int64_t D, std::initializer_list<const void*> ptrs) {
  constexpr int kVec = 16 / sizeof(T);
  if (D % kVec != 0) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
  return true;
}

template <typename T>
void launch_forward(const void* x, const void* w, void* y, float* rstd, int64_t rows, int64_t D,
                    float eps, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  T* yt = static_cast<T*>(y);
  const unsigned grid = static_cast<unsigned>(rows);
  if (packs_apply<T>(D, {x, w, y}))
    rmsnorm_fwd_kernel<T, kVec><<<grid, kThreads, 0, stream>>>(xt, wt, yt, rstd, D, eps);
  else
    rmsnorm_fwd_kernel<T, 1><<<grid, kThreads, 0, stream>>>(xt, wt, yt, rstd, D, eps);
}

template <typename T>
void launch_backward(const void* gy, const void* x, const void* w, const float* rstd, void* gx,
                     float* gw_partial, int num_partials, int64_t rows, int64_t D,
                     cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const T* gyt = static_cast<const T*>(gy);
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  T* gxt = static_cast<T*>(gx);
  const bool fused = D <= kMaxFusedD;
  const size_t smem = fused ? sizeof(float) * static_cast<size_t>(D) : 0;
  const unsigned grid = static_cast<unsigned>(num_partials);
  if (packs_apply<T>(D, {gy, x, w, gx}))
    rmsnorm_bwd_kernel<T, kVec>
        <<<grid, kThreads, smem, stream>>>(gyt, xt, wt, rstd, gxt, gw_partial, rows, D, fused);
  else
    rmsnorm_bwd_kernel<T, 1>
        <<<grid, kThreads, smem, stream>>>(gyt, xt, wt, rstd, gxt, gw_partial, rows, D, fused);
  if (!fused) {
    const dim3 dw_grid(static_cast<unsigned>((D + kThreads - 1) / kThreads), grid);
    rmsnorm_bwd_dw_kernel<T><<<dw_grid, kThreads, 0, stream>>>(gyt, xt, rstd, gw_partial, rows, D);
  }
}

}  // namespace

void rmsnorm_forward(DtypeCode dt, const void* x, const void* w, void* y, float* rstd, int64_t rows,
                     int64_t D, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  ZR_DISPATCH_DTYPE(dt, T, launch_forward<T>(x, w, y, rstd, rows, D, eps, stream));
}

void rmsnorm_backward(DtypeCode dt, const void* gy, const void* x, const void* w, const float* rstd,
                      void* gx, float* gw_partial, int num_partials, int64_t rows, int64_t D,
                      cudaStream_t stream) {
  if (rows == 0) return;
  ZR_DISPATCH_DTYPE(
      dt, T, launch_backward<T>(gy, x, w, rstd, gx, gw_partial, num_partials, rows, D, stream));
}

}  // namespace zerorl::kernels::cuda
