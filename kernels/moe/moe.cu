// MoE CUDA kernels: expert selection, stable permutation by expert, row
// gather / gather-sum, weighted combine and its backward.  Every reduction
// has a fixed order (no float atomics), so results are deterministic; the
// permutation is pure data movement and matches moe_permute_ref bit for bit.
#include <algorithm>
#include <cmath>

#include "kernels/cuda_common.cuh"
#include "kernels/moe/moe_launch.h"

namespace zerorl::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// Lane-parallel argmax with ties to the lower index; `none` marks an empty lane.
__device__ __forceinline__ void warp_argmax(float& v, int& i, int none) {
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, off);
    const int oi = __shfl_xor_sync(0xffffffffu, i, off);
    if (oi != none && (i == none || ov > v || (ov == v && oi < i))) {
      v = ov;
      i = oi;
    }
  }
}

// One warp per token; its biased scores and picked flags live in shared memory.
__global__ void route_select_kernel(const float* __restrict__ scores,
                                    const float* __restrict__ bias, int64_t T, int E, int top_k,
                                    int n_group, int topk_group, int64_t* __restrict__ idx_out) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (t >= T) return;
  float* c = smem + static_cast<int64_t>(warp) * 2 * E;
  float* picked = c + E;
  for (int e = lane; e < E; e += 32) {
    c[e] = scores[t * E + e] + (bias != nullptr ? bias[e] : 0.f);
    picked[e] = 0.f;
  }
  __syncwarp();
  if (n_group > 1) {
    const int per = E / n_group;
    float gs = 0.f;
    if (lane < n_group) {
      float a = -INFINITY, b = -INFINITY;  // the group's two largest
      for (int j = 0; j < per; ++j) {
        const float v = c[lane * per + j];
        if (v > a) {
          b = a;
          a = v;
        } else if (v > b) {
          b = v;
        }
      }
      gs = a + b;
    }
    bool kept = false;
    for (int g = 0; g < topk_group; ++g) {
      float v = (lane < n_group && !kept) ? gs : 0.f;
      int i = (lane < n_group && !kept) ? lane : 32;
      warp_argmax(v, i, 32);
      if (lane == i) kept = true;
    }
    const unsigned keep_mask = __ballot_sync(0xffffffffu, kept);
    for (int e = lane; e < E; e += 32)
      if (!((keep_mask >> (e / per)) & 1u)) c[e] = -INFINITY;  // as HF: masked_fill(~mask, -inf)
    __syncwarp();
  }
  for (int k = 0; k < top_k; ++k) {
    float v = 0.f;
    int i = E;
    for (int e = lane; e < E; e += 32)
      if (picked[e] == 0.f && (i == E || c[e] > v)) {
        v = c[e];
        i = e;
      }
    warp_argmax(v, i, E);
    if (lane == 0) {
      idx_out[t * top_k + k] = i;
      picked[i] = 1.f;
    }
    __syncwarp();
  }
}

__global__ void count_kernel(const int64_t* __restrict__ idx, int64_t P, int64_t E,
                             int64_t* __restrict__ counts) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < P;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t e = idx[i];
    if (e >= 0 && e < E) atomicAdd(reinterpret_cast<unsigned long long*>(counts + e), 1ull);
  }
}

// One block per expert scans all slots in order: a block-wide exclusive scan
// of (idx == e) gives each slot its row, so the order within an expert is the
// flat slot order (stable), with no atomics.
constexpr int kPlaceThreads = 1024;
__global__ void place_kernel(const int64_t* __restrict__ idx, int64_t P,
                             const int64_t* __restrict__ offsets, int64_t* __restrict__ src_slot,
                             int64_t* __restrict__ row_of_slot) {
  __shared__ int warp_totals[32];
  const int64_t e = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int64_t base = (e == 0 ? 0 : offsets[e - 1]);
  for (int64_t tile = 0; tile < P; tile += kPlaceThreads) {
    const int64_t i = tile + threadIdx.x;
    const bool mine = i < P && idx[i] == e;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    const int before_in_warp = __popc(ballot & ((1u << lane) - 1u));
    if (lane == 0) warp_totals[warp] = __popc(ballot);
    __syncthreads();
    int before_warps = 0, tile_total = 0;
    for (int w = 0; w < kPlaceThreads / 32; ++w) {
      if (w < warp) before_warps += warp_totals[w];
      tile_total += warp_totals[w];
    }
    if (mine) {
      const int64_t row = base + before_warps + before_in_warp;
      src_slot[row] = i;
      row_of_slot[i] = row;
    }
    base += tile_total;
    __syncthreads();  // warp_totals is rewritten by the next tile
  }
}

__global__ void mark_unplaced_kernel(const int64_t* __restrict__ idx, int64_t P, int64_t E,
                                     int64_t* __restrict__ row_of_slot) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < P && (idx[i] < 0 || idx[i] >= E)) row_of_slot[i] = -1;
}

template <typename T>
__global__ void gather_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ src_slot,
                                   int64_t K, int64_t D, T* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const T* src = x + (src_slot[row] / K) * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) out[row * D + d] = src[d];
}

template <typename T>
__global__ void gather_rows_backward_kernel(const T* __restrict__ g,
                                            const int64_t* __restrict__ row_of_slot, int64_t K,
                                            int64_t D, T* __restrict__ gx) {
  const int64_t t = blockIdx.x;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t row = row_of_slot[t * K + k];
      if (row >= 0) acc += to_f32(g[row * D + d]);
    }
    gx[t * D + d] = from_f32<T>(acc);
  }
}

template <typename T>
__global__ void combine_kernel(const T* __restrict__ out, const float* __restrict__ w,
                               const int64_t* __restrict__ row_of_slot, int64_t K, int64_t D,
                               T* __restrict__ y) {
  const int64_t t = blockIdx.x;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t row = row_of_slot[t * K + k];
      if (row >= 0) acc += w[t * K + k] * to_f32(out[row * D + d]);
    }
    y[t * D + d] = from_f32<T>(acc);
  }
}

// One block per token: g_out rows of its K slots, and their weight gradients.
template <typename T>
__global__ void combine_backward_kernel(const T* __restrict__ out, const float* __restrict__ w,
                                        const int64_t* __restrict__ row_of_slot,
                                        const T* __restrict__ gy, int64_t K, int64_t D,
                                        T* __restrict__ g_out, float* __restrict__ g_w) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t row = row_of_slot[t * K + k];
    const float wk = w[t * K + k];
    float dot = 0.f;
    if (row >= 0) {
      for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        const float g = to_f32(gy[t * D + d]);
        dot += g * to_f32(out[row * D + d]);
        g_out[row * D + d] = from_f32<T>(wk * g);
      }
    }
    dot = block_sum(dot, scratch);
    if (threadIdx.x == 0) g_w[t * K + k] = dot;
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 65535)));
}

}  // namespace

void moe_route_select(const float* scores_TE, const float* bias_E, int64_t T, int64_t E,
                      int64_t top_k, int64_t n_group, int64_t topk_group, int64_t* topk_idx_TK,
                      cudaStream_t stream) {
  if (T == 0) return;
  const size_t smem = sizeof(float) * 2 * E * kWarpsPerBlock;
  const unsigned blocks = static_cast<unsigned>((T + kWarpsPerBlock - 1) / kWarpsPerBlock);
  route_select_kernel<<<blocks, 32 * kWarpsPerBlock, smem, stream>>>(
      scores_TE, bias_E, T, static_cast<int>(E), static_cast<int>(top_k), static_cast<int>(n_group),
      static_cast<int>(topk_group), topk_idx_TK);
}

void moe_count(const int64_t* idx_P, int64_t P, int64_t E, int64_t* tokens_per_expert,
               cudaStream_t stream) {
  cudaMemsetAsync(tokens_per_expert, 0, sizeof(int64_t) * E, stream);
  if (P == 0) return;
  count_kernel<<<blocks_for(P, 256), 256, 0, stream>>>(idx_P, P, E, tokens_per_expert);
}

void moe_place(const int64_t* idx_P, int64_t P, int64_t E, const int64_t* offsets_E,
               int64_t* src_slot_P, int64_t* row_of_slot_P, cudaStream_t stream) {
  if (P == 0) return;
  mark_unplaced_kernel<<<static_cast<unsigned>((P + 255) / 256), 256, 0, stream>>>(idx_P, P, E,
                                                                                   row_of_slot_P);
  place_kernel<<<static_cast<unsigned>(E), kPlaceThreads, 0, stream>>>(idx_P, P, offsets_E,
                                                                       src_slot_P, row_of_slot_P);
}

void moe_gather_rows(DtypeCode dt, const void* x_TD, const int64_t* src_slot_P, int64_t P,
                     int64_t K, int64_t D, void* x_PD, cudaStream_t stream) {
  if (P == 0 || D == 0) return;
  ZR_DISPATCH_DTYPE(dt, T,
                    gather_rows_kernel<T><<<static_cast<unsigned>(P), 128, 0, stream>>>(
                        static_cast<const T*>(x_TD), src_slot_P, K, D, static_cast<T*>(x_PD)));
}

void moe_gather_rows_backward(DtypeCode dt, const void* g_PD, const int64_t* row_of_slot_TK,
                              int64_t T, int64_t K, int64_t D, void* gx_TD, cudaStream_t stream) {
  if (T == 0 || D == 0) return;
  ZR_DISPATCH_DTYPE(
      dt, TT,
      gather_rows_backward_kernel<TT><<<static_cast<unsigned>(T), 128, 0, stream>>>(
          static_cast<const TT*>(g_PD), row_of_slot_TK, K, D, static_cast<TT*>(gx_TD)));
}

void moe_combine(DtypeCode dt, const void* out_PD, const float* w_TK, const int64_t* row_of_slot_TK,
                 int64_t T, int64_t K, int64_t D, void* y_TD, cudaStream_t stream) {
  if (T == 0 || D == 0) return;
  ZR_DISPATCH_DTYPE(
      dt, TT,
      combine_kernel<TT><<<static_cast<unsigned>(T), 128, 0, stream>>>(
          static_cast<const TT*>(out_PD), w_TK, row_of_slot_TK, K, D, static_cast<TT*>(y_TD)));
}

void moe_combine_backward(DtypeCode dt, const void* out_PD, const float* w_TK,
                          const int64_t* row_of_slot_TK, const void* g_y_TD, int64_t T, int64_t K,
                          int64_t D, void* g_out_PD, float* g_w_TK, cudaStream_t stream) {
  if (T == 0) return;
  ZR_DISPATCH_DTYPE(dt, TT,
                    combine_backward_kernel<TT><<<static_cast<unsigned>(T), 128, 0, stream>>>(
                        static_cast<const TT*>(out_PD), w_TK, row_of_slot_TK,
                        static_cast<const TT*>(g_y_TD), K, D, static_cast<TT*>(g_out_PD), g_w_TK));
}

}  // namespace zerorl::kernels::cuda
