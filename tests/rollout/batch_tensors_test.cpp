// pad_rollout: the trainer's batched teacher-forced log-probs, computed on the
// padded tensors in ONE forward, equal the behaviour log-probs on the
// completion mask (fp32, 1e-5), and the layout is the documented one.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/error.h"
#include "rollout/batch_tensors.h"
#include "tests/tiny_model.h"

namespace zerorl::rollout {
namespace {

TEST(PadRollout, BatchedTeacherForcingMatchesBehaviourLogprobs) {
  at::set_num_threads(1);  // tiny model; see engine_test.cpp
  auto m = test::make_policy(test::tiny_mla_config());
  std::vector<PromptInput> prompts;
  for (int64_t i = 0; i < 3; ++i) {
    PromptInput p;
    p.id = i;
    for (int64_t t = 0; t < 2 + 4 * i; ++t) p.tokens.push_back((5 * i + 3 * t + 2) % 64);
    prompts.push_back(p);
  }
  SamplingParams sp;
  sp.temperature = 0.7;
  sp.top_k = 10;
  sp.max_new_tokens = 9;
  sp.stop_token_ids = {4, 8, 15, 16};  // ragged completion lengths
  const RolloutBatch b = Engine(EngineOptions().slots(4).eos(-1)).generate(*m, prompts, 3, sp);
  const PaddedRollout pr = pad_rollout(b, /*pad_id=*/63);

  int64_t total = 0, T = 0;
  for (const auto& s : b.samples) {
    total += s.completion_length();
    T = std::max(T, s.prompt_length() + s.completion_length() - 1);
  }
  ASSERT_EQ(pr.tokens_BT.sizes(), (at::IntArrayRef{9, T}));
  EXPECT_EQ(pr.completion_mask_BT.sum().item<int64_t>(), total);
  // Targets are the tokens shifted by one.
  const auto& s0 = b.samples[0];
  EXPECT_EQ(pr.tokens_BT[0][0].item<int64_t>(), s0.prompt_tokens[0]);
  EXPECT_EQ(pr.targets_BT[0][s0.prompt_length() - 1].item<int64_t>(), s0.completion_tokens[0]);

  at::NoGradGuard ng;
  kernels::LogprobOptions lo;
  lo.temperature = 0.7;
  model::ForwardOptions fo;
  fo.valid_BT = pr.valid_BT;
  const at::Tensor logp = m->logprobs(pr.tokens_BT, pr.targets_BT, lo, fo).logp_BT;
  const at::Tensor diff =
      (logp - pr.behaviour_logp_BT).abs().masked_fill(pr.completion_mask_BT.logical_not(), 0);
  EXPECT_LE(diff.max().item<double>(), 1e-5);
  EXPECT_THROW(pad_rollout(RolloutBatch{}), Error);
}

}  // namespace
}  // namespace zerorl::rollout
