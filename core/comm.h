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
// Contract: collectives are called by every rank in the same order with
// tensors of the same shape and dtype (allgather checks shapes).  They block,
// except the *_async ones, which return a CommWork to wait on later; they
// take their place in that order when they are posted, not when waited on.
// allreduce and broadcast work in place on a contiguous tensor; the others
// return a new tensor.  Not thread-safe: call from one thread at a time (the
// main thread; on CUDA the autograd thread may post *_async calls while the
// main thread waits in backward).  A failure throws zerorl::Error; main()
// turns that into MPI_Abort so no rank hangs.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace zerorl {

enum class ReduceOp { kSum, kMean, kMax, kMin };

// A collective posted by one of Comm's *_async calls, in flight until wait().
// It holds the tensors the transfer reads and writes, so they live until it
// completes; the caller must not touch the tensor it posted before wait().
// Destroying a CommWork that was never waited on (an error path: the job is
// ending) leaves its buffers allocated rather than freeing memory a transfer
// may still write.
class CommWork {
 public:
  virtual ~CommWork() = default;
  // Lets the transfer progress without blocking (MPI moves a non-blocking
  // collective only inside MPI calls) and says whether it is complete.
  virtual bool test() = 0;
  // Blocks until the collective is complete, under the watchdog of
  // comm.timeout_s (core/collective_timeout.h), and returns its result (see
  // the call that posted it).  On NCCL it returns once the caller's current
  // CUDA stream is ordered after the transfer.  Call once.
  virtual at::Tensor wait() = 0;
};

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

  // Non-blocking allreduce and reduce_scatter, for the gradient sync that
  // overlaps backward (trainer/grad_sync.h): the same result, bit for bit,
  // as the blocking call.  allreduce_async reduces t in place (wait()
  // returns t); reduce_scatter_async's wait() returns this rank's slice.
  // mpi posts MPI_Iallreduce / MPI_Ireduce_scatter_block; nccl enqueues on
  // the Comm's own stream after the current stream's pending work; the base
  // implementation (single) runs the blocking call and returns it done.
  virtual std::unique_ptr<CommWork> allreduce_async(at::Tensor t, ReduceOp op = ReduceOp::kSum);
  virtual std::unique_ptr<CommWork> reduce_scatter_async(const at::Tensor& flat);

  // Variable-size all-to-all over the first dimension: rows
  // [sum(send_counts[0..i)), + send_counts[i]) of t go to rank i.  The row
  // counts are exchanged first (one small all-to-all), so no rank needs to
  // know what it will receive; they come back in *recv_counts when given.
  // Returns the received rows, ordered by source rank, shape
  // [sum(recv_counts), *t.shape[1:]].  A count may be zero.
  virtual at::Tensor alltoallv(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                               std::vector<int64_t>* recv_counts = nullptr) = 0;
  // alltoallv without waiting for the rows: the counts are exchanged as
  // alltoallv does (blocking) and *recv_counts is filled before it returns;
  // the rows then move while the caller computes something else (the EP
  // layer's shared expert) until wait(), which returns what alltoallv
  // would.  Several may be in flight; wait for every one before the next
  // blocking collective on this Comm (on nccl the rows move on the Comm's
  // own stream, and only the waits order it with the current one).  mpi
  // posts MPI_Ialltoallv (its blocking alltoallv is this call waited on at
  // once); nccl groups ncclSend/ncclRecv on its own stream; the base
  // implementation (single, and CPU rows on nccl) runs alltoallv and
  // returns it done.
  virtual std::unique_ptr<CommWork> alltoallv_async(const at::Tensor& t,
                                                    const std::vector<int64_t>& send_counts,
                                                    std::vector<int64_t>* recv_counts = nullptr);
  // The sub-communicator of the ranks that pass the same colour (>= 0),
  // ranked by (key, rank in this Comm).  Every rank of this Comm must call
  // it (a collective); the result uses this Comm's backend.
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;

  // Point-to-point, for the disaggregated rollout (trainer/disaggregated.h):
  // send_bytes sends a 1-D uint8 CPU tensor to rank `dst`; recv_bytes
  // returns the next message from rank `src` with tag `tag`, of whatever
  // length it has (the receiver need not know it).  Messages from one rank
  // to another with the same tag arrive in the order sent.  Both block under
  // the watchdog of comm.timeout_s (a peer that stopped or died ends the
  // job with a message naming it) and are not collectives: only the two
  // ranks take part.  mpi implements them; the base class (single, nccl)
  // throws, naming comm.backend.
  virtual void send_bytes(const at::Tensor& bytes, int dst, int tag);
  virtual at::Tensor recv_bytes(int src, int tag);
  // send_bytes without waiting: the rank goes on (e.g. into a collective
  // the receiver must join before it receives); wait() completes the send
  // under the same watchdog and returns `bytes`.
  virtual std::unique_ptr<CommWork> send_bytes_async(const at::Tensor& bytes, int dst, int tag);

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
