// Cost of the collective watchdog (core/collective_timeout.h) on the MPI
// Comm: allreduce latency with MPI's blocking call (timeout 0) against the
// watched path (MPI_Iallreduce polled, timeout 600 s), interleaved round by
// round so that load from other processes hits both alike.
//
//   mpirun -np 2 --oversubscribe build/bench_core_allreduce [--rounds 15] [--iters 200]
//
// Prints, per size (fp32 elements), the median over rounds of the mean time
// of one allreduce in microseconds, and the ratio watched / blocking.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/collective_timeout.h"
#include "core/comm.h"

using namespace zerorl;

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
// Mean microseconds of one allreduce of `t` over `iters` calls.
double time_allreduce(Comm& comm, at::Tensor& t, int iters) {
  comm.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) comm.allreduce(t);
  const auto t1 = std::chrono::steady_clock::now();
  // Rank 0's figure, the slowest rank decides a collective anyway.
  return comm.allreduce_scalar(std::chrono::duration<double, std::micro>(t1 - t0).count() / iters,
                               ReduceOp::kMax);
}
}  // namespace

int main(int argc, char** argv) {
  mpi_init_if_launched(&argc, &argv);
  int rounds = 15, iters = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
  }
  auto comm = make_comm("mpi");
  if (comm->rank() == 0)
    std::printf("%d ranks, %d rounds of %d allreduces\n%10s %14s %14s %8s\n", comm->size(), rounds,
                iters, "elements", "blocking_us", "watched_us", "ratio");
  for (int64_t n : {int64_t{1}, int64_t{1024}, int64_t{1} << 20}) {
    at::Tensor t = at::ones({n}, at::kFloat);
    const int it = n >= (1 << 20) ? std::max(1, iters / 20) : iters;
    std::vector<double> blocking, watched;
    for (int r = 0; r < rounds; ++r) {
      set_collective_timeout(0);
      blocking.push_back(time_allreduce(*comm, t, it));
      set_collective_timeout(600);
      watched.push_back(time_allreduce(*comm, t, it));
    }
    const double b = median(blocking), w = median(watched);
    if (comm->rank() == 0) std::printf("%10lld %14.2f %14.2f %8.3f\n", (long long)n, b, w, w / b);
  }
  return 0;
}
