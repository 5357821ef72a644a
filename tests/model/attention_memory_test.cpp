// The training forward and backward never allocate a T x T score matrix per
// head (model/attention.cpp runs at::scaled_dot_product_attention), for MLA
// (q/k and v head sizes differ) and GQA (fewer k/v heads than q heads).
// The tracking allocator (tests/kernels/tracking_allocator.h) sees every
// CPU allocation; the largest one must stay below one head's [T, T] in fp32.
// Planted once: an eager causal_attention (q k^T, mask, softmax, times v) made
// both tests fail with a 64 MiB allocation (four heads' T x T at T = 2048).
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "tests/kernels/tracking_allocator.h"
#include "model/model.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

using zerorl::test::TrackingAllocator;

TrackingAllocator& tracker() { return zerorl::test::installed_tracker(); }

// Largest single allocation of one training forward + backward at T tokens.
int64_t largest_allocation(ModelConfig cfg, int64_t T) {
  cfg.max_position = T;
  CausalLM model(cfg);
  at::manual_seed(5);
  at::Tensor tokens = at::randint(0, cfg.vocab_size, {1, T}, at::kLong);
  at::Tensor targets = at::roll(tokens, -1, 1);
  TrackingAllocator& mem = tracker();
  mem.reset_peak();
  const auto t0 = std::chrono::steady_clock::now();
  {
    LogprobOutput out = model.logprobs(tokens, targets);
    out.logp_BT.sum().backward();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // docs/PERFORMANCE.md quotes this line (SDPA against the eager path).
  std::cout << cfg.summary() << " T=" << T << " forward+backward: peak " << mem.peak_above_reset()
            << " bytes above the weights, " << secs << " s\n";
  return mem.largest_since_reset();
}

constexpr int64_t kT = 2048;
constexpr int64_t kHeadScoresBytes = kT * kT * 4;  // one head's [T, T] in fp32

TEST(AttentionMemory, MlaTrainingStepHasNoTxTTensor) {
  const int64_t largest = largest_allocation(testing::small_mla_config(), kT);
  std::cout << "MLA T=" << kT << ": largest allocation " << largest
            << " bytes (one head's T x T: " << kHeadScoresBytes << ")\n";
  EXPECT_LT(largest, kHeadScoresBytes);
}

TEST(AttentionMemory, GqaTrainingStepHasNoTxTTensor) {
  const int64_t largest = largest_allocation(testing::small_gqa_config(), kT);
  std::cout << "GQA T=" << kT << ": largest allocation " << largest
            << " bytes (one head's T x T: " << kHeadScoresBytes << ")\n";
  EXPECT_LT(largest, kHeadScoresBytes);
}

}  // namespace
}  // namespace zerorl::model
