// Driver for the expert-parallel MoE layer, run by `mpirun -np 2|4`:
// forward and backward of EpMoeBlock against the local MoeBlock on the same
// tokens, within 1e-6 (fp32), for every EP size that divides the world
// (np 2: EP 2; np 4: EP 2 x DP 2 and EP 4).  Every rank routes tokens of its
// own (a different count per rank); the reference is the local layer run by
// each rank on its tokens, its expert gradients summed over the EP group
// (the experts see the union of the group's tokens).  The EP layer runs with
// and without the shared expert overlapped with the exchange: the same bits.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "core/comm.h"
#include "core/error.h"
#include "core/process_grid.h"
#include "model/moe_block.h"
#include "model/moe_ep.h"
#include "tests/mpi_check.h"

using namespace zerorl;
using namespace zerorl::model;

using test::g_failures;

static ModelConfig config(int64_t E, int64_t K) {
  ModelConfig c;
  c.hidden_size = 12;
  c.moe.num_experts = E;
  c.moe.top_k = K;
  c.moe.expert_intermediate = 10;
  c.moe.shared_intermediate = 8;
  c.moe.sigmoid_scoring = true;
  c.moe.score_bias = true;
  c.moe.routed_scaling_factor = 2.0;
  return c;
}

enum class Load { kRagged, kIdleExpert, kOneExpert };

// max |a - b| / max(1, max |b|): 1e-6 is then fp32's error on sums taken in
// another order (an expert's weight gradient is one GEMM over the group's
// tokens here, a sum of per-rank GEMMs in the reference).  Undefined = zeros.
static double max_diff(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.defined() ? a : at::zeros_like(b);
  at::Tensor y = b.defined() ? b : at::zeros_like(a);
  if (!x.numel()) return 0.0;
  return (x - y).abs().max().item<double>() / std::max(1.0, y.abs().max().item<double>());
}

static void case_(Comm& world, int ep, int64_t E, int64_t K, Load load, int64_t tokens_last) {
  const int r = world.rank(), n = world.size();
  ProcessGrid grid(world, ep);
  std::string name = "ep " + std::to_string(ep) + " E " + std::to_string(E) + " K " +
                     std::to_string(K) + " load " + std::to_string(static_cast<int>(load));
  ModelConfig cfg = config(E, K);
  // The same local layer on every rank.
  at::manual_seed(1234);
  auto local = std::make_shared<MoeBlock>(cfg);
  {
    at::NoGradGuard ng;
    for (auto& p : local->parameters()) p.normal_(0.0, 0.3);
    at::Tensor& bias = local->gate->bias;
    bias.normal_(0.0, 0.05);
    if (load == Load::kIdleExpert) bias[E - 1].fill_(-100.0);  // never selected
    if (load == Load::kOneExpert) bias[1].fill_(100.0);        // chosen by every token
  }
  // Each rank its own tokens: a ragged count (the last rank may have none).
  at::manual_seed(100 + r);
  const int64_t N = r == n - 1 ? tokens_last : 5 + 3 * r;
  at::Tensor x = at::randn({N, cfg.hidden_size});
  at::Tensor g = at::randn({N, cfg.hidden_size});

  // Reference: the local layer on this rank's tokens.
  at::Tensor x_ref = x.clone().requires_grad_(true);
  MoeCall call_ref;
  call_ref.want_counts = true;
  at::Tensor y_ref = local->forward(x_ref, call_ref);
  (y_ref * g).sum().backward();

  // The EP layer, once with the shared expert run while the rows are in
  // flight (the default) and once after the exchange: the same bits.
  auto run_ep = [&](bool overlap, at::Tensor& x_ep, MoeCall& call_ep) {
    auto block = shard_moe_block(*local, cfg, grid);
    block->set_overlap_shared_expert(overlap);
    x_ep = x.clone().requires_grad_(true);
    call_ep.want_counts = true;
    at::Tensor y = block->forward(x_ep, call_ep);
    (y * g).sum().backward();
    return std::make_pair(block, y);
  };
  at::Tensor x_ep, x_serial;
  MoeCall call_ep, call_serial;
  auto [ep_block, y_ep] = run_ep(true, x_ep, call_ep);
  auto [serial_block, y_serial] = run_ep(false, x_serial, call_serial);
  CHECK_OR_FAIL(at::equal(y_ep, y_serial) && at::equal(x_ep.grad(), x_serial.grad()), name,
                " the overlapped shared expert changes the output or the input gradient");
  {
    auto serial = serial_block->named_parameters(true);
    auto same = [](const at::Tensor& a, const at::Tensor& b) {
      return a.defined() == b.defined() && (!a.defined() || at::equal(a, b));
    };
    for (auto& kv : ep_block->named_parameters(true))
      CHECK_OR_FAIL(same(kv.value().grad(), serial[kv.key()].grad()), name,
                    " the overlapped shared expert changes the gradient of ", kv.key());
  }

  CHECK_OR_FAIL(y_ep.sizes() == y_ref.sizes(), name, " output shape");
  CHECK_OR_FAIL(max_diff(y_ep, y_ref) <= 1e-6, name, " forward differs by ", max_diff(y_ep, y_ref));
  CHECK_OR_FAIL(max_diff(x_ep.grad(), x_ref.grad()) <= 1e-6, name, " input gradient differs by ",
                max_diff(x_ep.grad(), x_ref.grad()));
  CHECK_OR_FAIL(at::equal(call_ep.counts_E, call_ref.counts_E), name, " expert counts");
  // Dense parts: this rank's tokens only (the trainer sums them over the
  // world afterwards: trainer/expert_parallel.h).
  auto ref = local->named_parameters(true);
  for (auto& kv : ep_block->named_parameters(true)) {
    at::Tensor want = ref[kv.key()].grad();
    if (kv.key().rfind("experts.", 0) == 0) {
      // Routed experts: every token of the EP group that chose them.
      want = want.defined() ? want.clone() : at::zeros_like(ref[kv.key()]);
      grid.ep_comm().allreduce(want);
      want = want.narrow(0, ep_block->first_expert(), ep_block->local_experts());
    }
    CHECK_OR_FAIL(max_diff(kv.value().grad(), want) <= 1e-6, name, " gradient of ", kv.key(),
                  " differs by ", max_diff(kv.value().grad(), want));
  }
  // The scenario did what it says, over the whole group.
  at::Tensor load_E = call_ref.counts_E.clone();
  grid.ep_comm().allreduce(load_E);
  if (load == Load::kIdleExpert)
    CHECK_OR_FAIL(load_E[E - 1].item<int64_t>() == 0, name, " idle expert");
  if (load == Load::kOneExpert) {
    at::Tensor tokens = at::full({1}, N, at::kLong);
    grid.ep_comm().allreduce(tokens);
    CHECK_OR_FAIL(load_E[1].item<int64_t>() == tokens.item<int64_t>(), name,
                  " all tokens on expert 1");
  }
  if (load == Load::kRagged)
    CHECK_OR_FAIL(load_E.min().item<int64_t>() != load_E.max().item<int64_t>(), name,
                  " ragged load");
}

int main(int argc, char** argv) {
  try {
    ZR_CHECK(mpi_init_if_launched(&argc, &argv), "run me under mpirun");
    auto world = make_comm("mpi");
    test::g_rank = world->rank();
    const int n = world->size();
    for (int ep = 2; ep <= n; ep *= 2) {
      if (n % ep) continue;
      case_(*world, ep, 8, 2, Load::kRagged, 4);
      case_(*world, ep, 8, 3, Load::kRagged, 0);  // the last rank has no tokens
      case_(*world, ep, 8, 2, Load::kIdleExpert, 6);
      case_(*world, ep, 4 * ep, 1, Load::kOneExpert, 3);  // other ranks' experts get nothing
    }
    at::Tensor t = at::full({1}, g_failures, at::kInt);
    world->allreduce(t);
    if (world->rank() == 0) std::printf("moe_ep: %s\n", t.item<int>() ? "FAILED" : "passed");
    return t.item<int>() ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    mpi_abort_all(1);
    return 1;
  }
}
