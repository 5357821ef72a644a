// Incremental decoding with the KV cache must give the logits of the full
// forward pass (tolerance 1e-5 absolute in fp32: the cache path uses the
// absorbed MLA form and a padded batch, so only summation order differs),
// and route every token to the experts the full forward chooses.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <limits>

#include "core/error.h"
#include "model/model.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

constexpr double kTol = 1e-5;

// Full-forward logits of one sequence [T,V]; with `routing`, also each MoE
// layer's chosen experts [T,K].
at::Tensor full_logits(CausalLM& m, const std::vector<int64_t>& seq,
                       std::vector<at::Tensor>* routing = nullptr) {
  at::NoGradGuard ng;
  ForwardOptions fo;
  fo.record_routing = routing != nullptr;
  at::Tensor out = m.logits(at::tensor(seq, at::kLong).view({1, -1}), fo)[0];
  if (routing) *routing = m.last_routing();
  return out;
}

// The expert set (order within top-k carries no meaning) of row `r`.
at::Tensor expert_set(const at::Tensor& routing_NK, int64_t r) {
  return std::get<0>(routing_NK[r].sort());
}

std::vector<int64_t> random_seq(int64_t n, int64_t V, uint64_t seed) {
  std::vector<int64_t> s;
  uint64_t x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    s.push_back(static_cast<int64_t>((x >> 33) % V));
  }
  return s;
}

// Three sequences of lengths 9, 4, 12 prefilled (3, 1, 6 tokens) into
// `slots` of a cache of `num_slots`, then decoded token by token, each
// finishing at its own step.  With blocks of block_size positions (16: one
// block per sequence; 3: up to 4 blocks each, prefills spanning blocks).
void check_ragged(const ModelConfig& cfg, std::vector<int64_t> slots = {4, 0, 2},
                  int64_t num_slots = 5, at::Device device = at::kCPU,
                  int64_t block_size = KvCache::kDefaultBlockSize) {
  CausalLM m(cfg);
  m.to(device);
  const std::vector<int64_t> lens = {9, 4, 12};
  const std::vector<int64_t> prompt = {3, 1,
                                       6};  // prefill lengths, then decode one token at a time
  std::vector<std::vector<int64_t>> seqs, prompts;
  for (size_t i = 0; i < lens.size(); ++i) {
    seqs.push_back(random_seq(lens[i], cfg.vocab_size, i + 1));
    prompts.emplace_back(seqs[i].begin(), seqs[i].begin() + prompt[i]);
  }
  std::vector<at::Tensor> ref;
  std::vector<std::vector<at::Tensor>> ref_routing(lens.size());  // [seq][moe layer] -> [T,K]
  for (size_t i = 0; i < seqs.size(); ++i) ref.push_back(full_logits(m, seqs[i], &ref_routing[i]));
  const size_t num_moe = m.moe_layers().size();
  ASSERT_GT(num_moe, 0u);
  ForwardOptions rec;
  rec.record_routing = true;
  int64_t routed_checked = 0;

  KvCache cache = m.make_cache(num_slots, 16, block_size);
  at::Tensor first = m.prefill(cache, slots, prompts, rec);
  ASSERT_EQ(first.sizes(), (at::IntArrayRef{3, cfg.vocab_size}));
  ASSERT_EQ(m.last_routing().size(), num_moe);
  int64_t row = 0;  // prefill routing rows: the prompts' tokens in call order
  for (size_t i = 0; i < slots.size(); ++i) {
    EXPECT_EQ(cache.length(slots[i]), prompt[i]);
    double d = (first[i] - ref[i][prompt[i] - 1]).abs().max().item<double>();
    EXPECT_LE(d, kTol) << "prefill slot " << slots[i];
    for (int64_t t = 0; t < prompt[i]; ++t, ++row)
      for (size_t l = 0; l < num_moe; ++l, ++routed_checked)
        EXPECT_TRUE(
            at::equal(expert_set(m.last_routing()[l], row), expert_set(ref_routing[i][l], t)))
            << "prefill slot " << slots[i] << " token " << t << " moe layer " << l;
  }
  EXPECT_EQ(row, m.last_routing()[0].size(0));
  // Decode: each step feeds the next true token of every unfinished sequence.
  double worst = 0;
  for (;;) {
    std::vector<int64_t> active, tok, which;
    for (size_t i = 0; i < slots.size(); ++i) {
      int64_t pos = cache.length(slots[i]);
      if (pos < lens[i])
        active.push_back(slots[i]), tok.push_back(seqs[i][pos]), which.push_back(i);
    }
    if (active.empty()) break;
    at::Tensor lg = m.decode(cache, active, at::tensor(tok, at::kLong), rec);
    for (size_t j = 0; j < active.size(); ++j) {
      int64_t i = which[j], pos = cache.length(active[j]) - 1;
      double d = (lg[j] - ref[i][pos]).abs().max().item<double>();
      worst = std::max(worst, d);
      EXPECT_LE(d, kTol) << "slot " << active[j] << " position " << pos;
      for (size_t l = 0; l < num_moe; ++l, ++routed_checked)
        EXPECT_TRUE(at::equal(expert_set(m.last_routing()[l], static_cast<int64_t>(j)),
                              expert_set(ref_routing[i][l], pos)))
            << "decode slot " << active[j] << " position " << pos << " moe layer " << l;
    }
  }
  // Every token of every sequence, in every MoE layer.
  EXPECT_EQ(routed_checked, static_cast<int64_t>(num_moe) * (9 + 4 + 12));
  std::cout << "[" << arch_name(cfg.arch) << "] max |cached - full| = " << worst << "\n";
}

TEST(KvCache, RaggedDecodeMatchesFullForwardMla) { check_ragged(testing::small_mla_config()); }
TEST(KvCache, RaggedDecodeMatchesFullForwardGqa) { check_ragged(testing::small_gqa_config()); }

TEST(KvCache, RaggedDecodeAcrossBlocksMatchesFullForwardMla) {
  check_ragged(testing::small_mla_config(), {4, 0, 2}, 5, at::kCPU, 3);
}
TEST(KvCache, RaggedDecodeAcrossBlocksMatchesFullForwardGqa) {
  check_ragged(testing::small_gqa_config(), {4, 0, 2}, 5, at::kCPU, 3);
}

// The same on a CUDA device (one block and several per sequence), where the cached path runs
// its ops as CUDA kernels; fp32 without TF32 (libtorch's default), so the
// same 1e-5 bound holds.
TEST(KvCache, RaggedDecodeOnCudaMatchesFullForward) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  for (const ModelConfig& cfg : {testing::small_mla_config(), testing::small_gqa_config()}) {
    check_ragged(cfg, {4, 0, 2}, 5, at::kCUDA);
    check_ragged(cfg, {9, 0, 4}, 12, at::kCUDA, 3);
  }
}

// Slots 9, 0, 4 of 12 (then 9, 4): any slots, in any order.
TEST(KvCache, RaggedDecodeOfSparseSlotsMatchesFullForwardMla) {
  check_ragged(testing::small_mla_config(), {9, 0, 4}, 12);
}
TEST(KvCache, RaggedDecodeOfSparseSlotsMatchesFullForwardGqa) {
  check_ragged(testing::small_gqa_config(), {9, 0, 4}, 12);
}

TEST(KvCache, RaggedDecodeMatchesFullForwardMlaNoQLoraHalfRope) {
  ModelConfig c = testing::small_mla_config();
  c.attn.q_lora_rank = 0;
  c.rope.layout = RopeConfig::Layout::kHalf;
  c.rope.scaling = RopeConfig::Scaling::kLinear;
  c.rope.factor = 2;
  check_ragged(c);
}

TEST(KvCache, CopySlotServesAGroupFromOnePrefill) {
  ModelConfig cfg = testing::small_mla_config();
  CausalLM m(cfg);
  std::vector<int64_t> prompt = random_seq(6, cfg.vocab_size, 42);
  KvCache cache = m.make_cache(4, 7);  // the prompt fills all but one position
  m.prefill(cache, {1}, {prompt});
  {
    KvCache full = m.make_cache(2, 6);  // copying a completely full slot
    m.prefill(full, {0}, {prompt});
    full.copy_slot(0, {1});
    EXPECT_EQ(full.length(1), 6);
  }
  cache.copy_slot(1, {0, 3});
  EXPECT_EQ(cache.length(0), 6);
  EXPECT_EQ(cache.length(3), 6);
  EXPECT_EQ(cache.length(2), 0);
  // Three samples diverge with different next tokens.
  std::vector<int64_t> next = {5, 9, 30};
  at::Tensor lg = m.decode(cache, {0, 1, 3}, at::tensor(next, at::kLong));
  for (int j = 0; j < 3; ++j) {
    std::vector<int64_t> s = prompt;
    s.push_back(next[j]);
    at::Tensor ref = full_logits(m, s)[6];
    EXPECT_LE((lg[j] - ref).abs().max().item<double>(), kTol) << "sample " << j;
  }
  // Reset and reuse a slot for another sequence.
  cache.reset(3);
  EXPECT_EQ(cache.length(3), 0);
  std::vector<int64_t> other = random_seq(3, cfg.vocab_size, 43);
  at::Tensor l2 = m.prefill(cache, {3}, {other});
  EXPECT_LE((l2[0] - full_logits(m, other)[2]).abs().max().item<double>(), kTol);
}

// A group's samples share the prompt's blocks; the first write into the
// shared, partly filled last block copies it, so each sample sees only its
// own token, while the full block stays shared.
void check_shared_prefix(const ModelConfig& cfg) {
  CausalLM m(cfg);
  const std::vector<int64_t> prompt = random_seq(6, cfg.vocab_size, 42);
  KvCache cache = m.make_cache(4, 12, /*block_size=*/4);  // blocks: 4 full + 2 of 4
  m.prefill(cache, {1}, {prompt});
  const std::vector<int64_t> prompt_blocks = cache.block_table(1);
  ASSERT_EQ(prompt_blocks.size(), 2u);
  cache.share_slot(1, {0, 3});
  EXPECT_EQ(cache.num_used_blocks(), 2);  // by reference: no new memory
  for (int64_t b : prompt_blocks) EXPECT_EQ(cache.block_refs(b), 3);
  EXPECT_EQ(cache.length(0), 6);
  EXPECT_EQ(cache.length(3), 6);
  EXPECT_EQ(cache.blocks_to_append({0, 1, 3}, {1, 1, 1}), 2);  // the last sharer writes in place
  // Three samples diverge with different next tokens, then one more each.
  std::vector<std::vector<int64_t>> seqs(3, prompt);
  const std::vector<std::vector<int64_t>> next = {{5, 7}, {9, 1}, {30, 2}};
  const std::vector<int64_t> slots = {0, 1, 3};
  for (int step = 0; step < 2; ++step) {
    std::vector<int64_t> tok;
    for (int j = 0; j < 3; ++j) {
      tok.push_back(next[j][step]);
      seqs[j].push_back(next[j][step]);
    }
    at::Tensor lg = m.decode(cache, slots, at::tensor(tok, at::kLong));
    for (int j = 0; j < 3; ++j) {
      const int64_t pos = static_cast<int64_t>(seqs[j].size()) - 1;
      EXPECT_LE((lg[j] - full_logits(m, seqs[j])[pos]).abs().max().item<double>(), kTol)
          << "sample " << j << " position " << pos;
    }
  }
  EXPECT_EQ(cache.block_refs(prompt_blocks[0]), 3);  // the full block is still shared
  EXPECT_EQ(cache.num_used_blocks(), 4);             // + two copies of the partial block
  // Blocks go back to the pool when their last holder lets go.
  cache.reset(0);
  cache.reset(3);
  EXPECT_EQ(cache.num_used_blocks(), 2);
  EXPECT_EQ(cache.block_refs(prompt_blocks[0]), 1);
  cache.reset(1);
  EXPECT_EQ(cache.num_used_blocks(), 0);
  EXPECT_EQ(cache.peak_used_blocks(), 4);
}
TEST(KvCache, SharedPrefixIsCopiedOnWriteMla) { check_shared_prefix(testing::small_mla_config()); }
TEST(KvCache, SharedPrefixIsCopiedOnWriteGqa) { check_shared_prefix(testing::small_gqa_config()); }

// The pool starts uninitialised (at::empty, so untouched pages cost no
// memory); a block is zeroed when first handed out, because attention over
// a partly filled block multiplies its unwritten positions by 0 (0 x NaN is
// NaN).  Simulated here by filling the pool with NaN: one decode step takes
// a fresh block (slot 2 crosses a block edge) and, after it, a copy-on-write
// target with a higher id (slot 1); every block in use must be finite.
TEST(KvCache, BlocksHandedOutForTheFirstTimeAreZeroed) {
  for (const ModelConfig& cfg : {testing::small_mla_config(), testing::small_gqa_config()}) {
    CausalLM m(cfg);
    KvCache cache = m.make_cache(3, 12, /*block_size=*/4);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int64_t l = 0; l < cache.num_layers(); ++l) {
      cache.a(l).fill_(nan);
      if (cache.b(l).defined()) cache.b(l).fill_(nan);
    }
    m.prefill(cache, {0}, {random_seq(6, cfg.vocab_size, 5)});  // blocks 0, 1 (half)
    cache.share_slot(0, {1});
    m.prefill(cache, {2}, {random_seq(8, cfg.vocab_size, 6)});  // blocks 2, 3
    const at::Tensor lg = m.decode(cache, {2, 1}, at::tensor(std::vector<int64_t>{3, 4}));
    EXPECT_TRUE(at::isfinite(lg).all().item<bool>());
    ASSERT_EQ(cache.block_table(2).back(), 4);  // fresh, taken first
    ASSERT_EQ(cache.block_table(1).back(), 5);  // copy of block 1, taken after
    const at::Tensor used = at::arange(6, at::kLong);
    for (int64_t l = 0; l < cache.num_layers(); ++l) {
      const int64_t dim = cache.is_mla() ? 0 : 1;
      EXPECT_TRUE(at::isfinite(cache.a(l).index_select(dim, used)).all().item<bool>())
          << "layer " << l;
      if (cache.b(l).defined())
        EXPECT_TRUE(at::isfinite(cache.b(l).index_select(dim, used)).all().item<bool>())
            << "layer " << l;
    }
  }
}

TEST(KvCache, AFullPoolThrowsAndLeavesTheCacheUnchanged) {
  ModelConfig cfg = testing::small_mla_config();
  CausalLM m(cfg);
  KvCache cache = m.make_cache(3, 12, /*block_size=*/4, /*num_blocks=*/3);
  m.prefill(cache, {0}, {random_seq(8, cfg.vocab_size, 1)});  // 2 full blocks
  m.prefill(cache, {1}, {random_seq(2, cfg.vocab_size, 2)});  // 1 block, half used
  EXPECT_EQ(cache.num_free_blocks(), 0);
  EXPECT_EQ(cache.blocks_to_append({0, 1}, {1, 1}), 1);
  try {
    m.decode(cache, {0, 1}, at::tensor({1L, 2L}));
    FAIL() << "a step past the pool was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("free blocks"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.length(0), 8);
  EXPECT_EQ(cache.length(1), 2);
  EXPECT_EQ(cache.num_free_blocks(), 0);
  m.decode(cache, {1}, at::tensor({2L}));  // fits in slot 1's own block
  EXPECT_EQ(cache.length(1), 3);
  // Copies need blocks too; sharing does not.
  EXPECT_THROW(cache.copy_slot(1, {2}), Error);
  EXPECT_EQ(cache.length(2), 0);
  cache.share_slot(1, {2});
  EXPECT_EQ(cache.length(2), 3);
  EXPECT_EQ(cache.num_free_blocks(), 0);
  // A dst's own blocks are given back first: slot 0's two make room.
  cache.copy_slot(1, {0});
  EXPECT_EQ(cache.length(0), 3);
  EXPECT_EQ(cache.num_free_blocks(), 1);
}

TEST(KvCache, BadCallsThrowAndLeaveTheCacheUnchanged) {
  ModelConfig cfg = testing::small_gqa_config();
  CausalLM m(cfg);
  KvCache cache = m.make_cache(2, 5);
  m.prefill(cache, {0}, {{1, 2, 3, 4}});
  EXPECT_THROW(m.prefill(cache, {0}, {{1, 2}}), Error);                // would exceed max_len 5
  EXPECT_THROW(m.decode(cache, {1, 1}, at::tensor({1L, 2L})), Error);  // slot twice
  EXPECT_THROW(m.decode(cache, {2}, at::tensor({1L})), Error);         // no such slot
  EXPECT_THROW(m.decode(cache, {1}, at::tensor({99L})), Error);        // id >= vocab
  EXPECT_THROW(m.prefill(cache, {1}, {{}}), Error);                    // empty prompt
  EXPECT_THROW(m.make_cache(1, cfg.max_position + 1), Error);
  EXPECT_EQ(cache.length(0), 4);
  EXPECT_EQ(cache.length(1), 0);
  try {
    m.prefill(cache, {0}, {{1, 2}});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_len"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zerorl::model
