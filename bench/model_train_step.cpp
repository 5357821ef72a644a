// Policy forward+backward throughput and peak memory of a model config
// (default: the `tiny` R1-Zero demo model, model/tiny.yaml), as the learner
// runs it: CausalLM::logprobs (chunked chosen-token log-probs) + backward.
//
//   (from the repository root) build/bench_model_train_step [--recipe model/tiny.yaml] [--B 8] [--T
//   128]
//       [--steps 5] [--threads 0 (= LibTorch default)]
//
// Prints tokens/s (B*T per step, median of --steps after one warm-up step),
// the parameter report, and peak resident memory (ru_maxrss, whole process).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/model.h"
#include "bench/flags.h"

static double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

int main(int argc, char** argv) {
  using namespace zerorl;
  std::map<std::string, std::string> a{
      {"recipe", "model/tiny.yaml"}, {"B", "8"}, {"T", "128"}, {"steps", "5"}, {"threads", "0"}};
  if (!zerorl::bench::read_flags(argc, argv, a)) return 2;
  int threads = std::stoi(a["threads"]);
  if (threads > 0) at::set_num_threads(threads);
  Recipe r = Recipe::from_file(a["recipe"]);
  model::ModelConfig cfg = model::ModelConfig::from(r.section("model"));
  model::CausalLM m(cfg);
  int64_t B = std::stoll(a["B"]), T = std::stoll(a["T"]);
  int steps = std::stoi(a["steps"]);
  long rss0 = peak_rss_kb();
  at::manual_seed(0);
  at::Tensor tokens = at::randint(0, cfg.vocab_size, {B, T}, at::kLong);
  at::Tensor targets = at::randint(0, cfg.vocab_size, {B, T}, at::kLong);
  std::vector<double> secs, cpu;
  for (int s = 0; s <= steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    double c0 = cpu_seconds();
    m.zero_grad();
    model::ForwardOptions fo;
    fo.record_expert_load = true;
    model::LogprobOutput o = m.logprobs(tokens, targets, {}, fo);
    (o.logp_BT.mean() + o.aux_loss).backward();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) secs.push_back(dt), cpu.push_back(cpu_seconds() - c0);  // step 0 warms up
  }
  std::sort(secs.begin(), secs.end());
  std::sort(cpu.begin(), cpu.end());
  double med = secs[secs.size() / 2], cmed = cpu[cpu.size() / 2];
  std::printf("model: %s\n%s\n", cfg.summary().c_str(), m.param_report().to_string().c_str());
  std::printf(
      "threads %d, B=%lld T=%lld: forward+backward %.1f ms/step wall (median of %d), %.0f "
      "tokens/s; "
      "%.2f CPU-s/step, %.0f tokens per CPU-second\n",
      at::get_num_threads(), (long long)B, (long long)T, med * 1e3, steps, B * T / med, cmed,
      B * T / cmed);
  std::printf("peak RSS %.1f MiB (%.1f MiB before the first step)\n", peak_rss_kb() / 1024.0,
              rss0 / 1024.0);
  return 0;
}
