// RMSNorm: fused kernel (kernels/rmsnorm) vs the ATen composition (HF's
// formula op by op), forward + backward.
//
//   build/bench_kernels_rmsnorm [--device cpu|cuda] [--dtype float32|bfloat16]
//       [--rows 16384] [--D 4096] [--reps 20]
//
// GB/s counts the bytes the fused pair must move: forward reads x, writes y;
// backward reads dy and x, writes dx (5 x rows x D elements; w and the
// per-row scalars are negligible).
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rmsnorm/rmsnorm_impl.h"
#include "bench/flags.h"

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{
      {"device", "cpu"}, {"dtype", "float32"}, {"rows", "16384"}, {"D", "4096"}, {"reps", "20"}};
  if (!zerorl::bench::read_flags(argc, argv, a)) return 2;
  const int64_t rows = std::stoll(a["rows"]), D = std::stoll(a["D"]);
  const int reps = std::stoi(a["reps"]);
  const bool cuda = a["device"] == "cuda";
  const at::ScalarType dt = a["dtype"] == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const at::TensorOptions o =
      at::TensorOptions(cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU)).dtype(dt);
  auto sync = [&] { zerorl::bench::sync_device(cuda); };
  at::manual_seed(0);
  at::Tensor x = at::randn({rows, D}, o).requires_grad_(true),
             w = at::ones({D}, o).requires_grad_(true);
  const at::Tensor g = at::randn({rows, D}, o);
  auto time = [&](auto&& fn) {
    double best = 1e30;
    for (int r = 0; r < reps + 1; ++r) {
      x.mutable_grad() = at::Tensor();
      w.mutable_grad() = at::Tensor();
      sync();
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      sync();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) best = std::min(best, s);
    }
    return best;
  };
  const double fused = time([&] { zerorl::kernels::rmsnorm(x, w, 1e-6).backward(g); });
  const double comp = time([&] { zerorl::kernels::detail::rmsnorm_ref(x, w, 1e-6).backward(g); });
  const double bytes = 5.0 * rows * D * at::elementSize(dt);
  std::printf("device=%s dtype=%s rows=%lld D=%lld\n", a["device"].c_str(), a["dtype"].c_str(),
              (long long)rows, (long long)D);
  std::printf("%-22s %10s %10s\n", "what", "ms", "GB/s");
  std::printf("%-22s %10.3f %10.1f\n", "rmsnorm fwd+bwd", fused * 1e3, bytes / fused / 1e9);
  std::printf("%-22s %10.3f %10.1f\n", "composition fwd+bwd", comp * 1e3, bytes / comp / 1e9);
  std::printf("speed-up %.2fx\n", comp / fused);
  return 0;
}
