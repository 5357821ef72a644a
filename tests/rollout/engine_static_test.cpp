// The fixed-shape decode step and its CUDA graphs (model/static_decode.h):
//   * the buckets are vLLM's capture sizes;
//   * greedy and sampled (top-k, top-p) rollouts with the static step give
//     the dynamic step's tokens, finish reasons and routing, and log-probs
//     within 1e-5 (the golden-file comparison over ragged prompts, groups,
//     small pools and preemption is in engine_paged_test.cpp);
//   * the decoder keeps its cache pool across calls while the geometry
//     stays, and drops it (and its graphs) when a weight is reallocated, not
//     when weights are written in place;
//   * on a GPU (label gpu, skipped without one): graphs on give the tokens
//     and log-probs of graphs off, greedy and sampled, for dense fp32
//     policies (against the dynamic step) and a bf16 MoE policy on sm90+
//     (against the same step run eagerly), and are captured once per weight
//     version.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <vector>

#include "model/kv_cache.h"
#include "model/static_decode.h"
#include "rollout/engine.h"
#include "tests/tiny_model.h"

namespace zerorl::rollout {
namespace {

const bool kSingleThread = (at::set_num_threads(1), true);

std::vector<PromptInput> ragged_prompts(int64_t P, int64_t vocab) {
  std::vector<PromptInput> prompts;
  for (int64_t p = 0; p < P; ++p) {
    PromptInput in;
    in.id = 100 + p;
    const int64_t len = 1 + (7 * p) % 23;  // 1 .. 23 tokens
    for (int64_t t = 0; t < len; ++t) in.tokens.push_back((11 * p + 5 * t + 3) % vocab);
    prompts.push_back(in);
  }
  return prompts;
}

SamplingParams sampled(int64_t max_new) {
  SamplingParams sp;
  sp.temperature = 0.9;
  sp.top_k = 20;
  sp.top_p = 0.95;
  sp.max_new_tokens = max_new;
  sp.seed = 17;
  sp.stop_token_ids = {7};
  return sp;
}

SamplingParams greedy(int64_t max_new) {
  SamplingParams sp;
  sp.temperature = 0.0;
  sp.max_new_tokens = max_new;
  sp.seed = 17;
  sp.stop_token_ids = {7};
  return sp;
}

// Same tokens, finish reasons and routing; log-probs within tol.
void expect_same(const RolloutBatch& a, const RolloutBatch& b, double tol) {
  ASSERT_EQ(a.samples.size(), b.samples.size());
  for (size_t i = 0; i < a.samples.size(); ++i) {
    const RolloutSample &x = a.samples[i], &y = b.samples[i];
    ASSERT_EQ(x.completion_tokens, y.completion_tokens)
        << "prompt " << x.prompt_id << " sample " << x.sample_index;
    EXPECT_EQ(x.finish, y.finish);
    EXPECT_EQ(x.routing, y.routing) << "prompt " << x.prompt_id << " sample " << x.sample_index;
    for (size_t t = 0; t < x.logp.size(); ++t)
      ASSERT_NEAR(x.logp[t], y.logp[t], tol)
          << "prompt " << x.prompt_id << " sample " << x.sample_index << " token " << t;
  }
}

TEST(StaticDecode, BucketsAreVllmsCaptureSizes) {
  const std::vector<std::pair<int64_t, int64_t>> want = {
      {1, 1},   {2, 2},     {3, 4},     {4, 4},     {5, 8},     {8, 8},     {9, 16},
      {17, 24}, {255, 256}, {256, 256}, {257, 272}, {500, 512}, {512, 512}, {513, 0}};
  for (const auto& [rows, bucket] : want) EXPECT_EQ(model::decode_bucket(rows), bucket) << rows;
}

// 13 ragged prompts x G = 3 through 8 slots (so the batch drains through
// several buckets), a pool of 16 blocks of 4 (one sequence takes up to 12:
// waiting and preemption),
// routing recorded: the static step against the dynamic one.
TEST(StaticDecode, GreedyAndSampledRolloutsMatchTheDynamicStep) {
  for (const auto& cfg : {test::tiny_mla_config(), test::tiny_gqa_config()}) {
    auto m = test::make_policy(cfg);
    const auto prompts = ragged_prompts(13, cfg.vocab_size);
    for (const SamplingParams& sp : {greedy(24), sampled(24)}) {
      EngineOptions eo = EngineOptions().slots(8).eos(-1).blocks(4).routing(true);
      eo.cache_bytes(16 * model::KvCache::block_bytes(cfg, 4, at::kFloat));
      const RolloutBatch dyn = Engine(eo).generate(*m, prompts, 3, sp);
      const RolloutBatch fixed = Engine(eo.static_step(true)).generate(*m, prompts, 3, sp);
      EXPECT_EQ(dyn.stats.static_steps, 0);
      EXPECT_EQ(fixed.stats.static_steps, fixed.stats.decode_steps);
      EXPECT_GT(fixed.stats.padded_rows, 0);
      EXPECT_GT(fixed.stats.num_preemptions, 0);
      expect_same(dyn, fixed, 1e-5);
    }
  }
}

TEST(StaticDecode, KeepsItsCacheUntilTheGeometryChangesOrAWeightIsReallocated) {
  const auto cfg = test::tiny_gqa_config();
  auto m = test::make_policy(cfg);
  model::StaticDecoder dec(model::StaticDecoder::Mode::kEager);
  const void* pool = dec.cache(*m, 4, 64, 16, 12).a(0).data_ptr();
  EXPECT_EQ(dec.cache(*m, 4, 64, 16, 12).a(0).data_ptr(), pool);
  EXPECT_EQ(dec.cache(*m, 4, 64, 16, 12).num_blocks(), 12);
  EXPECT_EQ(dec.cache(*m, 4, 64, 16, 12).scratch_block(), 12);
  EXPECT_EQ(dec.stats().resets, 0);
  {
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.mul_(1.01);  // in place: the optimizer, a weight broadcast
  }
  EXPECT_EQ(dec.cache(*m, 4, 64, 16, 12).a(0).data_ptr(), pool);
  EXPECT_EQ(dec.stats().resets, 0);
  {
    torch::NoGradGuard ng;
    auto p = m->parameters().front();
    p.set_data(p.clone());  // a new storage: a load, a cast
  }
  EXPECT_EQ(dec.cache(*m, 4, 64, 16, 12).a(0).data_ptr(), pool);  // the pool stays
  EXPECT_EQ(dec.stats().resets, 1);                               // the graphs go
  dec.cache(*m, 4, 64, 16, 13);                                   // another geometry
  EXPECT_EQ(dec.stats().resets, 2);

  // Two rollouts through one Engine (the second reuses the cleared pool),
  // the second after an in-place update: the dynamic step's results both times.
  const auto prompts = ragged_prompts(5, cfg.vocab_size);
  EngineOptions eo = EngineOptions().slots(6).eos(-1);
  Engine fixed(EngineOptions(eo).static_step(true).keep_cache(true));
  expect_same(Engine(eo).generate(*m, prompts, 2, sampled(12)),
              fixed.generate(*m, prompts, 2, sampled(12)), 1e-5);
  {
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.mul_(0.97);
  }
  expect_same(Engine(eo).generate(*m, prompts, 2, sampled(12)),
              fixed.generate(*m, prompts, 2, sampled(12)), 1e-5);
}

// ---- CUDA (label gpu) ----

bool have_cuda() { return torch::cuda::is_available(); }

model::ModelConfig dense(model::ModelConfig c) {
  c.moe.first_k_dense_replace = c.num_layers;  // every layer a dense MLP: no host sync
  return c;
}

// Graphs on against graphs off (the default), for dense fp32 policies (the
// MoE experts' fp32 loop reads counts on the host, so those would not
// qualify): graphs off is the dynamic step, so tokens equal and log-probs
// within 1e-5 (TF32 off, libtorch's default).
TEST(StaticDecode, GraphsGiveTheEagerCompletionsOnCuda) {
  if (!have_cuda()) GTEST_SKIP() << "needs a CUDA device";
  for (const auto& cfg : {dense(test::tiny_mla_config()), dense(test::tiny_gqa_config())}) {
    auto m = test::make_policy(cfg);
    m->to(at::kCUDA);
    std::string why;
    ASSERT_TRUE(model::decode_graphs_apply(*m, &why)) << why;
    const auto prompts = ragged_prompts(13, cfg.vocab_size);
    for (const SamplingParams& sp : {greedy(24), sampled(24)}) {
      EngineOptions eo = EngineOptions().slots(8).eos(-1).blocks(4).routing(false).graphs(true);
      eo.cache_bytes(16 * model::KvCache::block_bytes(cfg, 4, at::kFloat));
      const RolloutBatch off = Engine(EngineOptions(eo).graphs(false)).generate(*m, prompts, 3, sp);
      const RolloutBatch on = Engine(eo).generate(*m, prompts, 3, sp);
      EXPECT_EQ(off.stats.graph_replays, 0);
      EXPECT_EQ(on.stats.graph_replays, on.stats.decode_steps);
      EXPECT_GT(on.stats.graph_captures, 1);
      expect_same(off, on, 1e-5);
    }
  }
}

// A bf16 MoE policy (the grouped GEMM: sm90+): graphs on against the same
// fixed-shape step run eagerly -- the same kernels, so the same tokens and
// log-probs (1e-6), routing recorded.
TEST(StaticDecode, GraphsOfABf16MoePolicyOnCuda) {
  if (!have_cuda()) GTEST_SKIP() << "needs a CUDA device";
  const auto cfg = test::tiny_mla_config();
  auto m = test::make_policy(cfg);
  m->to(at::kCUDA);
  {  // parameters in bf16, the fp32 balancing bias as it is (cast_parameters)
    at::NoGradGuard ng;
    for (auto& p : m->parameters(true)) p.set_data(p.to(at::kBFloat16));
  }
  std::string why;
  if (!model::decode_graphs_apply(*m, &why))
    GTEST_SKIP() << "the CUDA device does not run this policy's decode as a graph: " << why;
  const auto prompts = ragged_prompts(13, cfg.vocab_size);
  for (const SamplingParams& sp : {greedy(24), sampled(24)}) {
    EngineOptions eo = EngineOptions().slots(8).eos(-1).blocks(4).routing(true).graphs(true);
    const RolloutBatch eager =
        Engine(EngineOptions(eo).graphs(false).static_step(true)).generate(*m, prompts, 3, sp);
    const RolloutBatch on = Engine(eo).generate(*m, prompts, 3, sp);
    EXPECT_EQ(eager.stats.graph_replays, 0);
    EXPECT_EQ(eager.stats.static_steps, eager.stats.decode_steps);
    EXPECT_EQ(on.stats.graph_replays, on.stats.decode_steps);
    expect_same(eager, on, 1e-6);
  }
}

// Captured once per weight version: a second rollout captures nothing; after
// an in-place update it still captures nothing and follows the new weights
// (the dynamic step's results); after a reallocation it captures again.
TEST(StaticDecode, GraphsAreCapturedOncePerWeightVersionOnCuda) {
  if (!have_cuda()) GTEST_SKIP() << "needs a CUDA device";
  const auto cfg = dense(test::tiny_gqa_config());
  auto m = test::make_policy(cfg);
  m->to(at::kCUDA);
  const auto prompts = ragged_prompts(6, cfg.vocab_size);
  const EngineOptions eo = EngineOptions().slots(8).eos(-1).keep_cache(true).graphs(true);
  Engine on(eo), off(EngineOptions(eo).graphs(false));
  const RolloutBatch first = on.generate(*m, prompts, 2, sampled(16));
  EXPECT_GT(first.stats.graph_captures, 0);
  const RolloutBatch again = on.generate(*m, prompts, 2, sampled(16));
  EXPECT_EQ(again.stats.graph_captures, 0);
  EXPECT_GT(again.stats.graph_replays, 0);
  expect_same(first, again, 0.0);
  {
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.mul_(0.9);
  }
  const RolloutBatch updated = on.generate(*m, prompts, 2, sampled(16));
  EXPECT_EQ(updated.stats.graph_captures, 0);
  expect_same(off.generate(*m, prompts, 2, sampled(16)), updated, 1e-5);
  {
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.set_data(p.clone());
  }
  const RolloutBatch moved = on.generate(*m, prompts, 2, sampled(16));
  EXPECT_GT(moved.stats.graph_captures, 0);
  expect_same(updated, moved, 0.0);
}

}  // namespace
}  // namespace zerorl::rollout
