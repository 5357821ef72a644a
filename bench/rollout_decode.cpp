// Rollout throughput of the tiny model: B prompts, G completions each, all
// B*G sequences in slots at once, exactly N new tokens (no end-of-text),
// temperature 1.
//
//   build/bench_rollout_decode [--batch 1,16,64] [--group 1] [--prompt-len 16]
//                              [--new 128] [--repeat 3] [--block-size 16]
//                              [--no-share] [--decode-attention paged|unshared|gather]
//                              [--dtype fp32|bf16] [--static-decode]
//                              [--export-hf DIR]
//
// Prints, per batch size, the best of --repeat runs: end-to-end generated
// tokens per wall second and per process-CPU second (prefill + decode, the
// figures compared with HF generate by bench/rollout_hf_generate.py),
// decode-only and prefill tokens/s, the most KV-cache memory the blocks in
// use held (peak cache MiB) and the process's peak resident memory so far
// (run one batch size per process to read it for that size alone).
// --block-size and --no-share set the paged cache (EngineOptions);
// --decode-attention picks the CPU decode attention (model/paged_attention.h):
// in place with a group's prompt blocks attended once (paged, the default),
// in place per sequence (unshared), or the blocks gathered into a contiguous
// copy first (gather: the engine of 679d3a9).  --dtype bf16 casts the
// parameters to bf16 as policy.dtype does (the rollout then runs in bf16 with
// a bf16 cache; the balancing bias stays fp32).  --static-decode runs
// every decode step at a fixed bucket size (EngineOptions::static_decode,
// model/static_decode.h: rows padded, the blocks gathered; the step CUDA
// graphs capture, here eagerly on the CPU).  Built
// with -DZR_OLD_ENGINE against the libraries of commit 1208403 (one
// contiguous cache window per slot) the same source measures the engine of
// before (docs/PERFORMANCE.md says how), and those two flags are refused.
// --export-hf writes the same weights as a Hugging Face folder for the
// Python side.  Threads: ATen's intra-op pool (OMP_NUM_THREADS).
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/nn/module.h>

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/hf.h"
#include "model/model.h"
#include "rollout/engine.h"
#ifndef ZR_OLD_ENGINE
#include "model/paged_attention.h"
#endif

using namespace zerorl;

// Process CPU seconds: on a shared machine this is far steadier than wall
// time, and with one thread per side it is what the wall time would be on an
// idle machine.
static double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

static double max_rss_mib() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

static std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

int main(int argc, char** argv) {
  std::vector<int64_t> batches = {1, 16, 64};
  int64_t prompt_len = 16, num_new = 128, repeat = 3, group = 1, block_size = 16;
  bool share = true, static_decode = false;
  std::string export_dir, decode_attention = "paged", dtype = "fp32";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--batch")
      batches = parse_list(next());
    else if (a == "--prompt-len")
      prompt_len = std::stoll(next());
    else if (a == "--new")
      num_new = std::stoll(next());
    else if (a == "--group")
      group = std::stoll(next());
    else if (a == "--block-size")
      block_size = std::stoll(next());
    else if (a == "--no-share")
      share = false;
    else if (a == "--repeat")
      repeat = std::stoll(next());
    else if (a == "--decode-attention")
      decode_attention = next();
    else if (a == "--dtype")
      dtype = next();
    else if (a == "--static-decode")
      static_decode = true;
    else if (a == "--export-hf")
      export_dir = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }

  // The `tiny` model: ModelConfig::from's defaults (model/tiny.yaml).
  Recipe recipe = Recipe::from_string("model: {}\n", "tiny");
  const model::ModelConfig cfg = model::ModelConfig::from(recipe.section("model"));
  auto policy = std::make_shared<model::CausalLM>(cfg);
  policy->eval();
  if (!export_dir.empty()) {
    model::save_hf(*policy, export_dir);
    std::printf("exported HF checkpoint to %s\n", export_dir.c_str());
  }
  if (dtype == "bf16") {
    at::NoGradGuard no_grad;
    for (auto& p : policy->parameters(true)) p.set_data(p.to(at::kBFloat16));
  } else if (dtype != "fp32") {
    std::fprintf(stderr, "--dtype must be fp32 or bf16\n");
    return 2;
  }
#ifdef ZR_OLD_ENGINE
  if (block_size != 16 || !share) {
    std::fprintf(stderr, "--block-size and --no-share need the paged engine\n");
    return 2;
  }
  const char* engine_name = "contiguous (1208403)";
#else
  const char* engine_name = share ? "paged, prefix shared" : "paged, prefix copied";
  if (decode_attention == "paged")
    model::set_decode_attention(model::DecodeAttention::kPaged);
  else if (decode_attention == "unshared")
    model::set_decode_attention(model::DecodeAttention::kPagedNoSharing);
  else if (decode_attention == "gather")
    model::set_decode_attention(model::DecodeAttention::kGather);
  else {
    std::fprintf(stderr, "--decode-attention must be paged, unshared or gather\n");
    return 2;
  }
  std::printf("decode attention: %s%s\n", decode_attention.c_str(),
              static_decode ? "; fixed-shape decode steps (gathered blocks)" : "");
#endif
  std::printf(
      "model: %s (%s)\nengine: %s, block size %lld\nthreads: %d, group %lld, prompt_len %lld, new "
      "tokens %lld, best of %lld\n",
      cfg.summary().c_str(), dtype.c_str(), engine_name, static_cast<long long>(block_size),
      at::get_num_threads(), static_cast<long long>(group), static_cast<long long>(prompt_len),
      static_cast<long long>(num_new), static_cast<long long>(repeat));
  std::printf("%6s %14s %14s %14s %14s %10s %10s %10s\n", "batch", "gen tok/s", "gen tok/cpu-s",
              "decode tok/s", "prefill tok/s", "occupancy", "cache MiB", "maxrss MiB");

  rollout::SamplingParams sp;
  sp.temperature = 1.0;
  sp.max_new_tokens = num_new;
  for (int64_t B : batches) {
    std::vector<rollout::PromptInput> prompts(static_cast<size_t>(B));
    Rng rng(1, 0, 0, 0, RngPurpose::kOther);
    for (int64_t p = 0; p < B; ++p) {
      prompts[static_cast<size_t>(p)].id = p;
      for (int64_t t = 0; t < prompt_len; ++t)
        prompts[static_cast<size_t>(p)].tokens.push_back(
            static_cast<int64_t>(rng.below(cfg.vocab_size)));
    }
    rollout::EngineOptions eo = rollout::EngineOptions().slots(B * group).eos(-1);
#ifndef ZR_OLD_ENGINE
    eo.blocks(block_size).sharing(share).static_step(static_decode).keep_cache(true);
#endif
    rollout::Engine engine(eo);
    {  // warm-up
      rollout::SamplingParams w = sp;
      w.max_new_tokens = 4;
      engine.generate(*policy, prompts, group, w);
    }
    rollout::RolloutStats best;
    double best_rate = 0, best_cpu_rate = 0;
    for (int64_t r = 0; r < repeat; ++r) {
      sp.seed = static_cast<uint64_t>(r);
      const double c0 = cpu_seconds();
      const rollout::RolloutBatch b = engine.generate(*policy, prompts, group, sp);
      best_cpu_rate = std::max(best_cpu_rate, b.stats.generated_tokens / (cpu_seconds() - c0));
      const double rate = b.stats.generated_tokens / b.stats.total_seconds;
      if (rate > best_rate) {
        best_rate = rate;
        best = b.stats;
      }
    }
#ifdef ZR_OLD_ENGINE
    // The old engine reserved num_slots x (prompt + new) positions, all layers.
    const auto& a = cfg.attn;
    const double cache_mib =
        static_cast<double>(B * group * (prompt_len + num_new - 1) * cfg.num_layers *
                            (a.kv_lora_rank + a.qk_rope_head_dim) * 4) /
        (1 << 20);
#else
    const double cache_mib = static_cast<double>(best.peak_cache_bytes()) / (1 << 20);
#endif
    std::printf("%6lld %14.1f %14.1f %14.1f %14.1f %10.2f %10.1f %10.1f\n",
                static_cast<long long>(B), best_rate, best_cpu_rate, best.decode_tokens_per_s(),
                best.prefill_tokens_per_s(), best.occupancy(), cache_mib, max_rss_mib());
    std::fflush(stdout);
  }
  return 0;
}
