// NCCL Comm for CUDA tensors; compiled only in CUDA builds.  The NCCL unique
// id is created on rank 0 and broadcast over MPI; each rank drives the GPU
// given by its node-local rank.  Collectives run on the current ATen CUDA
// stream, so they order correctly with the kernels that produced the data.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include "core/checks.h"
#include "core/comm.h"

namespace zerorl {

bool cuda_device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

namespace {

ncclDataType_t nccl_type(at::ScalarType s) {
  switch (s) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    default:
      ZR_THROW("NCCL Comm: unsupported dtype ", at::toString(s));
  }
}

class NcclComm final : public Comm {
 public:
  NcclComm() {
    ZR_CHECK(mpi_active(), "NCCL Comm needs MPI for start-up: launch with mpirun or srun");
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    MPI_Comm local;
    MPI_CHECK(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
    int local_rank = 0;
    MPI_CHECK(MPI_Comm_rank(local, &local_rank));
    MPI_Comm_free(&local);
    int devices = 0;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    ZR_CHECK(devices > 0, "NCCL Comm: no CUDA device on rank ", rank_);
    device_ = local_rank % devices;
    CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id;
    if (rank_ == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD));
    NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
  }
  ~NcclComm() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  void allreduce(at::Tensor& t, ReduceOp op) override {
    if (!t.is_cuda()) {  // host metadata (metrics, expert loads): stage through the GPU
      at::Tensor d = t.to(at::Device(at::kCUDA, device_));
      allreduce(d, op);
      t.copy_(d.cpu());
      return;
    }
    check(t, "allreduce");
    ncclRedOp_t nop = ncclSum;
    if (op == ReduceOp::kMax) nop = ncclMax;
    if (op == ReduceOp::kMin) nop = ncclMin;
    if (op == ReduceOp::kMean) nop = ncclAvg;
    NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), nop,
                             comm_, stream()));
  }
  void broadcast(at::Tensor& t, int root) override {
    if (!t.is_cuda()) {
      at::Tensor d = t.to(at::Device(at::kCUDA, device_));
      broadcast(d, root);
      t.copy_(d.cpu());
      return;
    }
    check(t, "broadcast");
    NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()),
                             root, comm_, stream()));
  }
  at::Tensor allgather(const at::Tensor& t_in) override {
    if (!t_in.is_cuda()) return allgather(t_in.to(at::Device(at::kCUDA, device_))).cpu();
    at::Tensor t = t_in.contiguous();
    check(t, "allgather");
    std::vector<int64_t> shape{size_};
    for (auto d : t.sizes()) shape.push_back(d);
    at::Tensor out = at::empty(shape, t.options());
    NCCL_CHECK(ncclAllGather(t.data_ptr(), out.data_ptr(), t.numel(), nccl_type(t.scalar_type()),
                             comm_, stream()));
    return out;
  }
  at::Tensor alltoall(const at::Tensor& t_in) override {
    at::Tensor t = t_in.contiguous();
    check(t, "alltoall");
    ZR_CHECK(t.dim() >= 1 && t.size(0) % size_ == 0, "alltoall: first dimension not divisible by ",
             size_, " ranks");
    at::Tensor out = at::empty_like(t);
    size_t per = t.numel() / size_;
    size_t bytes = per * t.element_size();
    auto ty = nccl_type(t.scalar_type());
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < size_; ++r) {
      NCCL_CHECK(
          ncclSend(static_cast<char*>(t.data_ptr()) + r * bytes, per, ty, r, comm_, stream()));
      NCCL_CHECK(
          ncclRecv(static_cast<char*>(out.data_ptr()) + r * bytes, per, ty, r, comm_, stream()));
    }
    NCCL_CHECK(ncclGroupEnd());
    return out;
  }
  at::Tensor reduce_scatter(const at::Tensor& flat_in) override {
    if (!flat_in.is_cuda()) return reduce_scatter(flat_in.to(at::Device(at::kCUDA, device_))).cpu();
    at::Tensor flat = flat_in.contiguous();
    check(flat, "reduce_scatter");
    ZR_CHECK(flat.dim() == 1 && flat.numel() % size_ == 0, "reduce_scatter: a flat tensor of a ",
             "multiple of ", size_, " elements is needed, got shape ", flat.sizes());
    const int64_t n = flat.numel() / size_;
    at::Tensor out = at::empty({n}, flat.options());
    NCCL_CHECK(ncclReduceScatter(flat.data_ptr(), out.data_ptr(), n, nccl_type(flat.scalar_type()),
                                 ncclSum, comm_, stream()));
    return out;
  }
  void barrier() override {
    CUDA_CHECK(cudaStreamSynchronize(stream()));
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  }

 private:
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream(device_).stream(); }
  void check(const at::Tensor& t, const char* what) const {
    ZR_CHECK(t.is_cuda(), "NCCL Comm ", what, " needs a CUDA tensor, got ", t.device().str());
    ZR_CHECK(t.is_contiguous(), "NCCL Comm ", what, " needs a contiguous tensor");
  }
  int rank_ = 0, size_ = 1, device_ = 0;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm() { return std::make_unique<NcclComm>(); }

}  // namespace zerorl
