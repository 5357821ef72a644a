// zerorl generate: sample completions from a checkpoint with the rollout engine.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "trainer/checkpoint.h"
#include "core/error.h"
#include "core/h5.h"
#include "data/char_tokenizer.h"
#include "data/tokenizer.h"
#include "data/utf8.h"
#include "model/hf.h"
#include "model/weights.h"
#include "rollout/engine.h"
#include "rollout/prompt_input.h"
#include "trainer/policy_file.h"

namespace zerorl::cli {
namespace {

const char* kUsage =
    "usage: zerorl generate --model PATH [--prompt TEXT ...] [options]\n"
    "\n"
    "Sample completions with the rollout engine (KV cache, continuous batching).\n"
    "PATH is a policy file (.h5), a training checkpoint step folder\n"
    "(runs/NAME/checkpoints/step_N) or one of its rank files, or a Hugging Face\n"
    "folder (config.json, *.safetensors, tokenizer.json).  With no --prompt: an\n"
    "interactive prompt loop when stdin is a terminal, else one prompt per line of\n"
    "stdin (a line that is\n"
    "not valid UTF-8 is skipped, naming its line number; the exit status is then 1).\n"
    "A training checkpoint is verified first and refused when corrupt.\n"
    "\n"
    "  --prompt TEXT        prompt text (repeatable)\n"
    "  --greedy             argmax decoding (same as --temperature 0)\n"
    "  --temperature T      sampling temperature (default 1.0)\n"
    "  --top-p P            nucleus sampling mass in (0, 1] (default 1.0)\n"
    "  --top-k K            keep the K most probable tokens, 0 = off (default 0)\n"
    "                       (a Hugging Face folder's generation_config.json sets\n"
    "                       the defaults of these three, as transformers'\n"
    "                       generate() reads it: do_sample false = greedy; a knob\n"
    "                       it leaves out keeps the default above, not\n"
    "                       transformers' top_k 50; its eos_token_id list ends a\n"
    "                       completion)\n"
    "  --max-new-tokens N   completion length limit (default 256)\n"
    "  --stop TEXT          stop string, kept in the output (repeatable)\n"
    "  --num-samples G      completions per prompt (default 1)\n"
    "  --seed S             sampling seed (default 0)\n"
    "  --slots N            sequences decoded together (default 16)\n"
    "  --tokenizer PATH     tokenizer.json, a zerorl char tokenizer JSON, or 'char'\n"
    "                       for the built-in task vocabulary (default:\n"
    "                       the model folder's tokenizer.json, or the policy\n"
    "                       file's 'tokenizer_json')\n"
    "  --bos                prepend the tokenizer's BOS token to each prompt\n"
    "  --json               one JSON object per completion on stdout\n"
    "  --stats              print throughput figures to stderr\n";

struct Session {
  std::shared_ptr<model::CausalLM> policy;
  std::shared_ptr<data::Tokenizer> tok;
  std::unique_ptr<rollout::Engine> engine;
  rollout::SamplingParams params;
  int64_t group = 1;
  bool bos = false, json = false, stats = false;
  uint64_t next_id = 0;

  rollout::PromptInput encode(const std::string& text) {
    ZR_CHECK(!bos || tok->bos_id() >= 0, "--bos: the tokenizer has no BOS token");
    rollout::PromptInput p =
        rollout::make_prompt_input(static_cast<int64_t>(next_id++), text, *tok, bos);
    ZR_CHECK(!p.tokens.empty(), "prompt ", p.id, " is empty; give some text (or --bos)");
    return p;
  }

  void run(const std::vector<std::string>& texts) {
    std::vector<rollout::PromptInput> prompts;
    for (const auto& t : texts) prompts.push_back(encode(t));
    const rollout::RolloutBatch b = engine->generate(*policy, prompts, group, params);
    for (size_t i = 0; i < b.samples.size(); ++i) {
      const rollout::RolloutSample& s = b.samples[i];
      const std::string& prompt = texts[i / static_cast<size_t>(group)];
      if (json) {
        nlohmann::json j;
        j["prompt"] = rollout::utf8_sanitize(prompt);
        j["prompt_id"] = s.prompt_id;
        j["sample"] = s.sample_index;
        j["completion"] = s.text;
        j["finish"] = rollout::finish_reason_name(s.finish);
        j["prompt_tokens"] = s.prompt_tokens;
        j["tokens"] = s.completion_tokens;
        j["logprobs"] = s.logp;
        std::cout << j.dump() << "\n";
      } else {
        if (group > 1 || texts.size() > 1)
          std::cout << "--- prompt " << s.prompt_id << ", sample " << s.sample_index << " ---\n";
        std::cout << prompt << s.text << "\n[" << rollout::finish_reason_name(s.finish) << ", "
                  << s.completion_length() << " tokens]\n";
      }
    }
    std::cout.flush();
    if (stats) std::cerr << "generate: " << b.stats.to_string() << "\n";
  }
};

// The sampling flags as given; NaN / -1: not given, so the model folder's
// generation_config.json (if any) or the built-in default decides.
struct SamplingFlags {
  bool greedy = false;
  double temperature = std::nan(""), top_p = std::nan("");
  long long top_k = -1;
};

// Sets sp's temperature, top_p and top_k: a flag, else the folder's
// generation_config.json, else the built-in default; says on stderr which
// knobs the file set, so a sample is never a surprise.
void resolve_sampling(const SamplingFlags& f, const std::string& model_path,
                      rollout::SamplingParams& sp) {
  model::GenerationDefaults gd;
  if (model::is_hf_dir(model_path)) gd = model::read_generation_defaults(model_path);
  sp.temperature = !std::isnan(f.temperature)       ? f.temperature
                   : gd.do_sample && !*gd.do_sample ? 0.0
                                                    : gd.temperature.value_or(1.0);
  if (f.greedy) sp.temperature = 0.0;
  sp.top_p = !std::isnan(f.top_p) ? f.top_p : gd.top_p.value_or(1.0);
  sp.top_k = f.top_k >= 0 ? f.top_k : gd.top_k.value_or(0);
  const bool from_file =
      (!f.greedy && std::isnan(f.temperature) && (gd.do_sample || gd.temperature)) ||
      (std::isnan(f.top_p) && gd.top_p) || (f.top_k < 0 && gd.top_k);
  if (from_file)
    std::cerr << "generate: sampling defaults from " << model_path
              << "/generation_config.json: temperature " << sp.temperature
              << (sp.temperature == 0.0 ? " (greedy)" : "") << ", top_p " << sp.top_p << ", top_k "
              << sp.top_k << " (--temperature/--top-p/--top-k/--greedy override)\n";
  try {
    sp.validate("generate");
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// Loads the policy (fp32 on the CPU), its tokenizer (--tokenizer or the
// model's own) and the engine into s.
void load_session(Session& s, const std::string& model_path,
                  const std::optional<std::string>& tok_path, long long slots) {
  Policy loaded = load_model_for_command(model_path, "--model", /*with_tokenizer=*/!tok_path);
  s.policy = loaded.model;
  s.policy->eval();
  // Half precision on the CPU is slow and gains nothing for generation.
  if (s.policy->output_weight().device().is_cpu() &&
      s.policy->output_weight().scalar_type() != at::kFloat &&
      s.policy->output_weight().scalar_type() != at::kDouble)
    s.policy->to(at::kFloat);
  if (tok_path && *tok_path == "char")
    s.tok = std::make_shared<data::CharTokenizer>(data::CharTokenizer::for_tasks());
  else if (tok_path)
    s.tok = data::load_tokenizer(*tok_path);
  else
    s.tok = loaded.tokenizer;
  ZR_CHECK(s.tok, "--model ", model_path,
           ": no tokenizer stored with the model; pass --tokenizer PATH");
  auto text = std::make_shared<rollout::TokenText>(rollout::TokenText::from_tokenizer(*s.tok));
  rollout::EngineOptions eo;
  eo.num_slots = slots;
  if (s.policy->config().eos_token_id < 0 && s.tok->eos_id() >= 0)
    eo.eos_token_id = s.tok->eos_id();
  s.engine = std::make_unique<rollout::Engine>(eo, text);
}

// No --prompt: a terminal is answered line by line; piped stdin is read
// whole, one prompt a line, and sampled together.  Returns the exit status:
// 1 when a line was skipped as invalid UTF-8.
int run_stdin(Session& s) {
  const bool tty = isatty(STDIN_FILENO) != 0;
  if (tty)
    std::cerr << s.policy->config().summary()
              << "\nenter a prompt (empty line or Ctrl-D to quit)\n";
  std::vector<std::string> prompts;
  std::string line;
  size_t lineno = 0, skipped = 0;
  while (true) {
    if (tty) std::cerr << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    ++lineno;
    const size_t bad = data::utf8_invalid_offset(line);
    if (bad != std::string::npos) {
      std::cerr << "zerorl generate: stdin line " << lineno << ": not valid UTF-8 (byte " << bad
                << "); skipped\n";
      ++skipped;
      continue;
    }
    if (line.empty()) {
      if (tty) break;
      continue;
    }
    if (tty) {
      s.run({line});  // one at a time, answered immediately
    } else {
      prompts.push_back(line);
    }
  }
  if (!prompts.empty()) s.run(prompts);
  if (skipped) {
    std::cerr << "zerorl generate: " << skipped << " of " << lineno
              << " lines skipped (not valid UTF-8)\n";
    return 1;
  }
  return 0;
}

int run_generate(Args& args) {
  const std::string model_path = args.value("--model");
  const std::vector<std::string> prompts = args.values("--prompt");
  SamplingFlags flags;
  flags.greedy = args.flag("--greedy");
  rollout::SamplingParams sp;
  flags.temperature = args.double_value("--temperature", std::nan(""));
  flags.top_p = args.double_value("--top-p", std::nan(""));
  flags.top_k = args.int_value("--top-k", -1);
  sp.max_new_tokens = args.int_value("--max-new-tokens", 256);
  sp.stop_strings = args.values("--stop");
  const long long seed = args.int_value("--seed", 0);
  if (seed < 0) throw UsageError("--seed must be >= 0");
  sp.seed = static_cast<uint64_t>(seed);
  const long long group = args.int_value("--num-samples", 1);
  const long long slots = args.int_value("--slots", 16);
  const auto tok_path = args.optional_value("--tokenizer");
  Session s;
  s.bos = args.flag("--bos");
  s.json = args.flag("--json");
  s.stats = args.flag("--stats");
  args.finish();
  if (group < 1) throw UsageError("--num-samples must be >= 1");
  if (slots < 1) throw UsageError("--slots must be >= 1");
  resolve_sampling(flags, model_path, sp);
  s.params = sp;
  s.group = group;
  load_session(s, model_path, tok_path, slots);

  if (prompts.empty()) return run_stdin(s);
  s.run(prompts);
  return 0;
}

}  // namespace

ZR_REGISTER_COMMAND(generate, "sample completions from a checkpoint (KV cache, batched)", kUsage,
                    run_generate);

}  // namespace zerorl::cli
