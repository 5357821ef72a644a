// The MoE router, permutation and experts on a CUDA device against their CPU
// references (label gpu; tests/kernels/gpu_test_util.h has the tolerances).
#include "kernels/moe/moe.h"
#include "kernels/moe/moe_impl.h"

#include "tests/kernels/gpu_test_util.h"

namespace zk = zerorl::kernels;
using zerorl::test::kGpu;
using zerorl::test::rel_err;
using zerorl::test::tol_for;

TEST(GpuMoeRoute, PicksTheSameExpertsAsTheReference) {
  ZR_REQUIRE_CUDA();
  struct Case {
    int64_t E, top_k, n_group, topk_group;
    bool sigmoid, bias;
  };
  for (Case c : {Case{8, 1, 1, 1, false, false}, Case{8, 2, 1, 1, false, false},
                 Case{8, 8, 1, 1, false, false}, Case{60, 4, 1, 1, false, false},
                 Case{64, 8, 8, 4, true, true}, Case{16, 4, 4, 2, true, true},
                 Case{256, 8, 8, 4, true, true}, Case{16, 8, 4, 2, true, true}}) {
    SCOPED_TRACE(::testing::Message() << "E=" << c.E << " top_k=" << c.top_k << " n_group="
                                      << c.n_group << " topk_group=" << c.topk_group);
    at::manual_seed(300 + c.E + c.top_k);
    const at::Tensor logits = at::randn({1000, c.E});
    const at::Tensor bias = c.bias ? at::rand({c.E}) * 0.2 : at::Tensor();
    zk::RouterOptions opt;
    opt.top_k = c.top_k;
    opt.sigmoid = c.sigmoid;
    opt.n_group = c.n_group;
    opt.topk_group = c.topk_group;
    opt.routed_scaling_factor = c.sigmoid ? 2.5 : 1.0;
    at::Tensor lg = logits.to(kGpu).requires_grad_(true), lc = logits.clone().requires_grad_(true);
    const zk::RouterOutput rg = zk::moe_route(lg, c.bias ? bias.to(kGpu) : at::Tensor(), opt);
    const zk::RouterOutput rc = zk::moe_route(lc, bias, opt);
    // Slots in descending score on both sides; compared per expert id so that
    // an exact tie inside the chosen set cannot flip the comparison.
    const auto [ig, og] = rg.topk_idx_TK.cpu().sort(1);
    const auto [ic, oc] = rc.topk_idx_TK.sort(1);
    EXPECT_TRUE(at::equal(ig, ic));
    EXPECT_LT(rel_err(rg.topk_weight_TK.cpu().gather(1, og), rc.topk_weight_TK.gather(1, oc)),
              1e-5);
    EXPECT_GT((rg.topk_idx_TK.cpu() == rc.topk_idx_TK).to(at::kFloat).mean().item<double>(), 0.99);
    const at::Tensor g = at::randn({1000, c.top_k});
    (rg.topk_weight_TK * g.to(kGpu)).sum().backward();
    (rc.topk_weight_TK * g).sum().backward();
    // With top_k = 1 and renormalisation the weight is s / (s + 1e-20) = 1:
    // its gradient is zero in exact arithmetic and float rounding noise
    // (~1e-7 / s) on both sides, so the error is measured against a scale
    // of at least 1e-2 (the other cases' gradients are 0.1-1).
    EXPECT_LT(rel_err(lg.grad(), lc.grad(), 1e-2), 1e-4);
  }
}

// ---- permutation and experts --------------------------------------------
namespace {

struct Routing {
  std::string name;
  at::Tensor idx_TK;
  int64_t E;
};

std::vector<Routing> routings(int64_t T, int64_t E) {
  at::manual_seed(400);
  std::vector<Routing> r;
  const at::Tensor skew =
      at::arange(E - 1, at::kDouble).neg().div(3).exp();  // expert E-1 never chosen
  at::Tensor ragged = at::empty({T, 2}, at::kLong);
  for (int64_t t = 0; t < T; ++t) ragged[t] = at::multinomial(skew, 2, false);
  r.push_back({"ragged counts, an expert with no tokens, top_k=2", ragged, E});
  r.push_back({"all tokens on one expert, top_k=1", at::full({T, 1}, E / 2, at::kLong), E});
  r.push_back({"top_k=1 ragged", ragged.narrow(1, 0, 1).contiguous(), E});
  at::Tensor all = at::empty({T, E}, at::kLong);
  for (int64_t t = 0; t < T; ++t) all[t] = at::randperm(E, at::kLong);
  r.push_back({"top_k=E", all, E});
  return r;
}

}  // namespace

TEST(GpuMoePermute, IsBitIdenticalToTheReference) {
  ZR_REQUIRE_CUDA();
  std::vector<Routing> cases = routings(37, 8);
  at::manual_seed(401);
  cases.push_back({"many tiles: T=5000, K=8, E=64", at::randint(64, {5000, 8}, at::kLong), 64});
  for (const Routing& c : cases) {
    SCOPED_TRACE(c.name);
    const zk::detail::ExpertPermutation pg = zk::detail::moe_permute_cuda(c.idx_TK.to(kGpu), c.E);
    const zk::detail::ExpertPermutation pc = zk::detail::moe_permute_ref(c.idx_TK, c.E);
    EXPECT_TRUE(at::equal(pg.src_slot_P.cpu(), pc.src_slot_P));
    EXPECT_TRUE(at::equal(pg.row_of_slot_TK.cpu(), pc.row_of_slot_TK));
    EXPECT_TRUE(at::equal(pg.tokens_per_expert_E.cpu(), pc.tokens_per_expert_E));
    EXPECT_TRUE(at::equal(pg.offsets_E.cpu(), pc.offsets_E));
  }
}

TEST(GpuMoeExperts, MatchesReferenceOnMoeShapesBothGemmPaths) {
  ZR_REQUIRE_CUDA();
  const int64_t T = 37, D = 64, F = 96, E = 8;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (bool grouped : {false, true}) {
      if (grouped && !zk::detail::moe_grouped_gemm_applies(
                         at::empty({1, D}, at::TensorOptions(kGpu).dtype(dt)),
                         at::empty({E, F, D}, at::TensorOptions(kGpu).dtype(dt))))
        continue;  // grouped GEMM is bf16 on sm90+ only
      for (const Routing& c : routings(T, E)) {
        SCOPED_TRACE(::testing::Message()
                     << dt << (grouped ? " grouped GEMM " : " per-expert GEMMs ") << c.name);
        const int64_t K = c.idx_TK.size(1);
        at::manual_seed(500 + K);
        const at::Tensor x = at::randn({T, D}).to(dt), wk = at::rand({T, K});
        const at::Tensor wg0 = (at::randn({E, F, D}) / 8).to(dt),
                         wu0 = (at::randn({E, F, D}) / 8).to(dt);
        const at::Tensor wd0 = (at::randn({E, D, F}) / 10).to(dt);
        const at::Tensor g = at::randn({T, D}, at::kDouble);

        std::vector<at::Tensor> gpu_in, cpu_in;
        for (const at::Tensor& t : {x, wk, wg0, wu0, wd0}) {
          gpu_in.push_back(t.to(kGpu).requires_grad_(true));
          cpu_in.push_back(t.to(at::kDouble).requires_grad_(true));
        }
        const zk::MoeResult rg = zk::detail::moe_experts_cuda(
            gpu_in[0], c.idx_TK.to(kGpu), gpu_in[1], gpu_in[2], gpu_in[3], gpu_in[4], grouped);
        const zk::MoeResult rc =
            zk::moe_experts(cpu_in[0], c.idx_TK, cpu_in[1], cpu_in[2], cpu_in[3], cpu_in[4]);
        EXPECT_EQ(rg.y_TD.scalar_type(), dt);
        EXPECT_TRUE(at::equal(rg.tokens_per_expert_E.cpu(), rc.tokens_per_expert_E));
        EXPECT_LT(rel_err(rg.y_TD, rc.y_TD), tol_for(dt));
        (rg.y_TD.to(at::kDouble) * g.to(kGpu)).sum().backward();
        (rc.y_TD * g).sum().backward();
        const char* names[] = {"x", "topk_weight", "w_gate", "w_up", "w_down"};
        for (int i = 0; i < 5; ++i) {
          ASSERT_TRUE(gpu_in[i].grad().defined()) << names[i];
          EXPECT_LT(rel_err(gpu_in[i].grad(), cpu_in[i].grad()), tol_for(dt)) << names[i];
        }
        // An expert without tokens gets an exactly zero weight gradient.
        const at::Tensor counts = rc.tokens_per_expert_E;
        for (int64_t e = 0; e < E; ++e)
          if (counts[e].item<int64_t>() == 0)
            for (int i = 2; i < 5; ++i)
              EXPECT_EQ(gpu_in[i].grad()[e].abs().max().item<double>(), 0.0)
                  << names[i] << " expert " << e;
      }
    }
  }
}

TEST(GpuMoeExperts, DispatchIsDeterministic) {
  ZR_REQUIRE_CUDA();
  at::manual_seed(600);
  const int64_t T = 512, D = 128, F = 256, E = 16, K = 4;
  const at::TensorOptions o = at::TensorOptions(kGpu).dtype(at::kBFloat16);
  const at::Tensor x = at::randn({T, D}, o),
                   idx = at::randint(E, {T, K}, at::TensorOptions(kGpu).dtype(at::kLong));
  const at::Tensor wk = at::rand({T, K}, at::TensorOptions(kGpu));
  const at::Tensor wg = at::randn({E, F, D}, o) / 10, wu = at::randn({E, F, D}, o) / 10,
                   wd = at::randn({E, D, F}, o) / 16;
  at::Tensor first_y, first_gx;
  for (int rep = 0; rep < 2; ++rep) {
    at::Tensor xr = x.clone().requires_grad_(true);
    const zk::MoeResult r = zk::moe_experts(xr, idx, wk, wg, wu, wd);
    r.y_TD.to(at::kFloat).sum().backward();
    if (rep == 0) {
      first_y = r.y_TD.detach();
      first_gx = xr.grad();
    } else {
      EXPECT_TRUE(at::equal(first_y, r.y_TD.detach()));
      EXPECT_TRUE(at::equal(first_gx, xr.grad()));
    }
  }
}
