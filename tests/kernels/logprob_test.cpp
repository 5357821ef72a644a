// chosen_logprob() on CPU (the reference path the model trains with) against
// the naive full-logits computation, forward and gradients, and its memory
// bound measured with a tracking CPU allocator.
//
// Tolerances: fp64 inputs are computed in fp64 by both sides, so they agree to
// rounding (1e-10 absolute on values of order 1-10).  fp32 inputs are compared
// with the fp64 naive result on the same values: D <= 64 products of O(1)
// numbers and a log-sum-exp over V <= 100 lose ~1e-6 relative, so 1e-4.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/logprob/logprob.h"
#include "tests/kernels/tracking_allocator.h"

namespace zk = zerorl::kernels;

namespace {

struct Naive {
  at::Tensor logp_N, entropy_N;
};

// log_softmax of the full [N, V] logits: the memory-hungry computation the
// kernel replaces.
Naive naive_logprob(const at::Tensor& h_ND, const at::Tensor& w_VD, const at::Tensor& tgt_N,
                    double temperature) {
  const at::Tensor logits_NV = at::mm(h_ND, w_VD.t()) / temperature;
  const at::Tensor logp_NV = at::log_softmax(logits_NV, 1);
  Naive r;
  r.logp_N = logp_NV.gather(1, tgt_N.unsqueeze(1)).squeeze(1);
  r.entropy_N = -(logp_NV.exp() * logp_NV).sum(1);
  return r;
}

struct Inputs {
  at::Tensor h_ND, w_VD, tgt_N;
};

Inputs make_inputs(int64_t N, int64_t D, int64_t V, at::ScalarType dt, uint64_t seed) {
  at::manual_seed(seed);
  Inputs in;
  in.h_ND = at::randn({N, D}, at::kDouble).to(dt);
  in.w_VD = (at::randn({V, D}, at::kDouble) * 0.5).to(dt);
  in.tgt_N = at::randint(V, {N}, at::kLong);
  return in;
}

}  // namespace

TEST(LogprobRef, ForwardMatchesNaiveInDouble) {
  const Inputs in = make_inputs(37, 16, 53, at::kDouble, 1);
  for (double temperature : {1.0, 0.7}) {
    zk::LogprobOptions opt;
    opt.chunk_tokens = 8;  // 37 = 4 full chunks + a ragged one
    opt.with_entropy = true;
    opt.temperature = temperature;
    const zk::LogprobResult r = zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N, opt);
    const Naive n = naive_logprob(in.h_ND, in.w_VD, in.tgt_N, temperature);
    ASSERT_EQ(r.logp_N.scalar_type(), at::kDouble);
    ASSERT_EQ(r.logp_N.sizes(), n.logp_N.sizes());
    EXPECT_LT((r.logp_N - n.logp_N).abs().max().item<double>(), 1e-10)
        << "temperature " << temperature;
    EXPECT_LT((r.entropy_N - n.entropy_N).abs().max().item<double>(), 1e-10)
        << "temperature " << temperature;
    EXPECT_GT(r.entropy_N.min().item<double>(), 0.0);
  }
}

TEST(LogprobRef, GradientsMatchNaiveInDouble) {
  const Inputs in = make_inputs(29, 12, 41, at::kDouble, 2);
  const at::Tensor a_N = at::randn({29}, at::kDouble), b_N = at::randn({29}, at::kDouble);
  for (bool entropy_bonus : {false, true}) {
    at::Tensor h1 = in.h_ND.clone().requires_grad_(true), w1 = in.w_VD.clone().requires_grad_(true);
    at::Tensor h2 = in.h_ND.clone().requires_grad_(true), w2 = in.w_VD.clone().requires_grad_(true);
    zk::LogprobOptions opt;
    opt.chunk_tokens = 5;
    opt.with_entropy = true;
    opt.temperature = 1.3;
    const zk::LogprobResult r = zk::chosen_logprob(h1, w1, in.tgt_N, opt);
    at::Tensor loss1 = (r.logp_N * a_N).sum();
    if (entropy_bonus) loss1 = loss1 + (r.entropy_N * b_N).sum();
    loss1.backward();
    const Naive n = naive_logprob(h2, w2, in.tgt_N, 1.3);
    at::Tensor loss2 = (n.logp_N * a_N).sum();
    if (entropy_bonus) loss2 = loss2 + (n.entropy_N * b_N).sum();
    loss2.backward();
    ASSERT_TRUE(h1.grad().defined() && w1.grad().defined());
    EXPECT_GT(h2.grad().abs().max().item<double>(), 1e-3);  // the comparison below is not vacuous
    EXPECT_LT((h1.grad() - h2.grad()).abs().max().item<double>(), 1e-10)
        << "entropy bonus " << entropy_bonus;
    EXPECT_LT((w1.grad() - w2.grad()).abs().max().item<double>(), 1e-10)
        << "entropy bonus " << entropy_bonus;
  }
}

TEST(LogprobRef, ResultDoesNotDependOnChunkSize) {
  const Inputs in = make_inputs(33, 8, 19, at::kDouble, 3);
  zk::LogprobOptions opt;
  opt.with_entropy = true;
  opt.chunk_tokens = 1000;
  const zk::LogprobResult whole = zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N, opt);
  for (int64_t chunk : {1, 4, 32, 33}) {
    opt.chunk_tokens = chunk;
    const zk::LogprobResult r = zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N, opt);
    EXPECT_LT((r.logp_N - whole.logp_N).abs().max().item<double>(), 1e-12) << "chunk " << chunk;
    EXPECT_LT((r.entropy_N - whole.entropy_N).abs().max().item<double>(), 1e-12)
        << "chunk " << chunk;
  }
}

TEST(LogprobRef, Float32AndBfloat16InputsComputeInFloat32) {
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    const Inputs in = make_inputs(40, 64, 97, dt, 4);
    at::Tensor h = in.h_ND.clone().requires_grad_(true), w = in.w_VD.clone().requires_grad_(true);
    zk::LogprobOptions opt;
    opt.chunk_tokens = 16;
    opt.with_entropy = true;
    const zk::LogprobResult r = zk::chosen_logprob(h, w, in.tgt_N, opt);
    EXPECT_EQ(r.logp_N.scalar_type(), at::kFloat);
    EXPECT_EQ(r.entropy_N.scalar_type(), at::kFloat);
    // The naive result on the very same (rounded) values, in fp64.
    const Naive n = naive_logprob(in.h_ND.to(at::kDouble), in.w_VD.to(at::kDouble), in.tgt_N, 1.0);
    EXPECT_LT((r.logp_N.to(at::kDouble) - n.logp_N).abs().max().item<double>(), 1e-4) << dt;
    EXPECT_LT((r.entropy_N.to(at::kDouble) - n.entropy_N).abs().max().item<double>(), 1e-4) << dt;
    r.logp_N.sum().backward();
    EXPECT_EQ(h.grad().scalar_type(), dt);
    EXPECT_EQ(w.grad().scalar_type(), dt);
  }
}

TEST(LogprobRef, RejectsBadInputsNamingTheTensor) {
  const Inputs in = make_inputs(4, 3, 5, at::kFloat, 5);
  auto expect_error = [](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const zerorl::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N + 5); }, "target_N");
  expect_error([&] { zk::chosen_logprob(in.h_ND, in.w_VD.t().contiguous(), in.tgt_N); },
               "disagree on D");
  expect_error([&] { zk::chosen_logprob(in.h_ND, in.w_VD.to(at::kDouble), in.tgt_N); },
               "weight_VD");
  expect_error([&] { zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N.to(at::kInt)); }, "int64");
  expect_error([&] { zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N.narrow(0, 0, 3)); },
               "disagree on N");
  zk::LogprobOptions opt;
  opt.temperature = 0.0;
  expect_error([&] { zk::chosen_logprob(in.h_ND, in.w_VD, in.tgt_N, opt); }, "temperature");
}

// ---- memory bound -------------------------------------------------------
// The peak of live CPU bytes (tracking_allocator.h), installed once.
namespace {

using zerorl::test::TrackingAllocator;

TrackingAllocator& tracker() { return zerorl::test::installed_tracker(); }

}  // namespace

TEST(LogprobRef, PeakMemoryIsPerChunkNotPerBatch) {
  const int64_t N = 2048, D = 32, V = 4096, chunk = 64;
  TrackingAllocator& mem = tracker();
  const Inputs in = make_inputs(N, D, V, at::kFloat, 6);
  at::Tensor h = in.h_ND.clone().requires_grad_(true), w = in.w_VD.clone().requires_grad_(true);
  const int64_t full_logits = N * V * 4, chunk_logits = chunk * V * 4;

  mem.reset_peak();
  {
    zk::LogprobOptions opt;
    opt.chunk_tokens = chunk;
    opt.with_entropy = true;
    const zk::LogprobResult r = zk::chosen_logprob(h, w, in.tgt_N, opt);
    (r.logp_N.sum() + r.entropy_N.sum()).backward();
  }
  const int64_t chunked_peak = mem.peak_above_reset();

  // The tracker does see an [N x V] buffer when one exists.
  h.mutable_grad() = at::Tensor();
  w.mutable_grad() = at::Tensor();
  mem.reset_peak();
  {
    const Naive n = naive_logprob(h, w, in.tgt_N, 1.0);
    (n.logp_N.sum() + n.entropy_N.sum()).backward();
  }
  const int64_t naive_peak = mem.peak_above_reset();

  const int64_t grads_and_outputs = (N * D + V * D) * 4 + N * 4 * 8;
  RecordProperty("chunked_peak_bytes", std::to_string(chunked_peak));
  RecordProperty("naive_peak_bytes", std::to_string(naive_peak));
  EXPECT_GE(naive_peak, full_logits);
  // A handful of live [chunk x V] buffers (logits, probabilities, their
  // gradient, softmax scratch), never one [N x V].
  EXPECT_LT(chunked_peak, 8 * chunk_logits + grads_and_outputs)
      << "chunked peak " << chunked_peak << " B, one chunk of logits " << chunk_logits << " B";
  EXPECT_LT(chunked_peak, full_logits / 2);
}
