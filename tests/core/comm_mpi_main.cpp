// Driver for multi-rank tests of the MPI Comm, run under `mpirun -np 2`.
//   collectives      every collective on every dtype the trainer uses
//   throw_on_rank1   rank 1 throws while rank 0 blocks: main must abort all
#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>

#include "core/comm.h"
#include "core/error.h"

using namespace zerorl;

static int failures = 0;
#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ++failures;                                                              \
      std::cerr << "FAILED " << #cond << ": " << str_cat(__VA_ARGS__) << "\n"; \
    }                                                                          \
  } while (0)

static void collectives(Comm& comm) {
  int r = comm.rank(), n = comm.size();
  EXPECT(n == 2, "size ", n);
  for (auto dt : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kLong, at::kInt}) {
    std::string name = at::toString(dt);
    // sum: rank r contributes (r+1) * [1, 2, 3, ...]
    at::Tensor t = (at::arange(1, 8, at::kDouble) * (r + 1)).to(dt);
    comm.allreduce(t, ReduceOp::kSum);
    at::Tensor want = (at::arange(1, 8, at::kDouble) * 3).to(dt);
    EXPECT(at::equal(t, want), name, " sum");
    at::Tensor m = at::full({5}, r == 0 ? 7 : 3, at::kDouble).to(dt);
    comm.allreduce(m, ReduceOp::kMax);
    EXPECT(at::equal(m, at::full({5}, 7, at::kDouble).to(dt)), name, " max");
    at::Tensor mn = at::full({5}, r == 0 ? 7 : 3, at::kDouble).to(dt);
    comm.allreduce(mn, ReduceOp::kMin);
    EXPECT(at::equal(mn, at::full({5}, 3, at::kDouble).to(dt)), name, " min");
    if (at::isFloatingType(dt)) {
      at::Tensor avg = at::full({4}, r == 0 ? 1.0 : 3.0, at::kDouble).to(dt);
      comm.allreduce(avg, ReduceOp::kMean);
      EXPECT(at::equal(avg, at::full({4}, 2.0, at::kDouble).to(dt)), name, " mean");
    }
    at::Tensor b = r == 0 ? at::arange(0, 6, at::kDouble).to(dt).reshape({2, 3})
                          : at::zeros({2, 3}, at::kDouble).to(dt);
    comm.broadcast(b, 0);
    EXPECT(at::equal(b, at::arange(0, 6, at::kDouble).to(dt).reshape({2, 3})), name, " broadcast");
    at::Tensor g = comm.allgather(at::full({3}, r, at::kDouble).to(dt));
    EXPECT(g.sizes() == at::IntArrayRef({2, 3}), name, " allgather shape");
    EXPECT(at::equal(g[0], at::zeros({3}, at::kDouble).to(dt)) &&
               at::equal(g[1], at::ones({3}, at::kDouble).to(dt)),
           name, " allgather values");
    // alltoall: rank r sends [10r+0, 10r+1] (one element per destination).
    at::Tensor a = at::tensor({10.0 * r, 10.0 * r + 1}, at::kDouble).to(dt);
    at::Tensor got = comm.alltoall(a);
    at::Tensor expect = at::tensor({0.0 + r, 10.0 + r}, at::kDouble).to(dt);
    EXPECT(at::equal(got, expect), name, " alltoall");
    if (at::isFloatingType(dt) || dt == at::kLong || dt == at::kInt) {
      // reduce_scatter: rank r contributes (r+1) * [1..6]; rank r gets
      // elements [3r, 3r+3) of 3 * [1..6].
      at::Tensor rs = comm.reduce_scatter((at::arange(1, 7, at::kDouble) * (r + 1)).to(dt));
      at::Tensor rs_want = (at::arange(1 + 3 * r, 4 + 3 * r, at::kDouble) * 3).to(dt);
      EXPECT(at::equal(rs, rs_want), name, " reduce_scatter");
      at::Tensor base = (at::arange(1, 7, at::kDouble) * (r + 1)).to(dt);
      at::Tensor via_base = comm.Comm::reduce_scatter(base);
      EXPECT(at::equal(via_base, rs_want), name, " reduce_scatter (base implementation)");
    }
  }
  double s = comm.allreduce_scalar(r + 0.5);
  EXPECT(s == 2.0, "scalar sum ", s);
  // A shape mismatch is named, not silently mis-gathered.
  bool threw = false;
  try {
    comm.allgather(at::zeros({r + 1}));
  } catch (const Error& e) {
    threw = std::string(e.what()).find("allgather") != std::string::npos;
  }
  EXPECT(threw, "allgather shape mismatch must throw");
  comm.barrier();
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "collectives";
  try {
    ZR_CHECK(mpi_init_if_launched(&argc, &argv), "run me under mpirun");
    auto comm = make_comm("mpi");
    if (mode == "collectives") {
      collectives(*comm);
      int local = failures, total = 0;
      at::Tensor t = at::full({1}, local, at::kInt);
      comm->allreduce(t);
      total = t.item<int>();
      if (comm->rank() == 0) std::printf("collectives: %s\n", total ? "FAILED" : "passed");
      return total ? 1 : 0;
    }
    if (mode == "throw_on_rank1") {
      if (comm->rank() == 1) ZR_THROW("rank 1 fails on purpose");
      comm->barrier();  // rank 0 would wait here forever without MPI_Abort
      return 0;
    }
    ZR_THROW("unknown mode ", mode);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    mpi_abort_all(1);
    return 1;
  }
}
