// Checks for the plain-main MPI test programs (learner_mpi_main.cpp,
// loop_mpi_main.cpp): a failed check prints its rank, line and message and is
// counted; main all-reduces the count so every rank exits with the verdict.
#pragma once

#include <iostream>

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
