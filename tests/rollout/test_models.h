// Small random policies for the rollout tests: both supported architectures,
// with MoE layers (so routing matters), weights large enough (init_std 0.15)
// that the next-token distributions are far from uniform.
#pragma once

#include <memory>

#include "model/config.h"
#include "model/model.h"

namespace zerorl::rollout::testing {

inline model::ModelConfig tiny_mla_config(int64_t vocab = 64) {
  model::ModelConfig c;
  c.arch = model::Arch::kDeepseekV3;
  c.vocab_size = vocab;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.max_position = 256;
  c.attn.kind = model::AttentionConfig::Kind::kMla;
  c.attn.num_heads = 4;
  c.attn.q_lora_rank = 0;
  c.attn.kv_lora_rank = 32;
  c.attn.qk_nope_head_dim = 16;
  c.attn.qk_rope_head_dim = 8;
  c.attn.v_head_dim = 16;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_intermediate = 32;
  c.moe.shared_intermediate = 32;
  c.moe.dense_intermediate = 64;
  c.moe.first_k_dense_replace = 0;
  c.init_std = 0.15;
  c.seed = 3;
  return c;
}

inline model::ModelConfig tiny_qwen_config(int64_t vocab = 64) {
  model::ModelConfig c;
  c.arch = model::Arch::kQwen2Moe;
  c.vocab_size = vocab;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.max_position = 256;
  c.attn.kind = model::AttentionConfig::Kind::kGqa;
  c.attn.num_heads = 4;
  c.attn.num_kv_heads = 2;
  c.attn.head_dim = 16;
  c.attn.qkv_bias = true;
  c.rope.layout = model::RopeConfig::Layout::kHalf;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_intermediate = 32;
  c.moe.shared_intermediate = 32;
  c.moe.shared_expert_gate = true;
  c.moe.sigmoid_scoring = false;
  c.moe.score_bias = false;
  c.moe.norm_topk_prob = false;
  c.moe.dense_intermediate = 64;
  c.init_std = 0.15;
  c.seed = 4;
  return c;
}

inline std::shared_ptr<model::CausalLM> make_policy(const model::ModelConfig& c) {
  auto m = std::make_shared<model::CausalLM>(c);
  m->eval();
  return m;
}

}  // namespace zerorl::rollout::testing
