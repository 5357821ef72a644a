// Engine::generate on small random MoE policies (MLA and GQA):
//   * behaviour log-probs == teacher-forced log-probs of the full forward (fp32, <= 1e-5)
//   * the experts each token was routed to while generating == the full forward's
//   * greedy == a step-by-step argmax loop over full forwards without cache
//   * same seed -> same completions with 1, 3 and 16 slots and with prompts reordered
//   * stop strings split across tokens, stop token ids, max_new_tokens exact
//   * continuous batching keeps the slots busy; each prompt prefilled once
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "rollout/engine.h"
#include "tests/tiny_model.h"

namespace zerorl::rollout {
namespace {

// These models are tiny: intra-op threads only add OpenMP spin-waiting, which
// on a shared 2-core machine under load costs 50x.  Results do not depend on
// the thread count.
const bool kSingleThread = (at::set_num_threads(1), true);

using test::make_policy;
using test::tiny_gqa_config;
using test::tiny_mla_config;

// Prompts of different lengths with ids 100 + i, tokens from a fixed rule.
std::vector<PromptInput> make_prompts(int64_t n, int64_t vocab, int64_t first_len = 3) {
  std::vector<PromptInput> out;
  for (int64_t i = 0; i < n; ++i) {
    PromptInput p;
    p.id = 100 + i;
    const int64_t len = first_len + (i * 5) % 11;
    for (int64_t t = 0; t < len; ++t) p.tokens.push_back((7 * i + 13 * t + 1) % vocab);
    out.push_back(p);
  }
  return out;
}

SamplingParams params(double T, int64_t max_new, uint64_t seed = 1) {
  SamplingParams sp;
  sp.temperature = T;
  sp.max_new_tokens = max_new;
  sp.seed = seed;
  return sp;
}

// Teacher-forced log p(completion | prompt) at temperature T, one forward
// over the whole sequence (no cache).
std::vector<double> teacher_forced(model::CausalLM& m, const RolloutSample& s, double T) {
  std::vector<int64_t> seq = s.prompt_tokens;
  seq.insert(seq.end(), s.completion_tokens.begin(), s.completion_tokens.end());
  const int64_t n = static_cast<int64_t>(seq.size());
  at::Tensor all = at::tensor(seq, at::kLong).view({1, n});
  kernels::LogprobOptions lo;
  lo.temperature = T;
  at::NoGradGuard ng;
  const at::Tensor logp =
      m.logprobs(all.slice(1, 0, n - 1), all.slice(1, 1, n), lo).logp_BT.to(at::kDouble);
  std::vector<double> out;
  for (int64_t t = s.prompt_length() - 1; t < n - 1; ++t) out.push_back(logp[0][t].item<double>());
  return out;
}

void expect_logprob_parity(model::CausalLM& m, const RolloutBatch& b, double T) {
  double worst = 0;
  for (const RolloutSample& s : b.samples) {
    ASSERT_EQ(s.logp.size(), s.completion_tokens.size());
    const std::vector<double> ref = teacher_forced(m, s, T);
    for (size_t t = 0; t < ref.size(); ++t) {
      worst = std::max(worst, std::abs(ref[t] - s.logp[t]));
      ASSERT_NEAR(s.logp[t], ref[t], 1e-5)
          << "prompt " << s.prompt_id << " sample " << s.sample_index << " token " << t;
    }
  }
  ::testing::Test::RecordProperty("max_abs_logp_diff", std::to_string(worst));
}

class EngineArch : public ::testing::TestWithParam<bool> {
 protected:
  model::ModelConfig cfg() const { return GetParam() ? tiny_mla_config() : tiny_gqa_config(); }
};

TEST_P(EngineArch, BehaviourLogprobsEqualTeacherForcedLogprobs) {
  auto m = make_policy(cfg());
  ASSERT_FALSE(m->moe_layers().empty());
  // 5 slots for 4 groups of 3: templates are held back, prompts of different
  // lengths share decode steps, finished samples hand their slots on.
  Engine engine(EngineOptions().slots(5).eos(-1));
  SamplingParams sp = params(0.8, 12, 7);
  sp.top_k = 20;
  sp.top_p = 0.95;
  sp.stop_token_ids = {5};
  const RolloutBatch b = engine.generate(*m, make_prompts(4, 64), 3, sp);
  ASSERT_EQ(b.samples.size(), 12u);
  expect_logprob_parity(*m, b, 0.8);

  // Greedy records log-probs at T = 1.
  const RolloutBatch g = engine.generate(*m, make_prompts(2, 64), 1, params(0.0, 8));
  expect_logprob_parity(*m, g, 1.0);
}

// The teacher-forced routing of prompt ++ completion[:-1] (one full forward),
// per MoE layer [n-1, K].
std::vector<at::Tensor> teacher_forced_routing(model::CausalLM& m, const RolloutSample& s) {
  std::vector<int64_t> seq = s.prompt_tokens;
  seq.insert(seq.end(), s.completion_tokens.begin(), s.completion_tokens.end() - 1);
  model::ForwardOptions fo;
  fo.record_routing = true;
  at::NoGradGuard ng;
  m.logits(at::tensor(seq, at::kLong).view({1, -1}), fo);
  return m.last_routing();
}

TEST_P(EngineArch, ExpertsChosenWhileGeneratingEqualThoseOfTheFullForward) {
  // What keeps the MoE importance ratio honest: every token the generator ran
  // through the policy -- prompt tokens in the batched prefill, completion
  // tokens in cached decode steps -- went to the experts that the learner's
  // teacher-forced forward on the same tokens chooses, in every MoE layer.
  // Prompts of 4 lengths, 3 samples each, in 5 slots: templates are held
  // back, slots turn over (stop token), decode steps mix positions and read
  // windows with idle slots in them.
  auto m = make_policy(cfg());
  const int64_t K = cfg().moe.top_k, M = static_cast<int64_t>(m->moe_layers().size());
  ASSERT_GT(M, 0);
  SamplingParams sp = params(1.0, 14, 11);
  sp.stop_token_ids = {5, 17};
  // 2 slots < G: templates decode themselves and prompts are prefilled again.
  for (int64_t slots : {5, 2}) {
    SCOPED_TRACE("slots " + std::to_string(slots));
    const RolloutBatch b = Engine(EngineOptions().slots(slots).eos(-1).routing(true))
                               .generate(*m, make_prompts(4, 64), 3, sp);
    int64_t decode_rows = 0;
    std::set<std::vector<int32_t>> distinct;
    for (const RolloutSample& s : b.samples) {
      const int64_t n = s.prompt_length() + s.completion_length() - 1;
      ASSERT_EQ(static_cast<int64_t>(s.routing.size()), n)
          << "prompt " << s.prompt_id << " sample " << s.sample_index;
      const std::vector<at::Tensor> ref = teacher_forced_routing(*m, s);
      ASSERT_EQ(static_cast<int64_t>(ref.size()), M);
      for (int64_t t = 0; t < n; ++t) {
        const std::vector<int32_t>& row = s.routing[static_cast<size_t>(t)];
        ASSERT_EQ(static_cast<int64_t>(row.size()), M * K);
        for (int64_t l = 0; l < M; ++l) {
          // Sets: the order within top-k carries no meaning.
          std::vector<int32_t> got(row.begin() + l * K, row.begin() + (l + 1) * K);
          const at::Tensor want_K = ref[static_cast<size_t>(l)][t].to(at::kLong).contiguous();
          std::vector<int32_t> want(want_K.data_ptr<int64_t>(), want_K.data_ptr<int64_t>() + K);
          std::sort(got.begin(), got.end());
          std::sort(want.begin(), want.end());
          EXPECT_EQ(got, want) << "prompt " << s.prompt_id << " sample " << s.sample_index
                               << " token " << t << (t < s.prompt_length() ? " (prompt)" : "")
                               << " moe layer " << l;
          distinct.insert(got);
        }
      }
      decode_rows += n - s.prompt_length();
    }
    // The comparison covers many decode-step decisions, and routing that
    // varies (a model sending every token to the same experts proves nothing).
    EXPECT_GE(decode_rows, 60);
    EXPECT_GE(distinct.size(), 4u);
    // ... and the behaviour log-probs of the same run still match (<= 1e-5).
    expect_logprob_parity(*m, b, 1.0);
  }

  // Off by default, and then nothing is recorded.
  const RolloutBatch off =
      Engine(EngineOptions().slots(5).eos(-1)).generate(*m, make_prompts(2, 64), 2, sp);
  for (const RolloutSample& s : off.samples) EXPECT_TRUE(s.routing.empty());
}

TEST_P(EngineArch, TeacherForcedRoutingOfCompletionsDoesNotDependOnBatching) {
  // The trainer scores completions batched and right-padded: the
  // teacher-forced routing of each completion must be the one it gets when
  // scored alone (which the test above ties to the generator's routing).
  auto m = make_policy(cfg());
  Engine engine(EngineOptions().slots(4).eos(-1));
  const RolloutBatch b = engine.generate(*m, make_prompts(3, 64), 2, params(1.0, 9, 3));
  int64_t Tmax = 0;
  for (const auto& s : b.samples) Tmax = std::max(Tmax, s.prompt_length() + s.completion_length());
  const int64_t B = static_cast<int64_t>(b.samples.size());
  at::Tensor tokens = at::zeros({B, Tmax}, at::kLong), valid = at::zeros({B, Tmax}, at::kBool);
  for (int64_t i = 0; i < B; ++i) {
    const auto& s = b.samples[static_cast<size_t>(i)];
    std::vector<int64_t> seq = s.prompt_tokens;
    seq.insert(seq.end(), s.completion_tokens.begin(), s.completion_tokens.end());
    for (size_t t = 0; t < seq.size(); ++t) {
      tokens[i][static_cast<int64_t>(t)] = seq[t];
      valid[i][static_cast<int64_t>(t)] = true;
    }
  }
  at::NoGradGuard ng;
  model::ForwardOptions fo;
  fo.record_routing = true;
  fo.valid_BT = valid;
  m->logits(tokens, fo);
  const std::vector<at::Tensor> batched = m->last_routing();
  ASSERT_EQ(batched.size(), m->moe_layers().size());
  for (int64_t i = 0; i < B; ++i) {
    const auto& s = b.samples[static_cast<size_t>(i)];
    const int64_t n = s.prompt_length() + s.completion_length();
    model::ForwardOptions f1;
    f1.record_routing = true;
    m->logits(tokens.slice(0, i, i + 1).slice(1, 0, n), f1);
    for (size_t l = 0; l < batched.size(); ++l) {
      const at::Tensor one = m->last_routing()[l];  // [n, K]
      const at::Tensor many = batched[l].view({B, Tmax, -1})[i].slice(0, 0, n);
      // Compare expert sets (order within top-k is not meaningful).
      EXPECT_TRUE(at::equal(std::get<0>(one.sort(1)), std::get<0>(many.sort(1))))
          << "sample " << i << " moe layer " << l;
    }
  }
}

TEST_P(EngineArch, GreedyEqualsStepByStepArgmaxWithoutCache) {
  auto m = make_policy(cfg());
  Engine engine(EngineOptions().slots(3).eos(-1));
  const int64_t max_new = 10;
  const auto prompts = make_prompts(4, 64);
  const RolloutBatch b = engine.generate(*m, prompts, 2, params(0.0, max_new));
  at::NoGradGuard ng;
  for (size_t p = 0; p < prompts.size(); ++p) {
    std::vector<int64_t> seq = prompts[p].tokens, expect;
    for (int64_t step = 0; step < max_new; ++step) {
      const int64_t n = static_cast<int64_t>(seq.size());
      const at::Tensor logits =
          m->logits(at::tensor(seq, at::kLong).view({1, n}))[0][n - 1].to(at::kFloat).contiguous();
      const float* x = logits.data_ptr<float>();
      int64_t best = 0;
      for (int64_t v = 1; v < logits.size(0); ++v)
        if (x[v] > x[best]) best = v;
      expect.push_back(best);
      seq.push_back(best);
    }
    for (int64_t g = 0; g < 2; ++g) {
      const RolloutSample& s = b.samples[p * 2 + static_cast<size_t>(g)];
      EXPECT_EQ(s.prompt_id, prompts[p].id);
      EXPECT_EQ(s.completion_tokens, expect) << "prompt " << p << " sample " << g;
      EXPECT_EQ(s.finish, FinishReason::kLength);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, EngineArch, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Mla" : "Gqa";
                         });

std::map<std::pair<int64_t, int64_t>, const RolloutSample*> by_key(const RolloutBatch& b) {
  std::map<std::pair<int64_t, int64_t>, const RolloutSample*> out;
  for (const auto& s : b.samples) out[{s.prompt_id, s.sample_index}] = &s;
  return out;
}

// Issue 16 (two rollout ranks each decode half of a batch) and issue 15
// item 7: a completion and its behaviour log-probs are the same bits whatever
// else is in the batch.  Each prompt's group alone (G = 3 rows, so every GEMM
// of the decode has fewer than 4 rows: MKL's sgemm computes such rows
// differently), the two halves, and the whole batch must agree bit for bit.
TEST_P(EngineArch, CompletionsAndLogprobsDoNotDependOnTheBatch) {
  auto m = make_policy(cfg());
  const auto prompts = make_prompts(6, 64, 12);
  SamplingParams sp = params(1.0, 40, 99);
  sp.stop_token_ids = {3, 9};  // ragged lengths: the running rows shrink to 1
  const int64_t G = 3;
  Engine engine(EngineOptions().slots(32).eos(-1));
  const RolloutBatch whole = engine.generate(*m, prompts, G, sp);
  std::vector<RolloutBatch> parts;
  for (size_t i = 0; i < prompts.size(); ++i)  // one group at a time
    parts.push_back(engine.generate(*m, {prompts[i]}, G, sp));
  const auto half = [&](size_t a, size_t z) {
    return engine.generate(*m, std::vector<PromptInput>(prompts.begin() + a, prompts.begin() + z),
                           G, sp);
  };
  parts.push_back(half(0, 3));
  parts.push_back(half(3, 6));
  const auto ref = by_key(whole);
  int64_t tokens = 0, lengths_differ = 0;
  for (size_t p = 0; p < parts.size(); ++p)
    for (const auto& [key, s] : by_key(parts[p])) {
      const RolloutSample* w = ref.at(key);
      ASSERT_EQ(s->completion_tokens, w->completion_tokens)
          << "part " << p << " prompt " << key.first << " sample " << key.second;
      ASSERT_EQ(s->logp.size(), w->logp.size());
      for (size_t t = 0; t < s->logp.size(); ++t)
        ASSERT_EQ(s->logp[t], w->logp[t])
            << "part " << p << " prompt " << key.first << " sample " << key.second << " token " << t
            << ": " << s->logp[t] - w->logp[t] << " apart";
      tokens += static_cast<int64_t>(s->logp.size());
    }
  for (size_t i = 1; i < whole.samples.size(); ++i)
    lengths_differ += whole.samples[i].logp.size() != whole.samples[0].logp.size();
  EXPECT_GT(lengths_differ, 0) << "all completions equally long: the rows never shrink";
  EXPECT_EQ(tokens, 2 * static_cast<int64_t>(whole.stats.generated_tokens));
}

TEST(Engine, SameSeedSameCompletionsWhateverTheSlotsAndPromptOrder) {
  auto m = make_policy(tiny_mla_config());
  const auto prompts = make_prompts(6, 64);
  SamplingParams sp = params(1.0, 14, 2024);
  sp.top_p = 0.9;
  sp.stop_token_ids = {3, 9};  // ragged lengths, so slots turn over
  sp.step = 5;
  const int64_t G = 4;
  std::vector<RolloutBatch> runs;
  for (int64_t slots : {1, 3, 16})
    runs.push_back(Engine(EngineOptions().slots(slots).eos(-1)).generate(*m, prompts, G, sp));
  auto reversed = prompts;
  std::reverse(reversed.begin(), reversed.end());
  runs.push_back(Engine(EngineOptions().slots(16).eos(-1)).generate(*m, reversed, G, sp));

  const auto ref = by_key(runs[2]);
  ASSERT_EQ(ref.size(), prompts.size() * G);
  int64_t distinct_in_group = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto got = by_key(runs[r]);
    ASSERT_EQ(got.size(), ref.size());
    for (const auto& [key, s] : ref) {
      const RolloutSample* o = got.at(key);
      EXPECT_EQ(o->completion_tokens, s->completion_tokens)
          << "run " << r << " prompt " << key.first << " sample " << key.second;
      EXPECT_EQ(o->finish, s->finish);
      ASSERT_EQ(o->logp.size(), s->logp.size());
      for (size_t t = 0; t < s->logp.size(); ++t) EXPECT_NEAR(o->logp[t], s->logp[t], 1e-5);
    }
  }
  for (size_t p = 0; p < prompts.size(); ++p)
    if (runs[2].samples[p * G].completion_tokens != runs[2].samples[p * G + 1].completion_tokens)
      ++distinct_in_group;
  EXPECT_GT(distinct_in_group, 0) << "samples of a group should differ (own streams)";
  // The output follows the caller's prompt order.
  EXPECT_EQ(runs[3].samples.front().prompt_id, prompts.back().id);
  // Prefilled once per prompt whenever a group can be copied (>= 2 slots).
  EXPECT_EQ(runs[1].stats.num_prefills, 6);
  EXPECT_EQ(runs[2].stats.num_prefills, 6);
  EXPECT_EQ(runs[0].stats.num_prefills, 6 * G);  // one slot: every sample prefills its prompt

  // Another seed or step changes the completions.
  SamplingParams other = sp;
  other.seed = 2025;
  const auto b2 = Engine(EngineOptions().slots(16).eos(-1)).generate(*m, prompts, G, other);
  int64_t differ = 0;
  for (size_t i = 0; i < b2.samples.size(); ++i)
    differ += b2.samples[i].completion_tokens != runs[2].samples[i].completion_tokens;
  EXPECT_GT(differ, static_cast<int64_t>(b2.samples.size()) / 2);
}

// Each id is 3 letters from {a,b,c,d} (64 = 4^3), so the 4-letter stop
// string always spans at least two tokens.
std::shared_ptr<const TokenText> letters_text() {
  return std::make_shared<TokenText>(TokenText::from_function(64, [](int64_t id) {
    std::string s;
    for (int k = 0; k < 3; ++k) {
      s += static_cast<char>('a' + id % 4);
      id /= 4;
    }
    return s;
  }));
}

TEST(Engine, StopStringsSplitAcrossTokensAreCaughtAndKept) {
  auto m = make_policy(tiny_mla_config());
  auto text = letters_text();
  Engine engine(EngineOptions().slots(8).eos(-1), text);
  SamplingParams sp = params(1.5, 40, 9);
  sp.stop_strings = {"abca", "dddd"};
  const RolloutBatch b = engine.generate(*m, make_prompts(6, 64), 4, sp);
  int stopped = 0;
  for (const RolloutSample& s : b.samples) {
    const std::string full = text->decode(s.completion_tokens);
    std::vector<int64_t> head(s.completion_tokens.begin(), s.completion_tokens.end() - 1);
    const std::string before = text->decode(head);
    if (s.finish == FinishReason::kStopString) {
      ++stopped;
      const size_t a = full.find("abca"), d = full.find("dddd");
      const size_t end =
          std::min(a == std::string::npos ? a : a + 4, d == std::string::npos ? d : d + 4);
      EXPECT_EQ(s.text, full.substr(0, end))
          << "text is cut right after the (earliest) stop string";
      EXPECT_TRUE(before.find("abca") == std::string::npos &&
                  before.find("dddd") == std::string::npos)
          << "the stop was caught late";
      EXPECT_LE(s.completion_length(), 40);
    } else {
      EXPECT_EQ(s.finish, FinishReason::kLength);
      EXPECT_EQ(s.completion_length(), 40);
      EXPECT_EQ(full.find("abca"), std::string::npos);
      EXPECT_EQ(full.find("dddd"), std::string::npos);
      EXPECT_EQ(s.text, full);
    }
  }
  EXPECT_GE(stopped, 3) << "the test must exercise stop strings";
  EXPECT_LT(stopped, static_cast<int>(b.samples.size())) << "and the length limit";
}

TEST(Engine, MaxNewTokensIsExact) {
  auto m = make_policy(tiny_gqa_config());
  for (int64_t max_new : {1, 2, 7}) {
    const RolloutBatch b = Engine(EngineOptions().slots(4).eos(-1))
                               .generate(*m, make_prompts(3, 64), 2, params(1.0, max_new));
    for (const auto& s : b.samples) {
      EXPECT_EQ(s.completion_length(), max_new);
      EXPECT_EQ(s.finish, FinishReason::kLength);
    }
    EXPECT_EQ(b.stats.generated_tokens, 6 * max_new);
  }
}

TEST(Engine, EndOfTextAndStopTokenIdsFinishAndAreKept) {
  auto m = make_policy(tiny_mla_config());
  std::vector<int64_t> stops;
  for (int64_t v = 0; v < 64; v += 5) stops.push_back(v);  // ~1/5 of the vocabulary
  SamplingParams sp = params(1.0, 30, 4);
  sp.stop_token_ids = {stops.begin() + 1, stops.end()};
  const RolloutBatch b =
      Engine(EngineOptions().slots(6).eos(stops[0])).generate(*m, make_prompts(4, 64), 4, sp);
  int ended = 0;
  for (const auto& s : b.samples) {
    const auto is_stop = [&](int64_t t) {
      return std::find(stops.begin(), stops.end(), t) != stops.end();
    };
    for (size_t t = 0; t + 1 < s.completion_tokens.size(); ++t)
      EXPECT_FALSE(is_stop(s.completion_tokens[t]));
    if (s.finish == FinishReason::kEndOfText) {
      ++ended;
      EXPECT_TRUE(is_stop(s.completion_tokens.back()));
    } else {
      EXPECT_EQ(s.completion_length(), 30);
    }
  }
  EXPECT_GE(ended, 8);
}

TEST(Engine, ContinuousBatchingKeepsTheSlotsBusy) {
  auto m = make_policy(tiny_mla_config());
  SamplingParams sp = params(1.0, 24, 8);
  sp.stop_token_ids = {1, 2, 3};  // ragged lengths
  const int64_t slots = 6;
  const RolloutBatch b =
      Engine(EngineOptions().slots(slots).eos(-1)).generate(*m, make_prompts(8, 64), 4, sp);
  const RolloutStats& st = b.stats;
  int64_t total = 0;
  for (const auto& s : b.samples) total += s.completion_length();
  EXPECT_EQ(st.generated_tokens, total);
  EXPECT_EQ(st.decode_tokens,
            total - st.num_samples);  // every first token comes from prefill logits
  EXPECT_EQ(st.num_prefills, 8);
  // While work waits, at most one slot (a held group template) is idle, so
  // steps <= tokens / (slots - 1) + the drain at the end (<= max_new_tokens).
  EXPECT_LE(st.decode_steps, st.decode_tokens / (slots - 1) + sp.max_new_tokens) << st.to_string();
  EXPECT_GT(st.occupancy(), 0.0);
  EXPECT_LE(st.occupancy(), 1.0);
  EXPECT_GT(st.decode_tokens_per_s(), 0.0);
  EXPECT_GT(st.prefill_tokens_per_s(), 0.0);
}

TEST(Engine, BadInputIsAClearError) {
  auto m = make_policy(tiny_mla_config());
  Engine engine(EngineOptions().slots(2).eos(-1));
  auto prompts = make_prompts(2, 64);
  prompts[1].id = prompts[0].id;
  EXPECT_THROW(engine.generate(*m, prompts, 2, params(1.0, 4)), Error);
  prompts = make_prompts(2, 64);
  prompts[1].tokens[0] = 64;
  try {
    engine.generate(*m, prompts, 2, params(1.0, 4));
    FAIL() << "out-of-vocabulary prompt token accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt 101"), std::string::npos) << e.what();
  }
  prompts = make_prompts(1, 64);
  prompts[0].tokens.clear();
  EXPECT_THROW(engine.generate(*m, prompts, 1, params(1.0, 4)), Error);
  EXPECT_THROW(engine.generate(*m, make_prompts(1, 64), 1, params(1.0, 300)),
               Error);  // > max_position
  SamplingParams sp = params(1.0, 4);
  sp.stop_strings = {"x"};
  EXPECT_THROW(engine.generate(*m, make_prompts(1, 64), 1, sp), Error);  // no TokenText
  EXPECT_THROW(engine.generate(*m, make_prompts(1, 64), 0, params(1.0, 4)), Error);
}

// Issue 15 item 4: the host reads the finishing flags every N decode steps.
// Samples that finished in between decode on until the host looks; their
// extra tokens are discarded, so N = 2 and 7 give the completions, finish
// reasons, texts and routing of a look after every step (N = 1) exactly and
// its log-probs within 1e-5 (a finished member still decoding changes the row
// count of its group's shared-prompt GEMM, engine.h): stop ids, stop strings spanning tokens
// (3-letter tokens, 4-letter stops), max_new_tokens, slots turning over (8 slots for 24 samples).
// With a pool of one sequence + 2 blocks, samples are preempted and recomputed: the same again.
TEST(Engine, LookingAtTheStopFlagsEveryFewStepsGivesTheSameCompletions) {
  auto text = letters_text();
  for (const bool mla : {true, false}) {
    SCOPED_TRACE(mla ? "MLA" : "GQA");
    const model::ModelConfig cfg = mla ? tiny_mla_config() : tiny_gqa_config();
    auto m = make_policy(cfg);
    SamplingParams sp = params(1.5, 40, 9);
    sp.stop_strings = {"abca", "dddd"};
    sp.stop_token_ids = {5};
    const auto prompts = make_prompts(6, 64, 12);
    for (const int64_t pool_blocks : {int64_t{0}, int64_t{2}}) {
      SCOPED_TRACE(pool_blocks ? "pool of one sequence + 2 blocks" : "default pool");
      EngineOptions eo = EngineOptions().slots(8).eos(-1).routing(true).blocks(4);
      if (pool_blocks) {
        const int64_t per_seq = (12 + 10 + 40 - 1 + 3) / 4;
        eo.cache_bytes((per_seq + pool_blocks) * model::KvCache::block_bytes(cfg, 4, at::kFloat));
      }
      std::vector<RolloutBatch> runs;
      for (const int64_t every : {1, 2, 7, 39})
        runs.push_back(
            Engine(EngineOptions(eo).check_every(every), text).generate(*m, prompts, 4, sp));
      const RolloutBatch& ref = runs[0];
      int stopped = 0, eos = 0, length = 0;
      for (const RolloutSample& s : ref.samples) {
        stopped += s.finish == FinishReason::kStopString;
        eos += s.finish == FinishReason::kEndOfText;
        length += s.finish == FinishReason::kLength;
      }
      EXPECT_GE(stopped, 2) << "the test must exercise stop strings";
      EXPECT_GE(eos, 2) << "and stop ids";
      EXPECT_GE(length, 1) << "and the length limit";
      if (pool_blocks) EXPECT_GT(ref.stats.num_preemptions, 0) << "the pool must run out";
      for (size_t r = 1; r < runs.size(); ++r) {
        const RolloutBatch& b = runs[r];
        ASSERT_EQ(b.samples.size(), ref.samples.size());
        for (size_t i = 0; i < b.samples.size(); ++i) {
          const RolloutSample &s = b.samples[i], &w = ref.samples[i];
          SCOPED_TRACE("run " + std::to_string(r) + " prompt " + std::to_string(s.prompt_id) +
                       " sample " + std::to_string(s.sample_index));
          ASSERT_EQ(s.completion_tokens, w.completion_tokens);
          EXPECT_EQ(s.finish, w.finish);
          EXPECT_EQ(s.text, w.text);
          EXPECT_EQ(s.routing, w.routing);
          ASSERT_EQ(s.logp.size(), w.logp.size());
          for (size_t t = 0; t < s.logp.size(); ++t)
            ASSERT_NEAR(s.logp[t], w.logp[t], 1e-5) << "token " << t;
        }
        EXPECT_EQ(b.stats.generated_tokens, ref.stats.generated_tokens);
        EXPECT_LT(b.stats.stop_checks, ref.stats.stop_checks);
        EXPECT_GT(b.stats.discarded_tokens, 0) << "some samples finished between looks";
      }
      EXPECT_EQ(ref.stats.discarded_tokens, 0);
    }
  }
}

}  // namespace
}  // namespace zerorl::rollout
