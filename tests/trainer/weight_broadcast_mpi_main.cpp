// The disaggregated rollout's weight broadcast (trainer/disaggregated.h),
// under real mpirun:
//
//   weight_broadcast cpu    (-np 3)  fp32 and bf16 weights on the CPU
//   weight_broadcast cuda   (-np 2)  the same weights on the GPU, staged
//                                    through pinned host buffers over MPI;
//                                    exits 77 (skipped) naming the missing
//                                    CUDA device
//
// Rank 0 holds the "learner's" weights, the others different values of the
// same shapes.  Two broadcasts (the second after rank 0's weights change, so
// the buffers allocated at the first are reused): every rank must end with
// rank 0's values bit for bit, in its own tensors (the same storage: the
// copy is in place, as a CUDA graph on the rollout policy needs), in the
// dtype it had (bf16 stays bf16), and with the same fingerprint.  Buckets
// split at the byte cap and at a change of dtype.  And Roles: a role of one
// rank gets the "single" Comm (the lone learner's collectives never reach
// MPI, whatever device its tensors are on), a role of several an MPI one.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "tests/mpi_check.h"
#include "trainer/disaggregated.h"

namespace zerorl {
namespace {

using test::g_rank;

// The weights of "version" v as rank `who` holds them: shapes and dtypes fixed,
// values from (who, v).  fp32, bf16, fp32: three dtype runs.
std::vector<std::pair<std::string, at::Tensor>> make_weights(int who, int v, at::Device dev) {
  const std::vector<std::pair<std::vector<int64_t>, at::ScalarType>> shapes = {
      {{64, 32}, at::kFloat},
      {{32}, at::kFloat},
      {{48, 16}, at::kBFloat16},
      {{7}, at::kBFloat16},
      {{16, 40}, at::kFloat}};
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& [shape, dt] = shapes[i];
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    at::Tensor t = at::arange(n, at::kDouble).view(shape);
    t = at::sin(t * (0.37 + 0.11 * static_cast<double>(i)) + 10.0 * who + 3.0 * v);
    out.emplace_back("w" + std::to_string(i), t.to(dt).to(dev).contiguous());
  }
  return out;
}

void run(Comm& world, at::Device dev) {
  const int rank = world.rank();
  auto mine = make_weights(rank, 0, dev);
  std::vector<const void*> storage;
  for (const auto& [n, t] : mine) storage.push_back(t.data_ptr());
  // 2 KiB buckets: w0 (8 KiB, past the cap) alone, w1 (fp32), w2 + w3 (bf16,
  // 1.5 KiB together), w4 (fp32 again): four buckets.
  WeightBroadcast wb(mine, 2.0 / 1024);
  CHECK_OR_FAIL(wb.buckets() == 4, "buckets: ", wb.buckets(), ", expected 4");
  for (int v = 0; v < 2; ++v) {
    if (rank == 0 && v == 1) {  // the learner's update: new values, same tensors
      const auto next = make_weights(0, 1, dev);
      for (size_t i = 0; i < mine.size(); ++i) mine[i].second.copy_(next[i].second);
    }
    wb.run(world);
    const auto want = make_weights(0, v, dev);
    for (size_t i = 0; i < mine.size(); ++i) {
      const at::Tensor& t = mine[i].second;
      CHECK_OR_FAIL(t.data_ptr() == storage[i], "broadcast ", v, ": ", mine[i].first,
                    " was reallocated (not copied in place)");
      CHECK_OR_FAIL(t.scalar_type() == want[i].second.scalar_type() && t.device() == dev,
                    "broadcast ", v, ": ", mine[i].first, " is ", t.scalar_type(), " on ",
                    t.device(), ", expected ", want[i].second.scalar_type(), " on ", dev);
      CHECK_OR_FAIL(at::equal(t.cpu(), want[i].second.cpu()), "broadcast ", v, ": ", mine[i].first,
                    " differs from rank 0's (max |diff| ",
                    (t.cpu().to(at::kDouble) - want[i].second.cpu().to(at::kDouble))
                        .abs()
                        .max()
                        .item<double>(),
                    ")");
    }
    const double fp = wb.fingerprint();
    at::Tensor all = world.allgather(at::full({1}, fp, at::kDouble));
    for (int r = 0; r < world.size(); ++r)
      CHECK_OR_FAIL(all[r].item<double>() == fp, "broadcast ", v, ": rank ", r, "'s fingerprint ",
                    all[r].item<double>(), " vs ", fp);
  }
  // Roles over the world: rank 0 learns, the others roll out.
  Roles roles(world, world.size() - 1);
  const std::string want_role = roles.learner() || world.size() == 2 ? "single" : "mpi";
  CHECK_OR_FAIL(roles.role_comm().backend() == want_role, "role comm of rank ", rank, " is ",
                roles.role_comm().backend(), ", expected ", want_role);
  CHECK_OR_FAIL(roles.weights_comm().size() == world.size(), "weights comm of ",
                roles.weights_comm().size(), " ranks");
  if (rank == 0)
    std::cout << "weight broadcast on " << dev << " over " << world.size()
              << " ranks: " << wb.buckets() << " buckets, " << wb.bytes()
              << " bytes, twice, in place\n";
}

}  // namespace
}  // namespace zerorl

int main(int argc, char** argv) {
  using namespace zerorl;
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    ZR_CHECK(mode == "cpu" || mode == "cuda", "usage: weight_broadcast_mpi cpu|cuda");
    mpi_init_if_launched(&argc, &argv);
    auto comm = make_comm(mpi_active() ? "mpi" : "single");
    test::g_rank = comm->rank();
    if (mode == "cuda" && !at::hasCUDA()) {
      if (comm->rank() == 0)
        std::cout << "SKIPPED: no CUDA device (weight broadcast of CUDA weights)\n";
      return 77;
    }
    run(*comm, mode == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU));
    return test::mpi_verdict(*comm);
  } catch (const std::exception& e) {
    return test::mpi_error(e);
  }
}
