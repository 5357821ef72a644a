// Checkpoint I/O throughput: save (HDF5 write + XXH3 + fsync + rename),
// verify (read + XXH3), load (read + XXH3, tensors kept), weights hash.
//
//   build/bench_checkpoint_io [--mb 256] [--dir PATH] [--reps 3]
//
// The checkpoint is shaped like a training one: bf16 weights (1/5 of the
// bytes) and two fp32 AdamW moments per weight (4/5), in 64 tensors.  Prints
// the median of --reps runs of each phase in MB/s (MB = 1e6 bytes).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "trainer/checkpoint.h"
#include "trainer/run_dir.h"

using namespace zerorl;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  double mb = 256;
  int reps = 3;
  std::string dir = "/tmp/zr_bench_checkpoint_io";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mb"))
      mb = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--reps"))
      reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--mb N] [--dir PATH] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  const int kTensors = 64;
  // bf16 weight of n elements = 2n bytes; moments 8n: 10n bytes per weight.
  int64_t n = static_cast<int64_t>(mb * 1e6 / 10 / kTensors);
  Checkpoint c;
  c.recipe_yaml = "bench: true\n";
  at::manual_seed(0);
  for (int t = 0; t < kTensors; ++t) {
    std::string name = "layers." + std::to_string(t) + ".weight";
    c.weights.emplace_back(name, at::randn({n}).to(at::kBFloat16));
    c.optimizer.emplace_back("exp_avg/" + name, at::randn({n}));
    c.optimizer.emplace_back("exp_avg_sq/" + name, at::rand({n}));
  }
  double bytes = static_cast<double>(n) * 10 * kTensors;
  remove_tree(dir);
  std::vector<double> save_s, verify_s, load_s, hash_s;
  for (int r = 0; r < reps; ++r) {
    c.step = r + 1;
    double t0 = now();
    std::string path = save_checkpoint(c, dir);
    double t1 = now();
    std::string why = verify_checkpoint(path);
    double t2 = now();
    Checkpoint back = load_checkpoint(path);
    double t3 = now();
    std::string h = weights_hash(back);
    double t4 = now();
    if (!why.empty() || h != weights_hash(c)) {
      std::fprintf(stderr, "round trip failed: %s\n", why.c_str());
      return 1;
    }
    save_s.push_back(t1 - t0);
    verify_s.push_back(t2 - t1);
    load_s.push_back(t3 - t2);
    hash_s.push_back(t4 - t3);
    prune_checkpoints(dir, 0, c.step, 1);
  }
  double w_bytes = static_cast<double>(n) * 2 * kTensors;
  std::printf("checkpoint %.0f MB (%d tensors), median of %d, page cache warm for reads\n",
              bytes / 1e6, kTensors * 3, reps);
  std::printf("save   %7.3f s  %7.0f MB/s\n", median(save_s), bytes / 1e6 / median(save_s));
  std::printf("verify %7.3f s  %7.0f MB/s\n", median(verify_s), bytes / 1e6 / median(verify_s));
  std::printf("load   %7.3f s  %7.0f MB/s\n", median(load_s), bytes / 1e6 / median(load_s));
  std::printf("weights_hash %7.3f s  %7.0f MB/s (weights only)\n", median(hash_s),
              w_bytes / 1e6 / median(hash_s));
  remove_tree(dir);
  return 0;
}
