// The memory plan (trainer/memory_plan.h) against what this implementation
// really allocates: parameter counts against CausalLM::param_report(), and
// the learner's working set of one forward + backward (gradients,
// activations, the log-prob chunk) against the tracking CPU allocator's peak
// (tests/kernels/tracking_allocator.h), within 15%, on the tiny model and on
// a ~135M-parameter config, with two micro-batches accumulated as the trainer
// does (the second backward runs while every gradient is held).
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <iostream>

#include "tests/kernels/tracking_allocator.h"
#include "tests/model/test_util.h"
#include "model/model.h"
#include "trainer/memory_plan.h"

namespace zerorl {
namespace {

using zerorl::test::TrackingAllocator;

TrackingAllocator& tracker() { return zerorl::test::installed_tracker(); }

// ~135M parameters, DeepSeek-V3 shaped (MLA, 16 experts top-2, one dense layer).
model::ModelConfig config_100m() {
  model::ModelConfig c;  // the tiny model's defaults (model/tiny.yaml)
  c.vocab_size = 32000;
  c.hidden_size = 512;
  c.num_layers = 8;
  c.attn.num_heads = 8;
  c.attn.kv_lora_rank = 128;
  c.attn.qk_nope_head_dim = 64;
  c.attn.qk_rope_head_dim = 32;
  c.attn.v_head_dim = 64;
  c.moe.num_experts = 16;
  c.moe.expert_intermediate = 512;
  c.moe.shared_intermediate = 512;
  c.moe.dense_intermediate = 1536;
  c.max_position = 4096;
  return c;
}

TEST(MemoryPlan, ParameterCountMatchesTheModel) {
  for (const model::ModelConfig& c : {model::ModelConfig{}, model::testing::small_mla_config(),
                                      model::testing::small_gqa_config(), config_100m()}) {
    model::CausalLM m(c, /*random_init=*/false);
    EXPECT_EQ(count_parameters(c).total, m.param_report().total) << c.summary();
    EXPECT_EQ(count_parameters(c).experts, m.param_report().routed_experts) << c.summary();
  }
}

// Peak bytes above the model's parameters during one forward + backward of
// B rows of T tokens, against the plan's gradients + activations + logits chunk.
void check_learner_peak(const model::ModelConfig& cfg, int64_t B, int64_t T,
                        bool checkpointing = false) {
  TrackingAllocator& mem = tracker();
  model::CausalLM m(cfg);
  at::manual_seed(1);
  at::Tensor tokens = at::randint(0, cfg.vocab_size, {B, T}, at::kLong);
  at::Tensor targets = at::roll(tokens, -1, 1);
  // Two micro-batches, as the trainer accumulates them: the second one's
  // forward and backward run while every parameter's gradient is held.
  mem.reset_peak();
  for (int micro = 0; micro < 2; ++micro) {
    model::ForwardOptions fo;
    fo.activation_checkpointing = checkpointing;
    model::LogprobOutput out = m.logprobs(tokens, targets, {}, fo);
    out.logp_BT.sum().backward();
  }
  const int64_t measured = mem.peak_above_reset();

  MemoryPlanInput in;
  in.model = cfg;
  in.micro_batch = B;
  in.seq_len = T;
  in.activation_checkpointing = checkpointing;
  const MemoryPlan plan = plan_memory(in);
  // A bare forward + backward has no all-reduce buffers: gradients only.
  const int64_t P = count_parameters(cfg).total;
  const int64_t planned = P * 4 + plan.row("activations") + plan.row("logits chunk");
  const double ratio = static_cast<double>(measured) / static_cast<double>(planned);
  std::cout << cfg.summary() << " B=" << B << " T=" << T << (checkpointing ? " checkpointed" : "")
            << ": measured " << measured << " bytes, planned " << planned << " (gradients " << P * 4
            << ", activations " << plan.row("activations") << ", logits chunk "
            << plan.row("logits chunk") << "), measured/planned " << ratio << "\n";
  EXPECT_GT(ratio, 0.85);
  EXPECT_LT(ratio, 1.15);
}

TEST(MemoryPlan, TinyModelLearnerPeakWithin15Percent) {
  check_learner_peak(model::ModelConfig{}, 8, 256);
}

// Checkpointing keeps one [T, D] input per layer and rebuilds one layer at a
// time: on the tiny model the plan's checkpointed activations are ~3x
// smaller than the plain ones, so a checkpoint flag that saved nothing
// would fail here at ~3x the plan.
TEST(MemoryPlan, TinyModelCheckpointedPeakWithin15Percent) {
  check_learner_peak(model::ModelConfig{}, 8, 256, /*checkpointing=*/true);
}

TEST(MemoryPlan, Model100MLearnerPeakWithin15Percent) { check_learner_peak(config_100m(), 1, 512); }

}  // namespace
}  // namespace zerorl
