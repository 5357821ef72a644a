// The expert-parallel MoE layer at world size 1 against the local layer
// (issue 14's "GPU when lent" figure; runs on the CPU too): the overhead of
// the exchange path alone.  Both layers hold the same weights (the EP one
// made by shard_moe_block over a 1-rank ProcessGrid); EpMoeBlock permutes
// the (token, slot) pairs by owner rank, sends them through two
// Comm::alltoallv calls forward (rows and expert ids) and one back, and
// two more in backward, all to itself; MoeBlock hands the tokens straight
// to kernels::moe_experts.  Forward + backward of T tokens, median of
// --reps after one warm-up; also the time inside the exchanges
// (ep_exchange_seconds) and the largest difference of the two layers'
// outputs and input gradients (the same routing, so only the combine's
// summation order differs).
//
// The Comm is "auto": under mpirun on a GPU the NCCL Comm (the exchanges
// are ncclSend/ncclRecv to itself), under mpirun on the CPU MPI, otherwise
// the single-rank Comm (a copy).  It names the Comm it used.
//
//   build/bench_ep_layer [--device cpu|cuda] [--dtype float32|bfloat16]
//       [--T 2048] [--D 256] [--F 128] [--E 8] [--K 2] [--shared 128] [--reps 11]
//   mpirun -np 1 build/bench_ep_layer --device cuda --dtype bfloat16 --T 16384 --D 2048 --F 1408
//   --E 64 --K 6
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/flags.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/process_grid.h"
#include "model/moe_block.h"
#include "model/moe_ep.h"

using namespace zerorl;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{{"device", "cpu"}, {"dtype", "float32"}, {"T", "2048"},
                                       {"D", "256"},      {"F", "128"},         {"E", "8"},
                                       {"K", "2"},        {"shared", "128"},    {"reps", "11"}};
  if (!bench::read_flags(argc, argv, a)) return 2;
  try {
    mpi_init_if_launched(&argc, &argv);
    const bool cuda = a["device"] == "cuda";
    ZR_CHECK(cuda || a["device"] == "cpu", "--device cuda|cpu");
    ZR_CHECK(a["dtype"] == "float32" || a["dtype"] == "bfloat16", "--dtype float32|bfloat16");
    const at::ScalarType dt = a["dtype"] == "bfloat16" ? at::kBFloat16 : at::kFloat;
    const at::Device dev = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
    const int64_t T = std::stoll(a["T"]), D = std::stoll(a["D"]);
    const int reps = std::stoi(a["reps"]);
    ZR_CHECK(reps >= 1, "--reps must be >= 1");

    model::ModelConfig cfg;
    cfg.hidden_size = D;
    cfg.moe.num_experts = std::stoll(a["E"]);
    cfg.moe.top_k = std::stoll(a["K"]);
    cfg.moe.expert_intermediate = std::stoll(a["F"]);
    cfg.moe.shared_intermediate = std::stoll(a["shared"]);

    auto comm = make_comm("auto");
    ZR_CHECK(comm->size() == 1, "bench_ep_layer measures world size 1; run it with -np 1");
    ProcessGrid grid(*comm, 1);

    // Weights drawn on the device (a host-side draw of a real layer's
    // experts takes seconds), cast to the compute dtype; buffers (the
    // balancing bias) stay fp32, as policy.dtype leaves them.
    auto to_device = [&](torch::nn::Module& m, bool draw) {
      m.to(dev);
      at::NoGradGuard ng;
      at::manual_seed(0);
      for (auto& p : m.named_parameters(true)) {
        at::Tensor w = p.value();
        if (draw) w.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(w.size(-1))));
        w.set_data(w.to(dt));
      }
    };
    auto local = std::make_shared<model::MoeBlock>(cfg);
    to_device(*local, /*draw=*/true);
    auto ep = model::shard_moe_block(*local, cfg, grid);  // the same weights, the exchange path
    to_device(*ep, /*draw=*/false);
    at::manual_seed(1);
    at::Tensor x = at::randn({T, D}, at::TensorOptions(dev).dtype(dt));
    const at::Tensor gy = at::randn({T, D}, x.options());

    struct Result {
      double ms = 0, exchange_ms = 0;
      at::Tensor y, gx;
    };
    auto run = [&](model::MoeLayer& layer) {
      std::vector<double> total, exch;
      Result r;
      for (int rep = 0; rep <= reps; ++rep) {  // rep 0 is a warm-up
        layer.zero_grad();
        at::Tensor xi = x.detach().requires_grad_(true);
        bench::sync_device(cuda);
        const double e0 = model::ep_exchange_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        model::MoeCall call;
        at::Tensor y = layer.forward(xi, call);
        y.backward(gy);
        bench::sync_device(cuda);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep == 0) continue;
        total.push_back(1e3 * s);
        exch.push_back(1e3 * (model::ep_exchange_seconds() - e0));
        r.y = y.detach();
        r.gx = xi.grad();
      }
      r.ms = median(total);
      r.exchange_ms = median(exch);
      return r;
    };
    const Result lr = run(*local);
    const Result er = run(*ep);
    const double dy = (er.y.to(at::kFloat) - lr.y.to(at::kFloat)).abs().max().item<double>();
    const double dgx = (er.gx.to(at::kFloat) - lr.gx.to(at::kFloat)).abs().max().item<double>();
    std::printf(
        "MoE layer fwd+bwd, T %lld tokens, D %lld, F %lld, E %lld, K %lld, shared %s, %s on %s, "
        "%s Comm, world size 1, median of %d\n",
        static_cast<long long>(T), static_cast<long long>(D),
        static_cast<long long>(cfg.moe.expert_intermediate),
        static_cast<long long>(cfg.moe.num_experts), static_cast<long long>(cfg.moe.top_k),
        a["shared"].c_str(), a["dtype"].c_str(), a["device"].c_str(), comm->backend().c_str(),
        reps);
    std::printf("local layer   %9.2f ms\n", lr.ms);
    std::printf("EP layer      %9.2f ms   (exchanges %.2f ms, %.1f%% of the EP layer)\n", er.ms,
                er.exchange_ms, 100.0 * er.exchange_ms / er.ms);
    std::printf("EP / local    %9.3f\n", er.ms / lr.ms);
    std::printf("max |EP - local|: output %.3g, input gradient %.3g\n", dy, dgx);
    const double tol = dt == at::kFloat ? 1e-4 : 5e-2;
    ZR_CHECK(dy <= tol && dgx <= tol, "the EP layer does not match the local layer (tolerance ",
             tol, ")");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    mpi_abort_all(1);
    return 1;
  }
}
