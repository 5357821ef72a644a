// The batched tensor sampler (rollout/batch_sampler.h) against the host
// sampler (rollout/sampling.h, itself pinned by the chi-square oracle tests
// of sampler_test.cpp): on many random rows and every kind of truncation,
// fed the same uniforms, it picks the same tokens and the same behaviour
// log-probs (within 1e-12; only exp/log's last bit differ on the CPU), flags
// rows with NaN or no finite maximum, and the device-side stop check flags
// exactly the stop ids and the tokens that can complete a stop string.
// BatchSampler.EqualsTheHostSamplerOnCuda is the same on a CUDA device (label
// gpu; skipped without one).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "rollout/batch_sampler.h"
#include "rollout/sampling.h"
#include "rollout/token_text.h"

namespace zerorl::rollout {
namespace {

// Random rows of scale 3, with exact ties planted (a ranking where ties
// decide) and rows with one dominant id.
at::Tensor random_logits(int64_t A, int64_t V, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor x = at::randn({A, V}, gen, at::kFloat).mul_(3);
  for (int64_t a = 0; a < A; a += 3) x[a][V - 1] = x[a][V / 2].item<float>();
  for (int64_t a = 1; a < A; a += 7) x[a][a % V] = 40.f;
  return x;
}

struct Mismatch {
  int64_t tokens = 0;
  double logp = 0;
};

// Every row drawn by both samplers, each with its own stream (seeded by the
// row) so both see the same uniform.
Mismatch compare(const at::Tensor& logits_AV, const SamplingParams& sp, const at::Device& dev) {
  const int64_t A = logits_AV.size(0), V = logits_AV.size(1);
  std::vector<double> u(static_cast<size_t>(A));
  for (int64_t a = 0; a < A; ++a)
    u[static_cast<size_t>(a)] =
        Rng(sp.seed, 0, static_cast<uint64_t>(a), 0, RngPurpose::kSample).uniform();
  const BatchDraw d = sample_batch(logits_AV.to(dev), at::tensor(u, at::kDouble).to(dev), sp);
  const at::Tensor tok = d.token_A.cpu(), logp = d.logp_A.cpu(), bad = d.bad_A.cpu();
  Mismatch m;
  SamplerScratch scratch;
  for (int64_t a = 0; a < A; ++a) {
    Rng rng(sp.seed, 0, static_cast<uint64_t>(a), 0, RngPurpose::kSample);
    const at::Tensor row = logits_AV[a].contiguous();
    const SampledToken want = sample_token(row.data_ptr<float>(), V, sp, rng, scratch);
    EXPECT_FALSE(bad[a].item<bool>()) << "row " << a;
    if (tok[a].item<int64_t>() != want.id) ++m.tokens;
    m.logp = std::max(m.logp, std::abs(logp[a].item<double>() - want.logp));
  }
  return m;
}

void check_every_truncation(const at::Device& dev) {
  for (int64_t V : {8, 300}) {
    const at::Tensor x = random_logits(96, V, static_cast<uint64_t>(V));
    for (double T : {0.0, 1.0, 0.7}) {
      for (int64_t k : {int64_t{0}, int64_t{5}, V}) {
        for (double p : {1.0, 0.9, 0.3}) {
          SamplingParams sp;
          sp.temperature = T;
          sp.top_k = k;
          sp.top_p = p;
          sp.seed = 9;
          SCOPED_TRACE("V " + std::to_string(V) + " T " + std::to_string(T) + " top_k " +
                       std::to_string(k) + " top_p " + std::to_string(p));
          const Mismatch m = compare(x, sp, dev);
          EXPECT_EQ(m.tokens, 0);
          EXPECT_LT(m.logp, 1e-12);
        }
      }
    }
  }
}

TEST(BatchSampler, EqualsTheHostSamplerRowByRow) { check_every_truncation(at::kCPU); }

TEST(BatchSampler, EqualsTheHostSamplerOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  check_every_truncation(at::kCUDA);
}

TEST(BatchSampler, DrawsFollowTheUniformThroughTheCumulativeMass) {
  // Two ids of mass 1/4 and 3/4 (logits 0 and log 3): u below 1/4 picks id
  // 0, above it id 1, whatever the batch around it.
  const float l3 = std::log(3.0f);
  const at::Tensor x = at::tensor({0.f, l3, 0.f, l3, 0.f, l3}, at::kFloat).view({3, 2});
  SamplingParams sp;
  const BatchDraw d = sample_batch(x, at::tensor({0.1, 0.3, 0.9}, at::kDouble), sp);
  EXPECT_EQ(d.token_A[0].item<int64_t>(), 0);
  EXPECT_EQ(d.token_A[1].item<int64_t>(), 1);
  EXPECT_EQ(d.token_A[2].item<int64_t>(), 1);
  EXPECT_NEAR(d.logp_A[0].item<double>(), std::log(0.25), 1e-6);
}

TEST(BatchSampler, RowsWithNaNOrNoFiniteMaximumAreFlagged) {
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor x = random_logits(5, 6, 1);
  x[1][2] = std::nanf("");
  x[2].fill_(-inf);
  x[3][0] = inf;
  for (double T : {0.0, 1.0}) {
    SamplingParams sp;
    sp.temperature = T;
    sp.top_k = T > 0 ? 3 : 0;
    const BatchDraw d = sample_batch(x, at::full({5}, 0.5, at::kDouble), sp);
    const at::Tensor bad = d.bad_A;
    EXPECT_EQ(std::vector<bool>({bad[0].item<bool>(), bad[1].item<bool>(), bad[2].item<bool>(),
                                 bad[3].item<bool>(), bad[4].item<bool>()}),
              std::vector<bool>({false, true, true, true, false}));
    // A bad row still yields an id inside the vocabulary (it is indexed).
    EXPECT_TRUE(d.token_A.ge(0).logical_and(d.token_A.lt(6)).all().item<bool>());
    EXPECT_EQ(stop_flags(d, {}, {})[1].item<uint8_t>(), kBadLogits);
  }
}

TEST(BatchSampler, StopFlagsMarkStopIdsAndTokensThatCanEndAStopString) {
  // Tokens: 0 "ab", 1 "c>", 2 "</", 3 "x", 4 "" ; stop strings "</c>" and "!".
  const TokenText text({"ab", "c>", "</", "x", ""});
  const at::Tensor cand = stop_candidates(text, {"</c>", "!"}, 6);  // id 5: past the text table
  EXPECT_EQ(cand.sum().item<int64_t>(), 1);
  EXPECT_TRUE(cand[1].item<bool>());
  BatchDraw d;
  d.token_A = at::tensor({0, 1, 3, 5}, at::kLong);
  d.bad_A = at::zeros({4}, at::kBool);
  const at::Tensor f = stop_flags(d, at::tensor({3}, at::kLong), cand);
  EXPECT_EQ(f[0].item<uint8_t>(), 0);
  EXPECT_EQ(f[1].item<uint8_t>(), kStopCandidate);
  EXPECT_EQ(f[2].item<uint8_t>(), kStopToken);
  EXPECT_EQ(f[3].item<uint8_t>(), 0);
}

}  // namespace
}  // namespace zerorl::rollout
