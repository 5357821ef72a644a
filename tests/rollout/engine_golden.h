// Fixed rollout scenarios whose completions were recorded by the engine as
// it was before the paged KV cache (commit 1208403: one contiguous fp32
// cache window per slot, a group's prompt cache copied into each of its
// slots).  tests/rollout/engine_paged_test.cpp runs the same scenarios
// through today's engine -- any block size, pool size, prefix sharing on or
// off, with preemption -- and compares with tests/rollout/data/engine_golden.txt.
//
// The file was written by tests/rollout/engine_golden_main.cpp built at
// 1208403 against that commit's libraries; it uses only the Engine API that
// both commits share.  Each line is one sample:
//   <scenario> <prompt_id> <sample_index> <finish> <n> <n tokens> <n log-probs (%.17g)>
// Header-only; test code only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "rollout/engine.h"
#include "tests/tiny_model.h"

namespace zerorl::rollout::golden {

struct Scenario {
  std::string name;
  bool mla = true;
  std::vector<int64_t> prompt_lengths;  // ragged, across 16-token block boundaries
  int64_t group_size = 1;
  int64_t num_slots = 4;
  SamplingParams params;
};

inline std::vector<Scenario> scenarios() {
  std::vector<Scenario> out;
  for (bool mla : {true, false}) {
    const std::string arch = mla ? "mla" : "gqa";
    auto sp = [](double T, int64_t max_new, uint64_t seed) {
      SamplingParams p;
      p.temperature = T;
      p.max_new_tokens = max_new;
      p.seed = seed;
      p.step = 3;
      return p;
    };
    Scenario a{arch + "_g1", mla, {1, 15, 16, 17, 33}, 1, 4, sp(1.0, 20, 11)};
    a.params.top_p = 0.9;
    a.params.stop_token_ids = {5};
    Scenario b{arch + "_g3", mla, {7, 16, 31}, 3, 5, sp(0.8, 18, 12)};
    b.params.top_k = 20;
    b.params.stop_token_ids = {9};
    Scenario c{arch + "_g8", mla, {32, 20}, 8, 16, sp(1.0, 24, 13)};
    c.params.stop_token_ids = {3, 9};
    // Fewer slots than the group: templates are held back and re-prefilled.
    Scenario d{arch + "_g16", mla, {17, 5}, 16, 6, sp(1.2, 12, 14)};
    Scenario e{arch + "_greedy", mla, {40, 2, 18}, 2, 3, sp(0.0, 10, 15)};
    for (Scenario* s : {&a, &b, &c, &d, &e}) out.push_back(*s);
  }
  return out;
}

inline std::vector<PromptInput> prompts_of(const Scenario& s, int64_t vocab) {
  std::vector<PromptInput> out;
  for (size_t i = 0; i < s.prompt_lengths.size(); ++i) {
    PromptInput p;
    p.id = 200 + static_cast<int64_t>(i);
    for (int64_t t = 0; t < s.prompt_lengths[i]; ++t)
      p.tokens.push_back((11 * static_cast<int64_t>(i) + 7 * t + 2) % vocab);
    out.push_back(p);
  }
  return out;
}

inline model::ModelConfig config_of(const Scenario& s) {
  return s.mla ? test::tiny_mla_config() : test::tiny_gqa_config();
}

// One line per sample, in the format above.
inline std::vector<std::string> lines_of(const Scenario& s, const RolloutBatch& b) {
  std::vector<std::string> out;
  char buf[64];
  for (const RolloutSample& r : b.samples) {
    std::string line = s.name + " " + std::to_string(r.prompt_id) + " " +
                       std::to_string(r.sample_index) + " " + finish_reason_name(r.finish) + " " +
                       std::to_string(r.completion_tokens.size());
    for (int64_t t : r.completion_tokens) line += " " + std::to_string(t);
    for (double lp : r.logp) {
      std::snprintf(buf, sizeof buf, " %.17g", lp);
      line += buf;
    }
    out.push_back(line);
  }
  return out;
}

}  // namespace zerorl::rollout::golden
