// Activation checkpointing (ForwardOptions::activation_checkpointing,
// model/backbone.cpp): the gradients of every parameter, the log-probs, the
// balance loss and the expert-load counts equal the plain path's, on MLA and
// GQA models with padding and the sequence-wise balance loss on.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/model.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

struct Result {
  at::Tensor logp, aux, load;
  std::vector<std::pair<std::string, at::Tensor>> grads;
};

Result run(ModelConfig cfg, bool checkpoint) {
  cfg.moe.seq_aux_loss_alpha = 0.01;
  CausalLM m(cfg);
  at::manual_seed(9);
  const int64_t B = 3, T = 12;
  at::Tensor tokens = at::randint(0, cfg.vocab_size, {B, T}, at::kLong);
  at::Tensor targets = at::roll(tokens, -1, 1);
  at::Tensor valid = at::ones({B, T}, at::kBool);
  valid.index_put_({1, at::indexing::Slice(8, at::indexing::None)}, false);  // right padding
  at::Tensor weight = at::rand({B, T}) * valid;
  ForwardOptions fo;
  fo.valid_BT = valid;
  fo.record_expert_load = true;
  fo.activation_checkpointing = checkpoint;
  LogprobOutput out = m.logprobs(tokens, targets, {}, fo);
  (-(out.logp_BT * weight).sum() + out.aux_loss).backward();
  Result r{out.logp_BT.detach(), out.aux_loss.detach(), m.expert_load_LE(), {}};
  for (auto& p : m.named_parameters(true))
    r.grads.emplace_back(
        p.key(), p.value().grad().defined() ? p.value().grad().clone() : at::zeros_like(p.value()));
  return r;
}

void check_equal(const ModelConfig& cfg) {
  const Result plain = run(cfg, false), ckpt = run(cfg, true);
  EXPECT_TRUE(at::equal(plain.logp, ckpt.logp));
  EXPECT_TRUE(at::equal(plain.load, ckpt.load)) << "expert load counted differently";
  EXPECT_GT(plain.aux.item<double>(), 0.0);
  EXPECT_EQ(plain.aux.item<double>(), ckpt.aux.item<double>());
  ASSERT_EQ(plain.grads.size(), ckpt.grads.size());
  double worst = 0;
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    const at::Tensor& a = plain.grads[i].second;
    const at::Tensor& b = ckpt.grads[i].second;
    const double d = (a - b).abs().max().item<double>();
    worst = std::max(worst, d);
    EXPECT_LE(d, 1e-6) << plain.grads[i].first;
  }
  double total = 0;
  for (auto& [n, g] : ckpt.grads) total += g.abs().sum().item<double>();
  EXPECT_GT(total, 0.0) << "the checkpointed path produced no gradients";
  std::cout << cfg.summary() << ": max |grad plain - grad checkpointed| = " << worst << "\n";
}

TEST(ActivationCheckpointing, MlaGradientsEqualThePlainPath) {
  check_equal(testing::small_mla_config());
}

TEST(ActivationCheckpointing, GqaGradientsEqualThePlainPath) {
  check_equal(testing::small_gqa_config());
}

TEST(ActivationCheckpointing, NoGradForwardIsUnchanged) {
  CausalLM m(testing::small_mla_config());
  at::Tensor tokens = at::randint(0, 37, {2, 9}, at::kLong);
  torch::NoGradGuard ng;
  ForwardOptions fo;
  fo.activation_checkpointing = true;
  EXPECT_TRUE(at::equal(m.logits(tokens), m.logits(tokens, fo)));
}

}  // namespace
}  // namespace zerorl::model
