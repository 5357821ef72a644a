#include "core/rng.h"
#include "core/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

using namespace zerorl;

TEST(Rng, SameCoordinatesSameStream) {
  Rng a(7, 3, 1, 42, RngPurpose::kSample), b(7, 3, 1, 42, RngPurpose::kSample);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Rng, EachCoordinateChangesTheStream) {
  uint64_t base = stream_seed(7, 3, 1, 42, RngPurpose::kSample);
  std::set<uint64_t> seeds{base};
  seeds.insert(stream_seed(8, 3, 1, 42, RngPurpose::kSample));
  seeds.insert(stream_seed(7, 4, 1, 42, RngPurpose::kSample));
  seeds.insert(stream_seed(7, 3, 2, 42, RngPurpose::kSample));
  seeds.insert(stream_seed(7, 3, 1, 43, RngPurpose::kSample));
  seeds.insert(stream_seed(7, 3, 1, 42, RngPurpose::kData));
  // swapped coordinates must not collide either
  seeds.insert(stream_seed(7, 1, 3, 42, RngPurpose::kSample));
  EXPECT_EQ(seeds.size(), 7u);
}

TEST(Rng, NeighbouringStreamsAreUncorrelated) {
  // Streams for samples 0..63 at the same step: their first uniforms should
  // look independent (mean ~0.5, pairwise correlation ~0).
  const int kStreams = 64, kDraws = 2000;
  std::vector<std::vector<double>> u(kStreams, std::vector<double>(kDraws));
  for (int s = 0; s < kStreams; ++s) {
    Rng r(1, 0, 0, s, RngPurpose::kSample);
    for (int i = 0; i < kDraws; ++i) u[s][i] = r.uniform();
  }
  double worst = 0;
  for (int s = 0; s + 1 < kStreams; ++s) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < kDraws; ++i) {
      mx += u[s][i];
      my += u[s + 1][i];
    }
    mx /= kDraws;
    my /= kDraws;
    for (int i = 0; i < kDraws; ++i) {
      double dx = u[s][i] - mx, dy = u[s + 1][i] - my;
      sxy += dx * dy;
      sxx += dx * dx;
      syy += dy * dy;
    }
    worst = std::max(worst, std::fabs(sxy / std::sqrt(sxx * syy)));
    EXPECT_NEAR(mx, 0.5, 0.03);
  }
  // |r| for independent samples of 2000 has sd ~0.022; 0.1 is > 4 sd.
  EXPECT_LT(worst, 0.1);
}

TEST(Rng, StateRoundTripsExactly) {
  Rng r(123);
  for (int i = 0; i < 10; ++i) r.next_u64();
  std::string saved = r.state_string();
  uint64_t next = r.next_u64();
  Rng back(0);
  back.set_state_string(saved);
  EXPECT_EQ(back.next_u64(), next);
  EXPECT_THROW(back.set_state_string("garbage"), Error);
}

TEST(Rng, BelowIsUniformAndInRange) {
  Rng r(5);
  std::vector<int> counts(6);
  for (int i = 0; i < 60000; ++i) {
    auto x = r.below(6);
    ASSERT_LT(x, 6u);
    counts[x]++;
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);  // ~4 sd
  EXPECT_THROW(r.below(0), Error);
}

TEST(Rng, NormalHasUnitVariance) {
  Rng r(9);
  double s = 0, ss = 0;
  const int n = 50000;
  for (int i = 0; i < n; ++i) {
    double x = r.normal();
    s += x;
    ss += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.02);
  EXPECT_NEAR(ss / n, 1.0, 0.03);
}
