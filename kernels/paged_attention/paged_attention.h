// Paged decode attention on CUDA: one decode query per row attends its
// cached positions where they lie in the KV block pool (no gather into a
// contiguous tensor).  The CPU path with the group cascade is
// model/paged_attention.h; this is its CUDA counterpart without the
// cascade: each row walks its whole run list (shared prompt blocks
// included), so a group's prompt is read once per sample.
//
// Status: built and compiled for sm_90; never run on a GPU (no device was
// lent to the session that wrote it).  tests/model/paged_attention_test.cpp
// has its GPU tests (label gpu), which skip naming the missing device.
//
//   q_BHC:    [B, Hq, C]      the new tokens' queries (scaled already)
//   k_HPC:    [Hkv, P, C]     pool rows of keys per kv head
//   v_HPCv:   [Hkv, P, Cv]    pool rows of values (may share storage with k:
//                             MLA's values are the latent rows' first columns)
//   run_ptr:  [B + 1] int64   row b attends runs run_ptr[b] .. run_ptr[b+1]-1
//   run_row0: [R] int64       first pool row of each run
//   run_len:  [R] int64       positions of each run (>= 1)
//   out_BHCv: [B, Hq, Cv]     written: softmax(q . k) v per (row, head)
// Query head h reads kv head h / (Hq / Hkv) (GQA, as HF's repeat_kv).
// q, k, v and out share one dtype, fp32 or bf16 (fp32 arithmetic inside,
// one rounding of the output); every vector has unit stride, rows and heads
// any stride.  Limits: B <= 65535, Cv <= 1024, C <= 8192.  The run values
// (row0 + len <= P) are the caller's to check: they are on the device.
#pragma once

#include <ATen/core/Tensor.h>

namespace zerorl::kernels {

// Throws zerorl::Error naming the first argument that breaks the contract
// above (device-independent: what the CUDA entry point checks first).
void check_paged_decode_args(const at::Tensor& q_BHC, const at::Tensor& k_HPC,
                             const at::Tensor& v_HPCv, const at::Tensor& run_ptr,
                             const at::Tensor& run_row0, const at::Tensor& run_len,
                             const at::Tensor& out_BHCv);

// Checks, then launches on the current stream of q's device.  Throws when
// the tensors are not CUDA tensors or zerorl was built without CUDA.
void paged_decode_attention_cuda(const at::Tensor& q_BHC, const at::Tensor& k_HPC,
                                 const at::Tensor& v_HPCv, const at::Tensor& run_ptr,
                                 const at::Tensor& run_row0, const at::Tensor& run_len,
                                 const at::Tensor& out_BHCv);

}  // namespace zerorl::kernels
