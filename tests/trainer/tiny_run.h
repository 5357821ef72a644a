// Helpers shared by the GRPO-loop tests (grpo_trainer_test.cpp,
// dynamic_sampling_test.cpp, loop_mpi_main.cpp): a tiny random MoE policy
// with the task character tokenizer, a small addition recipe around it, and
// readers for a run's jsonl outputs.  Header-only; test code only.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/char_tokenizer.h"
#include "model/model.h"
#include "tests/tiny_model.h"
#include "trainer/checkpoint.h"
#include "trainer/policy_file.h"

namespace zerorl::test {

// Writes the tiny policy to `path` (deterministic: same file every time):
// tests/tiny_model.h's MLA model at width 32 with the task character
// vocabulary, 2 heads, experts as wide as the model and the default init.
// balance_bias_gamma: the aux-loss-free bias step per update.
inline void write_tiny_policy(const std::string& path, double balance_bias_gamma = 0.01) {
  auto tok = data::CharTokenizer::for_tasks();
  model::ModelConfig c = tiny_mla_config(tok.vocab_size(), /*hidden=*/32);
  c.attn.num_heads = 2;
  c.attn.num_kv_heads = 2;
  c.moe.expert_intermediate = 32;
  c.moe.shared_intermediate = 32;
  c.moe.dense_intermediate = 64;
  c.init_std = 0.02;
  c.moe.balance_bias_gamma = balance_bias_gamma;
  c.eos_token_id = tok.eos_id();
  c.validate();
  model::CausalLM m(c);
  save_policy(path, m, tok);
}

// A 6-step GRPO recipe on 1-2 digit addition with the tiny policy; `extra`
// is appended (new top-level sections).
inline std::string tiny_recipe(const std::string& name, const std::string& runs_dir,
                               const std::string& policy, const std::string& extra = "") {
  std::ostringstream r;
  r << "run: {name: " << name << ", dir: " << runs_dir << "}\n"
    << "policy: {init: " << policy << "}\n"
    << "template: {name: tiny}\n"
    << "data:\n  source: task\n  task: {name: addition, min_digits: 1, max_digits: 2, seed: 0}\n"
    << "  train_size: 200\n  test_size: 8\n  seed: 1\n"
    << "rollout:\n  num_slots: 16\n  sampling: {temperature: 1.0, max_new_tokens: 12, "
       "stop_strings: [\"</answer>\"]}\n"
    << "rewards:\n  threads: 1\n  accuracy: {type: math}\n  format: {type: format, weight: 0.5}\n"
    << "loss: {beta: 0.04, eps_high: 0.28}\n"
    << "optimizer: {lr: 1.0e-3, max_grad_norm: 1.0}\n"
    << "train: {steps: 6, prompts_per_step: 4, group_size: 4, sample_every: 2}\n"
    << "eval: {every: 3, num_problems: 4, k: 2}\n"
    << "checkpoint: {every: 1, keep_last: 10}\n"
    << extra;
  return r.str();
}

// Overrides that make the tiny run a DAPO-style one whose groups differ in
// reward through length alone: a random policy almost never earns the
// accuracy or format reward, but some completions end (EOS) before the
// 12-token cap, and the soft overlong penalty (buffer 8) scores them above
// the truncated ones -- so some groups have a reward spread and many do not.
inline std::vector<std::string> dapo_overrides(int max_rounds) {
  return {"advantage.dynamic_sampling=true",
          "advantage.max_sampling_rounds=" + std::to_string(max_rounds),
          "loss.overlong=soft",
          "loss.max_completion_length=12",
          "loss.overlong_buffer=8",
          "eval.every=0"};
}

// Each line of a jsonl file, parsed.
inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The lines of a jsonl file without their "time" member (wall-clock).
inline std::vector<std::string> lines_without_time(const std::string& path) {
  std::vector<std::string> out;
  for (auto j : read_jsonl(path)) {
    j.erase("time");
    out.push_back(j.dump());
  }
  return out;
}

inline std::string rank_checkpoint(const std::string& run_dir, long step, int rank = 0) {
  return checkpoint_rank_file(checkpoint_step_dir(run_dir + "/checkpoints", step), rank);
}

inline std::string final_hash(const std::string& run_dir, long step, int rank = 0) {
  return checkpoint_weights_hash(rank_checkpoint(run_dir, step, rank));
}

}  // namespace zerorl::test
