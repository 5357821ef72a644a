#include "core/comm.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <numeric>
#include <vector>

#include "core/checks.h"
#include "core/collective_timeout.h"
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

namespace {

// A collective that completed when it was posted.
class DoneWork final : public CommWork {
 public:
  explicit DoneWork(at::Tensor result) : result_(std::move(result)) {}
  bool test() override { return true; }
  at::Tensor wait() override { return result_; }

 private:
  at::Tensor result_;
};

}  // namespace

std::unique_ptr<CommWork> Comm::allreduce_async(at::Tensor t, ReduceOp op) {
  allreduce(t, op);
  return std::make_unique<DoneWork>(t);
}

std::unique_ptr<CommWork> Comm::reduce_scatter_async(const at::Tensor& flat) {
  return std::make_unique<DoneWork>(reduce_scatter(flat));
}

std::unique_ptr<CommWork> Comm::alltoallv_async(const at::Tensor& t,
                                                const std::vector<int64_t>& send_counts,
                                                std::vector<int64_t>* recv_counts) {
  return std::make_unique<DoneWork>(alltoallv(t, send_counts, recv_counts));
}

void Comm::send_bytes(const at::Tensor&, int, int) {
  ZR_THROW("point-to-point send needs comm.backend mpi (the ", backend(),
           " Comm has none): rollout.mode disaggregated runs over MPI");
}

std::unique_ptr<CommWork> Comm::send_bytes_async(const at::Tensor& bytes, int dst, int tag) {
  send_bytes(bytes, dst, tag);
  return std::make_unique<DoneWork>(bytes);
}

at::Tensor Comm::recv_bytes(int, int) {
  ZR_THROW("point-to-point receive needs comm.backend mpi (the ", backend(),
           " Comm has none): rollout.mode disaggregated runs over MPI");
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
  at::Tensor alltoallv(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                       std::vector<int64_t>* recv_counts) override {
    ZR_CHECK(send_counts.size() == 1, "alltoallv: ", send_counts.size(), " send counts for 1 rank");
    ZR_CHECK(t.dim() >= 1, "alltoallv: a tensor of at least one dimension is needed");
    ZR_CHECK(send_counts[0] == t.size(0), "alltoallv: send counts sum to ", send_counts[0],
             " rows but the tensor has ", t.size(0));
    if (recv_counts) *recv_counts = send_counts;
    return t.clone();
  }
  std::unique_ptr<Comm> split(int color, int) override {
    ZR_CHECK(color >= 0, "Comm split: colour ", color, " must be >= 0");
    return std::make_unique<SingleComm>();
  }
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

// The MPI type that moves a tensor's elements unchanged: 16-bit floats have
// no MPI type, so collectives that only move data (no arithmetic) move
// their bits as 16-bit integers.
MPI_Datatype mpi_move_type(at::ScalarType s) { return is_half_like(s) ? MPI_INT16_T : mpi_type(s); }

double g_collective_timeout_s = kDefaultCollectiveTimeoutS;
std::string g_collective_context;

}  // namespace

void set_collective_timeout(double seconds) { g_collective_timeout_s = seconds; }
double collective_timeout() { return g_collective_timeout_s; }
void set_collective_context(const std::string& where) { g_collective_context = where; }
const std::string& collective_context() { return g_collective_context; }

namespace {

class MpiComm final : public Comm {
 public:
  // Wraps `comm` (MPI_COMM_WORLD, or a split of it that this object frees).
  explicit MpiComm(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    ZR_CHECK(mpi_active(), "MPI Comm requested but MPI is not initialised: start with mpirun");
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
    // The watchdog's side channel: its messages never match a collective's.
    MPI_CHECK(MPI_Comm_dup(comm_, &side_));
    MPI_Comm_set_errhandler(side_, MPI_ERRORS_RETURN);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&side_);
    if (comm_ != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&comm_);
  }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(at::Tensor& t, ReduceOp op) override { allreduce_async(t, op)->wait(); }

  std::unique_ptr<CommWork> allreduce_async(at::Tensor t, ReduceOp op) override {
    check_cpu(t, "allreduce");
    ZR_CHECK(op != ReduceOp::kMean || at::isFloatingType(t.scalar_type()),
             "allreduce mean needs a floating dtype, got ", at::toString(t.scalar_type()));
    // No MPI type for 16-bit floats: reduce in fp32, round once at the end.
    at::Tensor buf = is_half_like(t.scalar_type()) ? t.to(at::kFloat) : t;
    MPI_Op mop = MPI_SUM;
    if (op == ReduceOp::kMax) mop = MPI_MAX;
    if (op == ReduceOp::kMin) mop = MPI_MIN;
    if (buf.scalar_type() == at::kBool) mop = (op == ReduceOp::kMin) ? MPI_LAND : MPI_LOR;
    auto w = std::make_unique<Work>(*this, "allreduce", std::vector<at::Tensor>{t, buf});
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf.data_ptr(), static_cast<int>(buf.numel()),
                             mpi_type(buf.scalar_type()), mop, comm_, &w->req));
    const int size = size_;
    w->finish = [t, buf, op, size]() mutable {
      if (op == ReduceOp::kMean) buf.div_(size);
      if (!buf.is_same(t)) t.copy_(buf);
      return t;
    };
    return w;
  }

  void broadcast(at::Tensor& t, int root) override {
    check_cpu(t, "broadcast");
    ZR_CHECK(root >= 0 && root < size_, "broadcast root ", root, " out of range for ", size_,
             " ranks");
    MPI_Request req;
    MPI_CHECK(MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_move_type(t.scalar_type()),
                         root, comm_, &req));
    wait(req, "broadcast");
  }

  at::Tensor allgather(const at::Tensor& t_in) override {
    at::Tensor t = t_in.contiguous();
    check_cpu(t, "allgather");
    // Shapes must agree: gather numels first (cheap) and name the culprit.
    long long n = t.numel();
    std::vector<long long> all(size_);
    MPI_Request req;
    MPI_CHECK(MPI_Iallgather(&n, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, comm_, &req));
    wait(req, "allgather");
    for (int r = 0; r < size_; ++r)
      ZR_CHECK(all[r] == n, "allgather: rank ", r, " sent ", all[r], " elements, rank ", rank_,
               " sent ", n);
    std::vector<int64_t> shape{size_};
    for (auto d : t.sizes()) shape.push_back(d);
    at::Tensor out = at::empty(shape, t.options());
    const MPI_Datatype ty = mpi_move_type(t.scalar_type());
    MPI_CHECK(MPI_Iallgather(t.data_ptr(), static_cast<int>(n), ty, out.data_ptr(),
                             static_cast<int>(n), ty, comm_, &req));
    wait(req, "allgather");
    return out;
  }

  at::Tensor alltoall(const at::Tensor& t_in) override {
    at::Tensor t = t_in.contiguous();
    check_cpu(t, "alltoall");
    ZR_CHECK(t.dim() >= 1 && t.size(0) % size_ == 0, "alltoall: first dimension ",
             t.dim() ? t.size(0) : 0, " not divisible by ", size_, " ranks");
    at::Tensor out = at::empty_like(t);
    const MPI_Datatype ty = mpi_move_type(t.scalar_type());
    int per = static_cast<int>(t.numel() / size_);
    MPI_Request req;
    MPI_CHECK(MPI_Ialltoall(t.data_ptr(), per, ty, out.data_ptr(), per, ty, comm_, &req));
    wait(req, "alltoall");
    return out;
  }

  at::Tensor reduce_scatter(const at::Tensor& flat) override {
    return reduce_scatter_async(flat)->wait();
  }

  std::unique_ptr<CommWork> reduce_scatter_async(const at::Tensor& flat_in) override {
    at::Tensor flat = flat_in.contiguous();
    check_cpu(flat, "reduce_scatter");
    ZR_CHECK(flat.dim() == 1 && flat.numel() % size_ == 0, "reduce_scatter: a flat tensor of a ",
             "multiple of ", size_, " elements is needed, got shape ", flat.sizes());
    // 16-bit floats are summed in fp32 and rounded once, as allreduce does.
    const at::ScalarType dtype = flat.scalar_type();
    if (is_half_like(dtype)) flat = flat.to(at::kFloat);
    const int64_t n = flat.numel() / size_;
    at::Tensor out = at::empty({n}, flat.options());
    auto w = std::make_unique<Work>(*this, "reduce_scatter", std::vector<at::Tensor>{flat, out});
    MPI_CHECK(MPI_Ireduce_scatter_block(flat.data_ptr(), out.data_ptr(), static_cast<int>(n),
                                        mpi_type(flat.scalar_type()), MPI_SUM, comm_, &w->req));
    w->finish = [out, dtype]() { return out.scalar_type() == dtype ? out : out.to(dtype); };
    return w;
  }

  void barrier() override {
    MPI_Request req;
    MPI_CHECK(MPI_Ibarrier(comm_, &req));
    wait(req, "barrier");
  }

  at::Tensor alltoallv(const at::Tensor& t, const std::vector<int64_t>& send_counts,
                       std::vector<int64_t>* recv_counts) override {
    return alltoallv_async(t, send_counts, recv_counts)->wait();
  }

  std::unique_ptr<CommWork> alltoallv_async(const at::Tensor& t_in,
                                            const std::vector<int64_t>& send_counts,
                                            std::vector<int64_t>* recv_counts_out) override {
    at::Tensor t = t_in.contiguous();
    check_cpu(t, "alltoallv");
    std::vector<int64_t> recv_counts = exchange_counts(t, send_counts, "alltoallv");
    const int64_t row = row_numel(t);
    std::vector<int64_t> shape = t.sizes().vec();
    shape[0] = std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0});
    at::Tensor out = at::empty(shape, t.options());
    auto w = std::make_unique<Work>(*this, "alltoallv", std::vector<at::Tensor>{t, out});
    // Send counts, send displacements, receive counts, receive
    // displacements: MPI reads them until the transfer completes, so the
    // Work holds them.
    std::vector<int>& a = w->ints;
    a.assign(4 * static_cast<size_t>(size_), 0);
    int* sc = a.data();
    int* sd = sc + size_;
    int* rc = sd + size_;
    int* rd = rc + size_;
    int64_t soff = 0, roff = 0;
    for (int r = 0; r < size_; ++r) {
      sc[r] = checked_int(send_counts[r] * row);
      sd[r] = checked_int(soff);
      rc[r] = checked_int(recv_counts[r] * row);
      rd[r] = checked_int(roff);
      soff += send_counts[r] * row;
      roff += recv_counts[r] * row;
    }
    const MPI_Datatype ty = mpi_move_type(t.scalar_type());
    MPI_CHECK(MPI_Ialltoallv(t.data_ptr(), sc, sd, ty, out.data_ptr(), rc, rd, ty, comm_, &w->req));
    w->finish = [out]() { return out; };
    if (recv_counts_out) *recv_counts_out = std::move(recv_counts);
    return w;
  }

  void send_bytes(const at::Tensor& bytes, int dst, int tag) override {
    send_bytes_async(bytes, dst, tag)->wait();
  }

  std::unique_ptr<CommWork> send_bytes_async(const at::Tensor& bytes, int dst, int tag) override {
    check_cpu(bytes, "send");
    ZR_CHECK(bytes.scalar_type() == at::kByte && bytes.dim() == 1, "MPI Comm send: a 1-D uint8 ",
             "tensor is needed, got ", at::toString(bytes.scalar_type()), " ", bytes.sizes());
    check_peer(dst, "send");
    auto w = std::make_unique<Work>(*this, "send to", std::vector<at::Tensor>{bytes});
    w->peer = dst;
    MPI_CHECK(MPI_Isend(bytes.data_ptr(), checked_int(bytes.numel()), MPI_BYTE, dst, tag, comm_,
                        &w->req));
    w->finish = [bytes]() { return bytes; };
    return w;
  }

  at::Tensor recv_bytes(int src, int tag) override {
    check_peer(src, "receive");
    // The length comes with the message: probe (polled, under the
    // watchdog), then receive what was probed.
    MPI_Message msg;
    MPI_Status st;
    const double t0 = MPI_Wtime();
    spin_until(
        [&] {
          int found = 0;
          MPI_CHECK(MPI_Improbe(src, tag, comm_, &found, &msg, &st));
          return found != 0;
        },
        [&] { peer_timeout_check(t0, "receive from", src); });
    int n = 0;
    MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &n));
    at::Tensor out = at::empty({n}, at::kByte);
    MPI_CHECK(MPI_Mrecv(out.data_ptr(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE));
    return out;
  }

  std::unique_ptr<Comm> split(int color, int key) override {
    ZR_CHECK(color >= 0, "Comm split: colour ", color, " must be >= 0");
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    return std::make_unique<MpiComm>(sub);
  }

 private:
  static void check_cpu(const at::Tensor& t, const char* what) {
    ZR_CHECK(t.device().is_cpu(), "MPI Comm ", what, " needs a CPU tensor, got ", t.device().str(),
             " (use the nccl backend for CUDA tensors)");
    ZR_CHECK(t.is_contiguous(), "MPI Comm ", what, " needs a contiguous tensor");
  }
  static int checked_int(int64_t v) {
    ZR_CHECK(v <= std::numeric_limits<int>::max(), "MPI Comm alltoallv: ", v,
             " elements exceed MPI's int counts");
    return static_cast<int>(v);
  }
  // Sends each rank its row count and returns the counts every rank sends here.
  std::vector<int64_t> exchange_counts(const at::Tensor& t, const std::vector<int64_t>& send,
                                       const char* what) {
    ZR_CHECK(static_cast<int>(send.size()) == size_, what, ": ", send.size(), " send counts for ",
             size_, " ranks");
    ZR_CHECK(t.dim() >= 1, what, ": a tensor of at least one dimension is needed");
    int64_t total = 0;
    for (int64_t c : send) {
      ZR_CHECK(c >= 0, what, ": negative send count ", c);
      total += c;
    }
    ZR_CHECK(total == t.size(0), what, ": send counts sum to ", total, " rows but the tensor has ",
             t.size(0));
    std::vector<int64_t> recv(size_);
    MPI_Request req;
    MPI_CHECK(MPI_Ialltoall(send.data(), 1, MPI_INT64_T, recv.data(), 1, MPI_INT64_T, comm_, &req));
    wait(req, "alltoallv counts");
    return recv;
  }
  static int64_t row_numel(const at::Tensor& t) {
    int64_t row = 1;
    for (int64_t d = 1; d < t.dim(); ++d) row *= t.size(d);
    return row;
  }
  // ---- the watchdog (core/collective_timeout.h) ----
  static constexpr int kAskTag = 7001, kAnswerTag = 7002;
  static constexpr long kSpins = 2000;  // MPI_Test calls before the first sleep

  // A posted non-blocking collective (allreduce_async, reduce_scatter_async,
  // alltoallv_async) or send (send_bytes_async).
  struct Work final : public CommWork {
    Work(MpiComm& c, const char* w, std::vector<at::Tensor> b)
        : comm(c), what(w), seq(++c.seq_), buffers(std::move(b)) {}
    ~Work() override {
      // Never waited on (an exception is unwinding; MPI_Abort follows): the
      // transfer may still write into the buffers, and a non-blocking
      // collective cannot be cancelled or freed, so the buffers are kept.
      if (req != MPI_REQUEST_NULL) {
        static auto* kept = new std::vector<at::Tensor>();  // never freed, on purpose
        for (at::Tensor& b : buffers) kept->push_back(std::move(b));
        static auto* kept_ints = new std::vector<std::vector<int>>();  // likewise
        kept_ints->push_back(std::move(ints));
      }
    }
    bool test() override { return req == MPI_REQUEST_NULL || tested(req); }
    at::Tensor wait() override {
      ZR_CHECK(finish, "CommWork::wait called twice");
      if (peer >= 0) {
        if (req != MPI_REQUEST_NULL) comm.wait_peer(req, what, peer);
      } else {
        comm.poll(req, what, seq);
      }
      at::Tensor r = finish();
      finish = nullptr;
      return r;
    }
    MpiComm& comm;
    const char* what;
    int64_t seq;
    std::vector<at::Tensor> buffers;
    std::vector<int> ints;  // alltoallv's counts and displacements
    MPI_Request req = MPI_REQUEST_NULL;
    int peer = -1;  // point-to-point: the other rank (its watchdog names it)
    std::function<at::Tensor()> finish;
  };

  // Waits for a posted collective; past the timeout, names the ranks that
  // did not arrive and throws.
  void wait(MPI_Request& req, const char* what) { poll(req, what, ++seq_); }

  void check_peer(int peer, const char* what) const {
    ZR_CHECK(peer >= 0 && peer < size_ && peer != rank_, "MPI Comm ", what, ": peer rank ", peer,
             " is not another rank of ", size_);
  }

  // Waits for a point-to-point transfer with rank `peer`; past the timeout
  // throws naming it (only the two ranks take part: no one else to ask).
  void wait_peer(MPI_Request& req, const char* what, int peer) {
    if (g_collective_timeout_s <= 0) {
      MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));
      return;
    }
    const double t0 = MPI_Wtime();
    spin_until([&] { return tested(req); }, [&] { peer_timeout_check(t0, what, peer); });
  }

  void peer_timeout_check(double t0, const char* what, int peer) const {
    const double timeout = g_collective_timeout_s;
    if (timeout <= 0 || MPI_Wtime() - t0 <= timeout) return;
    ZR_THROW(what, " rank ", peer,
             g_collective_context.empty() ? "" : " (" + g_collective_context + ")",
             " timed out after ", timeout, " s on rank ", rank_, ": rank ", peer,
             " did not answer (stopped, hung in compute or I/O, or dead); the recipe key "
             "comm.timeout_s sets the limit (0 waits forever)");
  }

  // Waits for collective number `seq` (see wait()).
  void poll(MPI_Request& req, const char* what, int64_t seq) {
    if (req == MPI_REQUEST_NULL) return;  // completed in an earlier test()
    const double timeout = g_collective_timeout_s;
    if (timeout <= 0) {
      MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));
      return;
    }
    const double t0 = MPI_Wtime();
    spin_until([&] { return tested(req); },
               [&] {
                 if (MPI_Wtime() - t0 > timeout) diagnose(what, timeout, seq);
               });
  }

  static bool tested(MPI_Request& req) {
    int done = 0;
    MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    return done != 0;
  }

  // The one waiting loop of the watchdog: tests `done` kSpins times without
  // pausing (transfers are usually quick), then between tests answers the
  // other ranks' asks, runs `check` (which throws past the timeout) and gives
  // the core up.  A rank asks only after waiting a whole timeout, so the side
  // channel and the clock are looked at only once the spinning is over.
  template <class Done, class Check>
  void spin_until(Done done, Check check) {
    for (long spins = 0;; ++spins) {
      if (done()) return;
      if (spins < kSpins) continue;
      answer_asks();
      check();
      ::usleep(spins > 10 * kSpins ? 1000 : 50);
    }
  }

  // Tells every rank that asked where this one is (its collective count).
  void answer_asks() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kAskTag, side_, &flag, &st);
      if (!flag) return;
      int64_t theirs = 0;
      MPI_Recv(&theirs, 1, MPI_INT64_T, st.MPI_SOURCE, kAskTag, side_, MPI_STATUS_IGNORE);
      answers_.push_back(seq_);  // stable storage until the send completes
      MPI_Request r;
      MPI_Isend(&answers_.back(), 1, MPI_INT64_T, st.MPI_SOURCE, kAnswerTag, side_, &r);
      MPI_Request_free(&r);
    }
  }

  [[noreturn]] void diagnose(const char* what, double timeout, int64_t seq) {
    const double grace = std::min(10.0, std::max(2.0, timeout / 10));
    asks_.assign(size_, seq_);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Request q;
      MPI_Isend(&asks_[r], 1, MPI_INT64_T, r, kAskTag, side_, &q);
      MPI_Request_free(&q);
    }
    std::vector<char> answered(size_, 0);
    answered[rank_] = 1;
    int missing = size_ - 1;
    const double t0 = MPI_Wtime();
    while (missing > 0 && MPI_Wtime() - t0 < grace) {
      answer_asks();
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kAnswerTag, side_, &flag, &st);
      if (!flag) {
        ::usleep(1000);
        continue;
      }
      int64_t where = 0;
      MPI_Recv(&where, 1, MPI_INT64_T, st.MPI_SOURCE, kAnswerTag, side_, MPI_STATUS_IGNORE);
      if (!answered[st.MPI_SOURCE]) --missing;
      answered[st.MPI_SOURCE] = 1;
    }
    std::string late, waiting;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      std::string& list = answered[r] ? waiting : late;
      list += (list.empty() ? "" : ", ") + std::to_string(r);
    }
    ZR_THROW("collective ", what, " #", seq,
             g_collective_context.empty() ? "" : " (" + g_collective_context + ")",
             " timed out after ", timeout, " s on rank ", rank_, ": rank(s) ",
             late.empty() ? "(none: all answered, so the collective itself is stuck)" : late,
             " did not arrive (stopped, hung in compute or I/O, or dead)",
             waiting.empty() ? "" : "; rank(s) " + waiting + " were waiting too",
             "; the recipe key comm.timeout_s sets the limit (0 waits forever)");
  }

  MPI_Comm comm_ = MPI_COMM_WORLD;
  MPI_Comm side_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  int64_t seq_ = 0;              // collectives started on this Comm
  std::vector<int64_t> asks_;    // send buffers of diagnose()
  std::deque<int64_t> answers_;  // send buffers of answer_asks(), never moved
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
