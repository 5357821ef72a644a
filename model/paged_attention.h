// Decode attention that reads the paged KV cache in place (CPU), with a
// group's shared prompt blocks attended once for all its samples (cascade).
//
// One decode step: every attention row b (one sequence) has one new token
// whose query rows q[b] ([Hq, C]: the heads that share one key plane) attend
// the row's first kv_len[b] cached positions (the new token's included),
// which live in the pool blocks of the row's block table.  Instead of
// gathering those blocks into a contiguous [B, L, C] copy per layer and
// step (model/attention.cpp's general path), the kernel runs BLAS GEMMs on
// the pool itself, one per block (never merged across blocks that happen to
// be consecutive in the pool: a sequence's results must not depend on where
// its blocks lie, which depends on the rest of the batch):
//   * Rows whose tables start with the same blocks (the G samples of a group
//     pointing at their prompt's blocks, KvCache::share_slot) form a group.
//     Their G*Hq query rows are scored against the common full blocks in one
//     GEMM per run and softmaxed: (O_shared, m_shared, l_shared) per query
//     row -- the prompt is read once per group, not once per sample.
//   * Each row then attends its own blocks (the rest of its table, up to
//     kv_len; the last block partly) the same way: (O_own, m_own, l_own).
//   * The two are merged by log-sum-exp:
//       m = max(m_s, m_o); a_s = exp(m_s - m); a_o = exp(m_o - m)
//       out = (a_s O_s + a_o O_o) / (a_s l_s + a_o l_o)
//     where O is the unnormalised sum of exp(score - m) v and l its weight.
// Scores, the softmax and the merge are in the compute dtype (fp32, or fp64
// for fp64 models; fp32 for bf16 models).  A bf16 pool is read in place too:
// each attend() upcasts the rows of its runs into fp32 scratch (exactly; a
// group's shared blocks once for the group) and runs the same fp32 GEMMs on
// it, the bf16 queries and outputs going through fp32 copies.  So bf16
// decode attention is fp32 arithmetic on bf16 values with one rounding of
// the output, closer to the learner's fused CPU attention than the gather
// path's bf16 GEMMs (scores rounded to bf16 before the softmax).  In fp32
// the results equal the gather path's up to summation order
// (tests/model/paged_attention_test.cpp: 1e-5 in fp32 against an fp64
// reference, and for bf16 pools 1e-5 beyond the output's rounding, including
// ragged lengths, partly filled last blocks, groups of 1-16 and runs broken
// by out-of-order blocks).
//
// Layout of one key plane: the pool viewed as [NB * bs, ...] rows; keys are
// k_rows[p, 0:C], values v_rows[p, 0:Cv] (v may alias k: MLA's values are
// the first kv_lora_rank columns of the latent rows).  GQA calls the kernel
// once per kv head with that head's plane and query heads.
//
// Availability: CPU tensors of fp32, bf16 or fp64 with the BLAS
// sgemm_/dgemm_ that LibTorch's CPU library exports (MKL in the x86 wheels);
// available() says so.  CUDA fp32/bf16 tensors run the CUDA kernel of
// kernels/paged_attention/paged_attention.h (no cascade: every row walks its
// whole table), only under DecodeAttention::kPagedCuda: it is built and
// compiles but has never run on a GPU, so CUDA's default stays the gather
// path.  Elsewhere (fp16, no BLAS symbol) attention keeps the gather path.
// Threads: groups are spread over ATen's intra-op pool; each row's result is
// computed the same way whatever the thread count.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace zerorl::model {

// Which decode attention CausalLM::decode uses on the CPU.  kPaged (the
// default) where available(); kPagedNoSharing attends every row's whole
// table on its own (no cascade); kGather copies the blocks into a contiguous
// tensor first (the path before; also what CUDA uses by default).
// kPagedCuda: as kPaged on the CPU; on CUDA the in-place CUDA kernel
// (opt-in: never run on a GPU yet).  Process-wide; for tests and benchmarks
// (bench/rollout_decode.cpp --decode-attention).
enum class DecodeAttention { kPaged, kPagedNoSharing, kGather, kPagedCuda };
void set_decode_attention(DecodeAttention mode);
DecodeAttention decode_attention();
// Whether an in-place kernel can run on tensors of `dtype` on `device` (on
// CUDA: fp32/bf16 in a CUDA build; used only under kPagedCuda).
bool paged_decode_available(const at::Device& device, at::ScalarType dtype);

// The per-step plan (same for every layer and kv head): which rows form
// groups, which blocks they share, and every row's own blocks, as runs of
// pool rows (one per block).
struct PagedDecodePlan {
  struct Run {
    int64_t row0 = 0;  // first pool row (block * bs + offset)
    int64_t len = 0;   // positions
  };
  struct Group {
    std::vector<int64_t> rows;  // attention rows (indices into the batch), >= 1
    std::vector<Run> shared;    // positions 0..shared_len-1, common to all rows
    int64_t shared_len = 0;
    std::vector<std::vector<Run>> own;  // per row: positions shared_len..kv_len-1
  };
  std::vector<Group> groups;
  int64_t num_rows = 0;
  // For the CUDA kernel (upload_runs): every row's runs in position order
  // (its group's shared runs, then its own), flattened.  Empty until then.
  at::Tensor run_ptr, run_row0, run_len;  // [B + 1], [R], [R] int64 on the device

  // Row b's runs are row0/len[ptr[b] .. ptr[b+1]-1]: the shared runs of its
  // group then its own, so they cover positions 0..kv_len[b]-1 in order.
  void flatten(std::vector<int64_t>* ptr, std::vector<int64_t>* row0,
               std::vector<int64_t>* len) const;
  // flatten() copied to `device` into run_ptr/run_row0/run_len.
  void upload_runs(const at::Device& device);

  // tables[b]: row b's block table (at least ceil(kv_len[b] / bs) blocks);
  // kv_len[b] >= 1 positions to attend.  share: form groups from common
  // leading full blocks (else every row is its own group).
  static std::shared_ptr<PagedDecodePlan> make(
      const std::vector<const std::vector<int64_t>*>& tables, const std::vector<int64_t>& kv_len,
      int64_t block_size, bool share);
};

// out[b, h, :] = softmax_l(q[b, h, :] . k[l, :]) v[l, :] over row b's
// positions, for the Hq query rows of each batch row.
//   q_BHC:  [B, Hq, C] (scaled already), contiguous in its last two dims
//           (any stride between batch rows: GQA passes one kv head's heads)
//   k_PC:   [P, C] pool rows; v_PCv: [P, Cv] (may share storage with k)
//   both with unit stride in the last dim
//   out_BHCv: [B, Hq, Cv], written (same layout rules as q)
// All of one dtype.  Throws zerorl::Error on mismatched shapes, strides or
// dtypes, or when !paged_decode_available.  CPU only.
void paged_decode_attention(const at::Tensor& q_BHC, const at::Tensor& k_PC,
                            const at::Tensor& v_PCv, const PagedDecodePlan& plan,
                            const at::Tensor& out_BHCv);

// Every kv head at once: q_BHC [B, Hq, C] and out_BHCv [B, Hq, Cv]
// contiguous, k_HPC [Hkv, P, C], v_HPCv [Hkv, P, Cv]; query head h reads kv
// head h / (Hq / Hkv).  CPU: paged_decode_attention per kv head.  CUDA:
// the CUDA kernel (needs plan.upload_runs(device) first).
void paged_decode_attention_heads(const at::Tensor& q_BHC, const at::Tensor& k_HPC,
                                  const at::Tensor& v_HPCv, const PagedDecodePlan& plan,
                                  const at::Tensor& out_BHCv);

}  // namespace zerorl::model
