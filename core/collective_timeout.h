// The collective watchdog (issue 21, item 1): a rank that stops answering
// (SIGSTOP, a stuck device, an NFS stall) must end the job with a message,
// never leave the others waiting in a collective forever.
//
// With the "mpi" Comm every collective is posted non-blocking and waited
// for by polling; a wait longer than the timeout asks every other rank,
// over a side channel (a duplicate of the communicator), where it is.
// Ranks that are themselves waiting in a collective answer from their own
// wait loop; the ranks that do not answer within a grace period (a tenth of
// the timeout, clamped to [2, 10] s) are named in the zerorl::Error thrown
// on the waiting rank:
//   collective allreduce #412 (step 12) timed out after 600 s on rank 0:
//   rank(s) 1 did not arrive ...; rank(s) 2, 3 were waiting too
// main() turns that into MPI_Abort, which ends the job.  The "single" Comm
// has nothing to wait for.  The NCCL Comm (core/comm_nccl_cuda.cpp) records
// a CUDA event after each collective; a watchdog thread polls the events and
// ncclCommGetAsyncError every 100 ms and, on an error or past the same
// timeout, calls ncclCommAbort and MPI_Abort (it cannot name the late rank).
//
// Process-wide settings, read by every Comm: set them from the main thread
// before the collectives they should govern (make_comm(CommConfig) in
// core/comm_config.h sets the timeout from the recipe's comm.timeout_s).
#pragma once

#include <string>

namespace zerorl {

// Seconds a collective may wait before the job is ended; <= 0 waits forever
// (MPI's blocking calls, no polling).  Default kDefaultCollectiveTimeoutS,
// PyTorch's default for NCCL process groups and Megatron-LM's
// --distributed-timeout-minutes: long enough for a slow checkpoint write on
// one rank while the others wait at the next collective.
constexpr double kDefaultCollectiveTimeoutS = 600;
void set_collective_timeout(double seconds);
double collective_timeout();

// Free text naming where the job is ("step 12"), quoted in the message.
void set_collective_context(const std::string& where);
const std::string& collective_context();

}  // namespace zerorl
