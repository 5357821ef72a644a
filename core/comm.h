// Comm: the collectives the trainer sees.
//
// Implementations, chosen at start-up by make_comm():
//   * "single" — one process, every collective is the identity;
//   * "mpi"    — Open MPI on CPU tensors (bf16/fp16 are reduced in fp32);
//   * "nccl"   — NCCL on CUDA tensors, its unique id broadcast over MPI
//                (only in builds with ZERORL_WITH_CUDA); CPU tensors (metrics,
//                expert loads) are staged through the rank's GPU;
//   * "auto"   — nccl when CUDA is available and the process is under a
//                launcher, mpi under a launcher (mpirun/srun), else single.
//
// Contract: collectives are blocking and called by every rank in the same
// order with tensors of the same shape and dtype (allgather checks shapes).
// allreduce and broadcast work in place on a contiguous tensor; the others
// return a new tensor.  Not thread-safe: call from the main thread only.  A
// failure throws zerorl::Error; main() turns that into MPI_Abort so no rank hangs.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace zerorl {

enum class ReduceOp { kSum, kMean, kMax, kMin };

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  virtual void allreduce(at::Tensor& t, ReduceOp op = ReduceOp::kSum) = 0;
  virtual void broadcast(at::Tensor& t, int root = 0) = 0;
  // Returns a tensor of shape [size, *t.shape] holding every rank's t.
  virtual at::Tensor allgather(const at::Tensor& t) = 0;
  // Each rank sends t[i] (first dimension split into size equal parts) to rank i.
  virtual at::Tensor alltoall(const at::Tensor& t) = 0;
  // Sum-reduce a flat tensor of size * n elements and return this rank's
  // slice [rank * n, (rank + 1) * n) of the sum (shape [n]).  The base
  // implementation all-reduces a copy (correct, not memory-lean); mpi and
  // nccl override it with their reduce-scatter.  16-bit floats are summed in
  // fp32 on mpi (rounded once), natively on nccl.
  virtual at::Tensor reduce_scatter(const at::Tensor& flat);
  virtual void barrier() = 0;

  // Variable-size all-to-all over the first dimension: rows
  // [sum(send_counts[0..i)), + send_counts[i]) of t go to rank i.  The row
  // counts are exchanged first (one small all-to-all), so no rank needs to
  // know what it will receive; they come back in *recv_counts when given.
  // Returns the received rows, ordered by source rank, shape
  // [sum(recv_counts), *t.shape[1:]].  A count may be zero.
  virtual at::Tensor alltoallv(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                               std::vector<int64_t>* recv_counts = nullptr) = 0;
  // The sub-communicator of the ranks that pass the same colour (>= 0),
  // ranked by (key, rank in this Comm).  Every rank of this Comm must call
  // it (a collective); the result uses this Comm's backend.
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;

  // Convenience for scalars (metrics): reduce a double across ranks.
  double allreduce_scalar(double v, ReduceOp op = ReduceOp::kSum);
};

// Initialise MPI once if this process was started by a launcher (mpirun,
// srun: detected from the launcher's environment), and finalise at exit.
// Returns true when MPI is active.  Safe to call many times.
bool mpi_init_if_launched(int* argc, char*** argv);
bool mpi_active();
// Abort every rank (MPI_Abort) when MPI is active; otherwise does nothing.
void mpi_abort_all(int code);

std::unique_ptr<Comm> make_comm(const std::string& backend = "auto");

}  // namespace zerorl
