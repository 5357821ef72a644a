// GradSync's overlap with backward (trainer/grad_sync.h), in one process:
// a Comm that records when each non-blocking collective is posted, and a
// gradient hook on an early activation that records when backward reaches
// the first layer, show that buckets go out during backward, in descending
// order, only in the armed (last) micro-batch, and that a parameter without
// a gradient holds its bucket and the ones below it back.  The bits against
// the blocking path, over real MPI ranks, are checked by trainer.mpi.np2
// (learner_mpi_main.cpp) and the trainer.mpi.overlap_* loop runs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "trainer/grad_sync.h"
#include "trainer/optimizer.h"
#include "trainer/shard_plan.h"

namespace zerorl {
namespace {

// One rank (every collective the identity) that writes "post <numel>" to a
// shared trace for each non-blocking collective, and hands the same trace
// to the communicators split from it.
class TracingComm final : public Comm {
 public:
  explicit TracingComm(std::shared_ptr<std::vector<std::string>> trace)
      : trace_(std::move(trace)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "trace"; }
  void allreduce(at::Tensor&, ReduceOp) override {}
  void broadcast(at::Tensor&, int) override {}
  at::Tensor allgather(const at::Tensor& t) override { return t.unsqueeze(0).clone(); }
  at::Tensor alltoall(const at::Tensor& t) override { return t.clone(); }
  at::Tensor reduce_scatter(const at::Tensor& flat) override { return flat.clone(); }
  void barrier() override {}
  at::Tensor alltoallv(const at::Tensor& t, const std::vector<int64_t>&,
                       std::vector<int64_t>* recv) override {
    if (recv) *recv = {t.size(0)};
    return t.clone();
  }
  std::unique_ptr<Comm> split(int, int) override { return std::make_unique<TracingComm>(trace_); }
  std::unique_ptr<CommWork> allreduce_async(at::Tensor t, ReduceOp op) override {
    trace_->push_back("post " + std::to_string(t.numel()));
    return Comm::allreduce_async(t, op);
  }
  std::unique_ptr<CommWork> reduce_scatter_async(const at::Tensor& flat) override {
    trace_->push_back("post " + std::to_string(flat.numel()));
    return Comm::reduce_scatter_async(flat);
  }

 private:
  std::shared_ptr<std::vector<std::string>> trace_;
};

// A chain of kLayers linear maps whose weights have distinct sizes (layer i
// maps kWidth[i] -> kWidth[i+1]), so the trace names each bucket by numel.
constexpr int kLayers = 5;
const int64_t kWidth[kLayers + 1] = {3, 4, 5, 6, 7, 8};

struct Chain {
  std::vector<at::Tensor> w;
  explicit Chain(uint64_t seed) {
    at::manual_seed(seed);
    for (int i = 0; i < kLayers; ++i)
      w.push_back((at::randn({kWidth[i], kWidth[i + 1]}) * 0.5).requires_grad_(true));
  }
  // Backward reaches h1 (layer 0's output) after every later layer's weight
  // gradient; `trace` records that moment.
  at::Tensor loss(const at::Tensor& x, std::vector<std::string>* trace) const {
    at::Tensor h = at::tanh(at::matmul(x, w[0]));
    if (trace) h.register_hook([trace](const at::Tensor&) { trace->push_back("reached layer 0"); });
    for (int i = 1; i < kLayers; ++i) h = at::tanh(at::matmul(h, w[i]));
    return h.square().sum();
  }
};

// One parameter per bucket: bucket k holds w[k].
ShardPlan one_per_bucket(const std::vector<at::Tensor>& ps, int stage = 0) {
  return ShardPlan::make(ps, stage, 0, 1, /*bucket_bytes=*/4);
}

int64_t numel_of_layer(int i) { return kWidth[i] * kWidth[i + 1]; }

TEST(GradSyncOverlap, BucketsArePostedDuringBackwardInDescendingOrder) {
  auto trace = std::make_shared<std::vector<std::string>>();
  TracingComm comm(trace);
  Chain net(1);
  GradSync sync(net.w, one_per_bucket(net.w), comm, ReduceOp::kSum, /*overlap=*/true);
  ASSERT_EQ(sync.num_buckets(), kLayers);
  const at::Tensor x = at::randn({2, kWidth[0]});
  sync.overlap_next_backward();
  net.loss(x, trace.get()).backward();
  // Every bucket went out from a hook, the last layer's first; layers 4..1
  // before backward reached layer 0 (whose weight gradient comes after).
  EXPECT_EQ(sync.buckets_posted_in_backward(), kLayers);
  std::vector<std::string> want;
  for (int i = kLayers - 1; i >= 1; --i)
    want.push_back("post " + std::to_string(numel_of_layer(i)));
  want.push_back("reached layer 0");
  want.push_back("post " + std::to_string(numel_of_layer(0)));
  EXPECT_EQ(*trace, want);
  // The sync posts nothing more, and the gradients are the summed (here:
  // this rank's) ones, as without overlap.
  std::vector<at::Tensor> g;
  for (const auto& w : net.w) g.push_back(w.grad().clone());
  sync.allreduce_grads();
  EXPECT_EQ(trace->size(), want.size());
  for (int i = 0; i < kLayers; ++i) EXPECT_TRUE(at::equal(net.w[i].grad(), g[i])) << i;
}

TEST(GradSyncOverlap, OnlyTheArmedMicroBatchPostsAndEarlierOnesAccumulate) {
  auto trace = std::make_shared<std::vector<std::string>>();
  TracingComm comm(trace);
  Chain net(2), ref(2);
  GradSync sync(net.w, one_per_bucket(net.w), comm, ReduceOp::kSum, /*overlap=*/true);
  const at::Tensor x1 = at::randn({2, kWidth[0]}), x2 = at::randn({3, kWidth[0]});
  net.loss(x1, nullptr).backward();
  EXPECT_TRUE(trace->empty()) << "a micro-batch before the armed one posted a bucket";
  sync.overlap_next_backward();
  net.loss(x2, nullptr).backward();
  EXPECT_EQ(sync.buckets_posted_in_backward(), kLayers);
  sync.allreduce_grads();
  ref.loss(x1, nullptr).backward();
  ref.loss(x2, nullptr).backward();
  for (int i = 0; i < kLayers; ++i)
    EXPECT_TRUE(at::equal(net.w[i].grad(), ref.w[i].grad()))
        << "layer " << i << ": a bucket was packed before both micro-batches had accumulated";
}

TEST(GradSyncOverlap, AParameterWithoutAGradientHoldsItsBucketAndTheOnesBelowBack) {
  auto trace = std::make_shared<std::vector<std::string>>();
  TracingComm comm(trace);
  Chain net(3);
  // An unused parameter (an expert without tokens) between layers 1 and 2:
  // buckets 0 w0, 1 w1, 2 unused, 3 w2, 4 w3, 5 w4.  Stage 2 (reduce-scatter).
  std::vector<at::Tensor> ps = net.w;
  const at::Tensor unused = at::ones({11}).requires_grad_(true);
  ps.insert(ps.begin() + 2, unused);
  GradSync sync(ps, one_per_bucket(ps, /*stage=*/2), comm, ReduceOp::kSum, /*overlap=*/true);
  sync.overlap_next_backward();
  net.loss(at::randn({2, kWidth[0]}), nullptr).backward();
  EXPECT_EQ(sync.buckets_posted_in_backward(), 3) << "w4, w3, w2 only";
  // Stage 2 frees each posted bucket's gradients at once.
  EXPECT_FALSE(net.w[4].grad().defined());
  EXPECT_TRUE(net.w[1].grad().defined());
  sync.reduce_scatter_grads();
  // Sizes: w4 56, w3 42, w2 30 from hooks; then unused 11, w1 20, w0 12.
  const std::vector<std::string> want = {"post 56", "post 42", "post 30",
                                         "post 11", "post 20", "post 12"};
  EXPECT_EQ(*trace, want);
  EXPECT_TRUE(at::equal(sync.grad_slice(2), at::zeros({11})));
  for (const auto& w : net.w) EXPECT_FALSE(w.grad().defined());
}

TEST(GradSyncOverlap, AGradientAfterItsBucketWasSentIsAnErrorNamingTheKey) {
  auto trace = std::make_shared<std::vector<std::string>>();
  TracingComm comm(trace);
  Chain net(4);
  GradSync sync(net.w, one_per_bucket(net.w), comm, ReduceOp::kSum, /*overlap=*/true);
  const at::Tensor x = at::randn({2, kWidth[0]});
  sync.overlap_next_backward();
  net.loss(x, nullptr).backward();
  net.loss(x, nullptr).backward();  // a second backward before the sync
  try {
    sync.allreduce_grads();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.overlap_grad_sync"), std::string::npos) << e.what();
  }
}

TEST(GradSyncOverlap, WithoutOverlapNothingIsPostedFromBackward) {
  auto trace = std::make_shared<std::vector<std::string>>();
  TracingComm comm(trace);
  Chain net(5);
  GradSync sync(net.w, one_per_bucket(net.w), comm, ReduceOp::kSum, /*overlap=*/false);
  sync.overlap_next_backward();
  net.loss(at::randn({2, kWidth[0]}), nullptr).backward();
  EXPECT_EQ(sync.buckets_posted_in_backward(), 0);
  EXPECT_TRUE(trace->empty());
  sync.allreduce_grads();  // blocking allreduce: not traced
  EXPECT_TRUE(trace->empty());
}

// The Optimizer passes train.overlap_grad_sync through and removes its hooks
// when destroyed (a later optimizer over the same parameters owns them).
TEST(GradSyncOverlap, TheOptimizerArmsTheSyncAndItsHooksLeaveWithIt) {
  auto trace = std::make_shared<std::vector<std::string>>();
  TracingComm comm(trace);
  Chain net(6);
  std::vector<NamedParam> ps;
  for (int i = 0; i < kLayers; ++i) ps.push_back({"w" + std::to_string(i), net.w[i], true});
  OptimizerConfig oc;
  oc.bucket_mb = 4.0 / (1 << 20);
  const at::Tensor x = at::randn({2, kWidth[0]});
  {
    Optimizer opt(ps, oc, comm);
    ASSERT_TRUE(opt.grad_sync().overlap()) << "overlap is the default";
    opt.overlap_next_backward();
    net.loss(x, nullptr).backward();
    EXPECT_EQ(opt.grad_sync().buckets_posted_in_backward(), kLayers);
    EXPECT_TRUE(opt.step().applied);
  }
  trace->clear();
  net.loss(x, nullptr).backward();  // no optimizer: the hooks are gone
  EXPECT_TRUE(trace->empty());
}

}  // namespace
}  // namespace zerorl
