// The tiny policy every test folder starts from (tests/model, tests/rollout,
// tests/trainer): one builder per attention kind, sized by vocabulary and
// width.  A folder's own configs (tests/model/test_util.h's small_*_config,
// tests/trainer/tiny_run.h's policy, routing_replay_test.cpp's) are one of
// these with the few fields they exercise changed, so a field of ModelConfig
// is set for tests in one place.  Header-only; test code only.
#pragma once

#include <cstdint>
#include <memory>

#include "model/config.h"
#include "model/model.h"

namespace zerorl::test {

// What the two tiny models share: 2 layers, 256 positions, 4 attention
// heads; 4 routed experts top-2 and a shared expert, each hidden/2 wide, a
// dense MLP (where a layer has one) hidden wide.  init_std 0.15: weights
// large enough that the next-token distributions are far from uniform.
inline model::ModelConfig tiny_config(model::Arch arch, model::AttentionConfig::Kind attention,
                                      int64_t vocab, int64_t hidden) {
  model::ModelConfig c;
  c.arch = arch;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.num_layers = 2;
  c.max_position = 256;
  c.attn.kind = attention;
  c.attn.num_heads = 4;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_intermediate = hidden / 2;
  c.moe.shared_intermediate = hidden / 2;
  c.moe.dense_intermediate = hidden;
  c.init_std = 0.15;
  return c;
}

// DeepSeek-V3 shaped (sigmoid scores, balancing bias, normalised top-k):
// MLA with no q low-rank, kv_lora_rank hidden/2, nope and v head dims
// hidden/4, rope 8; every layer MoE.
inline model::ModelConfig tiny_mla_config(int64_t vocab = 64, int64_t hidden = 64) {
  model::ModelConfig c =
      tiny_config(model::Arch::kDeepseekV3, model::AttentionConfig::Kind::kMla, vocab, hidden);
  c.attn.q_lora_rank = 0;
  c.attn.kv_lora_rank = hidden / 2;
  c.attn.qk_nope_head_dim = hidden / 4;
  c.attn.qk_rope_head_dim = 8;
  c.attn.v_head_dim = hidden / 4;
  c.moe.first_k_dense_replace = 0;
  c.seed = 3;
  return c;
}

// Qwen2-MoE shaped (softmax scores, no bias, no renormalisation, a
// sigmoid-gated shared expert): GQA with 2 KV heads of hidden/4, q/k/v
// bias, half-split RoPE; layer 0 dense, layer 1 MoE.
inline model::ModelConfig tiny_gqa_config(int64_t vocab = 64, int64_t hidden = 64) {
  model::ModelConfig c =
      tiny_config(model::Arch::kQwen2Moe, model::AttentionConfig::Kind::kGqa, vocab, hidden);
  c.attn.num_kv_heads = 2;
  c.attn.head_dim = hidden / 4;
  c.attn.qkv_bias = true;
  c.rope.layout = model::RopeConfig::Layout::kHalf;
  c.moe.shared_expert_gate = true;
  c.moe.sigmoid_scoring = false;
  c.moe.score_bias = false;
  c.moe.norm_topk_prob = false;
  c.moe.first_k_dense_replace = 1;
  c.seed = 4;
  return c;
}

// The model of `c` with its seeded random weights, in eval mode.
inline std::shared_ptr<model::CausalLM> make_policy(const model::ModelConfig& c) {
  auto m = std::make_shared<model::CausalLM>(c);
  m->eval();
  return m;
}

}  // namespace zerorl::test
