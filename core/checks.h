// Library-call checks: CUDA_CHECK, NCCL_CHECK, MPI_CHECK, H5_CHECK.
//
// Each evaluates its argument once and throws zerorl::Error naming the call,
// the library's own error text and the source position.  Include the library's
// header (mpi.h, cuda_runtime.h, nccl.h, hdf5.h) before this one: the macros
// only need the error-string functions of the library they wrap, and a macro
// whose library is not included is simply never expanded.
#pragma once

#include "core/error.h"

// MPI: any return other than MPI_SUCCESS.
#define MPI_CHECK(call)                                                                           \
  do {                                                                                            \
    int zr_mpi_rc_ = (call);                                                                      \
    if (zr_mpi_rc_ != MPI_SUCCESS) {                                                              \
      char zr_msg_[MPI_MAX_ERROR_STRING];                                                         \
      int zr_len_ = 0;                                                                            \
      MPI_Error_string(zr_mpi_rc_, zr_msg_, &zr_len_);                                            \
      ::zerorl::detail::throw_call_failure("MPI", #call, std::string(zr_msg_, zr_len_), __FILE__, \
                                           __LINE__);                                             \
    }                                                                                             \
  } while (0)

// CUDA runtime: any cudaError_t other than cudaSuccess.
#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t zr_cuda_rc_ = (call);                                                      \
    if (zr_cuda_rc_ != cudaSuccess)                                                        \
      ::zerorl::detail::throw_call_failure("CUDA", #call, cudaGetErrorString(zr_cuda_rc_), \
                                           __FILE__, __LINE__);                            \
  } while (0)

// NCCL: any ncclResult_t other than ncclSuccess.
#define NCCL_CHECK(call)                                                                   \
  do {                                                                                     \
    ncclResult_t zr_nccl_rc_ = (call);                                                     \
    if (zr_nccl_rc_ != ncclSuccess)                                                        \
      ::zerorl::detail::throw_call_failure("NCCL", #call, ncclGetErrorString(zr_nccl_rc_), \
                                           __FILE__, __LINE__);                            \
  } while (0)

// HDF5: a negative herr_t / hid_t.  HDF5's own error stack is silenced by the
// H5 wrappers (core/h5.h) so the message here is the one the user sees.
#define H5_CHECK(call)                                                                            \
  ([&]() {                                                                                        \
    auto zr_h5_rc_ = (call);                                                                      \
    if (zr_h5_rc_ < 0)                                                                            \
      ::zerorl::detail::throw_call_failure("HDF5", #call, "returned a negative status", __FILE__, \
                                           __LINE__);                                             \
    return zr_h5_rc_;                                                                             \
  }())
