// rmsnorm() on a CUDA device against its CPU reference (label gpu;
// tests/kernels/gpu_test_util.h has the tolerances).
#include "kernels/rmsnorm/rmsnorm.h"

#include "tests/kernels/gpu_test_util.h"

namespace zk = zerorl::kernels;
using zerorl::test::kGpu;
using zerorl::test::rel_err;
using zerorl::test::tol_for;

TEST(GpuRmsnorm, MatchesReferenceForwardAndBackward) {
  ZR_REQUIRE_CUDA();
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // 1001: no 16-byte packs (single-element loads); 13000: wider than the
    // shared dw accumulator (separate dw kernel); the rest take packs.
    for (int64_t D : {64, 1000, 1001, 4096, 13000}) {
      SCOPED_TRACE(::testing::Message() << dt << " D=" << D);
      at::manual_seed(200 + D);
      const at::Tensor x = at::randn({3, 7, D}).to(dt), w = (1 + 0.1 * at::randn({D})).to(dt);
      const at::Tensor g = at::randn({3, 7, D}, at::kDouble);
      at::Tensor xg = x.to(kGpu).requires_grad_(true), wg = w.to(kGpu).requires_grad_(true);
      const at::Tensor yg = zk::rmsnorm(xg, wg, 1e-6);
      EXPECT_EQ(yg.scalar_type(), dt);
      (yg.to(at::kDouble) * g.to(kGpu)).sum().backward();
      at::Tensor xc = x.to(at::kDouble).requires_grad_(true),
                 wc = w.to(at::kDouble).requires_grad_(true);
      const at::Tensor yc = zk::rmsnorm(xc, wc, 1e-6);
      (yc * g).sum().backward();
      const double tol = dt == at::kFloat ? 1e-5 : 2e-2;
      EXPECT_LT(rel_err(yg, yc), tol);
      EXPECT_LT(rel_err(xg.grad(), xc.grad()), tol);
      EXPECT_LT(rel_err(wg.grad(), wc.grad()), tol);
      // Same inputs, same bits: the CPU reference in the input dtype rounds
      // like the kernel up to the order of the sum of squares (1 ulp).
      const at::Tensor y_same = zk::rmsnorm(x, w, 1e-6);
      EXPECT_LT(rel_err(yg, y_same), dt == at::kFloat ? 1e-6 : 1e-2);
    }
  }
}
