// moe_route() and moe_experts() on CPU (the reference path) against per-token
// loops written independently of the ATen formulation, including the shapes
// MoE produces: an expert with no tokens, all tokens on one expert, ragged
// counts, top_k = 1, top_k = E, group-limited routing.
//
// Tolerances: experts in fp64 on both sides (1e-12 forward, 1e-10 gradients);
// router weights are fp32 by contract (1e-6).  Expert choices exactly.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/moe/moe.h"
#include "kernels/moe/moe_impl.h"

namespace zk = zerorl::kernels;

namespace {

// Indices of the k largest values, descending, lower index first on ties.
std::vector<int64_t> top_indices(const std::vector<double>& v, int64_t k) {
  std::vector<int64_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  idx.resize(k);
  return idx;
}

struct LoopRoute {
  std::vector<std::vector<int64_t>> idx;
  std::vector<std::vector<double>> weight;
};

// The DeepSeek-V3 / Qwen2-MoE router, one token at a time, in double.
LoopRoute loop_route(const at::Tensor& logits_TE, const at::Tensor& bias_E,
                     const zk::RouterOptions& opt) {
  const int64_t T = logits_TE.size(0), E = logits_TE.size(1);
  const at::Tensor lg = logits_TE.to(at::kDouble).contiguous();
  LoopRoute out;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> s(E), c(E);
    const double* row = lg.data_ptr<double>() + t * E;
    const double mx = *std::max_element(row, row + E);
    double z = 0;
    for (int64_t e = 0; e < E; ++e) z += std::exp(row[e] - mx);
    for (int64_t e = 0; e < E; ++e) {
      s[e] = opt.sigmoid ? 1.0 / (1.0 + std::exp(-row[e])) : std::exp(row[e] - mx) / z;
      c[e] = s[e] + (bias_E.defined() ? bias_E[e].item<double>() : 0.0);
    }
    if (opt.n_group > 1) {
      const int64_t per = E / opt.n_group;
      std::vector<double> gscore(opt.n_group);
      for (int64_t g = 0; g < opt.n_group; ++g) {
        std::vector<double> part(c.begin() + g * per, c.begin() + (g + 1) * per);
        std::sort(part.rbegin(), part.rend());
        gscore[g] = part[0] + part[1];
      }
      const std::vector<int64_t> keep = top_indices(gscore, opt.topk_group);
      for (int64_t e = 0; e < E; ++e)
        if (std::find(keep.begin(), keep.end(), e / per) == keep.end()) c[e] = -INFINITY;
    }
    const std::vector<int64_t> pick = top_indices(c, opt.top_k);
    std::vector<double> w;
    double sum = 0;
    for (int64_t e : pick) sum += s[e];
    for (int64_t e : pick)
      w.push_back((opt.norm_topk_prob ? s[e] / (sum + 1e-20) : s[e]) * opt.routed_scaling_factor);
    out.idx.push_back(pick);
    out.weight.push_back(w);
  }
  return out;
}

void expect_route_matches_loop(const at::Tensor& logits_TE, const at::Tensor& bias_E,
                               const zk::RouterOptions& opt) {
  const zk::RouterOutput r = zk::moe_route(logits_TE, bias_E, opt);
  const LoopRoute l = loop_route(logits_TE, bias_E, opt);
  const int64_t T = logits_TE.size(0);
  ASSERT_EQ(r.topk_idx_TK.sizes(), (at::IntArrayRef{T, opt.top_k}));
  ASSERT_EQ(r.topk_idx_TK.scalar_type(), at::kLong);
  ASSERT_EQ(r.topk_weight_TK.scalar_type(), at::kFloat);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < opt.top_k; ++k) {
      ASSERT_EQ(r.topk_idx_TK[t][k].item<int64_t>(), l.idx[t][k]) << "token " << t << " slot " << k;
      EXPECT_NEAR(r.topk_weight_TK[t][k].item<double>(), l.weight[t][k], 1e-6)
          << "token " << t << " slot " << k;
    }
}

}  // namespace

TEST(MoeRouteRef, SoftmaxTopKMatchesLoop) {
  at::manual_seed(21);
  const at::Tensor logits = at::randn({31, 8});
  zk::RouterOptions opt;
  for (int64_t k : {1, 2, 8}) {  // top_k = 1 and top_k = E included
    opt.top_k = k;
    expect_route_matches_loop(logits, at::Tensor(), opt);
  }
  opt.top_k = 3;
  opt.norm_topk_prob = false;
  opt.routed_scaling_factor = 2.5;
  expect_route_matches_loop(logits, at::Tensor(), opt);
}

TEST(MoeRouteRef, SigmoidWithBiasAndGroupLimitedRoutingMatchesLoop) {
  at::manual_seed(22);
  const at::Tensor logits = at::randn({40, 16});
  // Negative biased scores included: dropped groups are -inf, never chosen.
  const at::Tensor bias = at::randn({16}) * 0.3;
  zk::RouterOptions opt;
  opt.sigmoid = true;
  opt.routed_scaling_factor = 2.5;
  opt.n_group = 4;
  opt.topk_group = 2;
  for (int64_t k : {1, 4, 8}) {  // 8 = every expert of the two kept groups
    opt.top_k = k;
    expect_route_matches_loop(logits, bias, opt);
  }
  opt.top_k = 4;
  opt.n_group = 1;
  opt.topk_group = 1;
  expect_route_matches_loop(logits, bias, opt);
}

TEST(MoeRouteRef, BiasSteersSelectionButNotWeights) {
  at::manual_seed(23);
  const at::Tensor logits = at::randn({12, 6});
  at::Tensor bias = at::zeros({6});
  bias[4] = 10.0;  // every token must now pick expert 4 ...
  zk::RouterOptions opt;
  opt.sigmoid = true;
  opt.top_k = 2;
  opt.norm_topk_prob = false;
  const zk::RouterOutput r = zk::moe_route(logits, bias, opt);
  EXPECT_TRUE((r.topk_idx_TK.select(1, 0) == 4).all().item<bool>());
  // ... with its unbiased score as the weight, not score + 10.
  EXPECT_TRUE(at::allclose(r.topk_weight_TK.select(1, 0), at::sigmoid(logits.select(1, 4))));
}

TEST(MoeRouteRef, WeightsAreDifferentiableWrtLogits) {
  at::manual_seed(24);
  at::Tensor logits = at::randn({5, 6}, at::kDouble).requires_grad_(true);
  zk::RouterOptions opt;
  opt.top_k = 2;
  opt.norm_topk_prob = false;
  const zk::RouterOutput r = zk::moe_route(logits, at::Tensor(), opt);
  r.topk_weight_TK.select(1, 0).sum().backward();
  // d softmax_i / d logit_j = p_i (delta_ij - p_j), evaluated in fp64.
  const at::Tensor p = at::softmax(logits.detach(), 1);
  for (int64_t t = 0; t < 5; ++t) {
    const int64_t i = r.topk_idx_TK[t][0].item<int64_t>();
    for (int64_t j = 0; j < 6; ++j) {
      const double want = p[t][i].item<double>() * ((i == j) - p[t][j].item<double>());
      EXPECT_NEAR(logits.grad()[t][j].item<double>(), want, 1e-6);
    }
  }
}

TEST(MoeRouteRef, RejectsBadOptions) {
  const at::Tensor logits = at::randn({4, 8});
  zk::RouterOptions opt;
  opt.top_k = 9;
  EXPECT_THROW(zk::moe_route(logits, at::Tensor(), opt), zerorl::Error);
  opt.top_k = 2;
  opt.n_group = 3;
  EXPECT_THROW(zk::moe_route(logits, at::Tensor(), opt), zerorl::Error);
  opt.n_group = 4;
  opt.topk_group = 1;
  opt.top_k = 3;  // only 2 experts in one kept group
  EXPECT_THROW(zk::moe_route(logits, at::Tensor(), opt), zerorl::Error);
  opt = zk::RouterOptions();
  EXPECT_THROW(zk::moe_route(logits, at::zeros({7}), opt), zerorl::Error);
}

// ---- experts -------------------------------------------------------------
namespace {

struct Experts {
  at::Tensor x_TD, w_TK, gate_EFD, up_EFD, down_EDF;
};

Experts make_experts(int64_t T, int64_t D, int64_t F, int64_t E, int64_t K, at::ScalarType dt,
                     uint64_t seed) {
  at::manual_seed(seed);
  Experts p;
  p.x_TD = at::randn({T, D}, at::kDouble).to(dt);
  p.w_TK =
      at::rand({T, K}, at::kDouble).to(at::kFloat).to(dt == at::kDouble ? at::kDouble : at::kFloat);
  p.gate_EFD = (at::randn({E, F, D}, at::kDouble) / std::sqrt(D)).to(dt);
  p.up_EFD = (at::randn({E, F, D}, at::kDouble) / std::sqrt(D)).to(dt);
  p.down_EDF = (at::randn({E, D, F}, at::kDouble) / std::sqrt(F)).to(dt);
  return p;
}

// y[t] = sum_k w[t,k] * down[e] (silu(gate[e] x[t]) * up[e] x[t]), token by token.
at::Tensor loop_experts(const Experts& p, const at::Tensor& idx_TK) {
  std::vector<at::Tensor> rows;
  for (int64_t t = 0; t < p.x_TD.size(0); ++t) {
    at::Tensor acc = at::zeros({p.x_TD.size(1)}, p.x_TD.options());
    for (int64_t k = 0; k < idx_TK.size(1); ++k) {
      const int64_t e = idx_TK[t][k].item<int64_t>();
      const at::Tensor xt = p.x_TD[t];
      const at::Tensor a = at::silu(at::mv(p.gate_EFD[e], xt)) * at::mv(p.up_EFD[e], xt);
      acc = acc + p.w_TK[t][k] * at::mv(p.down_EDF[e], a);
    }
    rows.push_back(acc);
  }
  return at::stack(rows, 0);
}

// Routing patterns the trainer meets.
at::Tensor ragged_idx(int64_t T, int64_t K, int64_t E, uint64_t seed) {
  // K distinct experts per token, skewed so counts are ragged; expert E-1 never used.
  at::manual_seed(seed);
  const at::Tensor skew = at::arange(E - 1, at::kDouble).neg().div(2).exp();
  at::Tensor idx = at::empty({T, K}, at::kLong);
  for (int64_t t = 0; t < T; ++t) idx[t] = at::multinomial(skew, K, /*replacement=*/false);
  return idx;
}

void expect_experts_match_loop(const Experts& p0, const at::Tensor& idx_TK,
                               const std::string& what) {
  SCOPED_TRACE(what);
  Experts a = p0, b = p0;
  for (Experts* q : {&a, &b})
    for (at::Tensor* t : {&q->x_TD, &q->w_TK, &q->gate_EFD, &q->up_EFD, &q->down_EDF})
      *t = t->detach().clone().requires_grad_(true);
  const zk::MoeResult r = zk::moe_experts(a.x_TD, idx_TK, a.w_TK, a.gate_EFD, a.up_EFD, a.down_EDF);
  const at::Tensor want = loop_experts(b, idx_TK);
  ASSERT_EQ(r.y_TD.sizes(), want.sizes());
  EXPECT_LT((r.y_TD - want).abs().max().item<double>(), 1e-12);
  const int64_t E = p0.gate_EFD.size(0);
  EXPECT_TRUE(at::equal(r.tokens_per_expert_E, at::bincount(idx_TK.reshape({-1}), {}, E)));

  const at::Tensor g = at::randn(want.sizes(), want.options());
  (r.y_TD * g).sum().backward();
  (want * g).sum().backward();
  const char* names[] = {"x", "topk_weight", "w_gate", "w_up", "w_down"};
  at::Tensor* ga[] = {&a.x_TD, &a.w_TK, &a.gate_EFD, &a.up_EFD, &a.down_EDF};
  at::Tensor* gb[] = {&b.x_TD, &b.w_TK, &b.gate_EFD, &b.up_EFD, &b.down_EDF};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(ga[i]->grad().defined()) << names[i];
    EXPECT_LT((ga[i]->grad() - gb[i]->grad()).abs().max().item<double>(), 1e-10) << names[i];
  }
}

}  // namespace

TEST(MoeExpertsRef, MatchesPerTokenLoopOnMoeShapes) {
  const int64_t T = 23, D = 8, F = 12, E = 6;
  {
    const Experts p = make_experts(T, D, F, E, 2, at::kDouble, 31);
    const at::Tensor idx = ragged_idx(T, 2, E, 32);
    ASSERT_EQ(at::bincount(idx.reshape({-1}), {}, E)[E - 1].item<int64_t>(), 0);
    expect_experts_match_loop(p, idx, "ragged counts, expert 5 has no tokens, top_k=2");
  }
  {
    const Experts p = make_experts(T, D, F, E, 1, at::kDouble, 33);
    expect_experts_match_loop(p, at::full({T, 1}, 3, at::kLong), "all tokens on expert 3, top_k=1");
    expect_experts_match_loop(p, ragged_idx(T, 1, E, 34), "top_k=1 ragged");
  }
  {
    const Experts p = make_experts(T, D, F, E, E, at::kDouble, 35);
    at::Tensor idx = at::empty({T, E}, at::kLong);
    for (int64_t t = 0; t < T; ++t) idx[t] = at::randperm(E, at::kLong);
    expect_experts_match_loop(p, idx, "top_k=E");
  }
  {
    const Experts p = make_experts(1, D, F, E, 2, at::kDouble, 36);
    expect_experts_match_loop(p, at::tensor({int64_t{4}, int64_t{1}}).view({1, 2}),
                              "a single token");
  }
}

TEST(MoeExpertsRef, PermutationIsAStableSortByExpert) {
  const at::Tensor idx = ragged_idx(50, 3, 7, 41);
  const zk::detail::ExpertPermutation p = zk::detail::moe_permute_ref(idx, 7);
  const at::Tensor flat = idx.reshape({-1});
  const at::Tensor sorted_experts = flat.index_select(0, p.src_slot_P);
  // non-decreasing experts, and within one expert increasing flat slots
  for (int64_t i = 1; i < flat.numel(); ++i) {
    const int64_t e0 = sorted_experts[i - 1].item<int64_t>(),
                  e1 = sorted_experts[i].item<int64_t>();
    ASSERT_LE(e0, e1);
    if (e0 == e1) ASSERT_LT(p.src_slot_P[i - 1].item<int64_t>(), p.src_slot_P[i].item<int64_t>());
  }
  EXPECT_TRUE(at::equal(p.row_of_slot_TK.reshape({-1}).index_select(0, p.src_slot_P),
                        at::arange(150, at::kLong)));
  EXPECT_TRUE(at::equal(p.offsets_E, at::cumsum(at::bincount(flat, {}, 7), 0)));
  EXPECT_EQ(p.tokens_per_expert_E[6].item<int64_t>(), 0);
}

TEST(MoeExpertsRef, Bfloat16StaysCloseToDouble) {
  const Experts p = make_experts(16, 32, 48, 4, 2, at::kBFloat16, 42);
  const at::Tensor idx = ragged_idx(16, 2, 4, 43);
  const zk::MoeResult r = zk::moe_experts(p.x_TD, idx, p.w_TK, p.gate_EFD, p.up_EFD, p.down_EDF);
  EXPECT_EQ(r.y_TD.scalar_type(), at::kBFloat16);
  Experts d = p;
  for (at::Tensor* t : {&d.x_TD, &d.w_TK, &d.gate_EFD, &d.up_EFD, &d.down_EDF})
    *t = t->to(at::kDouble);
  const at::Tensor want = loop_experts(d, idx);
  // bf16 keeps 8 bits of mantissa; each GEMM output is rounded once more: 3%
  // of the output's scale.
  const double scale = want.abs().max().item<double>();
  EXPECT_LT((r.y_TD.to(at::kDouble) - want).abs().max().item<double>(), 0.03 * scale);
}

TEST(MoeExpertsRef, RejectsOutOfRangeExpertIds) {
  const Experts p = make_experts(4, 8, 8, 3, 2, at::kFloat, 44);
  const at::Tensor idx = at::full({4, 2}, 3, at::kLong);
  try {
    zk::moe_experts(p.x_TD, idx, p.w_TK, p.gate_EFD, p.up_EFD, p.down_EDF);
    ADD_FAILURE() << "expected an error";
  } catch (const zerorl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("topk_idx_TK"), std::string::npos) << e.what();
  }
  EXPECT_THROW(
      zk::moe_experts(p.x_TD, idx.narrow(0, 0, 3), p.w_TK, p.gate_EFD, p.up_EFD, p.down_EDF),
      zerorl::Error);
}
