// Paged decode attention on CUDA: one thread block per (query head, row)
// walks the row's runs of pool rows (one run per KV block, partial last
// block included) in place, with an online softmax in fp32.
//
// Per tile of up to kTile positions of one run: each warp scores positions
// (a warp-wide dot product of the fp32 query in shared memory with the key
// read in its dtype), the scores go to shared memory, then every thread
// rescales its fp32 accumulators (output channels tid, tid + kThreads, ...)
// by exp(m_old - m_new) and adds exp(s - m_new) * v for the tile's
// positions.  The order of every sum is fixed by the plan, so the result is
// deterministic and does not depend on the rest of the batch.
//
// Limits (checked by the host, paged_attention.h): Cv <= kThreads *
// kMaxAccPerThread (1024) output channels, C * 4 bytes of query in shared
// memory (C <= 8192: 32 KiB, under the 48 KiB of static + dynamic shared
// memory a launch gets without opting in).  Simple rather than fast: no split over the sequence
// (FlashDecoding), no vectorised loads, one block per (row, head).
#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/paged_attention/paged_attention_launch.h"

namespace zerorl::kernels::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 32;
constexpr int kMaxAccPerThread = 8;

template <typename T>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedDecodeArgs a) {
  extern __shared__ float q_s[];  // [C]
  __shared__ float s_tile[kTile];
  const int64_t h = blockIdx.x, b = blockIdx.y;
  const int64_t kvh = h / (a.Hq / a.Hkv);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const T* q = static_cast<const T*>(a.q) + b * a.q_row_stride + h * a.q_head_stride;
  const T* k = static_cast<const T*>(a.k) + kvh * a.k_head_stride;
  const T* v = static_cast<const T*>(a.v) + kvh * a.v_head_stride;
  for (int64_t c = tid; c < a.C; c += kThreads) q_s[c] = to_f32(q[c]);
  float acc[kMaxAccPerThread];
#pragma unroll
  for (int j = 0; j < kMaxAccPerThread; ++j) acc[j] = 0.f;
  float m = -INFINITY, l = 0.f;
  __syncthreads();
  for (int64_t r = a.run_ptr[b]; r < a.run_ptr[b + 1]; ++r) {
    const int64_t row0 = a.run_row0[r], len = a.run_len[r];
    for (int64_t t0 = 0; t0 < len; t0 += kTile) {
      const int n = static_cast<int>(len - t0 < kTile ? len - t0 : kTile);
      for (int p = warp; p < n; p += kWarps) {
        const T* kp = k + (row0 + t0 + p) * a.k_pos_stride;
        float d = 0.f;
        for (int64_t c = lane; c < a.C; c += 32) d += q_s[c] * to_f32(kp[c]);
        d = warp_sum(d);
        if (lane == 0) s_tile[p] = d;
      }
      __syncthreads();
      float tmax = m;
      for (int p = 0; p < n; ++p) tmax = fmaxf(tmax, s_tile[p]);
      const float alpha = expf(m - tmax);  // 0 on the first tile (m = -inf)
      l *= alpha;
#pragma unroll
      for (int j = 0; j < kMaxAccPerThread; ++j) acc[j] *= alpha;
      for (int p = 0; p < n; ++p) {
        const float w = expf(s_tile[p] - tmax);
        l += w;
        const T* vp = v + (row0 + t0 + p) * a.v_pos_stride;
#pragma unroll
        for (int j = 0; j < kMaxAccPerThread; ++j) {
          const int64_t c = tid + j * kThreads;
          if (c < a.Cv) acc[j] += w * to_f32(vp[c]);
        }
      }
      m = tmax;
      __syncthreads();  // s_tile is rewritten by the next tile
    }
  }
  T* o = static_cast<T*>(a.out) + b * a.out_row_stride + h * a.out_head_stride;
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int j = 0; j < kMaxAccPerThread; ++j) {
    const int64_t c = tid + j * kThreads;
    if (c < a.Cv) o[c] = from_f32<T>(acc[j] * inv);
  }
}

}  // namespace

void paged_decode_attention(DtypeCode dt, const PagedDecodeArgs& a, cudaStream_t stream) {
  if (a.B == 0 || a.Hq == 0) return;
  const dim3 grid(static_cast<unsigned>(a.Hq), static_cast<unsigned>(a.B));
  const size_t smem = static_cast<size_t>(a.C) * sizeof(float);
  ZR_DISPATCH_DTYPE(dt, T, paged_decode_kernel<T><<<grid, kThreads, smem, stream>>>(a));
}

}  // namespace zerorl::kernels::cuda
