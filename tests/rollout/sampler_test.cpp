// The host sampler on fixed logits: the empirical distribution of many draws
// matches the intended one (temperature, top-k, top-p) by a chi-square test;
// the behaviour log-prob is the untruncated tempered log-softmax; greedy and
// streams are deterministic; recipe parsing names bad keys.
//
// The expected distributions are computed here from the definitions (long
// double, sorted by hand), not by the library's sampling_distribution().
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "rollout/sampling.h"

namespace zerorl::rollout {
namespace {

const std::vector<float> kLogits = {1.2f, -0.3f, 2.5f, 0.0f,
                                    2.1f, -1.7f, 0.8f, 2.1f};  // V = 8, a tie at 4/7

// Reference: softmax(x/T), keep top_k most probable (lower id first on ties),
// then the smallest prefix with renormalised mass >= top_p; renormalise.
std::vector<double> reference_distribution(const std::vector<float>& x, double T, int64_t top_k,
                                           double top_p) {
  const size_t V = x.size();
  std::vector<long double> p(V);
  long double m = *std::max_element(x.begin(), x.end()), sum = 0;
  for (size_t v = 0; v < V; ++v) sum += p[v] = std::exp((static_cast<long double>(x[v]) - m) / T);
  for (auto& q : p) q /= sum;
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  size_t keep = top_k > 0 ? std::min<size_t>(static_cast<size_t>(top_k), V) : V;
  long double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += p[order[i]];
  if (top_p < 1.0) {
    long double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += p[order[n]] / kept;
      ++n;
      if (cum >= top_p) break;
    }
    keep = n;
  }
  long double mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += p[order[i]];
  std::vector<double> out(V, 0.0);
  for (size_t i = 0; i < keep; ++i) out[order[i]] = static_cast<double>(p[order[i]] / mass);
  return out;
}

// Upper 0.1% points of chi-square with df = 1..7.
double chi2_critical_999(int df) {
  static const double k[] = {10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};
  return k[df - 1];
}

struct Draws {
  std::vector<int64_t> counts;
  int64_t n = 0;
};

Draws draw_many(const SamplingParams& sp, int64_t n, uint64_t seed) {
  Rng rng(seed, 0, 0, 0, RngPurpose::kSample);
  SamplerScratch scratch;
  Draws d;
  d.counts.assign(kLogits.size(), 0);
  d.n = n;
  for (int64_t i = 0; i < n; ++i) ++d.counts[sample_token(kLogits.data(), 8, sp, rng, scratch).id];
  return d;
}

// Pearson chi-square over the ids with expected mass; ids with zero expected
// mass must never be drawn (reported as +inf).
double chi_square(const Draws& d, const std::vector<double>& expected, int* df) {
  double chi2 = 0;
  int cells = 0;
  for (size_t v = 0; v < expected.size(); ++v) {
    if (expected[v] == 0.0) {
      if (d.counts[v] != 0) return INFINITY;
      continue;
    }
    const double e = expected[v] * d.n;
    chi2 += (d.counts[v] - e) * (d.counts[v] - e) / e;
    ++cells;
  }
  *df = cells - 1;
  return chi2;
}

struct Case {
  const char* name;
  double T;
  int64_t top_k;
  double top_p;
};

TEST(Sampler, DrawsFollowTheIntendedDistributionChiSquare) {
  const Case cases[] = {
      {"T=1", 1.0, 0, 1.0},
      {"T=0.5", 0.5, 0, 1.0},
      {"T=2", 2.0, 0, 1.0},
      {"top_k=3", 1.0, 3, 1.0},
      {"top_p=0.7", 1.0, 0, 0.7},
      {"top_p=0.9,T=1.5", 1.5, 0, 0.9},
      {"top_k=4,top_p=0.8,T=0.7", 0.7, 4, 0.8},
      {"top_k=1", 1.0, 1, 1.0},
  };
  uint64_t seed = 11;
  for (const Case& c : cases) {
    SamplingParams sp;
    sp.temperature = c.T;
    sp.top_k = c.top_k;
    sp.top_p = c.top_p;
    const std::vector<double> expected = reference_distribution(kLogits, c.T, c.top_k, c.top_p);
    const Draws d = draw_many(sp, 200000, seed++);
    int df = 0;
    const double chi2 = chi_square(d, expected, &df);
    if (df == 0) {  // a single kept id: every draw must be it
      EXPECT_TRUE(std::isfinite(chi2)) << c.name << ": drew an id outside the kept set";
      continue;
    }
    EXPECT_LT(chi2, chi2_critical_999(df)) << c.name << ": chi2 " << chi2 << " with df " << df;

    // The library's own view of the distribution agrees with the definition.
    const std::vector<double> lib = sampling_distribution(kLogits.data(), 8, sp);
    for (size_t v = 0; v < 8; ++v) EXPECT_NEAR(lib[v], expected[v], 1e-12) << c.name << " id " << v;
  }
}

TEST(Sampler, ChiSquareRejectsTheWrongDistribution) {
  // The test above can fail: draws at T=1 are far from the T=0.5 distribution,
  // and top_p=0.7 draws land outside a top_k=2 set.
  SamplingParams sp;
  int df = 0;
  const Draws d = draw_many(sp, 200000, 5);
  EXPECT_GT(chi_square(d, reference_distribution(kLogits, 0.5, 0, 1.0), &df), 1000.0);
  sp.top_p = 0.7;
  const Draws d2 = draw_many(sp, 20000, 6);
  EXPECT_TRUE(std::isinf(chi_square(d2, reference_distribution(kLogits, 1.0, 2, 1.0), &df)));
}

TEST(Sampler, TopPKeepsTheTieBreakDeterministic) {
  // Ids 4 and 7 tie (2.1); top_k=2 keeps id 2 and the lower of the tie, 4.
  SamplingParams sp;
  sp.top_k = 2;
  const Draws d = draw_many(sp, 5000, 3);
  EXPECT_GT(d.counts[2], 0);
  EXPECT_GT(d.counts[4], 0);
  EXPECT_EQ(d.counts[2] + d.counts[4], d.n);
}

TEST(Sampler, BehaviourLogprobIsTheUntruncatedTemperedLogSoftmax) {
  for (double T : {0.6, 1.0, 1.7}) {
    SamplingParams sp;
    sp.temperature = T;
    sp.top_k = 3;
    sp.top_p = 0.8;
    long double m = *std::max_element(kLogits.begin(), kLogits.end()), s = 0;
    for (float x : kLogits) s += std::exp((x - m) / T);
    const long double lse = m / T + std::log(s);
    Rng rng(1);
    SamplerScratch scratch;
    for (int i = 0; i < 50; ++i) {
      const SampledToken t = sample_token(kLogits.data(), 8, sp, rng, scratch);
      EXPECT_NEAR(t.logp, static_cast<double>(kLogits[t.id] / T - lse), 1e-12) << "T " << T;
    }
  }
}

TEST(Sampler, GreedyTakesTheLowestArgmaxAndDrawsNothing) {
  SamplingParams sp;
  sp.temperature = 0.0;
  std::vector<float> x = {0.5f, 3.0f, -1.0f, 3.0f};
  Rng rng(9);
  const Rng::State before = rng.state();
  SamplerScratch scratch;
  const SampledToken t = sample_token(x.data(), 4, sp, rng, scratch);
  EXPECT_EQ(t.id, 1);
  EXPECT_EQ(rng.state(), before);
  // logp at T = 1
  double s = 0;
  for (float v : x) s += std::exp(v - 3.0);
  EXPECT_NEAR(t.logp, -std::log(s), 1e-12);
}

TEST(Sampler, OneDrawPerTokenAndSameStreamSameTokens) {
  SamplingParams sp;
  sp.top_p = 0.9;
  Rng a(42, 3, 7, 1, RngPurpose::kSample), b(42, 3, 7, 1, RngPurpose::kSample);
  SamplerScratch s1, s2;
  std::vector<int64_t> ta, tb;
  for (int i = 0; i < 100; ++i) {
    ta.push_back(sample_token(kLogits.data(), 8, sp, a, s1).id);
    tb.push_back(sample_token(kLogits.data(), 8, sp, b, s2).id);
  }
  EXPECT_EQ(ta, tb);
  Rng c(42, 3, 7, 1, RngPurpose::kSample);
  for (int i = 0; i < 100; ++i) c.uniform();
  EXPECT_EQ(a.state(), c.state());
}

TEST(Sampler, NanLogitsThrow) {
  std::vector<float> x = {0.f, NAN, 1.f};
  SamplingParams sp;
  Rng rng(0);
  SamplerScratch scratch;
  EXPECT_THROW(sample_token(x.data(), 3, sp, rng, scratch), Error);
  std::vector<float> y = {-INFINITY, -INFINITY};
  EXPECT_THROW(sample_token(y.data(), 2, sp, rng, scratch), Error);
}

TEST(SamplingParams, FromRecipeReadsEveryKeyAndNamesBadOnes) {
  Recipe r = Recipe::from_string(
      "sampling:\n  temperature: 0.7\n  top_p: 0.95\n  top_k: 20\n  max_new_tokens: 64\n"
      "  stop_strings: [\"</answer>\"]\n  stop_token_ids: [2]\n",
      "r.yaml");
  const SamplingParams p = SamplingParams::from(r.section("sampling"));
  EXPECT_DOUBLE_EQ(p.temperature, 0.7);
  EXPECT_DOUBLE_EQ(p.top_p, 0.95);
  EXPECT_EQ(p.top_k, 20);
  EXPECT_EQ(p.max_new_tokens, 64);
  EXPECT_EQ(p.stop_strings, std::vector<std::string>{"</answer>"});
  EXPECT_EQ(p.stop_token_ids, std::vector<int64_t>{2});
  EXPECT_NO_THROW(r.check_all_read());

  // The streams' seed is the caller's (train.seed, eval.seed): a sampling
  // seed in the recipe was once parsed and then silently overwritten.
  Recipe seeded = Recipe::from_string("sampling:\n  top_p: 0.9\n  seed: 5\n", "seeded.yaml");
  try {
    SamplingParams::from(seeded.section("sampling"));
    FAIL() << "sampling.seed accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("seeded.yaml:3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("sampling.seed"), std::string::npos) << msg;
    EXPECT_NE(msg.find("train.seed"), std::string::npos) << msg;
  }

  Recipe bad = Recipe::from_string("sampling:\n  top_p: 1.5\n", "bad.yaml");
  try {
    SamplingParams::from(bad.section("sampling"));
    FAIL() << "top_p 1.5 accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("sampling.top_p"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bad.yaml:2"), std::string::npos) << msg;
  }
  Recipe bad2 = Recipe::from_string("sampling:\n  max_new_tokens: 0\n", "bad2.yaml");
  EXPECT_THROW(SamplingParams::from(bad2.section("sampling")), Error);
}

}  // namespace
}  // namespace zerorl::rollout
