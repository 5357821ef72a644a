// NCCL Comm for CUDA tensors; compiled only in CUDA builds.  The NCCL unique
// id is created on rank 0 and broadcast over MPI; each rank drives the GPU
// given by its node-local rank.  Collectives run on the current ATen CUDA
// stream, so they order correctly with the kernels that produced the data.
//
// The watchdog (core/collective_timeout.h): NCCL calls return as soon as the
// work is enqueued, and a rank that never arrives leaves the others blocked
// later, in whatever waits for the stream.  So each collective records a
// CUDA event, and a thread of the Comm polls the events and
// ncclCommGetAsyncError every 100 ms.  An async NCCL error, or a collective
// not complete after collective_timeout() seconds, is logged naming the
// collective, its number and the step; the thread then calls ncclCommAbort
// (which frees the kernels waiting for the missing rank) and
// mpi_abort_all(1).  The thread cannot throw into a main thread blocked in
// CUDA, so it ends the job itself, as main() would.  NCCL cannot say which
// peer is missing: the ranks that log the timeout were waiting, a rank that
// does not is the one that did not arrive.
//
// The *_async collectives run on the Comm's own stream (one from the pool,
// made at the first call): it first waits for the current stream's pending
// work (the data being produced), then the collective runs beside later
// compute; wait() makes the current stream wait for it.  The buffers are
// recorded on that stream with the caching allocator, so freeing them early
// is safe.  NCCL needs one order per communicator, and two streams do not
// give one: issue every collective of one communicator either blocking or
// async (GradSync splits a communicator of its own for this), or wait for
// every async one before the next blocking one (the EP layer's
// alltoallv_async: the waits then order the streams).  alltoallv_async
// exchanges its counts on that stream too and synchronises it to read them.
// It compiles (ZERORL_CUDA=ON builds, CUDA headers) but has run on no GPU yet
// (issue 14).
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/checks.h"
#include "core/collective_timeout.h"
#include "core/comm.h"
#include "core/log.h"

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

// Polls the collectives of one NCCL communicator (see the file comment).
class NcclWatchdog {
 public:
  NcclWatchdog(ncclComm_t comm, int rank, int device, double timeout_s)
      : comm_(comm), rank_(rank), device_(device), timeout_s_(timeout_s) {
    thread_ = std::thread([this] { run(); });
  }
  ~NcclWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    for (auto& p : pending_)
      if (p.event) cudaEventDestroy(p.event);
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
  }
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // Main thread, after a collective is enqueued on `stream`.
  void enqueued(const char* what, cudaStream_t stream) {
    cudaEvent_t ev = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        ev = free_.back();
        free_.pop_back();
      }
    }
    if (!ev) CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(ev, stream));
    push(what, ev);
  }
  // Main thread, around a host-blocking step (the MPI barrier).
  void host_begin(const char* what) { push(what, nullptr); }
  void host_end() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& p : pending_)
      if (!p.event) p.host_done = true;
  }

 private:
  struct Pending {
    cudaEvent_t event;  // null: a host step, done when host_done
    bool host_done;
    std::string what;
    int64_t seq;
    std::string context;
    std::chrono::steady_clock::time_point start;
  };

  void push(const char* what, cudaEvent_t ev) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(
        Pending{ev, false, what, ++seq_, collective_context(), std::chrono::steady_clock::now()});
  }

  void run() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (stop_) break;
      // Drop what completed; the oldest still pending decides the timeout.
      for (size_t i = 0; i < pending_.size();) {
        Pending& p = pending_[i];
        const bool done = p.event ? cudaEventQuery(p.event) == cudaSuccess : p.host_done;
        if (!done) {
          ++i;
          continue;
        }
        if (p.event) free_.push_back(p.event);
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
      }
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess &&
          async != ncclInProgress)
        fail(str_cat("NCCL reported an asynchronous error on rank ", rank_, ": ",
                     ncclGetErrorString(async), where()));
      if (pending_.empty()) continue;
      const Pending& oldest = pending_.front();
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - oldest.start).count();
      if (waited > timeout_s_)
        fail(str_cat("collective ", oldest.what, " #", oldest.seq,
                     oldest.context.empty() ? "" : " (" + oldest.context + ")", " timed out after ",
                     timeout_s_, " s on rank ", rank_,
                     " (NCCL): a rank did not arrive (stopped, hung in compute or I/O, or dead); "
                     "NCCL cannot name it: the ranks that log this line were waiting, the one "
                     "that does not is missing; the recipe key comm.timeout_s sets the limit "
                     "(0 waits forever)"));
    }
  }
  std::string where() const {
    if (pending_.empty()) return "";
    const Pending& p = pending_.front();
    return str_cat(" during collective ", p.what, " #", p.seq,
                   p.context.empty() ? "" : " (" + p.context + ")");
  }
  [[noreturn]] void fail(const std::string& msg) {
    ZR_LOG_ERROR(msg);
    ncclCommAbort(comm_);
    mpi_abort_all(1);
    std::abort();  // not reached: MPI_Abort ends this process
  }

  ncclComm_t comm_;
  int rank_, device_;
  double timeout_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t seq_ = 0;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_;
  std::thread thread_;
};

// A collective enqueued on the Comm's own stream (see the file comment).
class NcclWork final : public CommWork {
 public:
  NcclWork(cudaEvent_t done, int device, std::function<at::Tensor()> finish)
      : done_(done), device_(device), finish_(std::move(finish)) {}
  ~NcclWork() override { cudaEventDestroy(done_); }
  NcclWork(const NcclWork&) = delete;
  NcclWork& operator=(const NcclWork&) = delete;
  bool test() override { return cudaEventQuery(done_) == cudaSuccess; }
  at::Tensor wait() override {
    ZR_CHECK(finish_, "CommWork::wait called twice");
    CUDA_CHECK(cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(device_).stream(), done_, 0));
    at::Tensor r = finish_();
    finish_ = nullptr;
    return r;
  }

 private:
  cudaEvent_t done_;
  int device_;
  std::function<at::Tensor()> finish_;
};

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
    start_watchdog();
  }
  // A split: `mpi` (owned, freed here) carries the barrier, `nccl` the data.
  NcclComm(MPI_Comm mpi, ncclComm_t nccl, int device) : mpi_(mpi), device_(device), comm_(nccl) {
    MPI_CHECK(MPI_Comm_rank(mpi_, &rank_));
    MPI_CHECK(MPI_Comm_size(mpi_, &size_));
    start_watchdog();
  }
  ~NcclComm() override {
    watchdog_.reset();  // before the communicator it polls
    if (comm_) ncclCommDestroy(comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (mpi_ != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&mpi_);
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
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
    watch("allreduce");
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
    watch("broadcast");
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
    watch("allgather");
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
    watch("alltoall");
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
    watch("reduce_scatter");
    return out;
  }
  std::unique_ptr<CommWork> allreduce_async(at::Tensor t, ReduceOp op) override {
    if (!t.is_cuda()) return Comm::allreduce_async(t, op);  // staged, blocking
    check(t, "allreduce");
    ncclRedOp_t nop = ncclSum;
    if (op == ReduceOp::kMax) nop = ncclMax;
    if (op == ReduceOp::kMin) nop = ncclMin;
    if (op == ReduceOp::kMean) nop = ncclAvg;
    const cudaStream_t s = side_begin();
    NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), nop,
                             comm_, s));
    return side_end("allreduce", {t}, [t] { return t; });
  }
  std::unique_ptr<CommWork> reduce_scatter_async(const at::Tensor& flat_in) override {
    if (!flat_in.is_cuda()) return Comm::reduce_scatter_async(flat_in);
    at::Tensor flat = flat_in.contiguous();
    check(flat, "reduce_scatter");
    ZR_CHECK(flat.dim() == 1 && flat.numel() % size_ == 0, "reduce_scatter: a flat tensor of a ",
             "multiple of ", size_, " elements is needed, got shape ", flat.sizes());
    const int64_t n = flat.numel() / size_;
    at::Tensor out = at::empty({n}, flat.options());
    const cudaStream_t s = side_begin();
    NCCL_CHECK(ncclReduceScatter(flat.data_ptr(), out.data_ptr(), n, nccl_type(flat.scalar_type()),
                                 ncclSum, comm_, s));
    return side_end("reduce_scatter", {flat, out}, [out] { return out; });
  }
  void barrier() override {
    if (watchdog_) watchdog_->host_begin("barrier");
    CUDA_CHECK(cudaStreamSynchronize(stream()));
    MPI_CHECK(MPI_Barrier(mpi_));
    if (watchdog_) watchdog_->host_end();
  }

  at::Tensor alltoallv(const at::Tensor& t_in, const std::vector<int64_t>& send_counts,
                       std::vector<int64_t>* recv_counts_out) override {
    if (!t_in.is_cuda())
      return alltoallv(t_in.to(at::Device(at::kCUDA, device_)), send_counts, recv_counts_out).cpu();
    at::Tensor t = t_in.contiguous();
    at::Tensor sc = send_counts_on_gpu(t, send_counts);
    at::Tensor out = post_alltoallv(t, sc, send_counts, recv_counts_out, stream());
    watch("alltoallv");
    return out;
  }
  // The same steps on the Comm's own stream (counts, then rows), after the
  // current stream's pending work; wait() orders the current stream after it.
  std::unique_ptr<CommWork> alltoallv_async(const at::Tensor& t_in,
                                            const std::vector<int64_t>& send_counts,
                                            std::vector<int64_t>* recv_counts_out) override {
    if (!t_in.is_cuda()) return Comm::alltoallv_async(t_in, send_counts, recv_counts_out);
    at::Tensor t = t_in.contiguous();
    at::Tensor sc = send_counts_on_gpu(t, send_counts);  // on the current stream, before side_begin
    const cudaStream_t s = side_begin();
    at::Tensor out = post_alltoallv(t, sc, send_counts, recv_counts_out, s);
    return side_end("alltoallv", {t, out}, [out] { return out; });
  }

  std::unique_ptr<Comm> split(int color, int key) override {
    ZR_CHECK(color >= 0, "Comm split: colour ", color, " must be >= 0");
    // Both orders rank by (key, parent rank), so the MPI and NCCL ranks agree.
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(mpi_, color, key, &sub));
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    CUDA_CHECK(cudaSetDevice(device_));
    ncclComm_t nc = nullptr;
    NCCL_CHECK(ncclCommSplit(comm_, color, key, &nc, nullptr));
    return std::make_unique<NcclComm>(sub, nc, device_);
  }

 private:
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream(device_).stream(); }
  void start_watchdog() {
    if (collective_timeout() > 0)
      watchdog_ = std::make_unique<NcclWatchdog>(comm_, rank_, device_, collective_timeout());
  }
  void watch(const char* what) {
    if (watchdog_) watchdog_->enqueued(what, stream());
  }
  // The Comm's own stream, made to wait for the current stream's pending work.
  cudaStream_t side_begin() {
    if (!side_) side_.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_));
    cudaEvent_t ready = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(ready, stream()));
    CUDA_CHECK(cudaStreamWaitEvent(side_->stream(), ready, 0));
    CUDA_CHECK(cudaEventDestroy(ready));  // released once the wait is done
    return side_->stream();
  }
  // After a collective enqueued on the side stream: watched, its buffers
  // recorded on that stream, and a CommWork holding its completion event.
  std::unique_ptr<CommWork> side_end(const char* what, const std::vector<at::Tensor>& buffers,
                                     std::function<at::Tensor()> finish) {
    if (watchdog_) watchdog_->enqueued(what, side_->stream());
    for (const at::Tensor& b : buffers)
      c10::cuda::CUDACachingAllocator::recordStream(b.storage().data_ptr(), *side_);
    cudaEvent_t done = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(done, side_->stream()));
    return std::make_unique<NcclWork>(done, device_, std::move(finish));
  }
  // alltoallv's checks, and its send counts copied to the GPU.
  at::Tensor send_counts_on_gpu(const at::Tensor& t, const std::vector<int64_t>& send_counts) {
    check(t, "alltoallv");
    ZR_CHECK(static_cast<int>(send_counts.size()) == size_, "alltoallv: ", send_counts.size(),
             " send counts for ", size_, " ranks");
    ZR_CHECK(t.dim() >= 1, "alltoallv: a tensor of at least one dimension is needed");
    int64_t total = 0;
    for (int64_t c : send_counts) {
      ZR_CHECK(c >= 0, "alltoallv: negative send count ", c);
      total += c;
    }
    ZR_CHECK(total == t.size(0), "alltoallv: send counts sum to ", total,
             " rows but the tensor has ", t.size(0));
    return at::tensor(send_counts, at::kLong).to(at::Device(at::kCUDA, device_));
  }
  // Enqueues alltoallv on stream `s`: the counts (one int64 per
  // destination, back to the host: `s` is synchronised), then the rows as
  // grouped ncclSend/ncclRecv.  Returns the receive buffer.
  at::Tensor post_alltoallv(const at::Tensor& t, const at::Tensor& sc,
                            const std::vector<int64_t>& send_counts,
                            std::vector<int64_t>* recv_counts_out, cudaStream_t s) {
    at::Tensor rc = at::empty_like(sc);
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < size_; ++r) {
      NCCL_CHECK(ncclSend(sc.data_ptr<int64_t>() + r, 1, ncclInt64, r, comm_, s));
      NCCL_CHECK(ncclRecv(rc.data_ptr<int64_t>() + r, 1, ncclInt64, r, comm_, s));
    }
    NCCL_CHECK(ncclGroupEnd());
    if (watchdog_) watchdog_->enqueued("alltoallv counts", s);
    CUDA_CHECK(cudaStreamSynchronize(s));
    at::Tensor rc_host = rc.cpu();
    std::vector<int64_t> recv_counts(rc_host.data_ptr<int64_t>(),
                                     rc_host.data_ptr<int64_t>() + size_);
    int64_t row = 1;
    for (int64_t d = 1; d < t.dim(); ++d) row *= t.size(d);
    std::vector<int64_t> shape = t.sizes().vec();
    shape[0] = 0;
    for (int64_t c : recv_counts) shape[0] += c;
    at::Tensor out = at::empty(shape, t.options());
    const size_t elem = t.element_size();
    auto ty = nccl_type(t.scalar_type());
    int64_t soff = 0, roff = 0;
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < size_; ++r) {
      const size_t sn = send_counts[r] * row, rn = recv_counts[r] * row;
      if (sn > 0)
        NCCL_CHECK(ncclSend(static_cast<char*>(t.data_ptr()) + soff * elem, sn, ty, r, comm_, s));
      if (rn > 0)
        NCCL_CHECK(ncclRecv(static_cast<char*>(out.data_ptr()) + roff * elem, rn, ty, r, comm_, s));
      soff += sn;
      roff += rn;
    }
    NCCL_CHECK(ncclGroupEnd());
    if (recv_counts_out) *recv_counts_out = std::move(recv_counts);
    return out;
  }
  void check(const at::Tensor& t, const char* what) const {
    ZR_CHECK(t.is_cuda(), "NCCL Comm ", what, " needs a CUDA tensor, got ", t.device().str());
    ZR_CHECK(t.is_contiguous(), "NCCL Comm ", what, " needs a contiguous tensor");
  }
  MPI_Comm mpi_ = MPI_COMM_WORLD;
  int rank_ = 0, size_ = 1, device_ = 0;
  ncclComm_t comm_ = nullptr;
  std::optional<c10::cuda::CUDAStream> side_;  // the *_async collectives' stream
  std::unique_ptr<NcclWatchdog> watchdog_;     // null when the timeout is 0
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm() { return std::make_unique<NcclComm>(); }

}  // namespace zerorl
