// Internal: the raw-pointer launcher of the paged decode-attention CUDA
// kernel (paged_attention.cu), called by paged_attention_cuda.cpp after
// check_paged_decode_args (paged_attention.h) has validated the tensors.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/dtype_code.h"

namespace zerorl::kernels::cuda {

// Strides in elements; every vector (a query head, a key, a value, an output
// head) is contiguous.  Query head h reads kv head h / (Hq / Hkv).  Row b
// attends the runs run_ptr[b] .. run_ptr[b+1]-1, run r covering pool rows
// run_row0[r] .. run_row0[r] + run_len[r] - 1, in position order.
struct PagedDecodeArgs {
  const void* q;
  int64_t q_row_stride, q_head_stride;
  const void* k;
  int64_t k_head_stride, k_pos_stride;
  const void* v;
  int64_t v_head_stride, v_pos_stride;
  void* out;
  int64_t out_row_stride, out_head_stride;
  int64_t B, Hq, Hkv, C, Cv;
  const int64_t* run_ptr;   // [B + 1], on the device
  const int64_t* run_row0;  // [R], on the device
  const int64_t* run_len;   // [R], on the device
};

void paged_decode_attention(DtypeCode dt, const PagedDecodeArgs& a, cudaStream_t stream);

}  // namespace zerorl::kernels::cuda
