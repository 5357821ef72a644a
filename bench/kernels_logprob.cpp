// Chosen-token log-prob: chunked kernel (kernels/logprob) vs the naive
// composition it replaces (full [N, V] logits, log_softmax, gather), forward +
// backward, time and peak memory.
//
//   build/bench_kernels_logprob [--device cpu|cuda] [--dtype float32|bfloat16]
//       [--N 16384] [--V 32768] [--D 1024] [--chunk 1024] [--entropy 0|1]
//       [--mode both|chunked|naive] [--reps 1]
//
// Peak memory: on CPU the peak of live bytes through a tracking wrapper of
// LibTorch's CPU allocator, above what was live before the call (inputs
// excluded); on CUDA the caching allocator's peak allocated bytes, likewise.
// FLOPs counted: forward 2NVD, backward 6NVD (logits recomputed + two GEMMs)
// for the chunked path, 6NVD total for the naive one (no recompute).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include <sys/resource.h>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#ifdef ZERORL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "kernels/logprob/logprob.h"
#include "tests/kernels/tracking_allocator.h"
#include "bench/flags.h"

namespace {

using zerorl::test::TrackingAllocator;

std::map<std::string, std::string> parse(int argc, char** argv) {
  std::map<std::string, std::string> a{{"device", "cpu"}, {"dtype", "float32"}, {"N", "16384"},
                                       {"V", "32768"},    {"D", "1024"},        {"chunk", "1024"},
                                       {"entropy", "0"},  {"mode", "both"},     {"reps", "1"}};
  if (!zerorl::bench::read_flags(argc, argv, a)) std::exit(2);
  return a;
}

struct Measure {
  double seconds;  // wall clock, best of reps
  double
      cpu_seconds;  // process CPU time (user + system) of that rep: meaningful on a shared machine
  int64_t peak_bytes;
};

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec * 1e-6;
}

}  // namespace

// A benchmark's main reads top to bottom as the table it prints (~100 lines).
int main(int argc, char** argv) {
  auto a = parse(argc, argv);
  const int64_t N = std::stoll(a["N"]), V = std::stoll(a["V"]), D = std::stoll(a["D"]),
                chunk = std::stoll(a["chunk"]);
  const bool entropy = a["entropy"] == "1", cuda = a["device"] == "cuda";
  const int reps = std::stoi(a["reps"]);
  const at::ScalarType dt = a["dtype"] == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const at::Device dev = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);

  TrackingAllocator* cpu_mem = nullptr;
  if (!cuda) {
    cpu_mem = new TrackingAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(cpu_mem, 100);
  }
  auto sync = [&] { zerorl::bench::sync_device(cuda); };
  auto reset_peak = [&] {
    sync();
    if (cpu_mem) cpu_mem->reset_peak();
#ifdef ZERORL_WITH_CUDA
    if (cuda) c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#endif
  };
  int64_t live_before = 0;
  auto peak = [&]() -> int64_t {
    if (cpu_mem) return cpu_mem->peak_above_reset();
#ifdef ZERORL_WITH_CUDA
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    return s.allocated_bytes[0].peak - live_before;
#endif
    return 0;
  };
  auto live_now = [&]() -> int64_t {
#ifdef ZERORL_WITH_CUDA
    if (cuda) return c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].current;
#endif
    return 0;
  };

  at::manual_seed(0);
  const auto opts = at::TensorOptions(dev).dtype(dt);
  at::Tensor h = (at::randn({N, D}, opts)).requires_grad_(true);
  at::Tensor w = (at::randn({V, D}, opts) * (1.0 / std::sqrt(double(D)))).requires_grad_(true);
  const at::Tensor tgt = at::randint(V, {N}, at::TensorOptions(dev).dtype(at::kLong));

  auto run = [&](bool chunked) -> Measure {
    Measure best{1e30, 0, 0};
    for (int r = 0; r < reps + (cuda ? 1 : 0); ++r) {  // one warm-up on CUDA
      h.mutable_grad() = at::Tensor();
      w.mutable_grad() = at::Tensor();
      reset_peak();
      live_before = live_now();
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = process_cpu_seconds();
      {
        at::Tensor loss;
        if (chunked) {
          zerorl::kernels::LogprobOptions o;
          o.chunk_tokens = chunk;
          o.with_entropy = entropy;
          const auto res = zerorl::kernels::chosen_logprob(h, w, tgt, o);
          loss = res.logp_N.sum();
          if (entropy) loss = loss + res.entropy_N.sum();
        } else {
          const at::Tensor logp = at::log_softmax(at::mm(h, w.t()).to(at::kFloat), 1);
          loss = logp.gather(1, tgt.unsqueeze(1)).sum();
          if (entropy) loss = loss - (logp.exp() * logp).sum();
        }
        loss.backward();
      }
      sync();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double c = process_cpu_seconds() - c0;
      const int64_t p = peak();
      if (cuda && r == 0) continue;
      if (s < best.seconds) best.cpu_seconds = c;
      best.seconds = std::min(best.seconds, s);
      best.peak_bytes = std::max(best.peak_bytes, p);
    }
    return best;
  };

  std::printf("device=%s dtype=%s N=%lld V=%lld D=%lld chunk=%lld entropy=%d\n",
              a["device"].c_str(), a["dtype"].c_str(), (long long)N, (long long)V, (long long)D,
              (long long)chunk, entropy ? 1 : 0);
  std::printf("%-8s %10s %12s %12s %10s\n", "mode", "seconds", "cpu_seconds", "peak_MiB",
              "TFLOP/s");
  const double nvd = double(N) * V * D;
  for (const char* mode : {"chunked", "naive"}) {
    if (a["mode"] != "both" && a["mode"] != mode) continue;
    const bool chunked = std::string(mode) == "chunked";
    const Measure m = run(chunked);
    const double flops = (chunked ? 8.0 : 6.0) * nvd;
    std::printf("%-8s %10.3f %12.3f %12.1f %10.2f\n", mode, m.seconds, m.cpu_seconds,
                m.peak_bytes / 1048576.0, flops / m.seconds / 1e12);
    std::fflush(stdout);
  }
  return 0;
}
