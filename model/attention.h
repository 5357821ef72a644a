// Attention layers (internal to model/): GQA/MHA (Qwen, OLMoE, Llama; with
// optional q/k RMSNorm before RoPE) and Multi-head Latent Attention
// (DeepSeek-V2/V3), each with a full-sequence causal path (training and
// scoring: at::scaled_dot_product_attention, so no [B,H,T,T] tensor exists;
// logits equal HF's eager path within 1e-4, tests/model/hf_parity_test.cpp)
// and a KV-cache path (decoding).
//
// Legend: B batch (cache path: the attention batch of CacheStep), T time,
// D width, H heads, S cache slots, Q new tokens per slot (padded), L cached
// length, N valid new tokens (flattened), R rotary dim.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/layers.h"

namespace zerorl::model {

struct PagedDecodePlan;  // model/paged_attention.h

// Everything one cache step needs that is the same for all layers.
//
// Attention runs over an "attention batch" of B rows, one per listed slot in
// call order, with Q query rows each (Q = most new tokens of any listed slot;
// decode: 1).  Row b reads its slot's first L positions by gathering the
// pool blocks blocks_BM[b*M .. b*M+M) (M = ceil(L / block_size); a slot
// holding fewer blocks is padded with block 0, masked).
struct CacheStep {
  at::Tensor cos_N, sin_N;  // rotary tables of each new token's position [N, R/2]
  at::Tensor write_N;  // int64 [N]: pool row (block * block_size + offset) of each new token's K/V
  at::Tensor blocks_BM;        // int64 [B*M]: each row's block table, padded
  int64_t blocks_per_row = 0;  // M
  at::Tensor flat_N;      // int64 [N]: row of each new token in the padded [B*Q] layout; undefined
                          // when that is the identity (N == B*Q, e.g. a decode step)
  at::Tensor masked_BQL;  // bool [B,Q,L]: query (b,q) must NOT attend cached position l
  int64_t num_rows = 0, q_len = 0, kv_len = 0;  // B, Q, L
  // Decode steps on the CPU, or on CUDA under DecodeAttention::kPagedCuda
  // (model/paged_attention.h): attention reads the pool in place by this
  // plan (blocks_BM / masked_BQL are then unused); null: gather the blocks
  // (prefill, CUDA by default).
  std::shared_ptr<const PagedDecodePlan> paged;
  // Several slots with several new tokens (a batched prefill): one step per
  // slot, in call order, each as a call for that slot alone would build it
  // (B = 1, Q = its new tokens, L = its length; the new tokens' rows are
  // consecutive in x_ND).  The token-wise layers still run over all N rows;
  // attention runs per slot, so a sequence's scores and softmax have its own
  // shapes and bits whatever else was prefilled with it (batch invariance,
  // kernels/batch_invariant.h).  Empty: the attention batch above.
  std::vector<CacheStep> per_row;
};

class Attention : public torch::nn::Module {
 public:
  // x_BTD -> [B,T,D]; cos/sin [T, R/2] for positions 0..T-1; causal.
  virtual at::Tensor forward_full(const at::Tensor& x_BTD, const at::Tensor& cos,
                                  const at::Tensor& sin) = 0;
  // x_ND (valid new tokens, flattened) -> [N,D]; writes this layer's K/V for
  // them into `cache` and attends over each slot's cached prefix.
  virtual at::Tensor forward_cached(const at::Tensor& x_ND, const CacheStep& step, KvCache& cache,
                                    int64_t layer) = 0;
};

class GqaAttention : public Attention {
 public:
  GqaAttention(const ModelConfig& cfg, std::shared_ptr<const Rope> rope);
  at::Tensor forward_full(const at::Tensor& x_BTD, const at::Tensor& cos,
                          const at::Tensor& sin) override;
  at::Tensor forward_cached(const at::Tensor& x_ND, const CacheStep& step, KvCache& cache,
                            int64_t layer) override;

 private:
  // proj(x) as [..., heads, Dh], q/k-normed as the config says (norm may be null).
  at::Tensor project(const Linear& proj, const RMSNorm* norm, const at::Tensor& x,
                     int64_t heads) const;
  int64_t H_, Hkv_, Dh_;
  double scale_;
  std::shared_ptr<const Rope> rope_;
  std::shared_ptr<Linear> q_proj_, k_proj_, v_proj_, o_proj_;
  AttentionConfig::QkNorm qk_norm_ = AttentionConfig::QkNorm::kNone;
  std::shared_ptr<RMSNorm> q_norm_, k_norm_;  // "q_norm" / "k_norm" or null
};

class MlaAttention : public Attention {
 public:
  MlaAttention(const ModelConfig& cfg, std::shared_ptr<const Rope> rope);
  at::Tensor forward_full(const at::Tensor& x_BTD, const at::Tensor& cos,
                          const at::Tensor& sin) override;
  // Keys/values stay compressed: kv_b_proj is absorbed into the query
  // (scores against the latent) and into the output.
  at::Tensor forward_cached(const at::Tensor& x_ND, const CacheStep& step, KvCache& cache,
                            int64_t layer) override;

 private:
  at::Tensor query(const at::Tensor& x) const;  // [..., H, Dn + Dr] before RoPE
  int64_t H_, R_, Dn_, Dr_, Dv_;
  double scale_;
  std::shared_ptr<const Rope> rope_;
  std::shared_ptr<Linear> q_proj_, q_a_proj_, q_b_proj_, kv_a_proj_, kv_b_proj_, o_proj_;
  std::shared_ptr<RMSNorm> q_a_norm_, kv_a_norm_;
};

}  // namespace zerorl::model
