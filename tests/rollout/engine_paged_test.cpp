// Engine::generate over the paged KV cache (model/kv_cache.h):
//   * the completions and behaviour log-probs of the engine before paging
//     (tests/rollout/data/engine_golden.txt, recorded at commit 1208403 with
//     one contiguous cache window per slot) for ragged prompts and groups of
//     1-16, whatever the block size, pool size (down to one sequence's worth:
//     waiting and preemption), prefix sharing and CPU decode attention (in
//     place with the prompt attended once per group, in place per sequence,
//     gathered)
//   * with sharing, a group of 8 holds its prompt's blocks once: 1/8 of the
//     prompt blocks of a run with sharing off, and the peak cache memory
//     drops by exactly that
//   * routing records survive preemption; a pool too small is a clear error
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/paged_attention.h"
#include "rollout/engine.h"
#include "tests/rollout/engine_golden.h"
#include "tests/tiny_model.h"

namespace zerorl::rollout {
namespace {

const bool kSingleThread = (at::set_num_threads(1), true);

struct GoldenSample {
  std::string finish;
  std::vector<int64_t> tokens;
  std::vector<double> logp;
};

// scenario -> (prompt id, sample index) -> sample
std::map<std::string, std::map<std::pair<int64_t, int64_t>, GoldenSample>> read_golden() {
  std::ifstream in(std::string(ZR_SOURCE_DIR) + "/tests/rollout/data/engine_golden.txt");
  EXPECT_TRUE(in.good()) << "tests/rollout/data/engine_golden.txt missing";
  std::map<std::string, std::map<std::pair<int64_t, int64_t>, GoldenSample>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string name;
    int64_t id = 0, g = 0, n = 0;
    GoldenSample s;
    ss >> name >> id >> g >> s.finish >> n;
    s.tokens.resize(static_cast<size_t>(n));
    s.logp.resize(static_cast<size_t>(n));
    for (auto& t : s.tokens) ss >> t;
    for (auto& l : s.logp) ss >> l;
    out[name][{id, g}] = s;
  }
  return out;
}

// Bytes of `blocks` blocks of the scenario's model.
int64_t pool_bytes(const model::ModelConfig& cfg, int64_t block_size, int64_t blocks) {
  return blocks * model::KvCache::block_bytes(cfg, block_size, at::kFloat);
}

// Blocks one sequence of the scenario's longest prompt + max_new - 1 takes.
int64_t blocks_per_sequence(const golden::Scenario& s, int64_t block_size) {
  int64_t longest = 0;
  for (int64_t n : s.prompt_lengths) longest = std::max(longest, n);
  return (longest + s.params.max_new_tokens - 1 + block_size - 1) / block_size;
}

struct PagedSetup {
  std::string name;
  int64_t block_size;
  bool share;
  int64_t extra_blocks;  // pool = one sequence's blocks + this; < 0: the default pool
};

// Runs every golden scenario under each setup on `device` and compares
// tokens (exact), finish reasons and log-probs (1e-5) with the golden file.
// static_step: decode with the fixed-shape step (EngineOptions::static_decode,
// model/static_decode.h), one Engine per setup kept across the scenarios.
void check_golden(const std::vector<PagedSetup>& setups, at::Device device,
                  bool static_step = false) {
  const auto golden = read_golden();
  ASSERT_EQ(golden.size(), golden::scenarios().size());
  int64_t preempted = 0, waited = 0, static_steps = 0, padded = 0, steps = 0;
  double worst = 0;
  for (const golden::Scenario& sc : golden::scenarios()) {
    const model::ModelConfig cfg = golden::config_of(sc);
    auto m = test::make_policy(cfg);
    m->to(device);
    const auto prompts = golden::prompts_of(sc, cfg.vocab_size);
    const auto& want = golden.at(sc.name);
    for (const PagedSetup& su : setups) {
      SCOPED_TRACE(sc.name + ", " + su.name);
      EngineOptions eo = EngineOptions().slots(sc.num_slots).eos(-1).blocks(su.block_size);
      eo.sharing(su.share).static_step(static_step);
      if (su.extra_blocks >= 0)
        eo.cache_bytes(pool_bytes(cfg, su.block_size,
                                  blocks_per_sequence(sc, su.block_size) + su.extra_blocks));
      const RolloutBatch b = Engine(eo).generate(*m, prompts, sc.group_size, sc.params);
      preempted += b.stats.num_preemptions;
      static_steps += b.stats.static_steps;
      padded += b.stats.padded_rows;
      steps += b.stats.decode_steps;
      if (su.extra_blocks >= 0) waited += b.stats.peak_cache_blocks == b.stats.cache_blocks;
      ASSERT_EQ(b.samples.size(), want.size());
      for (const RolloutSample& s : b.samples) {
        const GoldenSample& w = want.at({s.prompt_id, s.sample_index});
        ASSERT_EQ(s.completion_tokens, w.tokens)
            << "prompt " << s.prompt_id << " sample " << s.sample_index;
        EXPECT_EQ(finish_reason_name(s.finish), w.finish);
        for (size_t t = 0; t < w.logp.size(); ++t) {
          worst = std::max(worst, std::abs(s.logp[t] - w.logp[t]));
          ASSERT_NEAR(s.logp[t], w.logp[t], 1e-5)
              << "prompt " << s.prompt_id << " sample " << s.sample_index << " token " << t;
        }
      }
      EXPECT_LE(b.stats.peak_cache_blocks, b.stats.cache_blocks);
    }
  }
  // The small pools did run full, and sequences were preempted and resumed.
  EXPECT_GT(waited, 10);
  EXPECT_GT(preempted, 20);
  if (static_step) {  // every step ran at a bucket, and some of them padded
    EXPECT_EQ(static_steps, steps);
    EXPECT_GT(padded, 0);
  }
  ::testing::Test::RecordProperty("max_abs_logp_diff", std::to_string(worst));
  std::cout << "preemptions " << preempted << ", max |logp - golden| " << worst << ", static steps "
            << static_steps << " (" << padded << " padding rows)\n";
}

const std::vector<PagedSetup> kSetups = {
    {"default pool, blocks of 16", 16, true, -1},
    {"one block per sequence, sharing off", 64, false, -1},
    {"blocks of 4, pool of one sequence + 2 blocks", 4, true, 2},
    {"blocks of 1, pool of one sequence + 5 blocks, sharing off", 1, false, 5},
    {"blocks of 3, pool of one sequence", 3, true, 0},
};

TEST(PagedEngine, SameCompletionsAndLogprobsAsTheContiguousEngineOfBefore) {
  check_golden(kSetups, at::kCPU);
}

// The test above decodes with the CPU's default decode attention: the pool
// read in place, a group's prompt blocks attended once for all its samples
// and merged by log-sum-exp (model/paged_attention.h).  The same golden
// completions come out of the other two: in place per sequence, and the
// blocks gathered into a contiguous copy (the path before).
TEST(PagedEngine, SameCompletionsAndLogprobsWithEveryDecodeAttention) {
  if (!model::paged_decode_available(at::kCPU, at::kFloat))
    GTEST_SKIP() << "needs the BLAS sgemm_ of LibTorch's CPU library";
  for (auto mode : {model::DecodeAttention::kPagedNoSharing, model::DecodeAttention::kGather}) {
    model::set_decode_attention(mode);
    check_golden(kSetups, at::kCPU);
  }
  model::set_decode_attention(model::DecodeAttention::kPaged);
}

// The same on a CUDA device (fp32 without TF32, libtorch's default): the
// cache's block copies, gathers and writes run as CUDA kernels.
TEST(PagedEngine, SameCompletionsAndLogprobsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  check_golden({kSetups[0], kSetups[2], kSetups[4]}, at::kCUDA);
}

// The fixed-shape decode step (model/static_decode.h: rows padded to a
// bucket, block tables padded with the scratch block and masked, attention
// over the gathered blocks) gives the golden completions too -- ragged
// prompts, groups of 1-16, sharing on and off, pools down to one sequence
// (waiting, preemption and recomputation).
TEST(PagedEngine, SameCompletionsAndLogprobsWithTheStaticDecodeStep) {
  check_golden(kSetups, at::kCPU, /*static_step=*/true);
}

// P prompts of `len` tokens, G samples each, all slots at once, greedy.
RolloutBatch run_group(model::CausalLM& m, int64_t P, int64_t G, int64_t len, int64_t max_new,
                       bool share) {
  std::vector<PromptInput> prompts;
  for (int64_t p = 0; p < P; ++p) {
    PromptInput in;
    in.id = p;
    for (int64_t t = 0; t < len; ++t) in.tokens.push_back((5 * p + 3 * t + 1) % 64);
    prompts.push_back(in);
  }
  SamplingParams sp;
  sp.temperature = 1.0;
  sp.max_new_tokens = max_new;
  sp.seed = 5;
  return Engine(EngineOptions().slots(P * G).eos(-1).sharing(share)).generate(m, prompts, G, sp);
}

TEST(PagedEngine, AGroupOfEightHoldsItsPromptBlocksOnce) {
  auto m = test::make_policy(test::tiny_mla_config());
  const int64_t P = 2, G = 8, len = 64, bs = 16, nb = len / bs;
  // One new token (taken from the prefill's logits): the cache holds only
  // the prompts -- once per group when shared, G times when copied.
  const RolloutBatch on = run_group(*m, P, G, len, 1, true);
  const RolloutBatch off = run_group(*m, P, G, len, 1, false);
  EXPECT_EQ(on.stats.peak_cache_blocks, P * nb);
  EXPECT_EQ(off.stats.peak_cache_blocks, P * G * nb);
  EXPECT_EQ(off.stats.peak_cache_bytes(), G * on.stats.peak_cache_bytes());
  // Eight more tokens: each sample adds one block of its own (positions
  // 64..71); the prompt part stays 1/8.
  const RolloutBatch on9 = run_group(*m, P, G, len, 9, true);
  const RolloutBatch off9 = run_group(*m, P, G, len, 9, false);
  EXPECT_EQ(on9.stats.peak_cache_blocks, P * nb + P * G);
  EXPECT_EQ(off9.stats.peak_cache_blocks, P * G * nb + P * G);
  // Same tokens; log-probs equal up to summation order (with sharing the
  // prompt blocks are attended once per group and merged by log-sum-exp).
  for (size_t i = 0; i < on9.samples.size(); ++i) {
    EXPECT_EQ(on9.samples[i].completion_tokens, off9.samples[i].completion_tokens);
    ASSERT_EQ(on9.samples[i].logp.size(), off9.samples[i].logp.size());
    for (size_t t = 0; t < on9.samples[i].logp.size(); ++t)
      EXPECT_NEAR(on9.samples[i].logp[t], off9.samples[i].logp[t], 1e-5);
  }
  // A prompt that ends inside a block: the first write of all but the last
  // sample copies that block (copy on write); the rest stays shared.
  const RolloutBatch ragged = run_group(*m, P, G, len + 5, 9, true);
  EXPECT_EQ(ragged.stats.peak_cache_blocks, P * (nb + 1) + P * (G - 1));
  EXPECT_EQ(ragged.stats.prefill_tokens, P * (len + 5));
  EXPECT_EQ(ragged.stats.num_prefills, P);
}

TEST(PagedEngine, RoutingRecordsSurvivePreemption) {
  auto m = test::make_policy(test::tiny_mla_config());
  const golden::Scenario sc = golden::scenarios()[2];  // mla, groups of 8
  ASSERT_EQ(sc.name, "mla_g8");
  const auto prompts = golden::prompts_of(sc, 64);
  const RolloutBatch ref = Engine(EngineOptions().slots(sc.num_slots).eos(-1).routing(true))
                               .generate(*m, prompts, sc.group_size, sc.params);
  EngineOptions eo = EngineOptions().slots(sc.num_slots).eos(-1).routing(true).blocks(4);
  eo.cache_bytes(pool_bytes(test::tiny_mla_config(), 4, blocks_per_sequence(sc, 4) + 2));
  const RolloutBatch b = Engine(eo).generate(*m, prompts, sc.group_size, sc.params);
  ASSERT_GT(b.stats.num_preemptions, 0);
  EXPECT_GT(b.stats.recompute_tokens, 0);
  for (size_t i = 0; i < b.samples.size(); ++i) {
    const RolloutSample& s = b.samples[i];
    ASSERT_EQ(s.completion_tokens, ref.samples[i].completion_tokens);
    ASSERT_EQ(s.routing.size(), ref.samples[i].routing.size()) << "sample " << i;
    for (size_t t = 0; t < s.routing.size(); ++t) {
      std::vector<int32_t> a = s.routing[t], r = ref.samples[i].routing[t];
      std::sort(a.begin(), a.end());
      std::sort(r.begin(), r.end());
      EXPECT_EQ(a, r) << "sample " << i << " token " << t;
    }
  }
}

TEST(PagedEngine, APoolTooSmallForOneSequenceIsAClearError) {
  auto m = test::make_policy(test::tiny_gqa_config());
  const golden::Scenario sc = golden::scenarios()[5];
  EngineOptions eo = EngineOptions().slots(4).eos(-1).blocks(4);
  eo.cache_bytes(pool_bytes(test::tiny_gqa_config(), 4, blocks_per_sequence(sc, 4) - 1));
  try {
    Engine(eo).generate(*m, golden::prompts_of(sc, 64), sc.group_size, sc.params);
    FAIL() << "a pool smaller than one sequence was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rollout.kv_cache_gb"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zerorl::rollout
