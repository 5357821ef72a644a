// paged_decode_attention (model/paged_attention.h) against an fp64
// reference that gathers each row's positions and takes a plain softmax:
// 1e-5 absolute in fp32 (1e-12 in fp64; bf16 pools: 1e-5 beyond the output's
// own rounding to bf16, against the reference on the bf16 values), on random
// pools with
//   * ragged lengths, a partly filled last block, lengths on block edges
//   * groups of 1..16 rows sharing leading blocks (cascade + log-sum-exp
//     merge), with and without sharing in the plan
//   * blocks out of order in the pool and consecutive (one GEMM per block
//     either way)
//   * values aliasing the keys' first columns (MLA) and separate (GQA)
// plus the plan's grouping itself, and CausalLM decode through the kernel
// against the gather path.
//
// The CUDA kernel (kernels/paged_attention/paged_attention.h): its flattened
// run lists and argument checks on the CPU; on a GPU (tests named *OnCuda,
// label gpu, skipped naming the missing device) the same scenarios against
// the same fp64 reference -- 1e-5 in fp32, bf16 1e-5 beyond the output's
// rounding -- with 2 kv heads (GQA mapping), and CausalLM decode with
// kPagedCuda against the gather path (MLA and GQA).  Never run on a GPU yet.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <numeric>
#include <random>

#include "core/error.h"
#include "kernels/paged_attention/paged_attention.h"
#include "model/model.h"
#include "model/paged_attention.h"
#include "test_util.h"

namespace zerorl::model {
namespace {

struct Case {
  int64_t bs = 4, Hq = 3, C = 10, Cv = 6;
  bool alias_v = false;  // v = k[:, :Cv] (MLA)
  std::vector<int64_t> group_sizes;
  std::vector<int64_t> prompt_len;  // per group: shared positions
  int64_t max_own = 9;
  bool shuffle_blocks = true;
};

struct Setup {
  at::Tensor pool_k, pool_v;  // [P, C], [P, Cv] (fp64)
  std::vector<std::vector<int64_t>> tables;
  std::vector<int64_t> kv_len;
};

// Groups whose rows point at their prompt's blocks (the last, partly filled
// prompt block copied per row, as copy on write does), then own blocks.
Setup make_setup(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> lens_prompt, own_len;
  int64_t blocks = 0;
  auto nb = [&](int64_t n) { return (n + c.bs - 1) / c.bs; };
  for (size_t gi = 0; gi < c.group_sizes.size(); ++gi) {
    const int64_t P = c.prompt_len[gi];
    blocks += P / c.bs;
    for (int64_t r = 0; r < c.group_sizes[gi]; ++r) {
      own_len.push_back(1 + static_cast<int64_t>(rng() % c.max_own));
      blocks += nb(P % c.bs + own_len.back());
    }
  }
  std::vector<int64_t> ids(static_cast<size_t>(blocks + 3));
  std::iota(ids.begin(), ids.end(), 0);
  if (c.shuffle_blocks) std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  Setup s;
  size_t row = 0;
  for (size_t gi = 0; gi < c.group_sizes.size(); ++gi) {
    const int64_t P = c.prompt_len[gi];
    std::vector<int64_t> shared;
    for (int64_t j = 0; j < P / c.bs; ++j) shared.push_back(ids[next++]);
    for (int64_t r = 0; r < c.group_sizes[gi]; ++r, ++row) {
      std::vector<int64_t> t = shared;
      const int64_t len = P + own_len[row];
      while (static_cast<int64_t>(t.size()) < nb(len)) t.push_back(ids[next++]);
      s.tables.push_back(t);
      s.kv_len.push_back(len);
    }
  }
  const int64_t Prow = static_cast<int64_t>(ids.size()) * c.bs;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  s.pool_k = at::randn({Prow, c.C}, gen, at::kDouble);
  s.pool_v = c.alias_v ? s.pool_k.narrow(1, 0, c.Cv) : at::randn({Prow, c.Cv}, gen, at::kDouble);
  return s;
}

at::Tensor reference(const at::Tensor& q_BHC, const Setup& s, int64_t bs) {
  std::vector<at::Tensor> out;
  for (size_t b = 0; b < s.tables.size(); ++b) {
    std::vector<int64_t> rows;
    for (int64_t p = 0; p < s.kv_len[b]; ++p) rows.push_back(s.tables[b][p / bs] * bs + p % bs);
    const at::Tensor idx = at::tensor(rows, at::kLong);
    const at::Tensor k = s.pool_k.index_select(0, idx), v = s.pool_v.index_select(0, idx);
    const at::Tensor p = at::softmax(at::mm(q_BHC[b].to(at::kDouble), k.t()), -1);
    out.push_back(at::mm(p, v));
  }
  return at::stack(out);
}

double max_error(const Case& c, at::ScalarType dt, bool share, uint64_t seed) {
  const Setup s = make_setup(c, seed);
  std::vector<const std::vector<int64_t>*> tables;
  for (const auto& t : s.tables) tables.push_back(&t);
  const auto plan = PagedDecodePlan::make(tables, s.kv_len, c.bs, share);
  const int64_t B = static_cast<int64_t>(s.tables.size());
  at::Generator gen = at::detail::createCPUGenerator(seed + 7);
  const at::Tensor q = at::randn({B, c.Hq, c.C}, gen, at::kDouble);
  at::Tensor out = at::empty({B, c.Hq, c.Cv}, at::TensorOptions().dtype(dt));
  const at::Tensor pk = s.pool_k.to(dt);
  const at::Tensor pv = c.alias_v ? pk.narrow(1, 0, c.Cv) : s.pool_v.to(dt);
  paged_decode_attention(q.to(dt), pk, pv, *plan, out);
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  if (dt != at::kBFloat16)
    return (out.to(at::kDouble) - reference(q, s, c.bs)).abs().max().item<double>();
  // bf16: the reference takes the bf16 values the kernel reads, exactly, and
  // the error is measured beyond the output's own rounding to bf16 (unit
  // roundoff 2^-8 of each value): what is left is the fp32 arithmetic.
  Setup rounded = s;
  rounded.pool_k = pk.to(at::kDouble);
  rounded.pool_v = pv.to(at::kDouble);
  const at::Tensor want = reference(q.to(dt).to(at::kDouble), rounded, c.bs);
  return ((out.to(at::kDouble) - want).abs() - want.abs() * std::ldexp(1.0, -8))
      .max()
      .item<double>();
}

TEST(PagedAttention, MatchesTheGatheredSoftmaxForGroupsOfOneToSixteen) {
  Case c;
  c.group_sizes = {1, 3, 16, 2, 8, 5};
  c.prompt_len = {5, 8, 13, 0, 17, 3};  // on and off block edges; 0 and < bs: nothing shared
  for (uint64_t seed : {1, 2, 3})
    for (bool share : {true, false}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + (share ? " shared" : " unshared"));
      EXPECT_LT(max_error(c, at::kFloat, share, seed), 1e-5);
      EXPECT_LT(max_error(c, at::kDouble, share, seed), 1e-12);
      EXPECT_LT(max_error(c, at::kBFloat16, share, seed), 1e-5);
    }
}

// MLA-like: the values are the keys' first Cv columns (the latent rows), in
// blocks of 3 positions.
Case mla_like_case() {
  Case c;
  c.alias_v = true;
  c.Hq = 4;
  c.C = 12;
  c.Cv = 8;
  c.bs = 3;
  c.group_sizes = {4, 1, 7};
  c.prompt_len = {9, 4, 10};
  return c;
}

TEST(PagedAttention, MatchesWithValuesAliasingKeysAndConsecutiveBlocks) {
  Case c = mla_like_case();
  for (bool shuffle : {false, true}) {
    c.shuffle_blocks = shuffle;
    EXPECT_LT(max_error(c, at::kFloat, true, 11), 1e-5);
    EXPECT_LT(max_error(c, at::kDouble, true, 12), 1e-12);
    EXPECT_LT(max_error(c, at::kBFloat16, true, 13), 1e-5);
  }
}

TEST(PagedAttention, PlanGroupsRowsByTheirSharedFullBlocks) {
  // bs 4.  Rows 0, 2, 3 share blocks 7, 8 (row 3 also 9, but row 0 holds
  // only 9 positions, so block 9 is not common); rows 1 and 4 are alone.
  const std::vector<std::vector<int64_t>> t = {
      {7, 8, 20}, {1, 2}, {7, 8, 9, 21}, {7, 8, 9, 22}, {30}};
  std::vector<const std::vector<int64_t>*> tables;
  for (const auto& x : t) tables.push_back(&x);
  const auto plan = PagedDecodePlan::make(tables, {9, 6, 13, 14, 3}, 4, true);
  ASSERT_EQ(plan->groups.size(), 3u);
  const auto& g = plan->groups[0];
  EXPECT_EQ(g.rows, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(g.shared_len, 8);
  // One run per block, consecutive in the pool or not (batch invariance:
  // the GEMMs' shapes must not depend on where the blocks happen to lie).
  ASSERT_EQ(g.shared.size(), 2u);  // blocks 7, 8: pool rows 28..31, 32..35
  EXPECT_EQ(g.shared[0].row0, 28);
  EXPECT_EQ(g.shared[0].len, 4);
  EXPECT_EQ(g.shared[1].row0, 32);
  EXPECT_EQ(g.shared[1].len, 4);
  ASSERT_EQ(g.own[0].size(), 1u);  // row 0: position 8 in block 20
  EXPECT_EQ(g.own[0][0].row0, 80);
  EXPECT_EQ(g.own[0][0].len, 1);
  ASSERT_EQ(g.own[2].size(), 2u);  // row 3: block 9 (4) then block 22 (2)
  EXPECT_EQ(g.own[2][1].len, 2);
  EXPECT_EQ(plan->groups[1].rows, (std::vector<int64_t>{1}));
  ASSERT_EQ(plan->groups[1].own[0].size(), 2u);  // blocks 1, 2: consecutive, still two runs
  EXPECT_EQ(plan->groups[1].own[0][0].len, 4);
  EXPECT_EQ(plan->groups[1].own[0][1].len, 2);
  EXPECT_EQ(plan->groups[2].shared_len, 0);
  const auto unshared = PagedDecodePlan::make(tables, {9, 6, 13, 14, 3}, 4, false);
  EXPECT_EQ(unshared->groups.size(), 5u);
}

TEST(PagedAttention, BadArgumentsThrow) {
  const std::vector<int64_t> t = {0};
  EXPECT_THROW(PagedDecodePlan::make({&t}, {5}, 4, true), Error);  // 5 positions in one block
  const auto plan = PagedDecodePlan::make({&t}, {3}, 4, true);
  at::Tensor k = at::zeros({4, 6}), out = at::empty({1, 2, 6});
  EXPECT_THROW(paged_decode_attention(at::zeros({1, 2, 5}), k, k, *plan, out), Error);
  EXPECT_THROW(paged_decode_attention(at::zeros({1, 2, 6}, at::kDouble), k, k, *plan, out), Error);
  EXPECT_THROW(paged_decode_attention(at::zeros({1, 2, 6}), k.narrow(0, 0, 2), k.narrow(0, 0, 2),
                                      *plan, out),
               Error);
}

// Row b's flattened runs (the CUDA kernel's input) cover exactly its table's
// positions 0..kv_len-1, in order, with and without groups.
TEST(PagedAttention, FlattenedRunsCoverEachRowsPositionsInOrder) {
  Case c;
  c.group_sizes = {1, 3, 16, 2, 8, 5};
  c.prompt_len = {5, 8, 13, 0, 17, 3};
  const auto s = make_setup(c, 4);
  std::vector<const std::vector<int64_t>*> tables;
  for (const auto& t : s.tables) tables.push_back(&t);
  for (bool share : {true, false}) {
    const auto plan = PagedDecodePlan::make(tables, s.kv_len, c.bs, share);
    std::vector<int64_t> ptr, row0, len;
    plan->flatten(&ptr, &row0, &len);
    ASSERT_EQ(ptr.size(), s.tables.size() + 1);
    EXPECT_EQ(ptr[0], 0);
    EXPECT_EQ(row0.size(), len.size());
    EXPECT_EQ(static_cast<size_t>(ptr.back()), row0.size());
    for (size_t b = 0; b < s.tables.size(); ++b) {
      std::vector<int64_t> want, got;
      for (int64_t p = 0; p < s.kv_len[b]; ++p)
        want.push_back(s.tables[b][p / c.bs] * c.bs + p % c.bs);
      for (int64_t r = ptr[b]; r < ptr[b + 1]; ++r)
        for (int64_t i = 0; i < len[r]; ++i) got.push_back(row0[r] + i);
      EXPECT_EQ(got, want) << "row " << b << (share ? " shared" : " unshared");
    }
  }
}

// Each broken argument throws an Error naming what is wrong.
void expect_error(const std::function<void()>& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(PagedAttention, CudaKernelArgumentChecksNameTheProblem) {
  const at::Tensor q = at::zeros({2, 4, 6}), k = at::zeros({2, 8, 6}), v = at::zeros({2, 8, 5});
  const at::Tensor out = at::empty({2, 4, 5});
  const at::Tensor ptr = at::tensor(std::vector<int64_t>{0, 1, 2}, at::kLong);
  const at::Tensor r0 = at::tensor(std::vector<int64_t>{0, 4}, at::kLong);
  const at::Tensor rl = at::tensor(std::vector<int64_t>{3, 2}, at::kLong);
  namespace zk = zerorl::kernels;
  zk::check_paged_decode_args(q, k, v, ptr, r0, rl, out);  // valid
  expect_error([&] { zk::check_paged_decode_args(q, k.narrow(2, 0, 5), v, ptr, r0, rl, out); },
               "k has 5 channels, q 6");
  expect_error(
      [&] {
        zk::check_paged_decode_args(at::zeros({2, 3, 6}), k, v, ptr, r0, rl, at::empty({2, 3, 5}));
      },
      "3 query heads are not a multiple of 2 kv heads");
  expect_error([&] { zk::check_paged_decode_args(q, k, v.narrow(1, 0, 7), ptr, r0, rl, out); },
               "does not match k");
  expect_error(
      [&] {
        zk::check_paged_decode_args(q, k, v, ptr, r0, rl, at::empty({2, 4, 6}));
      },
      "out must be [2, 4, 5]");
  expect_error([&] { zk::check_paged_decode_args(q.to(at::kDouble), k, v, ptr, r0, rl, out); },
               "q must be fp32 or bf16");
  expect_error([&] { zk::check_paged_decode_args(q, k.to(at::kBFloat16), v, ptr, r0, rl, out); },
               "must share one dtype");
  expect_error([&] { zk::check_paged_decode_args(q, k, v, ptr.narrow(0, 0, 2), r0, rl, out); },
               "run_ptr must have B + 1 = 3 entries");
  expect_error([&] { zk::check_paged_decode_args(q, k, v, ptr, r0, rl.narrow(0, 0, 1), out); },
               "run_row0 has 2 runs, run_len 1");
  expect_error([&] { zk::check_paged_decode_args(q, k, v, ptr, r0.to(at::kInt), rl, out); },
               "must be contiguous 1-d int64");
  expect_error(
      [&] {
        zk::check_paged_decode_args(q, k, v.transpose(1, 2).contiguous().transpose(1, 2), ptr, r0,
                                    rl, out);
      },
      "unit stride");
  expect_error(
      [&] {
        zk::check_paged_decode_args(q, at::zeros({2, 8, 13000}), v, ptr, r0, rl, out);
      },
      "k has 13000 channels");
  expect_error(
      [&] {
        zk::check_paged_decode_args(at::zeros({2, 4, 13000}), at::zeros({2, 8, 13000}), v, ptr, r0,
                                    rl, out);
      },
      "exceeds the kernel's 8192 query channels");
  expect_error(
      [&] {
        zk::check_paged_decode_args(q, k, at::zeros({2, 8, 1025}), ptr, r0, rl,
                                    at::empty({2, 4, 1025}));
      },
      "exceeds the kernel's 1024 output channels");
  expect_error([&] { zk::paged_decode_attention_cuda(q, k, v, ptr, r0, rl, out); },
               "needs CUDA tensors");
  // The model's entry point refuses a CUDA call whose plan was not uploaded,
  // and a plan reading beyond the pool, before any device work.
  const std::vector<int64_t> t = {1};
  const auto plan = PagedDecodePlan::make({&t}, {3}, 4, true);
  expect_error(
      [&] {
        paged_decode_attention_heads(q.narrow(0, 0, 1), k.narrow(1, 0, 6), v.narrow(1, 0, 6), *plan,
                                     out.narrow(0, 0, 1));
      },
      "reads pool rows beyond 6");
}

// The CUDA kernel on one scenario: `Hkv` kv heads (pools from seeds
// seed + i), query heads h*g.. reading kv head h; the worst error over
// heads as max_error measures it.
double max_error_cuda(const Case& c, int64_t Hkv, at::ScalarType dt, bool share, uint64_t seed) {
  std::vector<Setup> s;
  for (int64_t i = 0; i < Hkv; ++i) s.push_back(make_setup(c, seed));  // same tables
  std::vector<at::Tensor> ks, vs;
  for (int64_t i = 0; i < Hkv; ++i) {
    at::Generator gen = at::detail::createCPUGenerator(seed * 31 + i);
    s[i].pool_k = at::randn(s[i].pool_k.sizes(), gen, at::kDouble);
    s[i].pool_v = c.alias_v ? s[i].pool_k.narrow(1, 0, c.Cv)
                            : at::randn(s[i].pool_v.sizes(), gen, at::kDouble);
  }
  const at::Device gpu(at::kCUDA, 0);
  std::vector<const std::vector<int64_t>*> tables;
  for (const auto& t : s[0].tables) tables.push_back(&t);
  const auto plan = PagedDecodePlan::make(tables, s[0].kv_len, c.bs, share);
  plan->upload_runs(gpu);
  const int64_t B = static_cast<int64_t>(s[0].tables.size()), Hq = c.Hq * Hkv;
  at::Generator gen = at::detail::createCPUGenerator(seed + 7);
  const at::Tensor q = at::randn({B, Hq, c.C}, gen, at::kDouble).to(dt);
  std::vector<at::Tensor> pk;
  for (auto& x : s) pk.push_back(x.pool_k.to(dt));
  const at::Tensor k_HPC = at::stack(pk).to(gpu);
  const at::Tensor v_HPCv = c.alias_v ? k_HPC.narrow(2, 0, c.Cv) : [&] {
    std::vector<at::Tensor> pv;
    for (auto& x : s) pv.push_back(x.pool_v.to(dt));
    return at::stack(pv).to(gpu);
  }();
  at::Tensor out = at::empty({B, Hq, c.Cv}, q.options().device(gpu));
  paged_decode_attention_heads(q.to(gpu), k_HPC, v_HPCv, *plan, out);
  const at::Tensor got = out.cpu().to(at::kDouble);
  EXPECT_TRUE(at::isfinite(got).all().item<bool>());
  double worst = 0;
  for (int64_t i = 0; i < Hkv; ++i) {
    Setup r = s[i];  // the values the kernel reads, exactly
    r.pool_k = k_HPC[i].cpu().to(at::kDouble);
    r.pool_v = v_HPCv[i].cpu().to(at::kDouble);
    const at::Tensor want = reference(q.narrow(1, i * c.Hq, c.Hq).to(at::kDouble), r, c.bs);
    const at::Tensor o = got.narrow(1, i * c.Hq, c.Hq);
    const double rounding = dt == at::kBFloat16 ? std::ldexp(1.0, -8) : 0.0;
    worst = std::max(worst, ((o - want).abs() - want.abs() * rounding).max().item<double>());
  }
  return worst;
}

TEST(PagedAttention, CudaKernelMatchesTheGatheredSoftmaxOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "needs a CUDA device";
  if (!paged_decode_available(at::Device(at::kCUDA, 0), at::kFloat))
    GTEST_SKIP() << "needs a CUDA build of kernels/paged_attention";
  Case c;
  c.group_sizes = {1, 3, 16, 2, 8, 5};
  c.prompt_len = {5, 8, 13, 0, 17, 3};
  Case m = mla_like_case();  // values alias the keys, consecutive blocks too
  Case wide;                 // channels beyond one thread's share and > 32 positions per run
  wide.bs = 40;
  wide.C = 200;
  wide.Cv = 300;
  wide.max_own = 90;
  wide.group_sizes = {2, 3};
  wide.prompt_len = {85, 41};
  for (uint64_t seed : {1, 2})
    for (bool share : {true, false}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + (share ? " shared" : " unshared"));
      for (int64_t Hkv : {1, 2}) {
        EXPECT_LT(max_error_cuda(c, Hkv, at::kFloat, share, seed), 1e-5);
        EXPECT_LT(max_error_cuda(c, Hkv, at::kBFloat16, share, seed), 1e-5);
      }
      for (bool shuffle : {false, true}) {
        m.shuffle_blocks = shuffle;
        EXPECT_LT(max_error_cuda(m, 1, at::kFloat, share, seed + 10), 1e-5);
        EXPECT_LT(max_error_cuda(m, 1, at::kBFloat16, share, seed + 10), 1e-5);
      }
      EXPECT_LT(max_error_cuda(wide, 2, at::kFloat, share, seed + 20), 1e-5);
      EXPECT_LT(max_error_cuda(wide, 2, at::kBFloat16, share, seed + 20), 1e-5);
    }
}

// CausalLM::decode through the kernel equals the gather path: G samples of
// one prompt sharing its blocks, decoded for a few steps, MLA and GQA.
// `paged` is kPaged on the CPU, kPagedCuda on a CUDA device.
void check_model(const ModelConfig& cfg, at::Device device = at::kCPU,
                 DecodeAttention paged = DecodeAttention::kPaged) {
  if (!paged_decode_available(device, at::kFloat))
    GTEST_SKIP() << (device.is_cpu() ? "needs the BLAS sgemm_ of LibTorch's CPU library"
                                     : "needs a CUDA build");
  CausalLM m(cfg);
  m.to(device);
  const int64_t G = 5, bs = 4;
  std::vector<int64_t> prompt;
  for (int64_t t = 0; t < 10; ++t) prompt.push_back((3 * t + 1) % cfg.vocab_size);
  std::vector<at::Tensor> logits[2];
  for (int mode = 0; mode < 2; ++mode) {
    set_decode_attention(mode == 0 ? DecodeAttention::kGather : paged);
    KvCache cache = m.make_cache(G, 32, bs);
    m.prefill(cache, {0}, {prompt});
    std::vector<int64_t> dsts;
    for (int64_t g = 1; g < G; ++g) dsts.push_back(g);
    cache.share_slot(0, dsts);
    const std::vector<int64_t> slots = {3, 0, 4, 1, 2};  // not in slot order
    for (int64_t step = 0; step < 7; ++step) {
      std::vector<int64_t> tok;
      for (int64_t g = 0; g < G; ++g) tok.push_back((step * 7 + g * 5 + 2) % cfg.vocab_size);
      logits[mode].push_back(m.decode(cache, slots, at::tensor(tok, at::kLong)).cpu());
    }
  }
  set_decode_attention(DecodeAttention::kPaged);
  for (size_t s = 0; s < logits[0].size(); ++s)
    EXPECT_LT((logits[0][s] - logits[1][s]).abs().max().item<double>(), 1e-5) << "step " << s;
}

TEST(PagedAttention, ModelDecodeEqualsTheGatherPathMla) {
  check_model(testing::small_mla_config());
}
TEST(PagedAttention, ModelDecodeEqualsTheGatherPathGqa) {
  check_model(testing::small_gqa_config());
}
TEST(PagedAttention, ModelDecodeWithTheCudaKernelEqualsTheGatherPathOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "needs a CUDA device";
  check_model(testing::small_mla_config(), at::Device(at::kCUDA, 0), DecodeAttention::kPagedCuda);
  check_model(testing::small_gqa_config(), at::Device(at::kCUDA, 0), DecodeAttention::kPagedCuda);
}

}  // namespace
}  // namespace zerorl::model
