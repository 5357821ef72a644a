// rmsnorm() on CPU against a per-row loop, and its gradient against the
// hand-derived formula the CUDA backward implements:
//   r = 1/sqrt(mean(x^2) + eps), xhat = x r,
//   dx = r (g w - xhat mean(g w xhat)),  dw = sum_rows g xhat.
// fp64 both sides: 1e-12.
#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/rmsnorm/rmsnorm.h"

namespace zk = zerorl::kernels;

TEST(RmsnormRef, ForwardMatchesRowLoopInDouble) {
  at::manual_seed(11);
  const at::Tensor x = at::randn({3, 5, 24}, at::kDouble), w = at::randn({24}, at::kDouble);
  const double eps = 1e-6;
  const at::Tensor y = zk::rmsnorm(x, w, eps);
  ASSERT_EQ(y.sizes(), x.sizes());
  const at::Tensor x2 = x.reshape({-1, 24}), y2 = y.reshape({-1, 24});
  auto xa = x2.accessor<double, 2>();
  auto ya = y2.accessor<double, 2>();
  auto wa = w.accessor<double, 1>();
  double worst = 0;
  for (int64_t r = 0; r < x2.size(0); ++r) {
    double ss = 0;
    for (int64_t d = 0; d < 24; ++d) ss += xa[r][d] * xa[r][d];
    const double inv = 1.0 / std::sqrt(ss / 24 + eps);
    for (int64_t d = 0; d < 24; ++d)
      worst = std::max(worst, std::abs(ya[r][d] - wa[d] * xa[r][d] * inv));
  }
  EXPECT_LT(worst, 1e-12);
}

TEST(RmsnormRef, GradientMatchesHandDerivedFormula) {
  at::manual_seed(12);
  const int64_t D = 40;
  at::Tensor x = at::randn({7, D}, at::kDouble).requires_grad_(true);
  at::Tensor w = at::randn({D}, at::kDouble).requires_grad_(true);
  const at::Tensor g = at::randn({7, D}, at::kDouble);
  const double eps = 1e-5;
  (zk::rmsnorm(x, w, eps) * g).sum().backward();
  const at::Tensor xd = x.detach(), wd = w.detach();
  const at::Tensor r = at::rsqrt(xd.pow(2).mean(-1, true) + eps);
  const at::Tensor xhat = xd * r;
  const at::Tensor gw = g * wd;
  const at::Tensor dx = r * (gw - xhat * (gw * xhat).mean(-1, true));
  const at::Tensor dw = (g * xhat).sum(0);
  EXPECT_LT((x.grad() - dx).abs().max().item<double>(), 1e-12);
  EXPECT_LT((w.grad() - dw).abs().max().item<double>(), 1e-12);
}

TEST(RmsnormRef, Bfloat16RoundsTheNormalisedValueBeforeTheWeight) {
  // HF: weight * normed.to(bf16); the result is bf16 and equals that exactly.
  at::manual_seed(13);
  const at::Tensor x = at::randn({4, 64}).to(at::kBFloat16), w = at::randn({64}).to(at::kBFloat16);
  const at::Tensor y = zk::rmsnorm(x, w, 1e-6);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = (xf * at::rsqrt(xf.pow(2).mean(-1, true) + 1e-6)).to(at::kBFloat16);
  EXPECT_TRUE(at::equal(y, w * normed));
}

TEST(RmsnormRef, RejectsMismatchedWeight) {
  const at::Tensor x = at::randn({2, 8});
  EXPECT_THROW(zk::rmsnorm(x, at::ones({7}), 1e-6), zerorl::Error);
  EXPECT_THROW(zk::rmsnorm(x, at::ones({8}), -1.0), zerorl::Error);
}
