// Incremental decoding with the KV cache must give the logits of the full
// forward pass (tolerance 1e-5 absolute in fp32: the cache path uses the
// absorbed MLA form and a padded batch, so only summation order differs).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/model.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

constexpr double kTol = 1e-5;

// Full-forward logits of one sequence [T,V].
at::Tensor full_logits(CausalLM& m, const std::vector<int64_t>& seq) {
  at::NoGradGuard ng;
  return m.logits(at::tensor(seq, at::kLong).view({1, -1}))[0];
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

void check_ragged(const ModelConfig& cfg) {
  CausalLM m(cfg);
  const std::vector<int64_t> lens = {9, 4, 12};
  const std::vector<int64_t> prompt = {3, 1,
                                       6};       // prefill lengths, then decode one token at a time
  const std::vector<int64_t> slots = {4, 0, 2};  // deliberately not 0..n-1
  std::vector<std::vector<int64_t>> seqs, prompts;
  for (size_t i = 0; i < lens.size(); ++i) {
    seqs.push_back(random_seq(lens[i], cfg.vocab_size, i + 1));
    prompts.emplace_back(seqs[i].begin(), seqs[i].begin() + prompt[i]);
  }
  std::vector<at::Tensor> ref;
  for (auto& s : seqs) ref.push_back(full_logits(m, s));

  KvCache cache = m.make_cache(5, 16);
  at::Tensor first = m.prefill(cache, slots, prompts);
  ASSERT_EQ(first.sizes(), (at::IntArrayRef{3, cfg.vocab_size}));
  for (size_t i = 0; i < slots.size(); ++i) {
    EXPECT_EQ(cache.length(slots[i]), prompt[i]);
    double d = (first[i] - ref[i][prompt[i] - 1]).abs().max().item<double>();
    EXPECT_LE(d, kTol) << "prefill slot " << slots[i];
  }
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
    at::Tensor lg = m.decode(cache, active, at::tensor(tok, at::kLong));
    for (size_t j = 0; j < active.size(); ++j) {
      int64_t i = which[j], pos = cache.length(active[j]) - 1;
      double d = (lg[j] - ref[i][pos]).abs().max().item<double>();
      worst = std::max(worst, d);
      EXPECT_LE(d, kTol) << "slot " << active[j] << " position " << pos;
    }
  }
  std::cout << "[" << arch_name(cfg.arch) << "] max |cached - full| = " << worst << "\n";
}

TEST(KvCache, RaggedDecodeMatchesFullForwardMla) { check_ragged(testing::small_mla_config()); }
TEST(KvCache, RaggedDecodeMatchesFullForwardGqa) { check_ragged(testing::small_gqa_config()); }

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
