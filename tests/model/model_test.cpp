// CausalLM: configuration (recipe, config.json, errors), log-probs of the
// training path against plain logits, a finite-difference gradient check in
// double precision, HDF5 weights and the parameter report.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "core/config.h"
#include "core/error.h"
#include "core/h5.h"
#include "model/model.h"
#include "model/weights.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

// Seeded inputs, and one thread.  The models here are tiny: LibTorch's OpenMP pool only adds
// overhead, and on a loaded machine its spin-waiting dominates (seen: 100x slower).  One thread for
// the whole binary.
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override {
    at::set_num_threads(1);
    at::manual_seed(0);  // random test inputs are the same on every run
  }
};
const auto* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected zerorl::Error";
  return "";
}

// ---- configuration -------------------------------------------------------------

TEST(ModelConfig, TinyYamlIsTheRecipeDefault) {
  Recipe r = Recipe::from_file(std::string(ZR_SOURCE_DIR) + "/model/tiny.yaml");
  ModelConfig a = ModelConfig::from(r.section("model"));
  r.check_all_read();
  Recipe empty = Recipe::from_string("model: {}\n");
  ModelConfig b = ModelConfig::from(empty.section("model"));
  EXPECT_EQ(a.to_hf_json(), b.to_hf_json());
  EXPECT_EQ(a.summary(), b.summary());
  EXPECT_EQ(a.num_moe_layers(), 3);
  EXPECT_DOUBLE_EQ(a.moe.balance_bias_gamma, 0.001);
  CausalLM m(a);
  ParamReport rep = m.param_report();
  std::cout << "tiny: " << a.summary() << "\n      " << rep.to_string() << "\n";
  EXPECT_LT(rep.active_per_token, rep.total);
}

TEST(ModelConfig, RecipeErrorsNameTheKey) {
  Recipe r =
      Recipe::from_string("model:\n  n_routed_experts: 4\n  num_experts_per_tok: 5\n", "r.yaml");
  std::string msg = expect_error([&] { ModelConfig::from(r.section("model")); });
  EXPECT_NE(msg.find("num_experts_per_tok"), std::string::npos) << msg;
  EXPECT_NE(msg.find("r.yaml"), std::string::npos) << msg;

  Recipe typo = Recipe::from_string("model:\n  hiden_size: 64\n", "t.yaml");
  ModelConfig::from(typo.section("model"));
  msg = expect_error([&] { typo.check_all_read(); });
  EXPECT_NE(msg.find("hiden_size"), std::string::npos) << msg;
}

TEST(ModelConfig, HfJsonRoundTripAndRejections) {
  for (const ModelConfig& c : {testing::small_mla_config(), testing::small_gqa_config()}) {
    ModelConfig back = ModelConfig::from_hf_json_text(c.to_hf_json(), "x");
    EXPECT_EQ(back.to_hf_json(), c.to_hf_json());
  }
  std::string msg = expect_error([] {
    ModelConfig::from_hf_json_text(R"({"model_type": "mixtral", "vocab_size": 10})",
                                   "/m/config.json");
  });
  EXPECT_NE(msg.find("/m/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mixtral"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen3_moe"), std::string::npos) << msg;  // lists what is supported
  // What a family has but zerorl does not run is refused by name.
  const std::string dense =
      R"("vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
         "intermediate_size": 16)";
  for (const auto& [extra, key] : std::vector<std::pair<std::string, std::string>>{
           {R"("model_type": "qwen3", "use_sliding_window": true)", "use_sliding_window"},
           {R"("model_type": "olmoe", "clip_qkv": 8.0)", "clip_qkv"},
           {R"("model_type": "llama", "rope_parameters": {"rope_type": "dynamic", "factor": 2.0})",
            "dynamic"},
           {R"("model_type": "llama", "partial_rotary_factor": 0.5)", "partial_rotary_factor"},
           {R"("model_type": "deepseek_v2", "norm_topk_prob": true, "kv_lora_rank": 4,
               "qk_nope_head_dim": 2, "qk_rope_head_dim": 2, "v_head_dim": 2,
               "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 4)",
            "norm_topk_prob"}}) {
    msg = expect_error(
        [&] { ModelConfig::from_hf_json_text("{" + dense + ", " + extra + "}", "/m/c.json"); });
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    EXPECT_NE(msg.find("/m/c.json"), std::string::npos) << msg;
  }
  msg = expect_error([] { ModelConfig::from_hf_json_text("{not json", "/m/config.json"); });
  EXPECT_NE(msg.find("/m/config.json"), std::string::npos) << msg;
  // A Hub-style DeepSeek-V3 config: rope_scaling + rope_theta at top level.
  ModelConfig c = testing::small_mla_config();
  std::string j = c.to_hf_json();
  auto pos = j.find("\"rope_parameters\"");
  ASSERT_NE(pos, std::string::npos);
  j.replace(pos, 17, "\"rope_scaling\"");
  ModelConfig hub = ModelConfig::from_hf_json_text(j, "hub");
  EXPECT_EQ(hub.rope.scaling, RopeConfig::Scaling::kYarn);
  EXPECT_DOUBLE_EQ(hub.rope.factor, 4.0);
  EXPECT_EQ(hub.rope.original_max_position, 32);
}

TEST(ModelConfig, YarnScalesSoftmaxLikeDeepSeekV3) {
  RopeConfig r;
  r.scaling = RopeConfig::Scaling::kYarn;
  r.factor = 40;
  r.mscale = 1.0;
  r.mscale_all_dim = 1.0;
  double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_DOUBLE_EQ(r.softmax_scale_multiplier(), m * m);
  EXPECT_DOUBLE_EQ(r.cos_sin_scale(), 1.0);  // mscale / mscale_all_dim cancel
}

// ---- training path -----------------------------------------------------------------

TEST(CausalLM, LogprobsEqualLogSoftmaxOfLogits) {
  for (const ModelConfig& c : {testing::small_mla_config(), testing::small_gqa_config()}) {
    CausalLM m(c);
    at::Tensor tokens = at::randint(0, c.vocab_size, {3, 7}, at::kLong);
    at::Tensor targets = at::randint(0, c.vocab_size, {3, 7}, at::kLong);
    kernels::LogprobOptions lo;
    lo.chunk_tokens = 5;  // several chunks
    lo.with_entropy = true;
    LogprobOutput out = m.logprobs(tokens, targets, lo);
    at::NoGradGuard ng;
    at::Tensor lsm = at::log_softmax(m.logits(tokens), -1);
    at::Tensor ref = lsm.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
    EXPECT_LE((out.logp_BT - ref).abs().max().item<double>(), 1e-5);
    at::Tensor ent = -(lsm.exp() * lsm).sum(-1);
    EXPECT_LE((out.entropy_BT - ent).abs().max().item<double>(), 1e-5);
  }
}

TEST(CausalLM, RightPaddingDoesNotChangeEarlierTokens) {
  ModelConfig c = testing::small_mla_config();
  CausalLM m(c);
  at::NoGradGuard ng;
  at::Tensor a = at::randint(0, c.vocab_size, {1, 5}, at::kLong);
  at::Tensor padded = at::cat({a, at::zeros({1, 3}, at::kLong)}, 1);
  at::Tensor la = m.logits(a), lp = m.logits(padded).narrow(1, 0, 5);
  EXPECT_LE((la - lp).abs().max().item<double>(), 1e-5);
}

TEST(CausalLM, SameSeedSameWeights) {
  ModelConfig c = testing::small_gqa_config();
  CausalLM a(c), b(c);
  c.seed += 1;
  CausalLM d(c);
  auto wa = a.named_weights(), wb = b.named_weights(), wd = d.named_weights();
  bool any_diff = false;
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << wa[i].first;
    any_diff |= !at::equal(wa[i].second, wd[i].second);
  }
  EXPECT_TRUE(any_diff);
}

// Central differences in double precision on every parameter tensor (one
// entry each, alternating first/last), Richardson-extrapolated: D = (4 d(h/2) - d(h)) / 3 with
// h = 1e-2, truncation O(h^4).  Router scores are computed in fp32 inside
// kernels::moe_route (as HF does), which puts ~1e-7 rounding noise on the
// loss, i.e. ~2e-5 on the quotient; hence the 5e-5 absolute tolerance (real
// gradient bugs are off by O(|g|)).  Expert selection is pinned so the finite
// steps never flip a top-k choice: DeepSeek via large, distinct balancing
// biases (selection only), Qwen via top_k = num_experts.
TEST(CausalLM, FiniteDifferenceGradientsInDouble) {
  // Hundreds of tiny forwards: one thread avoids pool overhead on these sizes.
  int threads = at::get_num_threads();
  at::set_num_threads(1);
  for (ModelConfig c : {testing::small_mla_config(), testing::small_gqa_config()}) {
    c.num_layers = 2;
    c.hidden_size = 16;
    c.vocab_size = 13;
    if (c.arch == Arch::kDeepseekV3) {
      c.moe.first_k_dense_replace = 0;
      c.attn.q_lora_rank = 8;
      c.moe.seq_aux_loss_alpha = 0.05;
    } else {
      c.moe.top_k = c.moe.num_experts;
    }
    c.init_std = 0.3;
    CausalLM m(c);
    m.to(at::kDouble);
    {
      at::NoGradGuard ng;
      for (auto& [n, t] : m.named_weights())
        if (n.find("e_score_correction_bias") != std::string::npos)
          for (int64_t e = 0; e < t.numel(); ++e) t[e].fill_(3.0 * ((e * 5) % t.numel()));
    }
    at::Tensor tokens = at::randint(0, c.vocab_size, {2, 4}, at::kLong);
    at::Tensor targets = at::randint(0, c.vocab_size, {2, 4}, at::kLong);
    at::Tensor coef = at::randn({2, 4}, at::kDouble);
    auto loss = [&] {
      LogprobOutput o = m.logprobs(tokens, targets);
      return (o.logp_BT * coef).sum() + o.aux_loss;
    };
    m.zero_grad();
    loss().backward();
    const double h = 1e-2;
    int checked = 0;
    double worst = 0;
    for (auto& item : m.named_parameters()) {
      at::Tensor p = item.value();
      ASSERT_TRUE(p.grad().defined()) << item.key() << " got no gradient";
      at::Tensor flat = p.view({-1});
      at::Tensor g = p.grad().reshape({-1});
      int64_t j = checked % 2 == 0 ? 0 : flat.numel() - 1;  // alternate ends, one entry per tensor
      {
        double fd[2];
        {
          at::NoGradGuard ng;
          double orig = flat[j].item<double>();
          for (int k = 0; k < 2; ++k) {
            double step = k == 0 ? h : h / 2;
            flat[j].fill_(orig + step);
            double up = loss().item<double>();
            flat[j].fill_(orig - step);
            double down = loss().item<double>();
            fd[k] = (up - down) / (2 * step);
          }
          flat[j].fill_(orig);
        }
        double est = (4 * fd[1] - fd[0]) / 3, an = g[j].item<double>();
        worst = std::max(worst, std::abs(est - an));
        EXPECT_LE(std::abs(est - an), 5e-5 + 1e-3 * std::abs(an))
            << item.key() << "[" << j << "]: finite difference " << est << ", autograd " << an;
        ++checked;
      }
    }
    std::cout << "[" << arch_name(c.arch) << "] " << checked << " entries, worst |fd - autograd| "
              << worst << "\n";
  }
  at::set_num_threads(threads);
}

// ---- weights ---------------------------------------------------------------------------

TEST(Weights, Hdf5RoundTripIsExactAndMismatchesNameTheTensor) {
  namespace fs = std::filesystem;
  ModelConfig c = testing::small_mla_config();
  CausalLM m(c);
  std::string path = std::string(ZR_BINARY_DIR) + "/model_weights_test.h5";
  save_model_h5(m, path);
  auto back = load_model_h5(path);
  EXPECT_EQ(back->config().to_hf_json(), c.to_hf_json());
  auto wa = m.named_weights(), wb = back->named_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << wa[i].first;
  }
  // A model with more experts does not fit these weights.
  ModelConfig bigger = c;
  bigger.moe.num_experts = 9;
  bigger.moe.n_group = 3;
  CausalLM mb(bigger, false);
  H5File f(path, H5File::Mode::kRead);
  std::string msg = expect_error([&] { load_weights(mb, f); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.1.mlp.gate.weight"), std::string::npos) << msg;
  // One more layer: its tensors are missing.
  ModelConfig deeper = c;
  deeper.num_layers = 4;
  CausalLM md(deeper, false);
  msg = expect_error([&] { load_weights(md, f); });
  EXPECT_NE(msg.find("model.layers.3."), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST(Weights, ParamReportCountsActiveExperts) {
  ModelConfig c = testing::small_mla_config();
  CausalLM m(c);
  ParamReport r = m.param_report();
  int64_t total = 0;
  for (auto& p : m.parameters()) total += p.numel();
  EXPECT_EQ(r.total, total);
  int64_t per_expert = 3 * c.hidden_size * c.moe.expert_intermediate;
  EXPECT_EQ(r.routed_experts, c.num_moe_layers() * c.moe.num_experts * per_expert);
  EXPECT_EQ(r.total - r.active_per_token,
            c.num_moe_layers() * (c.moe.num_experts - c.moe.top_k) * per_expert);
}

}  // namespace
}  // namespace zerorl::model
