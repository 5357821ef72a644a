#include "trainer/advantages.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/config.h"
#include "core/error.h"

namespace zerorl {
namespace {

using Est = AdvantageConfig::Estimator;

AdvantageConfig cfg_of(Est e, AdvantageConfig::StdKind k = AdvantageConfig::StdKind::kSample,
                       double eps = 1e-4) {
  AdvantageConfig c;
  c.estimator = e;
  c.std_kind = k;
  c.eps = eps;
  return c;
}

TEST(Advantages, GrpoSampleStdOnAWorkedExample) {
  // Group {1, 0, 0, 1}: mean 0.5, sample std sqrt(1/3), population std 0.5.
  const std::vector<double> r = {1, 0, 0, 1};
  const auto s = compute_advantages(r, 4, cfg_of(Est::kGrpo));
  const double a = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-4);
  EXPECT_NEAR(s.advantages[0], a, 1e-15);
  EXPECT_NEAR(s.advantages[1], -a, 1e-15);
  const auto p =
      compute_advantages(r, 4, cfg_of(Est::kGrpo, AdvantageConfig::StdKind::kPopulation, 0.0));
  EXPECT_NEAR(p.advantages[3], 1.0, 1e-15);
  EXPECT_NEAR(p.advantages[2], -1.0, 1e-15);
}

TEST(Advantages, EachEstimatorMatchesItsDefinitionOnRandomGroups) {
  std::mt19937_64 gen(42);
  std::normal_distribution<double> nrm(0, 1);
  const int64_t G = 6, num_groups = 5;
  std::vector<double> r(G * num_groups);
  for (double& x : r) x = nrm(gen);
  const auto grpo = compute_advantages(r, G, cfg_of(Est::kGrpo)).advantages;
  const auto dr = compute_advantages(r, G, cfg_of(Est::kDrGrpo)).advantages;
  const auto rloo = compute_advantages(r, G, cfg_of(Est::kRloo)).advantages;
  for (int64_t g = 0; g < num_groups; ++g) {
    double mean = 0;
    for (int64_t i = 0; i < G; ++i) mean += r[g * G + i] / G;
    double var = 0;
    for (int64_t i = 0; i < G; ++i) var += (r[g * G + i] - mean) * (r[g * G + i] - mean) / (G - 1);
    for (int64_t i = 0; i < G; ++i) {
      const int64_t k = g * G + i;
      EXPECT_NEAR(grpo[k], (r[k] - mean) / (std::sqrt(var) + 1e-4), 1e-12);
      EXPECT_NEAR(dr[k], r[k] - mean, 1e-12);
      double others = 0;
      for (int64_t j = 0; j < G; ++j)
        if (j != i) others += r[g * G + j];
      EXPECT_NEAR(rloo[k], r[k] - others / (G - 1), 1e-12);
      EXPECT_NEAR(rloo[k], G / (G - 1.0) * (r[k] - mean), 1e-12);  // the known identity
    }
  }
}

TEST(Advantages, EqualRewardGroupsGetExactlyZeroEvenWithRoundingNoise) {
  // Group 0 all correct; group 1 equal up to rounding (0.1 + 0.2 vs 0.3): a
  // std-based test would give (r - m) / (1e-17 + eps) = O(1e-13), not 0, and
  // with eps = 0 a huge advantage.  Group 2 has a real spread.
  const std::vector<double> r = {1, 1, 1, 1, 0.1 + 0.2, 0.3, 0.3, 0.3, 0, 1, 0, 0};
  for (Est e : {Est::kGrpo, Est::kDrGrpo, Est::kRloo}) {
    const auto s = compute_advantages(r, 4, cfg_of(e, AdvantageConfig::StdKind::kSample, 0.0));
    for (int i = 0; i < 8; ++i) EXPECT_EQ(s.advantages[i], 0.0) << to_string(e) << " i=" << i;
    EXPECT_NE(s.advantages[9], 0.0);
    EXPECT_EQ(s.num_zero_spread_groups, 2);
    EXPECT_EQ(s.has_signal, (std::vector<uint8_t>{0, 0, 1}));
  }
}

TEST(Advantages, DynamicSamplingKeepsGroupsWithSpread) {
  const std::vector<double> r = {1, 1, 0, 0, 0, 0, 0.5, 0.5, 0.5, 1, 0, 1};
  EXPECT_EQ(groups_with_signal(r, 3, 1e-9), (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(groups_with_signal(r, 3, 2.0), (std::vector<bool>{false, false, false, false}));
}

TEST(Advantages, BadInputIsNamed) {
  AdvantageConfig c;
  EXPECT_THROW(compute_advantages({1, 2, 3}, 2, c), Error);  // not a multiple of G
  EXPECT_THROW(compute_advantages({1, 2}, 1, c), Error);     // G < 2
  try {
    compute_advantages({1, 2, NAN, 0}, 2, c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reward 2 (group 1"), std::string::npos) << e.what();
  }
}

TEST(AdvantageConfig, FromRecipeWithValidation) {
  Recipe r = Recipe::from_string(
      "adv:\n  estimator: rloo\n  std: population\n  eps: 1e-6\n  dynamic_sampling: true\n"
      "  max_sampling_rounds: 2\n",
      "a.yaml");
  const AdvantageConfig c = AdvantageConfig::from(r.section("adv"));
  EXPECT_EQ(c.estimator, Est::kRloo);
  EXPECT_EQ(c.std_kind, AdvantageConfig::StdKind::kPopulation);
  EXPECT_DOUBLE_EQ(c.eps, 1e-6);
  EXPECT_TRUE(c.dynamic_sampling);
  EXPECT_EQ(c.max_sampling_rounds, 2);
  EXPECT_NO_THROW(r.check_all_read());
  Recipe bad = Recipe::from_string("adv:\n  estimator: ppo\n", "b.yaml");
  EXPECT_THROW(AdvantageConfig::from(bad.section("adv")), Error);
  Recipe bad2 = Recipe::from_string("adv:\n  eps: -1\n", "b.yaml");
  try {
    AdvantageConfig::from(bad2.section("adv"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.yaml:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("adv.eps"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zerorl
