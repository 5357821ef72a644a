// Driver for multi-rank tests of the MPI Comm, run under `mpirun -np 2`.
//   collectives      every collective on every dtype the trainer uses
//   throw_on_rank1   rank 1 throws while rank 0 blocks: main must abort all
//   stop_rank1       the collective watchdog: after two steps of work on
//                    every rank, rank 1 SIGSTOPs itself; rank 0's next
//                    allreduce must end the job within the timeout (3 s
//                    here) plus the grace, naming the collective, the step
//                    and rank 1 (tests/core/expect_timeout.cmake)
//   split_alltoallv  sub-communicators and the variable all-to-all, blocking
//                    and alltoallv_async (np 2, 4)
//   nccl             the NCCL Comm at any world size (-np 1 on one GPU in
//                    scripts/device_check.sh): allreduce (sum, mean, max,
//                    min), broadcast, allgather and alltoall on CUDA tensors
//                    of each dtype, and a CPU tensor staged through the GPU;
//                    then the expert-parallel paths: split (ncclCommSplit)
//                    and alltoallv on CUDA tensors over the world, a split,
//                    a split of a split and a DP x EP grid's groups, and
//                    alltoallv_async over the world and the EP groups (at
//                    world size 1 every exchange is a rank sending rows to
//                    itself, which still runs the counts exchange and the
//                    grouped ncclSend/ncclRecv); exits 77 (ctest's skip)
//                    naming the missing device or a build without CUDA
#include <ATen/ATen.h>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "core/collective_timeout.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/process_grid.h"
#include "tests/mpi_check.h"

using namespace zerorl;

using test::g_failures;

static void collectives(Comm& comm) {
  int r = comm.rank(), n = comm.size();
  CHECK_OR_FAIL(n == 2, "size ", n);
  for (auto dt : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kLong, at::kInt}) {
    std::string name = at::toString(dt);
    // sum: rank r contributes (r+1) * [1, 2, 3, ...]
    at::Tensor t = (at::arange(1, 8, at::kDouble) * (r + 1)).to(dt);
    comm.allreduce(t, ReduceOp::kSum);
    at::Tensor want = (at::arange(1, 8, at::kDouble) * 3).to(dt);
    CHECK_OR_FAIL(at::equal(t, want), name, " sum");
    at::Tensor m = at::full({5}, r == 0 ? 7 : 3, at::kDouble).to(dt);
    comm.allreduce(m, ReduceOp::kMax);
    CHECK_OR_FAIL(at::equal(m, at::full({5}, 7, at::kDouble).to(dt)), name, " max");
    at::Tensor mn = at::full({5}, r == 0 ? 7 : 3, at::kDouble).to(dt);
    comm.allreduce(mn, ReduceOp::kMin);
    CHECK_OR_FAIL(at::equal(mn, at::full({5}, 3, at::kDouble).to(dt)), name, " min");
    if (at::isFloatingType(dt)) {
      at::Tensor avg = at::full({4}, r == 0 ? 1.0 : 3.0, at::kDouble).to(dt);
      comm.allreduce(avg, ReduceOp::kMean);
      CHECK_OR_FAIL(at::equal(avg, at::full({4}, 2.0, at::kDouble).to(dt)), name, " mean");
    }
    at::Tensor b = r == 0 ? at::arange(0, 6, at::kDouble).to(dt).reshape({2, 3})
                          : at::zeros({2, 3}, at::kDouble).to(dt);
    comm.broadcast(b, 0);
    CHECK_OR_FAIL(at::equal(b, at::arange(0, 6, at::kDouble).to(dt).reshape({2, 3})), name,
                  " broadcast");
    at::Tensor g = comm.allgather(at::full({3}, r, at::kDouble).to(dt));
    CHECK_OR_FAIL(g.sizes() == at::IntArrayRef({2, 3}), name, " allgather shape");
    CHECK_OR_FAIL(at::equal(g[0], at::zeros({3}, at::kDouble).to(dt)) &&
                      at::equal(g[1], at::ones({3}, at::kDouble).to(dt)),
                  name, " allgather values");
    // alltoall: rank r sends [10r+0, 10r+1] (one element per destination).
    at::Tensor a = at::tensor({10.0 * r, 10.0 * r + 1}, at::kDouble).to(dt);
    at::Tensor got = comm.alltoall(a);
    at::Tensor expect = at::tensor({0.0 + r, 10.0 + r}, at::kDouble).to(dt);
    CHECK_OR_FAIL(at::equal(got, expect), name, " alltoall");
    if (at::isFloatingType(dt) || dt == at::kLong || dt == at::kInt) {
      // reduce_scatter: rank r contributes (r+1) * [1..6]; rank r gets
      // elements [3r, 3r+3) of 3 * [1..6].
      at::Tensor rs = comm.reduce_scatter((at::arange(1, 7, at::kDouble) * (r + 1)).to(dt));
      at::Tensor rs_want = (at::arange(1 + 3 * r, 4 + 3 * r, at::kDouble) * 3).to(dt);
      CHECK_OR_FAIL(at::equal(rs, rs_want), name, " reduce_scatter");
      at::Tensor base = (at::arange(1, 7, at::kDouble) * (r + 1)).to(dt);
      at::Tensor via_base = comm.Comm::reduce_scatter(base);
      CHECK_OR_FAIL(at::equal(via_base, rs_want), name, " reduce_scatter (base implementation)");
      // Non-blocking: both posted before either is waited on, waited in the
      // other order; the same bits as the blocking calls.
      at::Tensor ta = (at::arange(1, 8, at::kDouble) * (r + 1)).to(dt);
      auto w_ar = comm.allreduce_async(ta, ReduceOp::kSum);
      auto w_rs = comm.reduce_scatter_async((at::arange(1, 7, at::kDouble) * (r + 1)).to(dt));
      CHECK_OR_FAIL(at::equal(w_rs->wait(), rs_want), name, " reduce_scatter_async");
      CHECK_OR_FAIL(w_ar->wait().is_same(ta) && at::equal(ta, want), name, " allreduce_async");
      if (at::isFloatingType(dt)) {
        at::Tensor avg = at::full({4}, r == 0 ? 1.0 : 3.0, at::kDouble).to(dt);
        auto w = comm.allreduce_async(avg, ReduceOp::kMean);
        while (!w->test()) {
        }
        w->wait();
        CHECK_OR_FAIL(at::equal(avg, at::full({4}, 2.0, at::kDouble).to(dt)), name,
                      " allreduce_async mean");
      }
    }
  }
  double s = comm.allreduce_scalar(r + 0.5);
  CHECK_OR_FAIL(s == 2.0, "scalar sum ", s);
  // A shape mismatch is named, not silently mis-gathered.
  bool threw = false;
  try {
    comm.allgather(at::zeros({r + 1}));
  } catch (const Error& e) {
    threw = std::string(e.what()).find("allgather") != std::string::npos;
  }
  CHECK_OR_FAIL(threw, "allgather shape mismatch must throw");
  comm.barrier();
}

// Rank src sends (src + dst + 1) % 3 rows to dst (zero for some pairs at
// two ranks and more, one to itself at one rank), row i holding
// [src, dst, i] + [0, 0.5, 0.25]: the receiver can check every row's origin.
// The ranks are those of `comm`.
static int64_t rows_from_to(int src, int dst) { return (src + dst + 1) % 3; }
static at::Tensor rows_block(int src, int dst) {
  int64_t k = rows_from_to(src, dst);
  at::Tensor i = at::arange(k, at::kDouble).unsqueeze(1);
  at::Tensor sd = at::tensor({1.0 * src, 1.0 * dst}, at::kDouble).expand({k, 2});
  return at::cat({sd, i}, 1) + at::tensor({0.0, 0.5, 0.25}, at::kDouble);
}

// `dev`: where the rows live (CUDA for the NCCL Comm's own path; a CPU
// tensor on NCCL is staged through the GPU).
static void check_alltoallv(Comm& comm, const std::string& where,
                            at::Device dev = at::Device(at::kCPU)) {
  int r = comm.rank(), n = comm.size();
  for (auto dt : {at::kFloat, at::kDouble, at::kBFloat16, at::kLong}) {
    std::string name = where + " " + at::toString(dt);
    std::vector<at::Tensor> send, want;
    std::vector<int64_t> counts, want_counts;
    for (int d = 0; d < n; ++d) {
      send.push_back(rows_block(r, d));
      counts.push_back(rows_from_to(r, d));
      want.push_back(rows_block(d, r));
      want_counts.push_back(rows_from_to(d, r));
    }
    std::vector<int64_t> got_counts;
    at::Tensor got = comm.alltoallv(at::cat(send).to(dt).to(dev), counts, &got_counts);
    CHECK_OR_FAIL(got.device() == dev, name, " alltoallv result on ", got.device());
    got = got.cpu();
    CHECK_OR_FAIL(got_counts == want_counts, name, " alltoallv recv counts");
    CHECK_OR_FAIL(got.sizes() == at::cat(want).sizes() && at::equal(got, at::cat(want).to(dt)),
                  name, " alltoallv rows: got ", got, " want ", at::cat(want));
  }
  // A rank that sends nothing at all (every count zero) still joins.
  std::vector<int64_t> zero(n, 0), got_counts;
  std::vector<int64_t> one(n, 0);
  one[0] = 1;
  at::Tensor x = (r == n - 1 ? at::zeros({0, 3}) : at::full({1, 3}, 1.0 + r)).to(dev);
  at::Tensor got = comm.alltoallv(x, r == n - 1 ? zero : one, &got_counts).cpu();
  CHECK_OR_FAIL(got.size(0) == (r == 0 ? n - 1 : 0), where,
                " alltoallv with an idle rank: ", got.sizes());
  if (r == 0 && got.size(0) == n - 1)
    CHECK_OR_FAIL(at::equal(got.select(1, 0), at::arange(1.0, 1.0 * n)), where, " idle-rank rows ",
                  got);
  // Counts that do not add up to the rows are named.
  bool threw = false;
  try {
    comm.alltoallv(at::zeros({1, 2}).to(dev), zero);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("send counts sum to 0 rows") != std::string::npos;
  }
  CHECK_OR_FAIL(threw, where, " alltoallv with wrong counts must throw");
}

// alltoallv_async: two exchanges in flight at once, waited on in the
// reverse order while this rank computes (as the EP layer runs its shared
// expert): the first moves check_alltoallv's rows, the second wide ones
// (the same origin tags repeated, 24 KiB per fp32 row: past MPI's eager
// limit, so they cannot all have arrived before the wait).  The receive
// counts come back at posting; each wait returns its own exchange's rows.
// Then a rank with no rows posts too.
static at::Tensor wide_block(int src, int dst) {
  constexpr int64_t kRepeat = 2048;
  return rows_block(src, dst).repeat({1, kRepeat}) + at::arange(3 * kRepeat, at::kDouble) / 4096;
}

static void check_alltoallv_async(Comm& comm, const std::string& where,
                                  at::Device dev = at::Device(at::kCPU)) {
  const int r = comm.rank(), n = comm.size();
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    const std::string name = where + " " + at::toString(dt) + " alltoallv_async";
    std::vector<at::Tensor> send, want, send_wide, want_wide;
    std::vector<int64_t> counts, want_counts;
    for (int d = 0; d < n; ++d) {
      send.push_back(rows_block(r, d));
      send_wide.push_back(wide_block(r, d));
      counts.push_back(rows_from_to(r, d));
      want.push_back(rows_block(d, r));
      want_wide.push_back(wide_block(d, r));
      want_counts.push_back(rows_from_to(d, r));
    }
    std::vector<int64_t> got_counts, got_counts_wide;
    auto first = comm.alltoallv_async(at::cat(send).to(dt).to(dev), counts, &got_counts);
    auto second = comm.alltoallv_async(at::cat(send_wide).to(dt).to(dev), counts, &got_counts_wide);
    CHECK_OR_FAIL(got_counts == want_counts && got_counts_wide == want_counts, name,
                  " recv counts at posting");
    at::Tensor busy = at::ones({96, 96}, at::TensorOptions().device(dev));
    for (int i = 0; i < 8; ++i) busy = at::matmul(busy, busy) / 96;  // work while in flight
    CHECK_OR_FAIL(busy.sum().item<double>() == 96.0 * 96.0, name, " local work ", busy.sum());
    at::Tensor got_wide = second->wait();
    at::Tensor got = first->wait();
    CHECK_OR_FAIL(got.device() == dev && got_wide.device() == dev, name, " result devices ",
                  got.device(), ", ", got_wide.device());
    got = got.cpu();
    got_wide = got_wide.cpu();
    at::Tensor w = at::cat(want).to(dt), ww = at::cat(want_wide).to(dt);
    CHECK_OR_FAIL(got.sizes() == w.sizes() && at::equal(got, w), name,
                  " first exchange's rows: got ", got, " want ", w);
    CHECK_OR_FAIL(got_wide.sizes() == ww.sizes() && at::equal(got_wide, ww), name,
                  " second (wide) exchange's rows differ: got shape ", got_wide.sizes(), " want ",
                  ww.sizes());
  }
  // A rank with no rows joins: the last sends nothing, the others one row to rank 0.
  std::vector<int64_t> zero(n, 0), one(n, 0), got_counts;
  one[0] = 1;
  at::Tensor x = (r == n - 1 ? at::zeros({0, 3}) : at::full({1, 3}, 1.0 + r)).to(dev);
  at::Tensor got = comm.alltoallv_async(x, r == n - 1 ? zero : one, &got_counts)->wait().cpu();
  CHECK_OR_FAIL(got.size(0) == (r == 0 ? n - 1 : 0), where,
                " alltoallv_async with an idle rank: ", got.sizes());
  if (r == 0 && got.size(0) == n - 1)
    CHECK_OR_FAIL(at::equal(got.select(1, 0), at::arange(1.0, 1.0 * n)), where,
                  " alltoallv_async idle-rank rows ", got);
}

static void split_alltoallv(Comm& world) {
  int r = world.rank(), n = world.size();
  CHECK_OR_FAIL(n == 2 || n == 4, "size ", n);
  check_alltoallv(world, "world");
  // Interleaved colours, keys reversing the order: sub rank follows the key.
  auto odd_even = world.split(r % 2, -r);
  int members = (n + 1 - r % 2) / 2;
  CHECK_OR_FAIL(odd_even->size() == members, "odd/even size ", odd_even->size());
  CHECK_OR_FAIL(odd_even->rank() == (n - 1 - r) / 2, "odd/even rank ", odd_even->rank(),
                " of world ", r);
  at::Tensor sum = at::full({2}, 1.0 + r, at::kDouble);
  odd_even->allreduce(sum);
  double want = 0;
  for (int q = r % 2; q < n; q += 2) want += 1.0 + q;
  CHECK_OR_FAIL(at::equal(sum, at::full({2}, want, at::kDouble)), "odd/even allreduce ", sum);
  check_alltoallv(*odd_even, "odd/even");
  // Contiguous pairs (the EP groups of a DP x EP grid with EP = 2).
  auto pairs = world.split(r / 2, r);
  CHECK_OR_FAIL(pairs->size() == 2 && pairs->rank() == r % 2, "pairs rank ", pairs->rank());
  at::Tensor g = pairs->allgather(at::full({1}, r, at::kLong));
  CHECK_OR_FAIL(at::equal(g.flatten(), at::tensor({r / 2 * 2, r / 2 * 2 + 1}, at::kLong)),
                "pairs allgather ", g);
  check_alltoallv(*pairs, "pairs");
  // A split of a split.
  auto single = pairs->split(pairs->rank(), 0);
  CHECK_OR_FAIL(single->size() == 1 && single->rank() == 0, "split of a split ", single->size());
  at::Tensor s1 = at::full({1}, 5.0 + r);
  single->allreduce(s1);
  CHECK_OR_FAIL(s1.item<double>() == 5.0 + r, "size-1 split allreduce ", s1);
  check_alltoallv(*single, "size-1 split");
  bool threw = false;
  try {
    world.split(-1, 0);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("colour -1") != std::string::npos;
  }
  CHECK_OR_FAIL(threw, "negative colour must throw");
  world.barrier();
}

// DP x EP grids: EP groups are consecutive world ranks, DP groups stride ep.
static void grid(Comm& world) {
  int r = world.rank(), n = world.size();
  for (int ep = 1; ep <= n; ep *= 2) {
    ProcessGrid g(world, ep);
    std::string name = "ep " + std::to_string(ep);
    CHECK_OR_FAIL(g.ep() == ep && g.dp() == n / ep, name, " shape ", g.dp(), "x", g.ep());
    CHECK_OR_FAIL(g.ep_rank() == r % ep && g.dp_rank() == r / ep, name, " coordinates");
    // Gathering world ranks over each axis names exactly the member ranks.
    at::Tensor e = g.ep_comm().allgather(at::full({1}, r, at::kLong)).flatten();
    at::Tensor d = g.dp_comm().allgather(at::full({1}, r, at::kLong)).flatten();
    CHECK_OR_FAIL(at::equal(e, at::arange(r / ep * ep, r / ep * ep + ep, at::kLong)), name,
                  " EP group ", e);
    CHECK_OR_FAIL(at::equal(d, at::arange(r % ep, n, ep, at::kLong)), name, " DP group ", d);
    CHECK_OR_FAIL(g.experts_per_rank(8) == 8 / ep && g.first_expert(8) == (r % ep) * (8 / ep), name,
                  " expert shard");
  }
  bool threw = false;
  try {
    ProcessGrid bad(world, 3);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("parallel.expert = 3") != std::string::npos;
  }
  CHECK_OR_FAIL(threw, "an expert size that does not divide the world must throw");
  ProcessGrid g(world, n);
  threw = false;
  try {
    g.experts_per_rank(n + 1);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("do not divide") != std::string::npos;
  }
  CHECK_OR_FAIL(threw, "experts that do not divide over EP must throw");
}

// Rank r's contributions are functions of r, so the expected results hold at
// any world size n (at n = 1 every collective is an identity on the data, but
// the dtype mapping, the stream and the CPU staging path still run).
static void nccl_collectives(Comm& comm) {
  const int r = comm.rank(), n = comm.size();
  const double tri = n * (n + 1) / 2.0;
  CHECK_OR_FAIL(comm.backend() == "nccl", "backend ", comm.backend());
  const auto own = comm.split(0, r);  // for the non-blocking calls
  const auto cuda = [](at::Tensor t) { return t.to(at::kCUDA); };
  for (auto dt : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kLong, at::kInt}) {
    const std::string name = at::toString(dt);
    const auto on = [&](at::Tensor t) { return cuda(t.to(dt)); };
    at::Tensor t = on(at::arange(1, 8, at::kDouble) * (r + 1));
    comm.allreduce(t, ReduceOp::kSum);
    CHECK_OR_FAIL(t.is_cuda() && at::equal(t.cpu(), (at::arange(1, 8, at::kDouble) * tri).to(dt)),
                  name, " sum");
    at::Tensor mx = on(at::full({5}, 3.0 + r, at::kDouble));
    comm.allreduce(mx, ReduceOp::kMax);
    CHECK_OR_FAIL(at::equal(mx.cpu(), at::full({5}, 2.0 + n, at::kDouble).to(dt)), name, " max");
    at::Tensor mn = on(at::full({5}, 3.0 + r, at::kDouble));
    comm.allreduce(mn, ReduceOp::kMin);
    CHECK_OR_FAIL(at::equal(mn.cpu(), at::full({5}, 3.0, at::kDouble).to(dt)), name, " min");
    if (at::isFloatingType(dt)) {
      at::Tensor avg = on(at::full({4}, 2.0 * r + 1, at::kDouble));  // mean of 1, 3, ..: n
      comm.allreduce(avg, ReduceOp::kMean);
      CHECK_OR_FAIL(at::equal(avg.cpu(), at::full({4}, static_cast<double>(n), at::kDouble).to(dt)),
                    name, " mean");
    }
    at::Tensor b = r == 0 ? on(at::arange(0, 6, at::kDouble).reshape({2, 3}))
                          : on(at::zeros({2, 3}, at::kDouble));
    comm.broadcast(b, 0);
    CHECK_OR_FAIL(at::equal(b.cpu(), at::arange(0, 6, at::kDouble).reshape({2, 3}).to(dt)), name,
                  " broadcast");
    at::Tensor g = comm.allgather(on(at::full({3}, r + 0.0, at::kDouble)));
    CHECK_OR_FAIL(g.sizes() == at::IntArrayRef({n, 3}), name, " allgather shape");
    for (int i = 0; i < n && g.dim() == 2; ++i)
      CHECK_OR_FAIL(at::equal(g[i].cpu(), at::full({3}, i + 0.0, at::kDouble).to(dt)), name,
                    " allgather row ", i);
    // alltoall: rank r sends 10 r + i (two elements each) to rank i.
    at::Tensor a = at::empty({2 * n}, at::kDouble), want = at::empty({2 * n}, at::kDouble);
    for (int i = 0; i < n; ++i) {
      a[2 * i] = 10.0 * r + i;
      a[2 * i + 1] = 10.0 * r + i + 0.5;
      want[2 * i] = 10.0 * i + r;
      want[2 * i + 1] = 10.0 * i + r + 0.5;
    }
    at::Tensor got = comm.alltoall(on(a));
    CHECK_OR_FAIL(at::equal(got.cpu(), want.to(dt)), name, " alltoall");
    // reduce_scatter, blocking and non-blocking (on a split communicator, on
    // its own stream, as GradSync uses them): rank r contributes (r+1) *
    // [1..2n] and gets elements [2r, 2r+2) of tri * [1..2n].
    const at::Tensor rs_in = at::arange(1, 2 * n + 1, at::kDouble) * (r + 1);
    const at::Tensor rs_want = (at::arange(1 + 2 * r, 3 + 2 * r, at::kDouble) * tri).to(dt);
    CHECK_OR_FAIL(at::equal(comm.reduce_scatter(on(rs_in)).cpu(), rs_want), name,
                  " reduce_scatter");
    at::Tensor ta = on(at::arange(1, 8, at::kDouble) * (r + 1));
    auto w_ar = own->allreduce_async(ta, ReduceOp::kSum);
    auto w_rs = own->reduce_scatter_async(on(rs_in));
    CHECK_OR_FAIL(at::equal(w_rs->wait().cpu(), rs_want), name, " reduce_scatter_async");
    CHECK_OR_FAIL(at::equal(w_ar->wait().cpu(), (at::arange(1, 8, at::kDouble) * tri).to(dt)), name,
                  " allreduce_async");
  }
  // A CPU tensor (metrics, expert loads) is staged through the GPU and comes back.
  at::Tensor cpu = at::arange(1, 5, at::kDouble) * (r + 1);
  comm.allreduce(cpu, ReduceOp::kSum);
  CHECK_OR_FAIL(!cpu.is_cuda() && at::equal(cpu, at::arange(1, 5, at::kDouble) * tri),
                "CPU tensor sum");
  CHECK_OR_FAIL(comm.allreduce_scalar(r + 0.5) == n * n / 2.0, "scalar sum");
  comm.barrier();
}

// The expert-parallel paths with rows on `gpu` (CUDA on the NCCL Comm, the
// CPU on MPI), at any world size (at 1 every sub-communicator is the rank
// alone and each exchange sends to itself).
static void ep_paths(Comm& world, at::Device gpu) {
  const int r = world.rank(), n = world.size();
  const std::string b = world.backend();
  check_alltoallv(world, b + " world", gpu);
  check_alltoallv_async(world, b + " world", gpu);
  if (gpu.is_cuda()) {
    check_alltoallv(world, b + " world, CPU rows staged", at::Device(at::kCPU));
    check_alltoallv_async(world, b + " world, CPU rows staged", at::Device(at::kCPU));
  }
  // Keys reversing the order: the sub rank follows the key (MPI and NCCL agree).
  auto rev = world.split(0, -r);
  CHECK_OR_FAIL(rev->backend() == b && rev->size() == n && rev->rank() == n - 1 - r,
                b + " split rank ", rev->rank(), " of ", rev->size(), " (", rev->backend(), ")");
  at::Tensor s = at::full({3}, 1.0 + r, at::kDouble).to(gpu);
  rev->allreduce(s);
  CHECK_OR_FAIL(at::equal(s.cpu(), at::full({3}, n * (n + 1) / 2.0, at::kDouble)),
                b + " split allreduce ", s);
  at::Tensor g = rev->allgather(at::full({1}, r, at::kLong).to(gpu)).flatten().cpu();
  CHECK_OR_FAIL(at::equal(g, at::arange(n - 1, -1, -1, at::kLong)), b + " split allgather ", g);
  check_alltoallv(*rev, b + " split", gpu);
  auto single = rev->split(rev->rank(), 0);  // a split of a split: the rank alone
  CHECK_OR_FAIL(single->size() == 1 && single->rank() == 0, b + " split of a split ",
                single->size());
  check_alltoallv(*single, b + " split of a split", gpu);
  // The grids the trainer builds (two splits each): every EP size dividing n.
  for (int ep = 1; ep <= n; ++ep) {
    if (n % ep) continue;
    ProcessGrid grid(world, ep);
    const std::string name = b + " grid ep " + std::to_string(ep);
    at::Tensor e = grid.ep_comm().allgather(at::full({1}, r, at::kLong).to(gpu)).flatten().cpu();
    at::Tensor d = grid.dp_comm().allgather(at::full({1}, r, at::kLong).to(gpu)).flatten().cpu();
    CHECK_OR_FAIL(at::equal(e, at::arange(r / ep * ep, r / ep * ep + ep, at::kLong)), name,
                  " EP group ", e);
    CHECK_OR_FAIL(at::equal(d, at::arange(r % ep, n, ep, at::kLong)), name, " DP group ", d);
    check_alltoallv(grid.ep_comm(), name + " EP group", gpu);
    check_alltoallv_async(grid.ep_comm(), name + " EP group", gpu);
    check_alltoallv(grid.dp_comm(), name + " DP group", gpu);
  }
  world.barrier();
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "collectives";
  try {
    ZR_CHECK(mpi_init_if_launched(&argc, &argv), "run me under mpirun");
    if (mode == "nccl") {
#ifndef ZERORL_WITH_CUDA
      std::printf("SKIPPED: this build has no CUDA (ZERORL_CUDA=OFF), so no NCCL Comm\n");
      return 77;
#else
      if (!at::hasCUDA()) {
        std::printf("SKIPPED: the NCCL Comm needs a CUDA device; none is visible\n");
        return 77;
      }
      auto nccl = make_comm("nccl");
      test::g_rank = nccl->rank();
      nccl_collectives(*nccl);
      ep_paths(*nccl, at::Device(at::kCUDA));
      const int total = static_cast<int>(nccl->allreduce_scalar(g_failures));
      if (nccl->rank() == 0)
        std::printf("nccl collectives, split and alltoallv on %d rank(s): %s\n", nccl->size(),
                    total ? "FAILED" : "passed");
      return total ? 1 : 0;
#endif
    }
    auto comm = make_comm("mpi");
    test::g_rank = comm->rank();
    if (mode == "collectives") {
      collectives(*comm);
      int local = g_failures, total = 0;
      at::Tensor t = at::full({1}, local, at::kInt);
      comm->allreduce(t);
      total = t.item<int>();
      if (comm->rank() == 0) std::printf("collectives: %s\n", total ? "FAILED" : "passed");
      return total ? 1 : 0;
    }
    if (mode == "split_alltoallv") {
      split_alltoallv(*comm);
      grid(*comm);
      ep_paths(*comm, at::Device(at::kCPU));  // what `nccl` runs on CUDA tensors
      at::Tensor t = at::full({1}, g_failures, at::kInt);
      comm->allreduce(t);
      if (comm->rank() == 0)
        std::printf("split_alltoallv: %s\n", t.item<int>() ? "FAILED" : "passed");
      return t.item<int>() ? 1 : 0;
    }
    if (mode == "stop_rank1") {
      set_collective_timeout(3.0);
      for (int step = 1; step <= 2; ++step) {
        set_collective_context("step " + std::to_string(step));
        at::Tensor t = at::arange(1000, at::kFloat) * (comm->rank() + 1);
        comm->allreduce(t);
        ZR_CHECK(t[999].item<float>() == 999.0f * comm->size() * (comm->size() + 1) / 2,
                 "allreduce sum wrong before the stop");
        comm->barrier();
      }
      set_collective_context("step 3");
      // Without a watchdog rank 0 would wait forever: SIGALRM ends it (and
      // mpirun the job) well after the bound, so the test fails, not hangs.
      if (comm->rank() == 0) ::alarm(40);
      if (comm->rank() == 1) ::raise(SIGSTOP);  // never answers again
      at::Tensor t = at::ones({8});
      comm->allreduce(t);
      return 0;  // unreachable on a correct watchdog
    }
    if (mode == "throw_on_rank1") {
      if (comm->rank() == 1) ZR_THROW("rank 1 fails on purpose");
      comm->barrier();  // rank 0 would wait here forever without MPI_Abort
      return 0;
    }
    ZR_THROW("unknown mode ", mode);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    mpi_abort_all(1);
    return 1;
  }
}
