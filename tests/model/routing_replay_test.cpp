// Routing replay (ForwardOptions::replay_routing, model/moe_block.cpp's
// route_tokens): a full forward sends each token to the experts it is given
// instead of the router's top-k, weighs them with the current router's
// scores, and still reports the router's own choice in last_routing().
//
// The perturbation used throughout is the DeepSeek-V3 balancing bias
// (e_score_correction_bias): it changes which experts are selected but not
// their weights, which is exactly what drifts between a rollout and the
// learner when the bias is updated in between.  So replaying the routing
// recorded before the shift must give the pre-shift outputs to rounding.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "model/model.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

struct Batch {
  at::Tensor tokens, targets, valid;
};

Batch batch(const ModelConfig& cfg) {
  at::manual_seed(11);
  const int64_t B = 3, T = 10;
  Batch b;
  b.tokens = at::randint(0, cfg.vocab_size, {B, T}, at::kLong);
  b.targets = at::roll(b.tokens, -1, 1);
  b.valid = at::ones({B, T}, at::kBool);
  b.valid.index_put_({2, at::indexing::Slice(6, at::indexing::None)}, false);  // right padding
  return b;
}

// Log-probs of `b` and the router's own choice per MoE layer.
std::pair<at::Tensor, std::vector<at::Tensor>> forward(CausalLM& m, const Batch& b,
                                                       const std::vector<at::Tensor>& replay = {}) {
  torch::NoGradGuard g;
  ForwardOptions fo;
  fo.valid_BT = b.valid;
  fo.record_routing = true;
  fo.replay_routing = replay;
  at::Tensor logp = m.logprobs(b.tokens, b.targets, {}, fo).logp_BT;
  return {logp, m.last_routing()};
}

// Share of (token, layer) rows whose expert sets differ.
double differing(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double diff = 0, total = 0;
  for (size_t l = 0; l < a.size(); ++l) {
    at::Tensor sa = std::get<0>(a[l].sort(1)), sb = std::get<0>(b[l].sort(1));
    diff += (sa != sb).any(1).sum().item<double>();
    total += static_cast<double>(sa.size(0));
  }
  return diff / total;
}

TEST(RoutingReplay, ReplayingTheRoutersOwnChoiceChangesNothing) {
  for (const ModelConfig& cfg : {testing::small_mla_config(), testing::small_gqa_config()}) {
    CausalLM m(cfg);
    const Batch b = batch(cfg);
    auto [logp, own] = forward(m, b);
    auto [replayed, own_again] = forward(m, b, own);
    EXPECT_LE((logp - replayed).abs().max().item<double>(), 1e-6) << cfg.summary();
    EXPECT_EQ(differing(own, own_again), 0.0);
  }
}

TEST(RoutingReplay, ReplayUndoesABiasShiftAndStillReportsTheRoutersChoice) {
  const ModelConfig cfg = testing::small_mla_config();
  CausalLM m(cfg);
  const Batch b = batch(cfg);
  auto [before, recorded] = forward(m, b);
  testing::shift_balance_bias(m);
  auto [shifted, own] = forward(m, b);
  const double moved = differing(recorded, own);
  EXPECT_GT(moved, 0.1) << "the bias shift moved too few tokens to test anything";
  EXPECT_GT((before - shifted).abs().max().item<double>(), 1e-3);
  auto [replayed, own_under_replay] = forward(m, b, recorded);
  EXPECT_LE((before - replayed).abs().max().item<double>(), 1e-6)
      << "replay did not restore the recorded routing's outputs";
  EXPECT_EQ(differing(own, own_under_replay), 0.0)
      << "last_routing() must report the router's own choice under replay";
  std::cout << "tokens x layers with other experts after the shift: " << moved << "\n";
}

// The router keeps learning under replay (its scores weigh the replayed
// experts), and activation checkpointing recomputes the layer with the same
// replayed experts.
TEST(RoutingReplay, RouterGetsGradientsAndCheckpointingKeepsTheReplay) {
  const ModelConfig cfg = testing::small_mla_config();
  CausalLM m(cfg);
  const Batch b = batch(cfg);
  testing::shift_balance_bias(m);
  auto [unused, shifted_choice] = forward(m, b);
  CausalLM fresh(cfg);  // the unshifted model: its own choice differs from the replay
  auto grads = [&](bool checkpoint) {
    for (auto& p : fresh.parameters()) p.mutable_grad() = at::Tensor();
    ForwardOptions fo;
    fo.valid_BT = b.valid;
    fo.replay_routing = shifted_choice;
    fo.activation_checkpointing = checkpoint;
    at::Tensor logp = fresh.logprobs(b.tokens, b.targets, {}, fo).logp_BT;
    (-(logp * b.valid).sum()).backward();
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (auto& p : fresh.named_parameters(true))
      out.emplace_back(p.key(), p.value().grad().defined() ? p.value().grad().clone()
                                                           : at::zeros_like(p.value()));
    return out;
  };
  const auto plain = grads(false), ckpt = grads(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  double router = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_LE((plain[i].second - ckpt[i].second).abs().max().item<double>(), 1e-6)
        << plain[i].first;
    if (plain[i].first.find("mlp.gate.weight") != std::string::npos)
      router += plain[i].second.abs().sum().item<double>();
  }
  EXPECT_GT(router, 0.0) << "the router got no gradient under replay";
}

TEST(RoutingReplay, WrongShapesAreRefused) {
  const ModelConfig cfg = testing::small_mla_config();
  CausalLM m(cfg);
  const Batch b = batch(cfg);
  auto [logp, own] = forward(m, b);
  std::vector<at::Tensor> short_list(own.begin(), own.end() - 1);
  EXPECT_THROW(forward(m, b, short_list), Error);
  std::vector<at::Tensor> narrow = own;
  narrow[0] = narrow[0].narrow(1, 0, 1);
  try {
    forward(m, b, narrow);
    FAIL() << "a [N, 1] replay for top-2 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("routing replay"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zerorl::model
