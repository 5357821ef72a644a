// DeepSeekMoE block: edge cases of routing (an idle expert, every token on
// one expert, top_k = 1, top_k = E), gradients to every used expert and to the
// router, expert-load statistics, the aux-loss-free bias update and the
// sequence-wise balance loss.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/layers.h"
#include "model/model.h"
#include "model/moe_block.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

ModelConfig moe_config(int64_t E, int64_t K) {
  ModelConfig c = testing::small_mla_config();
  c.moe.num_experts = E;
  c.moe.top_k = K;
  c.moe.n_group = 1;
  c.moe.topk_group = 1;
  return c;
}

// One expert's MLP on rows x [N,D], written out independently of the kernel.
at::Tensor expert_ref(const MoeBlock& b, int64_t e, const at::Tensor& x) {
  const auto& ex = *b.experts;
  return at::matmul(at::silu(at::matmul(x, ex.gate_proj[e].t())) * at::matmul(x, ex.up_proj[e].t()),
                    ex.down_proj[e].t());
}

struct MoeRun {
  at::Tensor y, counts, idx;
};

MoeRun run(MoeBlock& b, const at::Tensor& x) {
  MoeCall call;
  call.want_counts = call.want_routing = true;
  MoeRun r;
  r.y = b.forward(x, call);
  r.counts = call.counts_E;
  r.idx = call.topk_idx_NK;
  return r;
}

void expect_grads_follow_usage(MoeBlock& b, const MoeRun& r) {
  r.y.square().sum().backward();
  ASSERT_TRUE(b.gate->weight.grad().defined());
  EXPECT_GT(b.gate->weight.grad().abs().sum().item<double>(), 0)
      << "no gradient reaches the router";
  for (int64_t e = 0; e < r.counts.size(0); ++e) {
    for (const at::Tensor* w :
         {&b.experts->gate_proj, &b.experts->up_proj, &b.experts->down_proj}) {
      double g = w->grad()[e].abs().sum().item<double>();
      EXPECT_TRUE(std::isfinite(g));
      if (r.counts[e].item<int64_t>() > 0)
        EXPECT_GT(g, 0) << "expert " << e << " was used but got no gradient";
      else
        EXPECT_EQ(g, 0) << "expert " << e << " was idle but got a gradient";
    }
  }
}

TEST(Moe, IdleExpertGetsNoTokensAndNoGradient) {
  ModelConfig c = moe_config(6, 2);
  MoeBlock b(c);
  init_weights(b, 0.1, 1);
  {
    at::NoGradGuard ng;
    b.gate->bias[4].fill_(-100.0);  // selection only: expert 4 can never win
  }
  at::Tensor x = at::randn({20, c.hidden_size}, at::TensorOptions().dtype(at::kFloat));
  MoeRun r = run(b, x);
  EXPECT_EQ(r.counts[4].item<int64_t>(), 0);
  EXPECT_EQ(r.counts.sum().item<int64_t>(), 20 * 2);
  EXPECT_TRUE(r.y.isfinite().all().item<bool>());
  expect_grads_follow_usage(b, r);
}

TEST(Moe, EveryTokenOnOneExpertTopK1) {
  ModelConfig c = moe_config(4, 1);
  c.moe.norm_topk_prob = false;  // with K=1 and renormalisation the weight would be a constant 1
  MoeBlock b(c);
  init_weights(b, 0.1, 2);
  {
    at::NoGradGuard ng;
    b.gate->bias[2].fill_(100.0);
  }
  at::Tensor x = at::randn({16, c.hidden_size});
  MoeRun r = run(b, x);
  EXPECT_EQ(r.counts[2].item<int64_t>(), 16);
  EXPECT_TRUE(at::equal(r.idx, at::full({16, 1}, 2, at::kLong)));
  // y = rsf * sigmoid(score_2) * expert_2(x) + shared(x)
  at::NoGradGuard ng;
  at::Tensor s = at::sigmoid(at::linear(x, b.gate->weight)).select(1, 2).unsqueeze(1);
  at::Tensor ref = c.moe.routed_scaling_factor * s * expert_ref(b, 2, x) + b.shared->forward(x);
  EXPECT_LE((r.y - ref).abs().max().item<double>(), 1e-5);
}

TEST(Moe, EveryTokenOnOneExpertGradients) {
  ModelConfig c = moe_config(4, 1);
  c.moe.norm_topk_prob = false;
  MoeBlock b(c);
  init_weights(b, 0.1, 2);
  {
    at::NoGradGuard ng;
    b.gate->bias[1].fill_(100.0);
  }
  MoeRun r = run(b, at::randn({16, c.hidden_size}));
  expect_grads_follow_usage(b, r);
}

TEST(Moe, TopKEqualsNumExpertsIsTheWeightedSumOfAllExperts) {
  for (bool sigmoid : {true, false}) {
    ModelConfig c = moe_config(4, 4);
    c.moe.sigmoid_scoring = sigmoid;
    MoeBlock b(c);
    init_weights(b, 0.1, 3);
    at::Tensor x = at::randn({10, c.hidden_size});
    MoeRun r = run(b, x);
    EXPECT_TRUE(at::equal(r.counts, at::full({4}, 10, at::kLong)));
    at::NoGradGuard ng;
    at::Tensor logits = at::linear(x, b.gate->weight);
    at::Tensor s = sigmoid ? at::sigmoid(logits) : at::softmax(logits, -1);
    at::Tensor w = s / s.sum(-1, true) * c.moe.routed_scaling_factor;
    at::Tensor ref = b.shared->forward(x);
    for (int64_t e = 0; e < 4; ++e) ref = ref + w.select(1, e).unsqueeze(1) * expert_ref(b, e, x);
    EXPECT_LE((r.y - ref).abs().max().item<double>(), 1e-5) << (sigmoid ? "sigmoid" : "softmax");
  }
}

TEST(Moe, GradientsReachEveryUsedExpertAndTheRouter) {
  ModelConfig c = moe_config(6, 2);
  MoeBlock b(c);
  init_weights(b, 0.1, 4);
  MoeRun r = run(b, at::randn({40, c.hidden_size}));
  EXPECT_GE((r.counts > 0).sum().item<int64_t>(), 4);
  expect_grads_follow_usage(b, r);
}

TEST(Moe, QwenSharedExpertGateScalesTheSharedOutput) {
  ModelConfig c = testing::small_gqa_config();
  MoeBlock b(c);
  init_weights(b, 0.1, 5);
  at::Tensor x = at::randn({8, c.hidden_size});
  MoeCall call;
  at::Tensor y = b.forward(x, call);
  at::NoGradGuard ng;
  at::Tensor probs = at::softmax(at::linear(x, b.gate->weight), -1);
  auto [topv, topi] = probs.topk(c.moe.top_k);
  at::Tensor ref = at::sigmoid(b.shared_gate->forward(x)) * b.shared->forward(x);
  for (int64_t n = 0; n < 8; ++n)
    for (int64_t k = 0; k < c.moe.top_k; ++k)
      ref[n] += topv[n][k] * expert_ref(b, topi[n][k].item<int64_t>(), x[n].unsqueeze(0))[0];
  EXPECT_LE((y - ref).abs().max().item<double>(), 1e-5);
}

TEST(Moe, ExpertLoadCountsValidTokensAndBiasUpdateBalances) {
  ModelConfig c = testing::small_mla_config();
  c.moe.balance_bias_gamma = 0.01;
  CausalLM m(c);
  at::Tensor tokens = at::randint(0, c.vocab_size, {2, 7}, at::kLong);
  at::Tensor valid = at::ones({2, 7}, at::kBool);
  valid[1].narrow(0, 4, 3).fill_(false);  // 3 padding tokens
  ForwardOptions fo;
  fo.valid_BT = valid;
  fo.record_expert_load = true;
  m.hidden_states(tokens, fo);
  at::Tensor load = m.expert_load_LE();
  ASSERT_EQ(load.sizes(), (at::IntArrayRef{c.num_moe_layers(), c.moe.num_experts}));
  for (int64_t l = 0; l < load.size(0); ++l)
    EXPECT_EQ(load[l].sum().item<int64_t>(), 11 * c.moe.top_k);
  m.hidden_states(tokens, fo);  // accumulates
  EXPECT_TRUE(at::equal(m.expert_load_LE(), load * 2));
  ForwardOptions no_record;
  m.hidden_states(tokens, no_record);
  EXPECT_TRUE(at::equal(m.expert_load_LE(), load * 2));

  // bias += gamma * sign(mean - load): overloaded experts go down, idle ones up.
  at::Tensor fake = at::zeros_like(load);
  fake.select(1, 0).fill_(10);  // expert 0 takes everything
  at::Tensor bias_before;
  for (auto& [n, t] : m.named_weights())
    if (n == "model.layers.1.mlp.gate.e_score_correction_bias") bias_before = t.clone();
  ASSERT_TRUE(bias_before.defined());
  m.update_balance_bias(fake);
  for (auto& [n, t] : m.named_weights())
    if (n == "model.layers.1.mlp.gate.e_score_correction_bias") {
      at::Tensor d = t - bias_before;
      EXPECT_NEAR(d[0].item<double>(), -0.01, 1e-7);
      for (int64_t e = 1; e < c.moe.num_experts; ++e) EXPECT_NEAR(d[e].item<double>(), 0.01, 1e-7);
    }
  m.reset_expert_load();
  EXPECT_EQ(m.expert_load_LE().sum().item<int64_t>(), 0);
}

TEST(Moe, SequenceBalanceLossIsMinimalWhenBalancedAndDifferentiable) {
  ModelConfig c = testing::small_mla_config();
  c.moe.seq_aux_loss_alpha = 0.1;
  CausalLM m(c);
  at::Tensor tokens = at::randint(0, c.vocab_size, {2, 9}, at::kLong);
  at::Tensor aux;
  at::Tensor h = m.hidden_states(tokens, {}, &aux);
  ASSERT_TRUE(aux.defined());
  // Per layer sum_i f_i P_i is 1 at perfect balance and positive always.
  EXPECT_GT(aux.item<double>(), 0);
  aux.backward();
  for (auto& [n, t] : m.named_weights())
    if (n.find("mlp.gate.weight") != std::string::npos) {
      ASSERT_TRUE(t.grad().defined()) << n;
      EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << n;
    }
  c.moe.seq_aux_loss_alpha = 0;
  CausalLM m0(c);
  at::Tensor aux0;
  m0.hidden_states(tokens, {}, &aux0);
  EXPECT_EQ(aux0.item<double>(), 0.0);
}

}  // namespace
}  // namespace zerorl::model
