#include "model/kv_cache.h"

#include <ATen/ATen.h>

#include <set>

#include "core/error.h"

namespace zerorl::model {

KvCache::KvCache(const ModelConfig& cfg, int64_t num_slots, int64_t max_len,
                 const at::TensorOptions& options)
    : num_slots_(num_slots), max_len_(max_len), mla_(cfg.attn.kind == AttentionConfig::Kind::kMla) {
  ZR_CHECK(num_slots > 0, "KvCache: num_slots must be > 0, got ", num_slots);
  ZR_CHECK(max_len > 0 && max_len <= cfg.max_position,
           "KvCache: max_len must be in [1, max_position_embeddings=", cfg.max_position, "], got ",
           max_len);
  const auto& a = cfg.attn;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    if (mla_) {
      a_.push_back(at::zeros({num_slots, max_len, a.kv_lora_rank + a.qk_rope_head_dim}, options));
      b_.emplace_back();
    } else {
      a_.push_back(at::zeros({num_slots, a.num_kv_heads, max_len, a.head_dim}, options));
      b_.push_back(at::zeros({num_slots, a.num_kv_heads, max_len, a.head_dim}, options));
    }
  }
  lengths_.assign(num_slots, 0);
}

void KvCache::check_slot(int64_t slot) const {
  ZR_CHECK(slot >= 0 && slot < num_slots_, "KvCache: slot ", slot, " out of range [0, ", num_slots_,
           ")");
}

int64_t KvCache::length(int64_t slot) const {
  check_slot(slot);
  return lengths_[slot];
}

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (size_t l = 0; l < a_.size(); ++l)
    n += a_[l].nbytes() + (b_[l].defined() ? b_[l].nbytes() : 0);
  return n;
}

void KvCache::reset(int64_t slot) {
  check_slot(slot);
  lengths_[slot] = 0;
}

void KvCache::reset_all() { lengths_.assign(num_slots_, 0); }

void KvCache::copy_slot(int64_t src, const std::vector<int64_t>& dsts) {
  check_slot(src);
  for (int64_t d : dsts) check_slot(d);
  const int64_t n = lengths_[src];
  if (n > 0) {
    for (size_t l = 0; l < a_.size(); ++l) {
      for (at::Tensor* t : {&a_[l], &b_[l]}) {
        if (!t->defined()) continue;
        const at::Tensor rows = t->select(0, src).narrow(pos_dim() - 1, 0, n);
        for (int64_t d : dsts)
          if (d != src) t->select(0, d).narrow(pos_dim() - 1, 0, n).copy_(rows);
      }
    }
  }
  for (int64_t d : dsts) lengths_[d] = n;
}

void KvCache::check_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) const {
  ZR_CHECK(slots.size() == n.size(), "KvCache: ", slots.size(), " slots but ", n.size(),
           " token counts");
  std::set<int64_t> seen;
  for (size_t i = 0; i < slots.size(); ++i) {
    check_slot(slots[i]);
    ZR_CHECK(seen.insert(slots[i]).second, "KvCache: slot ", slots[i], " listed twice in one step");
    ZR_CHECK(n[i] >= 1, "KvCache: slot ", slots[i], " gets no tokens");
    ZR_CHECK(lengths_[slots[i]] + n[i] <= max_len_, "KvCache: slot ", slots[i], " holds ",
             lengths_[slots[i]], " tokens; adding ", n[i], " exceeds max_len ", max_len_);
  }
}

void KvCache::advance(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) {
  for (size_t i = 0; i < slots.size(); ++i) lengths_[slots[i]] += n[i];
}

}  // namespace zerorl::model
