// Small configs shared by the model tests (variants of tests/tiny_model.h)
// and a routing perturbation.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "model/config.h"
#include "model/model.h"
#include "tests/tiny_model.h"

namespace zerorl::model::testing {

// A small DeepSeek-style model: the tiny MLA model (tests/tiny_model.h) with
// q low-rank, interleaved yarn RoPE, 6 experts top-2 in 3 groups, one dense
// layer first.
inline ModelConfig small_mla_config() {
  ModelConfig c = test::tiny_mla_config(/*vocab=*/37, /*hidden=*/32);
  c.num_layers = 3;
  c.max_position = 128;
  c.attn.q_lora_rank = 24;
  c.rope.layout = RopeConfig::Layout::kInterleaved;
  c.rope.scaling = RopeConfig::Scaling::kYarn;
  c.rope.factor = 4;
  c.rope.original_max_position = 32;
  c.rope.mscale = 1.0;
  c.rope.mscale_all_dim = 1.0;
  c.moe.num_experts = 6;
  c.moe.n_group = 3;
  c.moe.topk_group = 2;
  c.moe.routed_scaling_factor = 2.0;
  c.moe.first_k_dense_replace = 1;
  c.moe.dense_intermediate = 48;
  c.init_std = 0.1;
  c.seed = 7;
  return c;
}

// A small Qwen2Moe-style model: the tiny GQA model (tests/tiny_model.h) with
// a wider shared expert and every layer MoE.
inline ModelConfig small_gqa_config() {
  ModelConfig c = test::tiny_gqa_config(/*vocab=*/41, /*hidden=*/32);
  c.max_position = 128;
  c.moe.shared_intermediate = 24;
  c.moe.first_k_dense_replace = 0;
  c.moe.dense_intermediate = 48;
  c.init_std = 0.1;
  c.seed = 11;
  return c;
}

// Adds noise (0.5 x N(0, 1), seed 5) to every MoE layer's balancing bias
// (e_score_correction_bias): it changes which experts are selected, not
// their weights -- what drifts between a rollout and the learner.
inline void shift_balance_bias(CausalLM& m) {
  torch::NoGradGuard g;
  at::manual_seed(5);
  int shifted = 0;
  for (auto& [name, t] : m.named_weights())
    if (name.find("e_score_correction_bias") != std::string::npos) {
      t.add_(at::randn(t.sizes(), t.options()) * 0.5);
      ++shifted;
    }
  ASSERT_GT(shifted, 0) << "the model has no balancing bias";
}

}  // namespace zerorl::model::testing
