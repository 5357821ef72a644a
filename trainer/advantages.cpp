#include "trainer/advantages.h"

#include <algorithm>
#include <cmath>

#include "core/config.h"
#include "core/error.h"

namespace zerorl {

AdvantageConfig AdvantageConfig::from(const ConfigNode& n) {
  AdvantageConfig c;
  const std::string est = n.choice("estimator", {"grpo", "dr_grpo", "rloo"}, "grpo");
  c.estimator = est == "grpo"      ? Estimator::kGrpo
                : est == "dr_grpo" ? Estimator::kDrGrpo
                                   : Estimator::kRloo;
  const std::string sk = n.choice("std", {"sample", "population"}, "sample");
  c.std_kind = sk == "sample" ? StdKind::kSample : StdKind::kPopulation;
  c.eps = n.get<double>("eps", c.eps);
  ZR_CHECK(std::isfinite(c.eps) && c.eps >= 0, n.where("eps"), ": ", n.path("eps"),
           " must be a finite number >= 0, got ", c.eps);
  c.zero_spread_tol = n.get<double>("zero_spread_tol", c.zero_spread_tol);
  ZR_CHECK(std::isfinite(c.zero_spread_tol) && c.zero_spread_tol >= 0, n.where("zero_spread_tol"),
           ": ", n.path("zero_spread_tol"), " must be a finite number >= 0, got ",
           c.zero_spread_tol);
  c.dynamic_sampling = n.get<bool>("dynamic_sampling", c.dynamic_sampling);
  c.max_sampling_rounds = n.get<int>("max_sampling_rounds", c.max_sampling_rounds);
  ZR_CHECK(c.max_sampling_rounds >= 1, n.where("max_sampling_rounds"), ": ",
           n.path("max_sampling_rounds"),
           " must be >= 1 (rollout rounds per step, the first included), got ",
           c.max_sampling_rounds);
  return c;
}

std::string to_string(AdvantageConfig::Estimator e) {
  switch (e) {
    case AdvantageConfig::Estimator::kGrpo:
      return "grpo";
    case AdvantageConfig::Estimator::kDrGrpo:
      return "dr_grpo";
    case AdvantageConfig::Estimator::kRloo:
      return "rloo";
  }
  return "?";
}

namespace {

void check_rewards(const std::vector<double>& rewards, int64_t group_size) {
  ZR_CHECK(group_size >= 2,
           "advantages: group size must be >= 2 (a group of one has no baseline), got ",
           group_size);
  const int64_t n = static_cast<int64_t>(rewards.size());
  ZR_CHECK(n % group_size == 0, "advantages: ", n, " rewards is not a multiple of the group size ",
           group_size);
  for (int64_t i = 0; i < n; ++i) {
    ZR_CHECK(std::isfinite(rewards[i]), "advantages: reward ", i, " (group ", i / group_size,
             ", completion ", i % group_size, ") is not finite: ", rewards[i]);
  }
}

bool group_spread_above(const double* r, int64_t g, double tol) {
  const auto [lo, hi] = std::minmax_element(r, r + g);
  return *hi - *lo > tol;
}

}  // namespace

std::vector<bool> groups_with_signal(const std::vector<double>& rewards, int64_t group_size,
                                     double tol) {
  check_rewards(rewards, group_size);
  const int64_t num_groups = static_cast<int64_t>(rewards.size()) / group_size;
  std::vector<bool> keep(num_groups);
  for (int64_t g = 0; g < num_groups; ++g) {
    keep[g] = group_spread_above(rewards.data() + g * group_size, group_size, tol);
  }
  return keep;
}

GroupAdvantages compute_advantages(const std::vector<double>& rewards, int64_t group_size,
                                   const AdvantageConfig& cfg) {
  check_rewards(rewards, group_size);
  const int64_t G = group_size;
  const int64_t num_groups = static_cast<int64_t>(rewards.size()) / G;
  GroupAdvantages out;
  out.advantages.assign(rewards.size(), 0.0);
  out.has_signal.assign(num_groups, 0);
  for (int64_t g = 0; g < num_groups; ++g) {
    const double* r = rewards.data() + g * G;
    double* a = out.advantages.data() + g * G;
    if (!group_spread_above(r, G, cfg.zero_spread_tol)) {
      ++out.num_zero_spread_groups;
      continue;  // advantages stay exactly 0
    }
    out.has_signal[g] = 1;
    double sum = 0;
    for (int64_t i = 0; i < G; ++i) sum += r[i];
    const double mean = sum / static_cast<double>(G);
    switch (cfg.estimator) {
      case AdvantageConfig::Estimator::kGrpo: {
        double ss = 0;
        for (int64_t i = 0; i < G; ++i) ss += (r[i] - mean) * (r[i] - mean);
        const double dof = cfg.std_kind == AdvantageConfig::StdKind::kSample ? G - 1.0 : double(G);
        const double sd = std::sqrt(ss / dof);
        for (int64_t i = 0; i < G; ++i) a[i] = (r[i] - mean) / (sd + cfg.eps);
        break;
      }
      case AdvantageConfig::Estimator::kDrGrpo:
        for (int64_t i = 0; i < G; ++i) a[i] = r[i] - mean;
        break;
      case AdvantageConfig::Estimator::kRloo:
        // Baseline from the other G-1 samples, computed directly (not via the
        // G/(G-1) identity) so that the header's definition is the code.
        for (int64_t i = 0; i < G; ++i) a[i] = r[i] - (sum - r[i]) / static_cast<double>(G - 1);
        break;
    }
  }
  return out;
}

}  // namespace zerorl
