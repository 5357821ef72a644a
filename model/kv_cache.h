// KvCache: paged key/value storage for incremental decoding.
//
// Memory is one pool of fixed-size blocks, each holding block_size token
// positions of every layer; it is allocated once, in the constructor, on the
// given device with the given dtype (normally the model's).  A sequence lives
// in a "slot": a block table (the pool blocks holding its positions 0, bs,
// 2bs, ... in order) and a length.  Slots cost no cache memory of their own,
// so what is held grows with the tokens in flight, not slots x max length:
//   * GQA/MHA: k and v pools [Hkv, NB, bs, Dh]  (RoPE already applied to k)
//   * MLA:     one pool [NB, bs, kv_lora_rank + qk_rope_head_dim]: the
//              compressed latent c (after kv_a_layernorm) followed by the
//              shared rotary key k_rope (RoPE applied).  Keys/values are never
//              expanded per head; the model absorbs kv_b_proj instead.
// NB = num_blocks, bs = block_size.  Attention reads the blocks in place (CPU
// decode: model/paged_attention.h) or gathers them (attention.cpp); writes go to
// block_table[pos / bs] * bs + pos % bs of the pool viewed as [NB * bs, ...].
//
// Blocks are reference counted.  share_slot(src, dsts) gives each dst src's
// blocks by reference (a group's G samples point at one prefilled prompt);
// the first append into a shared, partly filled last block copies that block
// first (copy on write), so a sample never sees a sibling's tokens.  Full
// shared blocks are only ever read.  copy_slot does the same with private
// copies (the comparison "sharing off").  A block whose count drops to zero
// returns to the free list; the lowest free block is handed out first, so
// the touched part of the pool stays compact (on the CPU untouched pages of
// the pool are never faulted in).  A block handed out for the first time is
// zeroed (masked positions must hold finite values: 0 x NaN is NaN).
//
// Scheduling is the caller's: blocks_to_append says how many free blocks a
// step would take, and a step the pool cannot hold throws (it never evicts
// anything itself).  The model's prefill()/decode() (model/model.h) append to
// slots and advance their lengths:
//   check_append -> reserve_append (allocate, copy on write) -> attention
//   writes and reads -> advance.
//
// Errors: out-of-range slots, a slot listed twice in one call, a step that
// would exceed max_len, or one that needs more free blocks than there are,
// throw zerorl::Error naming the slot, lengths and blocks, and leave the
// cache unchanged.
// Threads: not thread-safe; use one cache per generating thread.  Device
// work is issued on the current stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <set>
#include <vector>

#include "model/config.h"

namespace zerorl::model {

class KvCache {
 public:
  static constexpr int64_t kDefaultBlockSize = 16;  // vLLM's default

  // Bytes one block of `cfg` takes at `dtype`, all layers.
  static int64_t block_bytes(const ModelConfig& cfg, int64_t block_size, at::ScalarType dtype);
  // Device memory free now: CUDA cudaMemGetInfo's free bytes; CPU the
  // kernel's MemAvailable (/proc/meminfo), 0 where unknown.
  static int64_t free_device_bytes(const at::Device& device);

  // num_slots sequences of at most max_len (<= cfg.max_position) positions
  // each, over a pool of num_blocks blocks of block_size positions;
  // num_blocks 0: num_slots * ceil(max_len / block_size), which never runs out.
  // scratch_block: the pools get one more block (zeroed, never handed out,
  // not counted in num_blocks()) for the writes of a static decode step's
  // padding rows and its padded block tables (model/static_decode.h).
  KvCache(const ModelConfig& cfg, int64_t num_slots, int64_t max_len,
          const at::TensorOptions& options, int64_t block_size = kDefaultBlockSize,
          int64_t num_blocks = 0, bool scratch_block = false);

  int64_t num_slots() const { return static_cast<int64_t>(tables_.size()); }
  int64_t max_len() const { return max_len_; }
  int64_t num_layers() const { return static_cast<int64_t>(a_.size()); }
  bool is_mla() const { return mla_; }
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return static_cast<int64_t>(refs_.size()); }
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // The scratch block's index (== num_blocks()), or -1 without one.
  int64_t scratch_block() const { return scratch_block_; }
  // Most blocks in use at once since construction or reset_peak().
  int64_t peak_used_blocks() const { return peak_used_; }
  void reset_peak() { peak_used_ = num_used_blocks(); }
  int64_t length(int64_t slot) const;
  const std::vector<int64_t>& lengths() const { return lengths_; }
  // The pool blocks holding slot's positions, in order (ceil(length / bs)
  // of them, or more after a reserve_append not yet advanced).
  const std::vector<int64_t>& block_table(int64_t slot) const;
  // How many slots' tables hold `block`.
  int64_t block_refs(int64_t block) const;
  // Bytes of device memory the pool holds (reserved at construction), and
  // one block's share of it.
  int64_t bytes() const;
  int64_t bytes_per_block() const { return bytes_per_block_; }

  // Free blocks that appending n[i] tokens to each slots[i] would take, in
  // this order (new blocks plus copies of shared, partly filled last blocks).
  int64_t blocks_to_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) const;

  // Forget a slot's contents: its blocks' counts drop, length -> 0.
  void reset(int64_t slot);
  void reset_all();
  // reset_all(), and every block counts as never used again (zeroed when
  // next handed out), the peak restarts: the pool as new, at the same
  // addresses (a cache kept across rollouts for captured decode graphs).
  void clear();
  // Each dst (!= src) forgets its contents and gets src's first length(src)
  // positions, all layers, and its length: by reference (share_slot, no
  // memory) or as private copies (copy_slot, ceil(length / bs) free blocks
  // per dst; throws when the pool lacks them, leaving the cache unchanged).
  void share_slot(int64_t src, const std::vector<int64_t>& dsts);
  void copy_slot(int64_t src, const std::vector<int64_t>& dsts);

  // ---- used by the model (model/model.cpp, attention.cpp); not for rollout code ----
  // Layer pools: GQA: a = k [Hkv,NB,bs,Dh], b = v [Hkv,NB,bs,Dh];
  //              MLA: a = latent ++ k_rope [NB,bs,R+Dr], b undefined.
  at::Tensor& a(int64_t layer) { return a_.at(static_cast<size_t>(layer)); }
  at::Tensor& b(int64_t layer) { return b_.at(static_cast<size_t>(layer)); }
  // Check slots are valid and distinct, that adding n[i] tokens fits max_len
  // and that the pool has the blocks; throws otherwise.
  void check_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n) const;
  // Give each slot the blocks its next n[i] positions go to (copying a
  // shared, partly filled last block first).  Call after check_append.
  void reserve_append(const std::vector<int64_t>& slots, const std::vector<int64_t>& n);
  void advance(const std::vector<int64_t>& slots, const std::vector<int64_t>& n);

 private:
  void check_slot(int64_t slot) const;
  int64_t take_block();
  void release(int64_t slot);
  // Copy blocks src[i] -> dst[i] (all layers) and zero the never-used ones.
  void copy_blocks(const std::vector<int64_t>& src, const std::vector<int64_t>& dst);
  void zero_fresh(const std::vector<int64_t>& blocks);

  int64_t max_len_ = 0, block_size_ = 0, bytes_per_block_ = 0;
  bool mla_ = false;
  std::vector<at::Tensor> a_, b_;
  std::vector<std::vector<int64_t>> tables_;
  std::vector<int64_t> lengths_;
  std::vector<int64_t> refs_;
  std::set<int64_t> free_;
  int64_t never_used_ = 0;  // blocks >= this have never been handed out
  int64_t scratch_block_ = -1;
  int64_t peak_used_ = 0;
};

}  // namespace zerorl::model
