#include "model/kv_cache.h"

#include <ATen/ATen.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "core/error.h"

#ifdef ZERORL_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace zerorl::model {

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

int64_t KvCache::block_bytes(const ModelConfig& cfg, int64_t block_size, at::ScalarType dtype) {
  const auto& a = cfg.attn;
  const int64_t per_token = a.kind == AttentionConfig::Kind::kMla
                                ? a.kv_lora_rank + a.qk_rope_head_dim
                                : 2 * a.num_kv_heads * a.head_dim;
  return cfg.num_layers * block_size * per_token * static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t KvCache::free_device_bytes(const at::Device& device) {
  if (device.is_cuda()) {
#ifdef ZERORL_WITH_CUDA
    size_t free_bytes = 0, total_bytes = 0;
    ZR_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess,
             "KvCache: cudaMemGetInfo failed: cannot size the KV cache pool");
    return static_cast<int64_t>(free_bytes);
#else
    return 0;
#endif
  }
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream ss(line.substr(13));
    int64_t kib = 0;
    ss >> kib;
    return kib * 1024;
  }
  return 0;
}

KvCache::KvCache(const ModelConfig& cfg, int64_t num_slots, int64_t max_len,
                 const at::TensorOptions& options, int64_t block_size, int64_t num_blocks,
                 bool scratch_block)
    : max_len_(max_len),
      block_size_(block_size),
      mla_(cfg.attn.kind == AttentionConfig::Kind::kMla) {
  ZR_CHECK(num_slots > 0, "KvCache: num_slots must be > 0, got ", num_slots);
  ZR_CHECK(max_len > 0 && max_len <= cfg.max_position,
           "KvCache: max_len must be in [1, max_position_embeddings=", cfg.max_position, "], got ",
           max_len);
  ZR_CHECK(block_size > 0, "KvCache: block_size must be > 0, got ", block_size);
  ZR_CHECK(num_blocks >= 0, "KvCache: num_blocks must be >= 0 (0: enough for every slot), got ",
           num_blocks);
  if (num_blocks == 0) num_blocks = num_slots * ceil_div(max_len, block_size);
  const auto& a = cfg.attn;
  const int64_t pool_blocks = num_blocks + (scratch_block ? 1 : 0);
  // at::empty: pages of the pool that no block has used are never touched
  // (zero_fresh zeroes a block when it is first handed out), so on the CPU
  // the memory held follows the blocks in use.
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    if (mla_) {
      a_.push_back(
          at::empty({pool_blocks, block_size, a.kv_lora_rank + a.qk_rope_head_dim}, options));
      b_.emplace_back();
    } else {
      a_.push_back(at::empty({a.num_kv_heads, pool_blocks, block_size, a.head_dim}, options));
      b_.push_back(at::empty({a.num_kv_heads, pool_blocks, block_size, a.head_dim}, options));
    }
  }
  bytes_per_block_ = block_bytes(cfg, block_size, options.dtype().toScalarType());
  tables_.resize(static_cast<size_t>(num_slots));
  lengths_.assign(static_cast<size_t>(num_slots), 0);
  refs_.assign(static_cast<size_t>(num_blocks), 0);
  for (int64_t b = 0; b < num_blocks; ++b) free_.insert(free_.end(), b);
  if (scratch_block) {
    scratch_block_ = num_blocks;
    for (size_t l = 0; l < a_.size(); ++l) {
      if (mla_) {
        a_[l][scratch_block_].zero_();
      } else {
        a_[l].select(1, scratch_block_).zero_();
        b_[l].select(1, scratch_block_).zero_();
      }
    }
  }
}

void KvCache::check_slot(int64_t slot) const {
  ZR_CHECK(slot >= 0 && slot < num_slots(), "KvCache: slot ", slot, " out of range [0, ",
           num_slots(), ")");
}

int64_t KvCache::length(int64_t slot) const {
  check_slot(slot);
  return lengths_[static_cast<size_t>(slot)];
}

const std::vector<int64_t>& KvCache::block_table(int64_t slot) const {
  check_slot(slot);
  return tables_[static_cast<size_t>(slot)];
}

int64_t KvCache::block_refs(int64_t block) const {
  ZR_CHECK(block >= 0 && block < num_blocks(), "KvCache: block ", block, " out of range [0, ",
           num_blocks(), ")");
  return refs_[static_cast<size_t>(block)];
}

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (size_t l = 0; l < a_.size(); ++l)
    n += a_[l].nbytes() + (b_[l].defined() ? b_[l].nbytes() : 0);
  return n;
}

int64_t KvCache::take_block() {
  ZR_CHECK(!free_.empty(), "KvCache: internal error, no free block");
  const int64_t b = *free_.begin();
  free_.erase(free_.begin());
  refs_[static_cast<size_t>(b)] = 1;
  peak_used_ = std::max(peak_used_, num_used_blocks());
  return b;
}

void KvCache::release(int64_t slot) {
  for (int64_t b : tables_[static_cast<size_t>(slot)])
    if (--refs_[static_cast<size_t>(b)] == 0) free_.insert(b);
  tables_[static_cast<size_t>(slot)].clear();
  lengths_[static_cast<size_t>(slot)] = 0;
}

void KvCache::reset(int64_t slot) {
  check_slot(slot);
  release(slot);
}

void KvCache::reset_all() {
  for (int64_t s = 0; s < num_slots(); ++s) release(s);
}

void KvCache::clear() {
  reset_all();
  never_used_ = 0;
  peak_used_ = 0;
}

void KvCache::zero_fresh(const std::vector<int64_t>& blocks) {
  std::vector<int64_t> fresh;
  for (int64_t b : blocks)
    if (b >= never_used_) fresh.push_back(b);
  for (int64_t b : blocks) never_used_ = std::max(never_used_, b + 1);
  if (fresh.empty()) return;
  const at::Tensor idx = at::tensor(fresh, at::kLong).to(a_[0].device());
  for (size_t l = 0; l < a_.size(); ++l) {
    if (mla_) {
      a_[l].index_fill_(0, idx, 0);
    } else {
      a_[l].index_fill_(1, idx, 0);
      b_[l].index_fill_(1, idx, 0);
    }
  }
}

void KvCache::copy_blocks(const std::vector<int64_t>& src, const std::vector<int64_t>& dst) {
  zero_fresh(dst);
  if (src.empty()) return;
  const at::Device dev = a_[0].device();
  const at::Tensor s = at::tensor(src, at::kLong).to(dev), d = at::tensor(dst, at::kLong).to(dev);
  const int64_t dim = mla_ ? 0 : 1;
  for (size_t l = 0; l < a_.size(); ++l)
    for (at::Tensor* t : {&a_[l], &b_[l]})
      if (t->defined()) t->index_copy_(dim, d, t->index_select(dim, s));
}

void KvCache::share_slot(int64_t src, const std::vector<int64_t>& dsts) {
  check_slot(src);
  for (int64_t d : dsts) check_slot(d);
  const size_t s = static_cast<size_t>(src);
  const int64_t n = lengths_[s];
  // Blocks reserved past the length (a reserve_append not advanced) stay src's own.
  const std::vector<int64_t> shared(tables_[s].begin(),
                                    tables_[s].begin() + ceil_div(n, block_size_));
  for (int64_t d : dsts) {
    if (d == src) continue;
    release(d);
    for (int64_t b : shared) ++refs_[static_cast<size_t>(b)];
    tables_[static_cast<size_t>(d)] = shared;
    lengths_[static_cast<size_t>(d)] = n;
  }
}

void KvCache::copy_slot(int64_t src, const std::vector<int64_t>& dsts) {
  check_slot(src);
  for (int64_t d : dsts) check_slot(d);
  const size_t s = static_cast<size_t>(src);
  const int64_t n = lengths_[s], nb = ceil_div(n, block_size_);
  std::set<int64_t> distinct;
  int64_t freed = 0;  // blocks the dsts' own contents give back
  std::map<int64_t, int64_t> drop;
  for (int64_t d : dsts) {
    if (d == src || !distinct.insert(d).second) continue;
    for (int64_t b : tables_[static_cast<size_t>(d)]) ++drop[b];
  }
  for (const auto& [b, k] : drop) freed += refs_[static_cast<size_t>(b)] == k;
  const int64_t need = nb * static_cast<int64_t>(distinct.size());
  ZR_CHECK(need <= num_free_blocks() + freed, "KvCache: copying slot ", src, " (", nb,
           " blocks) to ", distinct.size(), " slots needs ", need, " blocks; ", num_free_blocks(),
           " of ", num_blocks(), " are free");
  std::vector<int64_t> from, to;
  for (int64_t d : distinct) {
    release(d);
    std::vector<int64_t>& t = tables_[static_cast<size_t>(d)];
    for (int64_t i = 0; i < nb; ++i) {
      t.push_back(take_block());
      from.push_back(tables_[s][static_cast<size_t>(i)]);
      to.push_back(t.back());
    }
    lengths_[static_cast<size_t>(d)] = n;
  }
  copy_blocks(from, to);
}

int64_t KvCache::blocks_to_append(const std::vector<int64_t>& slots,
                                  const std::vector<int64_t>& n) const {
  // A shared block stops being shared once all but one of its holders have
  // copied it: count the copies in call order, as reserve_append makes them.
  std::map<int64_t, int64_t> copied;
  int64_t need = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const size_t s = static_cast<size_t>(slots[i]);
    const int64_t len = lengths_[s];
    const std::vector<int64_t>& t = tables_[s];
    if (len % block_size_ != 0) {
      const int64_t last = t[static_cast<size_t>(len / block_size_)];
      if (refs_[static_cast<size_t>(last)] - copied[last] > 1) {
        ++copied[last];
        ++need;
      }
    }
    need +=
        std::max<int64_t>(0, ceil_div(len + n[i], block_size_) - static_cast<int64_t>(t.size()));
  }
  return need;
}

void KvCache::check_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) const {
  ZR_CHECK(slots.size() == n.size(), "KvCache: ", slots.size(), " slots but ", n.size(),
           " token counts");
  std::set<int64_t> seen;
  for (size_t i = 0; i < slots.size(); ++i) {
    check_slot(slots[i]);
    ZR_CHECK(seen.insert(slots[i]).second, "KvCache: slot ", slots[i], " listed twice in one step");
    ZR_CHECK(n[i] >= 1, "KvCache: slot ", slots[i], " gets no tokens");
    const int64_t len = lengths_[static_cast<size_t>(slots[i])];
    ZR_CHECK(len + n[i] <= max_len_, "KvCache: slot ", slots[i], " holds ", len, " tokens; adding ",
             n[i], " exceeds max_len ", max_len_);
  }
  const int64_t need = blocks_to_append(slots, n);
  ZR_CHECK(need <= num_free_blocks(), "KvCache: the step needs ", need, " free blocks of ",
           block_size_, " positions; ", num_free_blocks(), " of ", num_blocks(),
           " are free (the caller schedules sequences within the pool)");
}

void KvCache::reserve_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) {
  std::vector<int64_t> from, to, fresh;
  for (size_t i = 0; i < slots.size(); ++i) {
    const size_t s = static_cast<size_t>(slots[i]);
    const int64_t len = lengths_[s];
    std::vector<int64_t>& t = tables_[s];
    if (len % block_size_ != 0) {
      int64_t& last = t[static_cast<size_t>(len / block_size_)];
      if (refs_[static_cast<size_t>(last)] > 1) {  // copy on write
        --refs_[static_cast<size_t>(last)];
        from.push_back(last);
        last = take_block();
        to.push_back(last);
      }
    }
    while (static_cast<int64_t>(t.size()) < ceil_div(len + n[i], block_size_)) {
      t.push_back(take_block());
      fresh.push_back(t.back());
    }
  }
  // One zero_fresh over every block taken here, before the copies: blocks
  // are taken lowest first, so the high-water mark holds only if it moves
  // once per batch of takes.  (Zeroing the copies' targets first moved it
  // past a fresh block taken before them, which then kept uninitialised
  // memory: NaN logits in cli.python.hf_moe_recipe, fixed at 608255c by
  // zeroing the whole pool up front.)
  std::vector<int64_t> taken = to;
  taken.insert(taken.end(), fresh.begin(), fresh.end());
  zero_fresh(taken);
  copy_blocks(from, to);
}

void KvCache::advance(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) {
  for (size_t i = 0; i < slots.size(); ++i) lengths_[static_cast<size_t>(slots[i])] += n[i];
}

}  // namespace zerorl::model
