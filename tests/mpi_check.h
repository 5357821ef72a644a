// Checks for the plain-main MPI test programs (tests/core/comm_mpi_main.cpp,
// tests/model/moe_ep_mpi_main.cpp, tests/trainer/learner_mpi_main.cpp and
// loop_mpi_main.cpp): a failed check prints its rank, line and message and is
// counted; main all-reduces the count so every rank exits with the verdict
// (mpi_verdict), and an exception on any rank aborts them all (mpi_error).
#pragma once

#include <exception>
#include <iostream>

#include "core/comm.h"
#include "core/error.h"

namespace zerorl::test {
inline int g_failures = 0;
inline int g_rank = 0;
}  // namespace zerorl::test

#define CHECK_OR_FAIL(cond, ...)                                                 \
  do {                                                                           \
    if (!(cond)) {                                                               \
      ++::zerorl::test::g_failures;                                              \
      std::cerr << "[rank " << ::zerorl::test::g_rank << "] FAILED " << __LINE__ \
                << ": " #cond " -- " << ::zerorl::str_cat(__VA_ARGS__) << "\n";  \
    }                                                                            \
  } while (0)

namespace zerorl::test {

// Every rank learns whether a check failed on any rank; rank 0 prints PASSED
// or FAILED.  Returns main's exit status.  Collective.
inline int mpi_verdict(Comm& comm) {
  const double failed = comm.allreduce_scalar(g_failures, ReduceOp::kMax);
  if (comm.rank() == 0) std::cout << (failed > 0 ? "FAILED" : "PASSED") << "\n";
  return failed > 0 ? 1 : 0;
}

// main's catch: names the rank and the error, and aborts every rank so none
// is left waiting in a collective.  Returns main's exit status.
inline int mpi_error(const std::exception& e) {
  std::cerr << "[rank " << g_rank << "] error: " << e.what() << "\n";
  mpi_abort_all(1);
  return 1;
}

}  // namespace zerorl::test
