// chosen_logprob() on a CUDA device against its CPU reference (label gpu;
// tests/kernels/gpu_test_util.h has the tolerances).
#include "kernels/logprob/logprob.h"

#include "tests/kernels/gpu_test_util.h"

namespace zk = zerorl::kernels;
using zerorl::test::kGpu;
using zerorl::test::rel_err;
using zerorl::test::tol_for;

TEST(GpuLogprob, MatchesReferenceForwardAndBackward) {
  ZR_REQUIRE_CUDA();
  struct Shape {
    int64_t N, D, V, chunk;
  };
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (Shape s : {Shape{300, 64, 1000, 128}, Shape{1, 8, 33, 1024}, Shape{257, 128, 4099, 64}}) {
      SCOPED_TRACE(::testing::Message() << dt << " N=" << s.N << " D=" << s.D << " V=" << s.V);
      at::manual_seed(100 + s.V);
      const at::Tensor h = at::randn({s.N, s.D}).to(dt), w = (at::randn({s.V, s.D}) * 0.3).to(dt);
      const at::Tensor tgt = at::randint(s.V, {s.N}, at::kLong);
      const at::Tensor a = at::randn({s.N}, at::kDouble), b = at::randn({s.N}, at::kDouble);
      zk::LogprobOptions opt;
      opt.chunk_tokens = s.chunk;
      opt.with_entropy = true;
      opt.temperature = 0.8;

      at::Tensor hg = h.to(kGpu).requires_grad_(true), wg = w.to(kGpu).requires_grad_(true);
      const zk::LogprobResult rg = zk::chosen_logprob(hg, wg, tgt.to(kGpu), opt);
      ((rg.logp_N.to(at::kDouble) * a.to(kGpu)).sum() +
       (rg.entropy_N.to(at::kDouble) * b.to(kGpu)).sum())
          .backward();

      at::Tensor hc = h.to(at::kDouble).requires_grad_(true),
                 wc = w.to(at::kDouble).requires_grad_(true);
      const zk::LogprobResult rc = zk::chosen_logprob(hc, wc, tgt, opt);
      ((rc.logp_N * a).sum() + (rc.entropy_N * b).sum()).backward();

      EXPECT_EQ(rg.logp_N.scalar_type(), at::kFloat);
      EXPECT_LT(rel_err(rg.logp_N, rc.logp_N), tol_for(dt));
      EXPECT_LT(rel_err(rg.entropy_N, rc.entropy_N), tol_for(dt));
      EXPECT_EQ(hg.grad().scalar_type(), dt);
      EXPECT_LT(rel_err(hg.grad(), hc.grad()), tol_for(dt));
      EXPECT_LT(rel_err(wg.grad(), wc.grad()), tol_for(dt));
    }
  }
}

TEST(GpuLogprob, Float64TakesTheReferencePathOnTheGpu) {
  ZR_REQUIRE_CUDA();
  at::manual_seed(101);
  const at::Tensor h = at::randn({20, 16}, at::kDouble), w = at::randn({50, 16}, at::kDouble);
  const at::Tensor tgt = at::randint(50, {20}, at::kLong);
  const zk::LogprobResult rg = zk::chosen_logprob(h.to(kGpu), w.to(kGpu), tgt.to(kGpu));
  const zk::LogprobResult rc = zk::chosen_logprob(h, w, tgt);
  EXPECT_LT(rel_err(rg.logp_N, rc.logp_N), 1e-12);
}

TEST(GpuLogprob, OutOfRangeTargetGivesNaN) {
  ZR_REQUIRE_CUDA();
  const at::Tensor h = at::randn({3, 8}, kGpu), w = at::randn({5, 8}, kGpu);
  const at::Tensor tgt = at::tensor({int64_t{0}, int64_t{7}, int64_t{4}}).to(kGpu);
  const at::Tensor logp = zk::chosen_logprob(h, w, tgt).logp_N.cpu();
  EXPECT_FALSE(std::isnan(logp[0].item<float>()));
  EXPECT_TRUE(std::isnan(logp[1].item<float>()));
  EXPECT_FALSE(std::isnan(logp[2].item<float>()));
}
