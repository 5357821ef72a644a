#include "core/comm.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <cstdlib>
#include <vector>

#include "core/checks.h"
#include "core/log.h"

namespace zerorl {

#ifdef ZERORL_WITH_CUDA
std::unique_ptr<Comm> make_nccl_comm();  // core/comm_nccl_cuda.cpp
bool cuda_device_available();            // core/comm_nccl_cuda.cpp
#endif

double Comm::allreduce_scalar(double v, ReduceOp op) {
  at::Tensor t = at::full({1}, v, at::kDouble);
  if (backend() == "nccl") t = t.to(at::kCUDA);
  allreduce(t, op);
  return t.cpu().item<double>();
}

at::Tensor Comm::reduce_scatter(const at::Tensor& flat) {
  ZR_CHECK(flat.dim() == 1 && flat.numel() % size() == 0, "reduce_scatter: a flat tensor of a ",
           "multiple of ", size(), " elements is needed, got shape ", flat.sizes());
  at::Tensor sum = flat.clone();
  allreduce(sum, ReduceOp::kSum);
  const int64_t n = flat.numel() / size();
  return sum.narrow(0, rank() * n, n).clone();
}

// ---- MPI lifetime --------------------------------------------------------------

namespace {

bool launched_by_mpi_launcher() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

struct MpiGuard {
  bool active = false;
  ~MpiGuard() {
    int finalized = 0;
    if (active && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
  }
};
MpiGuard g_mpi;

}  // namespace

bool mpi_init_if_launched(int* argc, char*** argv) {
  if (g_mpi.active) return true;
  int already = 0;
  MPI_Initialized(&already);
  if (already) {
    g_mpi.active = true;
    return true;
  }
  if (!launched_by_mpi_launcher()) return false;
  int provided = 0;
  MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes that MPI_CHECK turns into exceptions.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_mpi.active = true;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  log::set_rank(rank);
  return true;
}

bool mpi_active() { return g_mpi.active; }

void mpi_abort_all(int code) {
  if (!g_mpi.active) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

// ---- single process -------------------------------------------------------------

namespace {

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void allreduce(at::Tensor& t, ReduceOp) override {}
  void broadcast(at::Tensor& t, int root) override {
    ZR_CHECK(root == 0, "broadcast root ", root, " out of range for 1 rank");
  }
  at::Tensor allgather(const at::Tensor& t) override { return t.unsqueeze(0).clone(); }
  at::Tensor alltoall(const at::Tensor& t) override { return t.clone(); }
  at::Tensor reduce_scatter(const at::Tensor& flat) override { return flat.clone(); }
  void barrier() override {}
};

// ---- MPI on CPU tensors ------------------------------------------------------------

MPI_Datatype mpi_type(at::ScalarType s) {
  switch (s) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kInt:
      return MPI_INT32_T;
    case at::kLong:
      return MPI_INT64_T;
    case at::kByte:
      return MPI_UINT8_T;
    case at::kChar:
      return MPI_INT8_T;
    case at::kBool:
      return MPI_C_BOOL;
    default:
      ZR_THROW("MPI Comm: unsupported dtype ", at::toString(s));
  }
}

bool is_half_like(at::ScalarType s) { return s == at::kBFloat16 || s == at::kHalf; }

class MpiComm final : public Comm {
 public:
  MpiComm() {
    ZR_CHECK(mpi_active(), "MPI Comm requested but MPI is not initialised: start with mpirun");
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(at::Tensor& t, ReduceOp op) override {
    check_cpu(t, "allreduce");
    if (is_half_like(t.scalar_type())) {
      // No MPI type for 16-bit floats: reduce in fp32, round once at the end.
      at::Tensor f = t.to(at::kFloat);
      allreduce(f, op);
      t.copy_(f);
      return;
    }
    MPI_Op mop = MPI_SUM;
    if (op == ReduceOp::kMax) mop = MPI_MAX;
    if (op == ReduceOp::kMin) mop = MPI_MIN;
    if (t.scalar_type() == at::kBool) mop = (op == ReduceOp::kMin) ? MPI_LAND : MPI_LOR;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()),
                            mpi_type(t.scalar_type()), mop, MPI_COMM_WORLD));
    if (op == ReduceOp::kMean) {
      ZR_CHECK(at::isFloatingType(t.scalar_type()), "allreduce mean needs a floating dtype, got ",
               at::toString(t.scalar_type()));
      t.div_(size_);
    }
  }

  void broadcast(at::Tensor& t, int root) override {
    check_cpu(t, "broadcast");
    ZR_CHECK(root >= 0 && root < size_, "broadcast root ", root, " out of range for ", size_,
             " ranks");
    if (is_half_like(t.scalar_type())) {
      // Same bits, so move them as 16-bit integers.
      at::Tensor raw = t.view(at::kShort);
      MPI_CHECK(MPI_Bcast(raw.data_ptr(), static_cast<int>(raw.numel()), MPI_INT16_T, root,
                          MPI_COMM_WORLD));
      return;
    }
    MPI_CHECK(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t.scalar_type()), root,
                        MPI_COMM_WORLD));
  }

  at::Tensor allgather(const at::Tensor& t_in) override {
    at::Tensor t = t_in.contiguous();
    check_cpu(t, "allgather");
    // Shapes must agree: gather numels first (cheap) and name the culprit.
    long long n = t.numel();
    std::vector<long long> all(size_);
    MPI_CHECK(MPI_Allgather(&n, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, MPI_COMM_WORLD));
    for (int r = 0; r < size_; ++r)
      ZR_CHECK(all[r] == n, "allgather: rank ", r, " sent ", all[r], " elements, rank ", rank_,
               " sent ", n);
    std::vector<int64_t> shape{size_};
    for (auto d : t.sizes()) shape.push_back(d);
    at::Tensor out = at::empty(shape, t.options());
    at::Tensor src = t, dst = out;
    MPI_Datatype ty;
    if (is_half_like(t.scalar_type())) {
      src = t.view(at::kShort);
      dst = out.view(at::kShort);
      ty = MPI_INT16_T;
    } else {
      ty = mpi_type(t.scalar_type());
    }
    MPI_CHECK(MPI_Allgather(src.data_ptr(), static_cast<int>(n), ty, dst.data_ptr(),
                            static_cast<int>(n), ty, MPI_COMM_WORLD));
    return out;
  }

  at::Tensor alltoall(const at::Tensor& t_in) override {
    at::Tensor t = t_in.contiguous();
    check_cpu(t, "alltoall");
    ZR_CHECK(t.dim() >= 1 && t.size(0) % size_ == 0, "alltoall: first dimension ",
             t.dim() ? t.size(0) : 0, " not divisible by ", size_, " ranks");
    at::Tensor out = at::empty_like(t);
    at::Tensor src = t, dst = out;
    MPI_Datatype ty;
    if (is_half_like(t.scalar_type())) {
      src = t.view(at::kShort);
      dst = out.view(at::kShort);
      ty = MPI_INT16_T;
    } else {
      ty = mpi_type(t.scalar_type());
    }
    int per = static_cast<int>(t.numel() / size_);
    MPI_CHECK(MPI_Alltoall(src.data_ptr(), per, ty, dst.data_ptr(), per, ty, MPI_COMM_WORLD));
    return out;
  }

  at::Tensor reduce_scatter(const at::Tensor& flat_in) override {
    at::Tensor flat = flat_in.contiguous();
    check_cpu(flat, "reduce_scatter");
    ZR_CHECK(flat.dim() == 1 && flat.numel() % size_ == 0, "reduce_scatter: a flat tensor of a ",
             "multiple of ", size_, " elements is needed, got shape ", flat.sizes());
    if (is_half_like(flat.scalar_type()))
      return reduce_scatter(flat.to(at::kFloat)).to(flat.scalar_type());
    const int64_t n = flat.numel() / size_;
    at::Tensor out = at::empty({n}, flat.options());
    MPI_CHECK(MPI_Reduce_scatter_block(flat.data_ptr(), out.data_ptr(), static_cast<int>(n),
                                       mpi_type(flat.scalar_type()), MPI_SUM, MPI_COMM_WORLD));
    return out;
  }

  void barrier() override { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

 private:
  static void check_cpu(const at::Tensor& t, const char* what) {
    ZR_CHECK(t.device().is_cpu(), "MPI Comm ", what, " needs a CPU tensor, got ", t.device().str(),
             " (use the nccl backend for CUDA tensors)");
    ZR_CHECK(t.is_contiguous(), "MPI Comm ", what, " needs a contiguous tensor");
  }
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_comm(const std::string& backend) {
  if (backend == "single") return std::make_unique<SingleComm>();
  if (backend == "mpi") return std::make_unique<MpiComm>();
  if (backend == "nccl") {
#ifdef ZERORL_WITH_CUDA
    return make_nccl_comm();
#else
    ZR_THROW("the nccl Comm needs a build with CUDA (ZERORL_CUDA=ON)");
#endif
  }
  if (backend == "auto") {
    if (!mpi_active()) return std::make_unique<SingleComm>();
#ifdef ZERORL_WITH_CUDA
    if (cuda_device_available()) return make_nccl_comm();
#endif
    return std::make_unique<MpiComm>();
  }
  ZR_THROW("unknown comm backend '", backend, "' (expected auto, single, mpi or nccl)");
}

}  // namespace zerorl
