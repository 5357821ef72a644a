// MoE routed experts: kernels/moe (router kernel + permute + grouped GEMM +
// combine) vs the LibTorch composition it replaces (HF-style loop: per expert,
// find its tokens, index_select, MLP, index_add), forward + backward.  On CUDA
// each piece is also timed against its LibTorch reference on the same device:
// the router (topk), the permutation (stable sort), the expert MLPs through the
// grouped GEMM against one GEMM per expert.
//
//   build/bench_kernels_moe [--device cpu|cuda] [--dtype float32|bfloat16]
//       [--T 8192] [--D 2048] [--F 1408] [--E 64] [--K 6] [--reps 5]
//
// TFLOP/s counts the expert GEMMs only: forward 6PDF, backward 12PDF, P=T*K.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "kernels/moe/moe.h"
#include "kernels/moe/moe_impl.h"
#include "bench/flags.h"

namespace {

std::map<std::string, std::string> parse(int argc, char** argv) {
  std::map<std::string, std::string> a{{"device", "cpu"}, {"dtype", "float32"}, {"T", "8192"},
                                       {"D", "2048"},     {"F", "1408"},        {"E", "64"},
                                       {"K", "6"},        {"reps", "5"}};
  if (!zerorl::bench::read_flags(argc, argv, a)) return {};
  return a;
}

at::Tensor composition(const at::Tensor& x, const at::Tensor& idx, const at::Tensor& w,
                       const at::Tensor& wg, const at::Tensor& wu, const at::Tensor& wd) {
  at::Tensor y = at::zeros(x.sizes(), x.options().dtype(at::kFloat));
  for (int64_t e = 0; e < wg.size(0); ++e) {
    const at::Tensor hit = (idx == e).nonzero();  // [n, 2]: token, slot
    if (hit.size(0) == 0) continue;
    const at::Tensor tok = hit.select(1, 0), slot = hit.select(1, 1);
    const at::Tensor xe = x.index_select(0, tok);
    const at::Tensor out =
        at::mm(at::silu(at::mm(xe, wg[e].t())) * at::mm(xe, wu[e].t()), wd[e].t());
    y = y.index_add(0, tok, out.to(at::kFloat) * w.index({tok, slot}).unsqueeze(1));
  }
  return y.to(x.scalar_type());
}

}  // namespace

int main(int argc, char** argv) {
  auto a = parse(argc, argv);
  if (a.empty()) return 2;
  const int64_t T = std::stoll(a["T"]), D = std::stoll(a["D"]), F = std::stoll(a["F"]),
                E = std::stoll(a["E"]), K = std::stoll(a["K"]);
  const int reps = std::stoi(a["reps"]);
  const bool cuda = a["device"] == "cuda";
  const at::ScalarType dt = a["dtype"] == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const at::TensorOptions o =
      at::TensorOptions(cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU)).dtype(dt);
  auto sync = [&] { zerorl::bench::sync_device(cuda); };
  at::manual_seed(0);
  const at::Tensor logits = at::randn({T, E}, o.dtype(at::kFloat));
  at::Tensor x = at::randn({T, D}, o).requires_grad_(true);
  at::Tensor wg = (at::randn({E, F, D}, o) / std::sqrt(double(D))).requires_grad_(true);
  at::Tensor wu = (at::randn({E, F, D}, o) / std::sqrt(double(D))).requires_grad_(true);
  at::Tensor wd = (at::randn({E, D, F}, o) / std::sqrt(double(F))).requires_grad_(true);
  zerorl::kernels::RouterOptions ro;
  ro.top_k = K;
  const auto route = zerorl::kernels::moe_route(logits, at::Tensor(), ro);
  const at::Tensor idx = route.topk_idx_TK, w = route.topk_weight_TK.detach();
  const at::Tensor gy = at::randn({T, D}, o);

  auto time = [&](auto&& fn) {
    double best = 1e30;
    for (int r = 0; r < reps + 1; ++r) {  // first run is a warm-up
      for (at::Tensor* t : {&x, &wg, &wu, &wd}) t->mutable_grad() = at::Tensor();
      sync();
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      sync();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) best = std::min(best, s);
    }
    return best;
  };
  const double route_s = time([&] { zerorl::kernels::moe_route(logits, at::Tensor(), ro); });
  const double kern_s =
      time([&] { zerorl::kernels::moe_experts(x, idx, w, wg, wu, wd).y_TD.backward(gy); });
  const double comp_s = time([&] { composition(x, idx, w, wg, wu, wd).backward(gy); });
  const double flops = 18.0 * T * K * D * F;
  std::printf("device=%s dtype=%s T=%lld D=%lld F=%lld E=%lld K=%lld\n", a["device"].c_str(),
              a["dtype"].c_str(), (long long)T, (long long)D, (long long)F, (long long)E,
              (long long)K);
  std::printf("%-22s %10s %10s\n", "what", "ms", "TFLOP/s");
  std::printf("%-22s %10.3f %10s\n", "moe_route", route_s * 1e3, "-");
  std::printf("%-22s %10.3f %10.2f\n", "moe_experts fwd+bwd", kern_s * 1e3, flops / kern_s / 1e12);
  std::printf("%-22s %10.3f %10.2f\n", "composition fwd+bwd", comp_s * 1e3, flops / comp_s / 1e12);
  std::printf("speed-up %.2fx\n", comp_s / kern_s);
#ifdef ZERORL_WITH_CUDA
  if (cuda) {  // the pieces, each against the LibTorch code it replaces, on the GPU
    namespace zd = zerorl::kernels::detail;
    const double rr = time([&] { zd::moe_route_ref(logits, at::Tensor(), ro); });
    const double rk = time([&] { zd::moe_route_cuda(logits, at::Tensor(), ro); });
    const double pr = time([&] { zd::moe_permute_ref(idx, E); });
    const double pk = time([&] { zd::moe_permute_cuda(idx, E); });
    // Bytes the permutation must touch: read idx (8 B per slot), write two
    // int64 maps; the router reads T x E fp32 scores and writes T x K ids.
    const double perm_bytes = 3.0 * 8 * T * K, route_bytes = 4.0 * T * E + 8.0 * T * K;
    std::printf("%-22s %10.3f %10s  reference %.3f ms  speed-up %.2fx  %.1f GB/s\n",
                "route (select kernel)", rk * 1e3, "-", rr * 1e3, rr / rk, route_bytes / rk / 1e9);
    std::printf("%-22s %10.3f %10s  reference %.3f ms  speed-up %.2fx  %.1f GB/s\n", "permute",
                pk * 1e3, "-", pr * 1e3, pr / pk, perm_bytes / pk / 1e9);
    if (zd::moe_grouped_gemm_applies(x, wg)) {
      const double gg =
          time([&] { zd::moe_experts_cuda(x, idx, w, wg, wu, wd, true).y_TD.backward(gy); });
      const double lp =
          time([&] { zd::moe_experts_cuda(x, idx, w, wg, wu, wd, false).y_TD.backward(gy); });
      std::printf("%-22s %10.3f %10.2f\n", "experts grouped GEMM", gg * 1e3, flops / gg / 1e12);
      std::printf("%-22s %10.3f %10.2f  grouped speed-up %.2fx\n", "experts GEMM per expert",
                  lp * 1e3, flops / lp / 1e12, lp / gg);
    }
  }
#endif
  return 0;
}
