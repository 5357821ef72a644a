// KvCache: per-layer key/value storage for incremental decoding, organised as
// a fixed number of slots (one sequence each) of a fixed maximum length.
//
// What is stored, per layer (the layouts let attention read a run of slots
// in place, as one strided batch of matrices, without gathering them):
//   * GQA/MHA:  k [S, Hkv, L, Dh] and v [S, Hkv, L, Dh]  (RoPE already applied to k)
//   * MLA:      one tensor [S, L, kv_lora_rank + qk_rope_head_dim]: the
//               compressed latent c (after kv_a_layernorm) followed by the
//               shared rotary key k_rope (RoPE applied).
//               Keys/values are never expanded per head in the cache; the
//               model absorbs kv_b_proj into the query/output instead.
// S = num_slots, L = max_len.  Memory is allocated once, in the constructor,
// on the given device with the given dtype (normally the model's dtype).
//
// Slot bookkeeping is host-side: length(slot) is the number of tokens whose
// keys/values are stored; the next token fed to a slot takes position
// length(slot).  The model's prefill()/decode() (model/model.h) append to
// slots and advance their lengths; this class only manages slots:
//   * reset(slot): forget a slot's contents (length -> 0; no memory is freed).
//   * copy_slot(src, dsts): give each dst an exact copy of src's first
//     length(src) positions (all layers) and the same length.  A prompt
//     prefilled once then serves its G samples: prefill slot g*G, copy to the
//     other G-1 slots of the group, decode all of them.
//
// Typical rollout loop (G samples of each of P prompts, S = P*G slots):
//   auto cache = model->make_cache(P * G, max_prompt + max_new);
//   auto logits_PV = model->prefill(cache, first_slots, prompt_ids);   // one per prompt
//   for (p) cache.copy_slot(first_slots[p], other_slots_of(p));
//   next_S = sample(logits of each slot);                                  // rollout's job
//   while (!active.empty()) {
//     auto logits_AV = model->decode(cache, active, next_A);            // each at its own position
//     ...; drop finished slots from `active` (their contents stay until reset)
//   }
//
// Errors: out-of-range slots, a slot listed twice in one call, or a step that
// would exceed max_len throw zerorl::Error naming the slot and lengths, and
// leave the cache unchanged.
// Threads: not thread-safe; use one cache per generating thread.  Device
// work is issued on the current stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace zerorl::model {

class KvCache {
 public:
  // Allocates all layers for `cfg`.  max_len must be <= cfg.max_position.
  KvCache(const ModelConfig& cfg, int64_t num_slots, int64_t max_len,
          const at::TensorOptions& options);

  int64_t num_slots() const { return num_slots_; }
  int64_t max_len() const { return max_len_; }
  int64_t num_layers() const { return static_cast<int64_t>(a_.size()); }
  bool is_mla() const { return mla_; }
  int64_t length(int64_t slot) const;
  const std::vector<int64_t>& lengths() const { return lengths_; }
  // Bytes of device memory held.
  int64_t bytes() const;

  void reset(int64_t slot);
  void reset_all();
  void copy_slot(int64_t src, const std::vector<int64_t>& dsts);

  // ---- used by the model (model/attention.cpp); not for rollout code ----
  // Layer storage: GQA: a = k [S,Hkv,L,Dh], b = v [S,Hkv,L,Dh];
  //                MLA: a = latent ++ k_rope [S,L,R+Dr], b undefined.
  at::Tensor& a(int64_t layer) { return a_.at(layer); }
  at::Tensor& b(int64_t layer) { return b_.at(layer); }
  // The dimension of a()/b() that indexes positions (MLA 1, GQA 2).
  int64_t pos_dim() const { return mla_ ? 1 : 2; }
  // Check slots are valid and distinct and that adding n[i] tokens fits;
  // throws otherwise.
  void check_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) const;
  void advance(const std::vector<int64_t>& slots, const std::vector<int64_t>& n);

 private:
  void check_slot(int64_t slot) const;
  int64_t num_slots_ = 0, max_len_ = 0;
  bool mla_ = false;
  std::vector<at::Tensor> a_, b_;
  std::vector<int64_t> lengths_;
};

}  // namespace zerorl::model
